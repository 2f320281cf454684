// client_identity.h — what a client certificate says about the client (mutual TLS, for SASL
// EXTERNAL, RFC 4422 Appendix A): whether it verified against the listener's client CA and
// the names it carries.
// Invariants: `verified` is true only when the client sent a certificate and OpenSSL's chain
// verification against the listener's client_ca file succeeded (SSL_get_verify_result is
// X509_V_OK, which OpenSSL also reports when there was no certificate at all — so the presence
// is checked too). Names are copied out only when they hold no NUL byte (an embedded NUL is
// the classic way to make "victim@example.org\0.evil" look like another name).
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace tls {

struct ClientIdentity {
  bool presented = false;               // the client sent a certificate
  bool verified = false;                // ... and it chains to the listener's client CA
  std::string verify_error;             // why not verified ("no client certificate", OpenSSL text)
  std::string subject_cn;               // the subject's commonName; empty when absent or not single
  std::vector<std::string> email_sans;  // subjectAltName rfc822Name entries (RFC 5280 §4.2.1.6)
  std::vector<std::string> dns_sans;    // subjectAltName dNSName entries
};

// The identity of the peer of a finished server-side handshake. Never fails: a missing or
// unverifiable certificate gives verified=false with the reason in verify_error.
ClientIdentity client_identity(const SSL* ssl);

}  // namespace tls
