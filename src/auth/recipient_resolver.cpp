// recipient_resolver.cpp — see recipient_resolver.h (lookup order, loop and fan-out bounds).
#include "auth/recipient_resolver.h"

#include <algorithm>

#include "base/ascii.h"

namespace auth {
namespace {

using base::equals_ignoring_case;

struct Split {
  std::string_view local;
  std::string domain;  // lower-case
};

std::optional<Split> split(std::string_view address) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return std::nullopt;
  return Split{address.substr(0, at), base::ascii_lowercase(address.substr(at + 1))};
}

// The mailbox named exactly by address (users file, then the deprecated [[domains]] users),
// spelled as listed there with the domain in lower case.
std::optional<std::string> exact_mailbox(const AddressingPolicy& policy, const UserStore* users,
                                         std::string_view address) {
  auto parts = split(address);
  if (!parts || !policy.is_local_domain(parts->domain)) return std::nullopt;
  const User* user = users != nullptr ? users->find(address) : nullptr;
  std::string_view listed;
  if (user != nullptr) {
    listed = user->address;
  } else {
    for (const std::string& legacy : policy.legacy_mailboxes) {
      if (same_address(legacy, address)) {
        listed = legacy;
        break;
      }
    }
  }
  if (listed.empty()) return std::nullopt;
  return std::string(listed.substr(0, listed.rfind('@'))) + "@" + parts->domain;
}

// target with the unmatched "+detail" of the address that reached its alias (Postfix's
// propagate_unmatched_extensions): "alice@x" + "+news" → "alice+news@x". Only a target of
// ours without a detail of its own gets it; a remote address is left as written.
std::string with_detail(const AddressingPolicy& policy, const std::string& target,
                        std::string_view detail) {
  auto parts = split(target);
  if (detail.empty() || !parts || !policy.is_local_domain(parts->domain) ||
      parts->local.find(policy.separator) != std::string_view::npos) {
    return target;
  }
  return std::string(parts->local) + std::string(detail) + target.substr(target.rfind('@'));
}

bool is_role_account(const AddressingPolicy& policy, std::string_view local) {
  return std::any_of(policy.role_accounts.begin(), policy.role_accounts.end(),
                     [&](const std::string& role) { return equals_ignoring_case(role, local); });
}

class Walker {
 public:
  Walker(const AddressingPolicy& policy, const UserStore* users, const AliasTable* aliases)
      : policy_(policy), users_(users), aliases_(aliases) {}

  bool walk(std::string_view address, std::size_t depth) {
    // Work bound: aliases shared by several others (fan-in) are walked once per path, so
    // without it a small file could make one RCPT walk millions of addresses.
    if (++steps_ > kStepsPerTarget * policy_.max_targets + kStepsPerTarget) {
      return fail(ResolveOutcome::kTooMany,
                  "takes more than " + std::to_string(steps_ - 1) + " alias lookups to expand");
    }
    auto parts = split(address);
    if (!parts) return fail(ResolveOutcome::kUnknown, "not an address: " + std::string(address));
    if (!policy_.is_local_domain(parts->domain)) return add(std::string(address));
    if (const Alias* alias = find_alias(address)) return expand(*alias, depth);
    if (auto mailbox = exact_mailbox(policy_, users_, address)) return add(*mailbox);
    if (policy_.assume_mailboxes) return add(std::string(address));
    std::string_view base = parts->local;
    const std::string& separator = policy_.separator;
    if (!separator.empty()) {
      const std::size_t cut = parts->local.find(separator);
      if (cut != std::string_view::npos && cut > 0) {
        base = parts->local.substr(0, cut);
        const std::string base_address = std::string(base) + "@" + parts->domain;
        const std::string_view detail = parts->local.substr(cut);
        if (const Alias* alias = find_alias(base_address)) return expand(*alias, depth, detail);
        if (auto mailbox = exact_mailbox(policy_, users_, base_address)) {
          // The detail stays with the mailbox: "Alice+news@x" → "alice+news@x".
          return add(mailbox->substr(0, mailbox->rfind('@')) + std::string(detail) + "@" +
                     parts->domain);
        }
      }
    }
    const bool postmaster = equals_ignoring_case(base, "postmaster");
    if (!in_role_ && is_role_account(policy_, base) && !policy_.administrator.empty()) {
      if (depth >= policy_.max_depth) return loop("role account " + std::string(address));
      expanded_ = true;
      // The administrator's address is never a role account again (administrator =
      // "postmaster@x" is a mailbox then, not a loop).
      in_role_ = true;
      const bool found = walk(policy_.administrator, depth + 1);
      in_role_ = false;
      if (found || !postmaster || outcome_ != ResolveOutcome::kUnknown) return found;
      // RFC 5321 §4.5.1: postmaster is accepted even when the administrator is missing.
      outcome_ = ResolveOutcome::kResolved;
      reason_.clear();
      return add("postmaster@" + parts->domain);
    }
    // RFC 5321 §4.5.1: postmaster must exist; without an administrator it is a mailbox.
    if (postmaster) return add("postmaster@" + parts->domain);
    if (const Alias* catch_all = find_alias("@" + parts->domain)) return expand(*catch_all, depth);
    return fail(ResolveOutcome::kUnknown, "no mailbox or alias " + std::string(address));
  }

