// spki_digest.h — the data of a DANE "3 1 1" TLSA record (RFC 7671 §5.1, RFC 6698 §2.1):
// SHA2-256 of a certificate's DER SubjectPublicKeyInfo. It names the key, not the
// certificate, so a renewal that keeps the key keeps the record valid. Used by
// `smtpsctl dane tlsa`, `smtpsctl dns check`, `smtpsd init`, `smtpsctl probe` (DROWN: a
// key shared across ports) and ACME's key rollover (acme/renewal.h).
#pragma once

#include <openssl/types.h>

#include <string>

#include "base/expected.h"

namespace tls {

// Of the first certificate in the PEM file at path, in lower-case hex (64 digits); an error
// naming the file otherwise.
base::Expected<std::string, std::string> spki_sha256_hex(const std::string& path);
// Of this certificate, in lower-case hex; why not otherwise ("cannot encode its public key").
base::Expected<std::string, std::string> spki_sha256_hex(X509* certificate);
// Of a key (a private key's public half): the raw 32 octets, and in lower-case hex; "" when
// it cannot be encoded.
std::string spki_sha256(EVP_PKEY* key);
std::string spki_sha256_hex(EVP_PKEY* key);

}  // namespace tls
