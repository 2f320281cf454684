// smtp_transport.h — one outbound SMTP or LMTP connection: a socket (TCP or unix), TLS
// (implicit or STARTTLS) as a tls::Stream with the poll(2) waiter, and smtp::ClientSession
// for the protocol. Blocking with deadlines (poll(2)): it runs on the queue's delivery threads,
// never on an event loop.
//
// Invariants:
// - Every wait has a deadline (connect, TLS handshake, each reply: RFC 5321 §4.5.3.2), and
//   none goes past the attempt's own deadline: the stage minimums of §4.5.3.2 add up to
//   half an hour against a server that answers each command at the last moment.
// - A password is only ever sent inside TLS (ClientSession refuses otherwise).
// - Certificates are always checked against the trust store and the expected name
//   (SSL_set1_host, RFC 6125 / RFC 7817 §3); whether that check must pass is the caller's
//   TLS level: the outcome is reported in tls() either way, so "may" and "encrypt" still log
//   whether the peer was verified.
// - After STARTTLS, anything the server sent before the handshake is refused (RFC 3207 §4.2).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/expected.h"
#include "dns/resolver.h"
#include "queue/spool.h"
#include "smtp/client_session.h"
#include "tls/policy.h"
#include "tls/stream.h"

namespace delivery {

struct Endpoint {
  std::string host;     // the name we expect in the certificate (and send as SNI)
  std::string address;  // IP literal, or the socket path when unix_socket
  std::uint16_t port = 25;
  bool unix_socket = false;
  std::string describe() const;  // "mx.example.net[192.0.2.1]:25" or "unix:/path"
};

struct TlsOutcome {
  bool encrypted = false;
  bool verified = false;  // chain trusted and the name matched
  std::string version;    // "TLSv1.3"
  std::string cipher;
  std::string verify_error;  // why not verified, with the names the certificate has
  // The peer certificate's facts, so that a client (smtpsctl send) can explain a refusal in
  // its own words: the X509_V_* code of the verification (X509_V_OK when verified), the
  // names it claims ("mx.example.net, 192.0.2.1"), its validity dates ("2026-11-24 07:47:03
  // UTC") and its issuer (one-line distinguished name). Empty without a certificate.
  long verify_code = 0;
  std::string peer_names;
  std::string peer_not_before;
  std::string peer_not_after;
  std::string peer_issuer;
  // Authenticated by DANE (RFC 7672): a TLSA record of TransportOptions::dane_tlsa matched
  // the peer's chain; `verified` is then true too. dane_match names the record that did
  // ("3 1 1"); verify_error says why none did.
  bool dane = false;
  std::string dane_match;
  std::string describe() const;  // "TLSv1.3 TLS_AES_256_GCM_SHA384 verified" or "none"
};

struct TransportOptions {
  smtp::ClientConfig client;  // protocol, helo_name, AUTH credentials
  bool implicit_tls = false;
  bool starttls = true;            // ask for STARTTLS when offered (level may and above)
  SSL_CTX* tls_context = nullptr;  // client context (verifies against a trust store)
  std::chrono::milliseconds connect_timeout{30000};
  std::chrono::milliseconds command_timeout{300000};
  // RFC 5321 §4.5.3.2.6: the reply to the end of data may take 10 minutes.
  std::chrono::milliseconds data_end_timeout{600000};
  // Called right after a TLS handshake, before anything (EHLO, AUTH) is sent inside it: a
  // non-empty answer (why the TLS is not good enough) ends the connection there, with
  // stage "tls-policy". This is where a verify level keeps a password from an impostor.
  std::function<std::string(const TlsOutcome&)> check_tls;
  // DANE (RFC 7672 §3): the usable TLSA records of this MX host, DNSSEC-secure; not empty:
  // the peer is verified against them (and only them) with dane_base as the reference name
  // and SNI, instead of against the trust store and Endpoint::host.
  std::vector<dns::TlsaRecord> dane_tlsa;
  std::string dane_base;
  // The whole delivery attempt (connect to the last reply) ends by then; max: no limit.
  std::chrono::steady_clock::time_point attempt_deadline =
      std::chrono::steady_clock::time_point::max();
};

struct TransportFailure {
  std::string stage;  // "connect", "tls", "greeting", "ehlo", "starttls", "auth", "mail", ...
  std::string detail;
  std::optional<smtp::ServerReply> reply;  // the reply that failed it, if any
  bool timed_out = false;                  // the server went silent (no failure reply)
  bool permanent() const { return reply && reply->code >= 500; }
};

class Connection {
 public:
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects, reads the greeting, says EHLO/LHLO, does STARTTLS when offered and wanted and
  // AUTH when credentials are set. The connection is then idle and ready for send().
  static base::Expected<std::unique_ptr<Connection>, TransportFailure> open(
      const Endpoint& endpoint, const TransportOptions& options);

  // One transaction: the message content is streamed from its spool file. One result per
  // recipient (in the order given) unless the connection failed; then the error, with the
  // replies that did arrive (an LMTP server's per-recipient 250s before it broke off) in
  // partial_results().
  base::Expected<std::vector<smtp::RecipientResult>, TransportFailure> send(
      const queue::StoredMessage& message, std::span<const std::size_t> recipients);

  const std::vector<smtp::RecipientResult>& partial_results() const { return partial_; }
  // False when the server has closed or sent something while the connection was idle (a
  // 421 after its idle timeout): such a connection must not be reused.
  bool idle_ok() const;
  void quit();  // QUIT (best effort, short deadline) and close
  bool usable() const { return fd_ >= 0 && !failed_; }
  bool timed_out() const { return timed_out_; }  // a wait ran out (the server went silent)
  // A reused connection serves a new attempt with its own deadline.
  void set_attempt_deadline(std::chrono::steady_clock::time_point deadline) {
    options_.attempt_deadline = deadline;
  }
  const TlsOutcome& tls() const { return tls_; }
  const Endpoint& endpoint() const { return endpoint_; }
  const smtp::ServerCapabilities& capabilities() const { return session_.capabilities(); }
  unsigned messages_sent() const { return messages_sent_; }
  std::chrono::steady_clock::time_point last_used() const { return last_used_; }

 private:
  Connection(Endpoint endpoint, const TransportOptions& options);
  base::Expected<base::Ok, TransportFailure> connect_socket();
  base::Expected<base::Ok, TransportFailure> handshake();
  // Writes the session's output, then reads until the session wants something other than
  // input. Returns the event it stopped at.
  base::Expected<smtp::ClientEvent, TransportFailure> pump(const char* stage,
                                                           std::chrono::milliseconds timeout);
  base::Expected<base::Ok, TransportFailure> write_all(std::string_view bytes, const char* stage);
  TransportFailure failure(const char* stage, std::string detail);
  TransportFailure timeout(const char* stage, std::string detail);
  // now + timeout, but never past the attempt's deadline.
  std::chrono::steady_clock::time_point deadline_in(std::chrono::milliseconds timeout) const;
  // "within 300s", or that the attempt's time ran out, for a timeout's message.
  std::string waited(std::chrono::milliseconds timeout) const;
  TransportFailure session_failure();

  Endpoint endpoint_;
  TransportOptions options_;
  smtp::ClientSession session_;
  int fd_ = -1;
  tls::Stream stream_;  // empty until a handshake starts
  bool timed_out_ = false;
  bool failed_ = false;
  TlsOutcome tls_;
  unsigned messages_sent_ = 0;
  std::vector<smtp::RecipientResult> partial_;
  std::chrono::steady_clock::time_point last_used_{};
};

}  // namespace delivery
