// recipient_resolver.h — what one envelope recipient of ours becomes: the mailboxes and
// remote addresses it is delivered to (docs/architecture.md "Addressing"). Pure: it reads
// the snapshots it is given (users file, aliases file, settings) and nothing else, so the
// RCPT policy runs it on an I/O thread and `smtpsd check` / `smtpsctl alias add` run it to
// refuse loops before they are in service.
//
// Lookup order for local+detail@domain (Postfix virtual(5)): the alias of the exact
// address; its mailbox; then, with sub-addressing on (separator "+" by default), the alias
// and the mailbox of local@domain (a mailbox target keeps "+detail": LMTP gets the full
// address and Maildir may file it in the folder .detail; an alias passes "+detail" on to
// its local targets that have none, as Postfix's propagate_unmatched_extensions, and not
// to remote ones); then the role accounts
// (postmaster@, abuse@ of every domain: the administrator mailbox; without one postmaster@
// is a mailbox of its own, RFC 5321 §4.5.1); then the domain's catch-all "@domain". So a
// catch-all never shadows a mailbox, and an alias does. Each alias target is resolved the
// same way (a remote target as is). An alias that names itself among other targets
// delivers to its own mailbox there (no loop). An alias met again on the path of one
// expansion, or a path deeper than max_depth, is a loop (RFC 5321 §6.3; 550 5.4.6 at RCPT);
// more than max_targets final addresses is refused too. Final addresses are de-duplicated
// (case-insensitively) and keep the order of first appearance.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/alias_table.h"
#include "auth/user_store.h"

namespace auth {

struct AddressingPolicy {
  std::vector<std::string> domains;  // our mailbox domains, lower-case; bare "postmaster" → [0]
  std::string separator = "+";       // sub-addressing; "" off
  std::string administrator;         // mailbox for role accounts; "" none
  std::vector<std::string> role_accounts = {"postmaster", "abuse"};
  // Mailboxes of the deprecated [[domains]] users form ("user@domain"), read beside the
  // users file.
  std::vector<std::string> legacy_mailboxes;
  // For a loop check without the users file (`smtpsctl alias add` without --users): an
  // address of ours that is no alias counts as a mailbox.
  bool assume_mailboxes = false;
  std::size_t max_depth = 10;
  std::size_t max_targets = 100;

  bool is_local_domain(std::string_view domain) const;
};

enum class ResolveOutcome {
  kResolved,  // targets holds the final addresses
  kUnknown,   // one of our domains, no such mailbox or alias (550 5.1.1)
  kNotLocal,  // not one of our domains: the address itself, if relaying is allowed
  kLoop,      // an alias loop or a path deeper than max_depth (550 5.4.6)
  kTooMany,   // more than max_targets final addresses (550 5.5.3)
};

struct Resolution {
  ResolveOutcome outcome = ResolveOutcome::kUnknown;
  std::vector<std::string> targets;  // kResolved: final addresses, mailboxes as spelled there
  std::string reason;                // for logs and `smtpsd check`: what was wrong
  bool expanded = false;             // an alias (or role account) was used on the way
};

Resolution resolve_recipient(const AddressingPolicy& policy, const UserStore* users,
                             const AliasTable* aliases, std::string_view address);

// A final address that names one of our mailboxes: its canonical name and the detail
// ("" without one). Used by delivery (Maildir folder, Delivered-To) and the router.
struct MailboxMatch {
  std::string mailbox;  // "local@domain" as in the users file (domain lower-case)
  std::string detail;
};
std::optional<MailboxMatch> find_mailbox(const AddressingPolicy& policy, const UserStore* users,
                                         std::string_view address);

// What is wrong with the aliases of a table under policy, one entry per alias: a loop or a
// fan-out over max_targets (fatal: `smtpsctl alias add` and `smtpsd check` refuse it), or a
// local target that is no mailbox or alias (not fatal: a mailbox may come later; RCPT
// refuses the alias meanwhile). text reads "file:line: alias A: why".
struct AliasProblem {
  std::string text;
  bool fatal = false;
};
std::vector<AliasProblem> alias_problems(const AddressingPolicy& policy, const UserStore* users,
                                         const AliasTable& aliases, std::string_view file);

}  // namespace auth
