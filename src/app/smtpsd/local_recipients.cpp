// local_recipients.cpp — see local_recipients.h.
#include "app/smtpsd/local_recipients.h"

#include "app/smtpsd/domain_routing.h"
#include "base/ascii.h"
#include "base/clock.h"

#include <cctype>

namespace app {
namespace {

using base::equals_ignoring_case;

}  // namespace

std::optional<std::string> canonical_local_mailbox(const config::Config& config,
                                                   std::string_view address) {
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) {
    if (equals_ignoring_case(address, "postmaster") && !config.domains.empty()) {
      return "postmaster@" + config.domains.front().name;
    }
    return std::nullopt;
  }
  std::string_view local = address.substr(0, at);
  const config::Domain* domain = config.find_domain(address.substr(at + 1));
  if (!domain) return std::nullopt;
  // Local parts are case-sensitive in theory (RFC 5321 §2.4) but every mail system in
  // use matches mailboxes case-insensitively; so do we, and deliver under the spelling
  // the configuration gives.
  for (const std::string& user : domain->users) {
    if (equals_ignoring_case(local, user)) return user + "@" + domain->name;
  }
  if (equals_ignoring_case(local, "postmaster")) return "postmaster@" + domain->name;
  return std::nullopt;
}

smtp::RecipientVerdict verdict_for_inbound(const config::Config& config, std::string_view address) {
  // Relay domains and SRS addresses (app/smtpsd/domain_routing.h).
  if (auto verdict = forwarding_verdict(config, address, base::unix_now())) return *verdict;
  if (canonical_local_mailbox(config, address)) return smtp::RecipientVerdict::kAccept;
  std::size_t at = address.rfind('@');
  if (at != std::string_view::npos && config.find_domain(address.substr(at + 1))) {
    return smtp::RecipientVerdict::kUnknownUser;  // 550 5.1.1
  }
  return smtp::RecipientVerdict::kRelayDenied;  // 550 5.7.1: the MX port never relays
}

delivery::LocalRecipients local_recipients_of(std::shared_ptr<const config::Config> snapshot) {
  delivery::LocalRecipients local;
  local.mailbox = [snapshot](std::string_view address) {
    return canonical_local_mailbox(*snapshot, address);
  };
  local.is_local_domain = [snapshot](std::string_view domain) {
    return snapshot->find_domain(domain) != nullptr;
  };
  return local;
}

}  // namespace app
