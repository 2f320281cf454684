// certificate_user.h — which user a verified client certificate names, for SASL EXTERNAL
// (RFC 4422 Appendix A; RFC 4954 §4 carries it over SMTP).
//
// Rule (README "Users and authentication"): the user whose address equals an rfc822Name
// subjectAltName of the certificate (RFC 5280 §4.2.1.6), compared as the users file compares
// addresses (ASCII case-insensitively); only a certificate without any rfc822Name falls back
// to the subject commonName, and only when that is an address. The user must exist in the
// current users file. Aliases are not matched: a certificate names a login, not a sender.
// Invariants: pure (no TLS, no I/O); the caller has already checked that the certificate
// verified against the listener's client CA — an unverified one must never get here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/sasl.h"
#include "base/expected.h"

namespace auth {

struct CertificateNames {
  std::vector<std::string> email_sans;  // rfc822Name entries, in certificate order
  std::string subject_cn;               // empty when absent
};

// The canonical address (as written in the users file) of the user the certificate names,
// or the reason it names none, for the auth_failed log line (never shown to the client).
base::Expected<std::string, std::string> certificate_user(const CertificateNames& names,
                                                          const UserLookup& lookup);

}  // namespace auth
