// local_recipients.h — the configuration's side of addressing (docs/architecture.md
// "Addressing"): which envelope recipients are ours and what they expand to. Pure lookups
// over a configuration snapshot and the users and aliases snapshots in service (no I/O): the
// session policy runs them at RCPT, the delivery router to pick the mailbox and its folder.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "auth/alias_table.h"
#include "auth/recipient_resolver.h"
#include "auth/user_store.h"
#include "config/config.h"
#include "delivery/router.h"
#include "smtp/server_session.h"

namespace app {

// The resolver's settings from [addressing] and [[domains]] (the deprecated `users` lists
// become mailboxes beside the users file's).
auth::AddressingPolicy addressing_policy(const config::Config& config);

// The RCPT decision for a role that does not relay (docs/architecture.md "Listener roles":
// the smtp role): accept (expanded when an alias or role account was used), 550 5.1.1
// unknown, 550 5.7.1 not ours, 550 5.4.6 alias loop, 550 5.5.3 too many addresses.
smtp::RecipientDecision decide_recipient(const auth::AddressingPolicy& policy,
                                         const auth::UserStore* users,
                                         const auth::AliasTable* aliases, std::string_view address);

// The RCPT decision of one configuration snapshot with the mailboxes and aliases in service
// (both files are watched: a mailbox added is found at the next RCPT): relay domains and SRS
// addresses first (app/smtpsd/domain_routing.h), then decide_recipient. users and aliases
// must outlive the function.
using InboundRecipients = std::function<smtp::RecipientDecision(std::string_view address)>;
InboundRecipients inbound_recipients(std::shared_ptr<const config::Config> snapshot,
                                     auth::UserDirectory& users,
                                     const auth::AliasDirectory* aliases);

// The lookups for the delivery router (delivery/router.h); they hold the snapshots. mailbox:
// "user@domain" as listed (domain lower-case), or nothing when the address is not one of our
// mailboxes (a final address: aliases are not expanded here); RFC 5321 §4.5.1: "postmaster"
// without a domain is the first domain's.
delivery::LocalRecipients local_recipients_of(std::shared_ptr<const config::Config> snapshot,
                                              std::shared_ptr<const auth::UserStore> users = {});

// local_recipients_of the configuration and users snapshots in service, built again only when
// either changes (thread-safe): the router asks for each message and each lane choice, and
// the addressing policy is a copy of every domain and deprecated mailbox list.
class LocalRecipientsCache {
 public:
  delivery::LocalRecipients get(const std::shared_ptr<const config::Config>& snapshot,
                                const std::shared_ptr<const auth::UserStore>& users);

 private:
  std::mutex mutex_;
  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<const auth::UserStore> users_;
  delivery::LocalRecipients local_;
};

}  // namespace app
