// dkim_crypto.h — the OpenSSL 3 EVP operations DKIM needs, behind owning types: SHA-256
// (streaming, for body hashes), public keys from a key record's p= (RSA as DER
// SubjectPublicKeyInfo or bare RSAPublicKey, RFC 6376 §3.6.1; Ed25519 as the raw 32 octets,
// RFC 8463 §4.2), and the two signature schemes:
// - rsa-sha256: RSASSA-PKCS1-v1_5 with SHA-256 over the canonical header data (RFC 6376 §3.3.1);
// - ed25519-sha256: PureEdDSA (RFC 8032) over the SHA-256 hash of that data (RFC 8463 §3).
// Nothing here throws; a failure is a value.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/expected.h"

struct evp_md_ctx_st;
struct evp_pkey_st;

namespace mailauth {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(std::string_view data);
  std::string finish();  // the 32-octet digest; the object is then spent

 private:
  evp_md_ctx_st* context_ = nullptr;
};

std::string sha256(std::string_view data);

struct PkeyFree {
  void operator()(evp_pkey_st* key) const;
};
using Pkey = std::unique_ptr<evp_pkey_st, PkeyFree>;

enum class DkimKeyType { kRsa, kEd25519 };

base::Expected<Pkey, std::string> public_key_from_record(DkimKeyType type, std::string_view p);
unsigned key_bits(const Pkey& key);
// Whether `signature` signs `data` (the canonical header data, not yet hashed).
bool verify_dkim_data(DkimKeyType type, const Pkey& key, std::string_view data,
                      std::string_view signature);
base::Expected<std::string, std::string> sign_dkim_data(DkimKeyType type, const Pkey& key,
                                                        std::string_view data);

base::Expected<Pkey, std::string> private_key_from_pem(std::string_view pem);
base::Expected<std::string, std::string> private_key_to_pem(const Pkey& key);  // PKCS#8
base::Expected<Pkey, std::string> generate_key(DkimKeyType type);              // RSA: 2048
// The p= of a key record: DER SubjectPublicKeyInfo for RSA, the raw key for Ed25519.
base::Expected<std::string, std::string> public_key_for_record(DkimKeyType type, const Pkey& key);
base::Expected<DkimKeyType, std::string> key_type_of(const Pkey& key);

}  // namespace mailauth
