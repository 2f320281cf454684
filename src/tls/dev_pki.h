// dev_pki.h — the development PKI that `smtpsd dev` creates: a private CA and two server
// certificates (ECDSA P-256 and RSA 2048) for the given names, so that real clients can
// verify the server in development without a public CA.
// Invariants: private keys are written with mode 0600 and appear atomically (temp file, then
// rename); files that exist are never rewritten (idempotent); leaves follow the CA/Browser
// Forum baseline shape (SAN, serverAuth EKU, ≤ 825 days) so clients treat them like real
// certificates (RFC 5280 profile, RFC 6125 / RFC 9525 name checks, RFC 8446 §4.4.2 chains).
#pragma once

#include <string>
#include <vector>

#include "base/expected.h"

namespace tls {

struct DevPkiPaths {
  std::string ca_certificate;
  std::string ca_key;
  std::string ecdsa_chain;
  std::string ecdsa_key;
  std::string rsa_chain;
  std::string rsa_key;
};

// Creates what is missing in dir (mkdir -p): ca.pem + ca.key (ECDSA P-256 CA, 10 years),
// server-ecdsa.pem (leaf then CA) + server-ecdsa.key, server-rsa.pem + server-rsa.key. The
// leaves name every entry of `names` in subjectAltName (DNS: or IP:) and the first as CN.
// Existing files are kept; a missing leaf is signed by the existing CA. A half-present pair
// (certificate without key or the reverse) is an error, never silently replaced.
base::Expected<DevPkiPaths, std::string> ensure_dev_pki(const std::string& dir,
                                                        const std::vector<std::string>& names);

// Days until the (first) certificate in `certificate_file` expires, rounded down; negative
// once expired. For `smtpsd check`.
base::Expected<long, std::string> days_until_expiry(const std::string& certificate_file);

}  // namespace tls
