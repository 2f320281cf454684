// aliases_file_fuzz.cpp — libFuzzer target for the aliases-file parser (auth::AliasTable::parse,
// what AliasDirectory and `smtpsctl alias` load the file with) and for the recipient resolver
// over what it accepts (auth/recipient_resolver.h). Input: the file's bytes.
//
// Invariants checked (a violation traps):
// - a refusal names the file and a line that exists: "aliases:<n>: why";
// - an accepted file serialises to a text that parses again to the same text (fixed point);
// - resolving every alias key (and a catch-all's domain) ends: resolved targets are at most
//   max_targets, valid addresses and without duplicates; anything else has a reason;
// - alias_problems() terminates and flags loops as fatal.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/alias_table.h"
#include "auth/recipient_resolver.h"
#include "fuzz_support.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = auth::AliasTable::parse(text, "aliases");
  if (!parsed) {
    const std::string& error = parsed.error();
    check(error.starts_with("aliases:"));
    std::size_t lines = 1;
    for (char c : text)
      lines += c == '\n';
    const std::size_t line = std::stoul(error.substr(8));
    check(line >= 1 && line <= lines);
    return 0;
  }
  const std::string serialized = parsed->serialize();
  auto again = auth::AliasTable::parse(serialized, "aliases");
  check(again.has_value());
  check(again->serialize() == serialized);

  auth::AddressingPolicy policy;
  for (const auth::Alias& alias : parsed->aliases()) {
    const std::string domain = alias.address.substr(alias.address.rfind('@') + 1);
    if (!policy.is_local_domain(domain)) policy.domains.push_back(domain);
  }
  policy.administrator = "admin@" + (policy.domains.empty() ? "x" : policy.domains.front());
  policy.max_targets = 20;
  auth::UserStore users;
  (void)users.add_receive_only(policy.administrator);
  for (const auth::Alias& alias : parsed->aliases()) {
    const std::string address =
        alias.address.starts_with('@') ? "nobody" + alias.address : alias.address;
    auth::Resolution r = auth::resolve_recipient(policy, &users, &*parsed, address);
    if (r.outcome == auth::ResolveOutcome::kResolved) {
      check(!r.targets.empty() && r.targets.size() <= policy.max_targets);
      for (std::size_t i = 0; i < r.targets.size(); ++i) {
        check(auth::validate_address(r.targets[i]).has_value());
        for (std::size_t j = 0; j < i; ++j)
          check(!auth::same_address(r.targets[i], r.targets[j]));
      }
    } else {
      check(!r.reason.empty());
    }
  }
  for (const auth::AliasProblem& problem :
       auth::alias_problems(policy, &users, *parsed, "aliases")) {
    check(problem.text.starts_with("aliases:"));
  }
  return 0;
}
