// local_submission.cpp — see local_submission.h.
#include "app/smtpsd/local_submission.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "app/smtpsd/domain_routing.h"
#include "app/smtpsd/local_recipients.h"

namespace app {

std::optional<std::string> local_user_name(std::uint32_t uid) {
  // XXX: NSS may be slow (LDAP); called once per local connection, on its I/O thread. The
  // local role is for this host's programs, a handful of connections, not a network load.
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? static_cast<std::size_t>(size) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(static_cast<uid_t>(uid), &entry, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr || entry.pw_name == nullptr || entry.pw_name[0] == '\0') {
    return std::nullopt;
  }
  return std::string(entry.pw_name);
}

base::Expected<std::string, smtp::Reply> identify_local_peer(
    const config::LocalSubmissionSettings& settings, const net::PeerCredentials& peer,
    const std::function<std::optional<std::string>(std::uint32_t)>& lookup) {
  std::optional<std::string> name = lookup(peer.uid);
  // Without a name there is no address to send as, and allow_users cannot name it.
  if (!name) {
    return base::unexpected(smtp::Reply{554, "5.7.1",
                                        "uid " + std::to_string(peer.uid) +
                                            " has no user name on this host: local submission "
                                            "refused"});
  }
  const auto& allowed = settings.allow_users;
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), *name) == allowed.end()) {
    return base::unexpected(smtp::Reply{554, "5.7.1",
                                        "local user " + *name +
                                            " may not submit mail here (not in "
                                            "local_submission.allow_users)"});
  }
  return *name;
}

std::string local_sender(const config::LocalSubmissionSettings& settings, std::string_view user,
                         std::string_view given) {
  const auto& trusted = settings.may_set_sender;
  if (std::find(trusted.begin(), trusted.end(), user) != trusted.end()) return std::string(given);
  return std::string(user) + "@" + settings.domain;
}

net::ListenerOptions local_listener_options(
    std::shared_ptr<const config::Config> snapshot, std::shared_ptr<const intake::Pipeline> checks,
    std::function<bool(std::uint64_t declared_size)> has_room_for, auth::UserDirectory& users,
    const auth::AliasDirectory* aliases) {
  const config::Config& config = *snapshot;
  net::ListenerOptions options;
  options.role = "local";
  options.address = config.local_submission.socket;
  options.unix_path = config.local_submission.socket;
  options.session.hostname = config.hostname;
  options.session.limits = config.limits;
  options.session.tls_mode = smtp::TlsMode::kNone;
  options.session.allow_null_sender = true;  // only kept for may_set_sender users
  options.session.sender_for = [snapshot](std::string_view user, std::string_view given) {
    return local_sender(snapshot->local_submission, user, given);
  };
  // Every session here is authenticated (set_local_user): local users send anywhere, as an
  // authenticated submission does.
  options.session.check_recipient = [inbound = inbound_recipients(snapshot, users, aliases)](
                                        std::string_view address,
                                        std::string_view user) -> smtp::RecipientDecision {
    smtp::RecipientDecision decision = inbound(address);
    if (!user.empty() && decision.verdict == smtp::RecipientVerdict::kRelayDenied) {
      return smtp::RecipientVerdict::kAccept;
    }
    return decision;
  };
  options.session.recipient_size_limit = [snapshot](std::string_view address) {
    return recipient_size_limit(*snapshot, address);  // [[domains]] max_message_size
  };
  options.session.has_room_for = std::move(has_room_for);
  options.identify_local = [snapshot](const net::PeerCredentials& peer) {
    return identify_local_peer(snapshot->local_submission, peer, local_user_name);
  };
  options.checks = std::move(checks);
  options.command_timeout = config.command_timeout;
  options.data_timeout = config.data_timeout;
  options.handshake_timeout = config.handshake_timeout;
  return options;
}

}  // namespace app
