// spki_digest.cpp — see spki_digest.h.
#include "tls/spki_digest.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>

namespace tls {

std::string spki_sha256(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  if (length <= 0) return {};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  const bool hashed = EVP_Digest(der, static_cast<std::size_t>(length), digest, &digest_length,
                                 EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!hashed) return {};
  return std::string(reinterpret_cast<const char*>(digest), digest_length);
}

std::string spki_sha256_hex(EVP_PKEY* key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char octet : spki_sha256(key)) {
    hex += kHex[octet >> 4];
    hex += kHex[octet & 0x0F];
  }
  return hex;
}

base::Expected<std::string, std::string> spki_sha256_hex(X509* certificate) {
  EVP_PKEY* key = X509_get0_pubkey(certificate);
  std::string hex = key != nullptr ? spki_sha256_hex(key) : std::string();
  if (hex.empty()) return base::unexpected(std::string("cannot encode its public key"));
  return hex;
}

base::Expected<std::string, std::string> spki_sha256_hex(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "r"), &std::fclose);
  if (!file) return base::unexpected(path + ": cannot open");
  std::unique_ptr<X509, void (*)(X509*)> certificate(
      PEM_read_X509(file.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!certificate) return base::unexpected(path + ": no PEM certificate");
  auto hex = spki_sha256_hex(certificate.get());
  if (!hex) return base::unexpected(path + ": " + hex.error());
  return hex;
}

}  // namespace tls
