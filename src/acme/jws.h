// jws.h — the account's signatures on ACME requests (RFC 8555 §6.2): JSON Web Signature in
// flattened JSON form (RFC 7515 §7.2.2) with ES256 (ECDSA P-256, SHA-256; RFC 7518 §3.4,
// the signature as r || s, 32 bytes each), the account's public key as a JWK (RFC 7517)
// and its thumbprint (RFC 7638) for key authorizations (RFC 8555 §8.1).
//
// Invariants: the key is an EC P-256 private key; the protected header carries either the
// JWK (newAccount, before there is an account URL) or the "kid" (every later request), and
// always the nonce and url (§6.4, §6.5). Nothing here does I/O.
#pragma once

#include <string>
#include <string_view>

#include "base/expected.h"
#include "tls/openssl_ptr.h"

namespace acme {

// RFC 4648 §5 without padding (RFC 7515 §2).
std::string base64url(std::string_view raw);

class AccountKey {
 public:
  explicit AccountKey(tls::KeyPtr key);
  // The JWK of the public key, members in the order RFC 7638 §3.2 hashes them.
  const std::string& jwk() const { return jwk_; }
  // base64url(SHA-256(jwk())) (RFC 7638 §3).
  const std::string& thumbprint() const { return thumbprint_; }
  // token "." thumbprint (RFC 8555 §8.1).
  std::string key_authorization(std::string_view token) const {
    return std::string(token) + "." + thumbprint_;
  }
  // The request body: payload is the JSON text ("" for POST-as-GET, §6.3); kid empty: the
  // JWK goes into the header.
  base::Expected<std::string, std::string> sign(std::string_view payload, std::string_view nonce,
                                                std::string_view url, std::string_view kid) const;
  EVP_PKEY* key() const { return key_.get(); }

 private:
  tls::KeyPtr key_;
  std::string jwk_;
  std::string thumbprint_;
};

// The External Account Binding of a newAccount request (RFC 8555 §7.3.4): a JWS in flattened
// form whose protected header is {"alg":"HS256","kid":kid,"url":url} (url: the newAccount URL),
// whose payload is the account's JWK and whose signature is HMAC-SHA-256 under the MAC key the
// CA gave with the kid (the key's raw bytes, not its base64url text).
std::string external_account_binding(const AccountKey& account, std::string_view kid,
                                     std::string_view hmac_key, std::string_view url);

}  // namespace acme
