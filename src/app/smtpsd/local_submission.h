// local_submission.h — the local role (docs/architecture.md "Listener roles"): `sendmail` on
// this host submits through a unix socket without credentials, as Postfix's postdrop does.
//
//   role   where                   TLS   AUTH                        accepts mail for
//   local  [local_submission]      none  the peer's uid (SO_PEERCRED)  anyone (relays)
//          socket (unix only)
//
// Invariants: the socket is never a network address (config refuses role "local" in
// [[listeners]]); the user is the name of the uid the kernel reports, never the client's
// word; a uid without a name, or a user not in allow_users (when set), is refused before
// the greeting (554 5.7.1); the envelope sender becomes USER@domain unless the user is in
// may_set_sender; messages are marked authenticated (our own users' mail: DSN rules, relay).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/alias_table.h"
#include "auth/user_store.h"
#include "base/expected.h"
#include "config/config.h"
#include "intake/pipeline.h"
#include "net/peer_credentials.h"
#include "net/server.h"
#include "smtp/reply.h"

namespace app {

// The login name of uid (getpwuid_r), or nothing when the uid has none.
std::optional<std::string> local_user_name(std::uint32_t uid);

// Who a local peer is allowed to submit as: its user name, or the refusal it gets instead of
// the greeting. lookup names a uid (local_user_name outside tests).
base::Expected<std::string, smtp::Reply> identify_local_peer(
    const config::LocalSubmissionSettings& settings, const net::PeerCredentials& peer,
    const std::function<std::optional<std::string>(std::uint32_t)>& lookup);

// The envelope sender of a local user's MAIL FROM:<given> ("" for <>): given when the user is
// in may_set_sender, else USER@domain.
std::string local_sender(const config::LocalSubmissionSettings& settings, std::string_view user,
                         std::string_view given);

// The listener of snapshot->local_submission (enabled): session policy, checks, the socket.
// Recipients are decided as on the other roles (local_recipients.h inbound_recipients), with
// the mailboxes and aliases in service; users and aliases must outlive the listener.
net::ListenerOptions local_listener_options(
    std::shared_ptr<const config::Config> snapshot, std::shared_ptr<const intake::Pipeline> checks,
    std::function<bool(std::uint64_t declared_size)> has_room_for, auth::UserDirectory& users,
    const auth::AliasDirectory* aliases);

}  // namespace app
