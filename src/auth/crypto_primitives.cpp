// crypto_primitives.cpp — base64 through libsodium, hashes through OpenSSL 3.
//
// Invariants: a primitive that cannot fail on valid input but does (allocation failure
// inside OpenSSL) aborts: it is a broken invariant, not a peer's mistake (STYLE.md).
#include "auth/crypto_primitives.h"

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
  ensure_sodium();
  constexpr int kVariant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), kVariant);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  ensure_sodium();
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  std::size_t length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &length, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  out.resize(length);
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
