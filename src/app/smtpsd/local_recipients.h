// local_recipients.h — which envelope recipients have a mailbox here, and under which
// canonical name. Pure lookups over the configuration snapshot (no I/O): the session
// policy uses them at RCPT, the delivery worker to pick the Maildir.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "delivery/router.h"
#include "smtp/server_session.h"

namespace app {

// "user@domain" as configured (domain lower-case, user spelled as in the configuration),
// or nothing when the address is not a local mailbox. RFC 5321 §4.5.1: "postmaster" and
// "postmaster@<local domain>" are always local (mapped to the first local domain when the
// domain is missing).
std::optional<std::string> canonical_local_mailbox(const config::Config& config,
                                                   std::string_view address);

// The RCPT verdict for a role that does not relay (docs/architecture.md "Listener roles": the smtp
// role).
smtp::RecipientVerdict verdict_for_inbound(const config::Config& config, std::string_view address);

// The same lookups for the delivery router (delivery/router.h); they hold the snapshot.
delivery::LocalRecipients local_recipients_of(std::shared_ptr<const config::Config> snapshot);

}  // namespace app
