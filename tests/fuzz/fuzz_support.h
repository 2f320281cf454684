// fuzz_support.h — what the SASL fuzz targets share: a trap for broken invariants and one
// known user (password "pencil", cheap test_argon2 hash made once) with its lookup.
#pragma once

#include <string_view>

#include "auth/sasl.h"
#include "auth/user_store.h"

namespace fuzz {

inline void check(bool condition) {
  if (!condition) __builtin_trap();
}

// The one user of a target; the address is fixed by the first call.
inline const auth::User& test_user(std::string_view address) {
  static const auth::User* user = [address] {
    static auth::UserStore store;
    if (!store.set_password(address, "pencil", auth::test_argon2())) __builtin_trap();
    return store.find(address);
  }();
  return *user;
}

inline auth::UserLookup lookup_of(const auth::User& user) {
  return [&user](std::string_view name) -> const auth::User* {
    return auth::same_address(name, user.address) ? &user : nullptr;
  };
}

}  // namespace fuzz
