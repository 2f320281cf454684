// crypto_primitives.cpp — base64 as values over base/base64.h, hashes through OpenSSL 3.
//
// Invariants: a primitive that cannot fail on valid input but does (allocation failure
// inside OpenSSL) aborts: it is a broken invariant, not a peer's mistake (STYLE.md).
#include "auth/crypto_primitives.h"

#include "base/base64.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
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

Digest sha256(std::string_view data) {
  Digest digest{};
  if (SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data()) ==
      nullptr) {
    crypto_failure("SHA256");
  }
  return digest;
}

Digest hmac_sha256(std::string_view key, std::string_view data) {
  Digest digest{};
  unsigned int length = 0;
  static const char kEmpty = '\0';  // OpenSSL reads a NULL key as "no key given"
  if (HMAC(EVP_sha256(), key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data(),
           &length) == nullptr ||
      length != digest.size()) {
    crypto_failure("HMAC-SHA-256");
  }
  return digest;
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
