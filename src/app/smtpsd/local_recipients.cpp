// local_recipients.cpp — see local_recipients.h.
#include "app/smtpsd/local_recipients.h"

#include "app/smtpsd/domain_routing.h"
#include "base/clock.h"
#include "queue/spool.h"

namespace app {

auth::AddressingPolicy addressing_policy(const config::Config& config) {
  auth::AddressingPolicy policy;
  for (const config::Domain& domain : config.domains) {
    policy.domains.push_back(domain.name);
    for (const std::string& user : domain.users)
      policy.legacy_mailboxes.push_back(user + "@" + domain.name);
  }
  const config::AddressingSettings& settings = config.addressing;
  policy.separator = settings.subaddress_separator;
  policy.administrator = settings.administrator;
  policy.role_accounts = settings.role_accounts;
  policy.max_depth = settings.max_alias_depth;
  policy.max_targets = settings.max_alias_targets;
  return policy;
}

smtp::RecipientDecision decide_recipient(const auth::AddressingPolicy& policy,
                                         const auth::UserStore* users,
                                         const auth::AliasTable* aliases,
                                         std::string_view address) {
  auth::Resolution resolution = auth::resolve_recipient(policy, users, aliases, address);
  switch (resolution.outcome) {
    case auth::ResolveOutcome::kResolved:
      // A mailbox reached without an alias keeps the address the client gave (the router
      // finds its mailbox at delivery); an expansion replaces it by its targets.
      if (!resolution.expanded) return smtp::RecipientVerdict::kAccept;
      return smtp::RecipientDecision(smtp::RecipientVerdict::kAccept,
                                     std::move(resolution.targets));
    case auth::ResolveOutcome::kUnknown:
      return smtp::RecipientVerdict::kUnknownUser;  // 550 5.1.1
    case auth::ResolveOutcome::kNotLocal:
      return smtp::RecipientVerdict::kRelayDenied;  // 550 5.7.1: the MX port never relays
    case auth::ResolveOutcome::kLoop:
      return smtp::RecipientVerdict::kLoop;
    case auth::ResolveOutcome::kTooMany:
      return smtp::RecipientVerdict::kTooMany;
  }
  return smtp::RecipientVerdict::kTempFail;
}

InboundRecipients inbound_recipients(std::shared_ptr<const config::Config> snapshot,
                                     auth::UserDirectory& users,
                                     const auth::AliasDirectory* aliases) {
  auto policy = std::make_shared<const auth::AddressingPolicy>(addressing_policy(*snapshot));
  return [snapshot, policy, &users, aliases](std::string_view address) {
    if (auto verdict = forwarding_verdict(*snapshot, address, base::unix_now())) {
      return smtp::RecipientDecision(*verdict);
    }
    const auto store = users.current();
    const auto table = aliases != nullptr ? aliases->current() : nullptr;
    return decide_recipient(*policy, store.get(), table.get(), address);
  };
}

delivery::LocalRecipients local_recipients_of(std::shared_ptr<const config::Config> snapshot,
                                              std::shared_ptr<const auth::UserStore> users) {
  auto policy = std::make_shared<const auth::AddressingPolicy>(addressing_policy(*snapshot));
  delivery::LocalRecipients local;
  local.mailbox = [policy, users](std::string_view address) -> std::optional<std::string> {
    auto match = auth::find_mailbox(*policy, users.get(), address);
    if (!match) return std::nullopt;
    return match->mailbox;
  };
  local.is_local_domain = [policy](std::string_view domain) {
    return policy->is_local_domain(domain);
  };
  if (snapshot->addressing.subaddress_folders) {
    local.folder = [policy, users](std::string_view address) {
      auto match = auth::find_mailbox(*policy, users.get(), address);
      // A detail that cannot name a Maildir++ folder (a '.', a '/') goes to the INBOX.
      if (!match || match->detail.empty() || !queue::Spool::is_valid_folder(match->detail)) {
        return std::string();
      }
      return match->detail;
    };
  }
  return local;
}

delivery::LocalRecipients LocalRecipientsCache::get(
    const std::shared_ptr<const config::Config>& snapshot,
    const std::shared_ptr<const auth::UserStore>& users) {
  std::lock_guard lock(mutex_);
  if (snapshot != config_ || users != users_ || !local_.mailbox) {
    local_ = local_recipients_of(snapshot, users);
    config_ = snapshot;
    users_ = users;
  }
  return local_;
}

}  // namespace app
