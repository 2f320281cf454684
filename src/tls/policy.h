// policy.h — the TLS policy (versions, ciphers, groups, tickets) and the OpenSSL contexts
// built from it, for every listener role (RFC 8314 names: submissions, submission, smtp).
// Invariants: a context is only ever built from a policy that validate() accepted; TLS 1.2 is
// the floor unless the administrator opts in with allow_unsafe_tls_versions; TLS 1.3 is the
// ceiling and is preferred (RFC 8446); TLS 1.2 ciphers are AEAD with ECDHE key exchange only
// (RFC 7525 / RFC 9325, BCP 195, §4.2); compression and renegotiation are off (BCP 195 §3.3,
// §3.5); RFC 8314 §4.1 asks for the same strength on implicit TLS and STARTTLS.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.h"

namespace tls {

// One certificate and its private key, both PEM. The certificate file holds the full chain,
// leaf first, so that clients which only trust the root can build a path.
struct CertificatePair {
  std::string certificate_file;
  std::string key_file;
  // The server names this pair serves (SNI, see certificate_store.h): lower-case host names or
  // "*.example.com" wildcards. Pairs with the same names form one certificate set; empty: the
  // default set, for clients that send no name or one no set has.
  std::vector<std::string> names = {};
};

struct Policy {
  // "TLSv1.2" or "TLSv1.3"; "TLSv1"/"TLSv1.1" only if allow_unsafe_tls_versions (RFC 8996
  // deprecates them).
  std::string min_version = "TLSv1.2";
  bool allow_unsafe_tls_versions = false;
  // TLS 1.2 cipher list: only AEAD with ECDHE (forward secrecy), ECDSA and RSA auth.
  std::string ciphers =
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
      "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
  // TLS 1.3 cipher suites (RFC 8446 §B.4).
  std::string ciphersuites =
      "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
  std::string groups = "X25519:P-256:P-384";
  // TLS 1.3 tickets (and 1.2 tickets); the smtp role sets this false by default.
  bool session_tickets = true;
  bool prefer_server_ciphers = true;
};

// Checks a policy: returns an error text naming what is wrong (unknown version, cipher string
// that selects nothing, a non-AEAD or non-ECDHE cipher in `ciphers`, unsafe version without
// the allow flag, unknown group).
base::Expected<base::Ok, std::string> validate(const Policy& policy);

// Outbound TLS levels for one destination, weakest first (the names of Postfix's
// smtp_tls_security_level, which administrators know): none never asks for STARTTLS; may uses
// it when offered (opportunistic, RFC 3207 §4); encrypt requires it but accepts any
// certificate; verify requires a certificate that chains to a trusted CA and names the host
// (RFC 6125, RFC 7817).
enum class OutboundLevel { kNone, kMay, kEncrypt, kVerify };
std::string_view to_string(OutboundLevel level);
// "none", "may", "encrypt", "verify"; false for anything else.
bool parse_outbound_level(std::string_view text, OutboundLevel& level);

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const;
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// Builds a server SSL_CTX from a policy and every certificate pair (e.g. one ECDSA and one RSA
// side by side; OpenSSL picks by the client's signature_algorithms, RFC 8446 §4.4.2.2). Errors
// name the file and the OpenSSL reason.
//
// client_ca_file (PEM, one or more CA certificates; empty: none) turns on client certificates
// for SASL EXTERNAL: the server sends a CertificateRequest naming these CAs (RFC 8446 §4.3.2,
// certificate_authorities), trusts only them for client certificates, and never fails the
// handshake over one — no certificate, or one that does not verify, still connects (and may
// use a password); tls::client_identity() tells afterwards whether it verified.
base::Expected<SslCtxPtr, std::string> make_server_context(
    const Policy& policy, const std::vector<CertificatePair>& certificates,
    const std::string& client_ca_file = {});

// The same context without any certificate: policy, options, resumption and client CAs. The
// caller installs certificates (tls::CertificateStore::install does, from memory).
// `session_id_context`: what session_id_context(client_ca_file) gave (empty: computed here).
base::Expected<SslCtxPtr, std::string> make_server_context_without_certificates(
    const Policy& policy, const std::string& client_ca_file = {},
    std::string_view session_id_context = {});

// The session id context of a server context (SSL_CTX_set_session_id_context): OpenSSL
// resumes a session or ticket only under the context it was made in. Without client CAs it
// is "smtpsd"; with them, SHA-256 over "smtpsd" and the bytes of the client CA file, so a
// session whose client certificate was verified under one set of CAs is never resumed
// under another (a CA removed from the file no longer lets its certificates in by a
// ticket). At most SSL_MAX_SID_CTX_LENGTH (32) bytes. Errors: the file cannot be read.
base::Expected<std::string, std::string> session_id_context(const std::string& client_ca_file);

// Client context for tests and smtpsctl: verifies the peer against ca_file (or the system store
// when empty), TLS 1.2 minimum. The caller names the expected peer per connection with
// SSL_set1_host (a host name or an IP literal).
// With SystemTrust::kLater and no ca_file, the system store is left for load_system_trust.
enum class SystemTrust { kNow, kLater };
base::Expected<SslCtxPtr, std::string> make_client_context(const std::string& ca_file,
                                                           SystemTrust system = SystemTrust::kNow);
// Reads the system trust store (OpenSSL's default paths: $SSL_CERT_FILE, $SSL_CERT_DIR, else
// the distribution's bundle) into ctx. Debian's 144 certificates cost ~35 ms of CPU to parse:
// a server pays it at its first connection that verifies a peer, not at each start.
// Call it before the first SSL_new on ctx, and once. Returns how many certificates the
// store holds: OpenSSL skips a file it cannot open or read, so 0 is how an unreadable or
// missing bundle shows (a hashed directory, looked up per peer, may still verify).
base::Expected<std::size_t, std::string> load_system_trust(SSL_CTX* ctx);
// The file and the directory load_system_trust reads ($SSL_CERT_FILE, $SSL_CERT_DIR or
// OpenSSL's defaults), for messages.
std::pair<std::string, std::string> system_trust_paths();

// What the logs and the Received header (RFC 8314 §4.3) say about a finished handshake.
struct SessionDescription {
  std::string version;
  std::string cipher;
  std::string sni;
  bool resumed = false;
};
SessionDescription describe(const SSL* ssl);

// Text summary of the effective policy for `smtpsd check`: versions, the ciphers OpenSSL
// actually selects, groups, tickets. One "key: value" per line.
std::string describe_policy(const Policy& policy);

}  // namespace tls
