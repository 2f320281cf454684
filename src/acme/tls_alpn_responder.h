// tls_alpn_responder.h — the tls-alpn-01 responder (RFC 8737): a TLS server on its own port
// (443 by default) that, while a challenge for a name is under way, answers a ClientHello
// for that name (SNI) offering the ALPN protocol "acme-tls/1" with a self-signed certificate
// made for the challenge: exactly one dNSName subjectAltName, the name (§3), and the critical
// id-pe-acmeIdentifier extension (1.3.6.1.5.5.7.1.31) holding the SHA-256 digest of the key
// authorization as an OCTET STRING (§3, §6.1). Nothing else: a ClientHello without ALPN, or
// whose ALPN list lacks "acme-tls/1", gets the no_application_protocol alert (§3: "acme-tls/1"
// only); one for a name without a challenge under way, unrecognized_name. No application data
// is ever exchanged: the connection closes after the handshake (§3).
//
// Invariants: its own thread (never an I/O thread of the mail server); the socket is bound at
// start-up (port 443 needs CAP_NET_BIND_SERVICE or root, before the privilege drop); one poll
// loop over up to kMaxHandshakes non-blocking handshakes (the oldest closed when a new one
// comes while full), each bounded to kHandshakeTimeout in all and 16 KiB of ClientHello
// (OpenSSL's own bound): clients that hold connections open never delay the CA's. The
// certificates' key is made once per responder (P-256) and never leaves memory.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "acme/client.h"
#include "base/expected.h"
#include "tls/openssl_ptr.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace acme {

// The certificate of RFC 8737 §3 for name and key_authorization, signed by key (PEM).
base::Expected<tls::X509Ptr, std::string> make_tls_alpn_certificate(
    const std::string& name, const std::string& key_authorization, EVP_PKEY* key);

class TlsAlpnResponder : public ChallengePublisher {
 public:
  static constexpr std::chrono::milliseconds kHandshakeTimeout{2000};
  static constexpr std::size_t kMaxHandshakes = 64;
  static constexpr const char* kProtocol = "acme-tls/1";

  static base::Expected<std::unique_ptr<TlsAlpnResponder>, std::string> bind(
      const std::string& address, std::uint16_t port);
  ~TlsAlpnResponder() override;

  void start();  // the thread
  void stop();   // ends it (idempotent)
  std::uint16_t port() const { return port_; }

  // key is the name being validated (the authorization's identifier), not a token.
  base::Expected<base::Ok, std::string> publish(const std::string& name,
                                                const std::string& key_authorization) override;
  void withdraw(const std::string& name) override;

 private:
  TlsAlpnResponder(int listen_fd, int wake_fd, std::uint16_t port, tls::KeyPtr key,
                   SSL_CTX* context);
  void run();
  static int on_client_hello(SSL* ssl, int* alert, void* self);
  static int on_server_name(SSL* ssl, int* alert, void* self);

  int listen_fd_;
  int wake_fd_;  // eventfd: stop()
  std::uint16_t port_;
  tls::KeyPtr key_;
  SSL_CTX* context_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<X509>> certificates_;  // name (lower case) → its cert
};

}  // namespace acme
