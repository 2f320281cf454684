// users_file_fuzz.cpp — libFuzzer target for the users-file parser (auth::UserStore::parse,
// the function UserDirectory and `smtpsctl user` load the file with; format in
// docs/users-file.md). Input: the file's bytes.
//
// Invariants checked (a violation traps):
// - a refusal names the file and a line that exists: "users:<n>: why", 1 <= n <= lines + 1;
// - an accepted file serialises to a text that parses again to the same users, and that
//   text is a fixed point (serialize(parse(serialize(x))) == serialize(x));
// - every user is found by its address in any ASCII case, and only by addresses that are
//   the same under same_address(); no alias repeats the address or another alias.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/user_store.h"
#include "fuzz_support.h"

using fuzz::check;

namespace {

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

void check_refusal(std::string_view text, const std::string& error) {
  check(error.starts_with("users:"));
  std::size_t colon = error.find(':', 6);
  check(colon != std::string::npos && colon > 6);
  std::size_t line = 0;
  for (std::size_t i = 6; i < colon; ++i) {
    check(error[i] >= '0' && error[i] <= '9');
    line = line * 10 + static_cast<std::size_t>(error[i] - '0');
  }
  std::size_t lines = 1;
  for (char c : text)
    lines += c == '\n';
  check(line >= 1 && line <= lines);
  check(error.size() > colon + 2 && error[colon + 1] == ' ');
}

void check_store(const auth::UserStore& store) {
  for (const auth::User* user : store.users()) {
    check(store.find(user->address) == user);
    check(store.find(upper(user->address)) == user);
    check(auth::validate_address(user->address).has_value());
    for (std::size_t i = 0; i < user->aliases.size(); ++i) {
      check(!auth::same_address(user->aliases[i], user->address));
      for (std::size_t j = 0; j < i; ++j)
        check(!auth::same_address(user->aliases[i], user->aliases[j]));
      check(store.may_send_as(user->address, user->aliases[i]));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = auth::UserStore::parse(text, "users");
  if (!parsed) {
    check_refusal(text, parsed.error());
    return 0;
  }
  const auth::UserStore& store = parsed.value();
  check_store(store);

  const std::string written = store.serialize();
  auto again = auth::UserStore::parse(written, "users");
  check(again.has_value());
  check(again.value().size() == store.size());
  check(again.value().serialize() == written);
  const auto before = store.users();
  const auto after = again.value().users();
  for (std::size_t i = 0; i < before.size(); ++i) {
    check(before[i]->address == after[i]->address);
    check(before[i]->password_hash == after[i]->password_hash);
    check(before[i]->aliases == after[i]->aliases);
    check(before[i]->scram.salt == after[i]->scram.salt);
    check(before[i]->scram.iterations == after[i]->scram.iterations);
    check(before[i]->scram.stored_key == after[i]->scram.stored_key);
    check(before[i]->scram.server_key == after[i]->scram.server_key);
  }
  return 0;
}