  // detail: the "+detail" the alias was reached with (its address without it), passed on
  // to the local targets.
  bool expand(const Alias& alias, std::size_t depth, std::string_view detail = {}) {
    for (const std::string& on_path : path_) {
      if (same_address(on_path, alias.address)) {
        return loop("alias " + alias.address + " leads back to itself");
      }
    }
    if (depth >= policy_.max_depth) {
      return loop("alias " + alias.address + " is more than " + std::to_string(policy_.max_depth) +
                  " aliases deep");
    }
    expanded_ = true;
    path_.push_back(alias.address);
    for (const std::string& target : alias.targets) {
      bool ok;
      if (same_address(target, alias.address)) {
        // "alice → alice, archive": alice's own mailbox, not the alias again.
        auto mailbox = exact_mailbox(policy_, users_, target);
        ok = mailbox ? add(with_detail(policy_, *mailbox, detail))
                     : fail(ResolveOutcome::kUnknown,
                            "alias " + alias.address + " names itself but is no mailbox");
      } else {
        ok = walk(with_detail(policy_, target, detail), depth + 1);
      }
      if (!ok) {
        if (outcome_ == ResolveOutcome::kUnknown && reason_.find(" via ") == std::string::npos) {
          reason_ += " (via alias " + alias.address + ")";
        }
        return false;
      }
    }
    path_.pop_back();
    return true;
  }

  Resolution result() {
    Resolution resolution;
    resolution.outcome = outcome_;
    resolution.reason = std::move(reason_);
    resolution.expanded = expanded_;
    if (outcome_ == ResolveOutcome::kResolved) resolution.targets = std::move(targets_);
    return resolution;
  }

 private:
  const Alias* find_alias(std::string_view address) const {
    return aliases_ != nullptr ? aliases_->find(address) : nullptr;
  }

  bool add(std::string address) {
    for (const std::string& existing : targets_) {
      if (same_address(existing, address)) return true;
    }
    if (targets_.size() >= policy_.max_targets) {
      return fail(ResolveOutcome::kTooMany,
                  "expands to more than " + std::to_string(policy_.max_targets) + " addresses");
    }
    targets_.push_back(std::move(address));
    return true;
  }

  bool loop(std::string why) { return fail(ResolveOutcome::kLoop, std::move(why)); }

  bool fail(ResolveOutcome outcome, std::string why) {
    outcome_ = outcome;
    reason_ = std::move(why);
    return false;
  }

