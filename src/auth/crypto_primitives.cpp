// crypto_primitives.cpp — base64 as values over base/base64.h, SHA-256 and HMAC through
// libsodium, PBKDF2 through OpenSSL 3.
//
// Invariants: a primitive that cannot fail on valid input but does (allocation failure
// inside OpenSSL) aborts: it is a broken invariant, not a peer's mistake (STYLE.md).
#include "auth/crypto_primitives.h"

#include "base/base64.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <cstdio>
#include <cstdlib>

namespace auth {
namespace {

[[noreturn]] void crypto_failure(const char* what) {
  std::fprintf(stderr, "smtpsd: fatal: %s failed\n", what);
  std::abort();
}

}  // namespace

void ensure_sodium() {
  static const bool initialised = [] {
    if (sodium_init() < 0) crypto_failure("sodium_init");
    return true;
  }();
  (void)initialised;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  base::append_base64(out, bytes);
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  if (!base::decode_base64(text, out)) return std::nullopt;
  return out;
}

static_assert(crypto_hash_sha256_BYTES == std::tuple_size_v<Digest>);
static_assert(crypto_auth_hmacsha256_BYTES == std::tuple_size_v<Digest>);

Digest sha256(std::string_view data) {
  ensure_sodium();
  Digest digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(data.data()),
                     data.size());
  return digest;
}

// libsodium's HMAC rather than OpenSSL's HMAC(): OpenSSL 3.0 fetches the MAC and digest
// implementations on every call (about 2% of the server's CPU at one message per connection,
// where each AUTH asks the verified-password cache once); this keeps its state on the stack.
Digest hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts) {
  ensure_sodium();
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  for (std::string_view part : parts) {
    crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(part.data()),
                                  part.size());
  }
  Digest digest{};
  crypto_auth_hmacsha256_final(&state, digest.data());
  sodium_memzero(&state, sizeof state);
  return digest;
}

Digest hmac_sha256(std::string_view key, std::string_view data) {
  return hmac_sha256(key, {data});
}

Digest pbkdf2_sha256(std::string_view password, std::string_view salt, std::uint32_t iterations) {
  Digest digest{};
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(),
                        static_cast<int>(digest.size()), digest.data()) != 1) {
    crypto_failure("PBKDF2-HMAC-SHA-256");
  }
  return digest;
}

}  // namespace auth