  const AddressingPolicy& policy_;
  const UserStore* users_;
  const AliasTable* aliases_;
  static constexpr std::size_t kStepsPerTarget = 10;
  std::size_t steps_ = 0;          // addresses walked so far
  bool in_role_ = false;           // walking to the administrator for a role account
  std::vector<std::string> path_;  // aliases being expanded, outermost first
  std::vector<std::string> targets_;
  ResolveOutcome outcome_ = ResolveOutcome::kResolved;
  std::string reason_;
  bool expanded_ = false;
};

}  // namespace

bool AddressingPolicy::is_local_domain(std::string_view domain) const {
  return std::any_of(domains.begin(), domains.end(),
                     [&](const std::string& ours) { return equals_ignoring_case(ours, domain); });
}

Resolution resolve_recipient(const AddressingPolicy& policy, const UserStore* users,
                             const AliasTable* aliases, std::string_view address) {
  std::string full(address);
  if (address.find('@') == std::string_view::npos) {
    // RFC 5321 §4.5.1: "<Postmaster>" without a domain, any case: our first domain's.
    if (!equals_ignoring_case(address, "postmaster") || policy.domains.empty()) {
      return Resolution{ResolveOutcome::kNotLocal, {}, "no domain", false};
    }
    full = "postmaster@" + policy.domains.front();
  }
  auto parts = split(full);
  if (!parts || !policy.is_local_domain(parts->domain)) {
    return Resolution{ResolveOutcome::kNotLocal, {}, "not one of our domains", false};
  }
  Walker walker(policy, users, aliases);
  walker.walk(full, 0);
  return walker.result();
}

std::optional<MailboxMatch> find_mailbox(const AddressingPolicy& policy, const UserStore* users,
                                         std::string_view address) {
  if (equals_ignoring_case(address, "postmaster") && !policy.domains.empty()) {
    return find_mailbox(policy, users, "postmaster@" + policy.domains.front());
  }
  auto parts = split(address);
  if (!parts || !policy.is_local_domain(parts->domain)) return std::nullopt;
  if (auto mailbox = exact_mailbox(policy, users, address)) return MailboxMatch{*mailbox, ""};
  std::string_view base = parts->local;
  std::string detail;
  if (!policy.separator.empty()) {
    const std::size_t cut = parts->local.find(policy.separator);
    if (cut != std::string_view::npos && cut > 0) {
      base = parts->local.substr(0, cut);
      detail = std::string(parts->local.substr(cut + policy.separator.size()));
      const std::string base_address = std::string(base) + "@" + parts->domain;
      if (auto mailbox = exact_mailbox(policy, users, base_address)) {
        return MailboxMatch{*mailbox, detail};
      }
    }
  }
  // postmaster@ is always deliverable (RFC 5321 §4.5.1): the RCPT resolution sends it to the
  // administrator when there is one, so it arrives here as itself only when it is the
  // administrator, or there is none, or the administrator's mailbox was missing.
  if (equals_ignoring_case(base, "postmaster")) {
    return MailboxMatch{"postmaster@" + parts->domain, detail};
  }
  return std::nullopt;
}

std::vector<AliasProblem> alias_problems(const AddressingPolicy& policy, const UserStore* users,
                                         const AliasTable& aliases, std::string_view file) {
  std::vector<AliasProblem> problems;
  for (const Alias& alias : aliases.aliases()) {
    Walker walker(policy, users, &aliases);
    walker.expand(alias, 0);
    Resolution resolution = walker.result();
    if (resolution.outcome == ResolveOutcome::kResolved) continue;
    std::string where = std::string(file);
    if (alias.line != 0) where += ":" + std::to_string(alias.line);
    problems.push_back(AliasProblem{where + ": alias " + alias.address + ": " + resolution.reason,
                                    resolution.outcome == ResolveOutcome::kLoop ||
                                        resolution.outcome == ResolveOutcome::kTooMany});
  }
  return problems;
}

}  // namespace auth
