// server_metrics.h — the metrics smtpsd exports (README "## Metrics"), with the mapping of
// open-ended input (roles, TLS versions, OpenSSL reasons, SASL mechanisms, reply codes,
// transports) onto bounded label sets.
//
// Every series is registered when server_metrics() is first called, so each call below is
// a few relaxed atomic operations: no lock, no allocation. Layers that must not know each
// other (net, queue, app) all report here with plain strings.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "obs/metrics.h"

namespace obs {

class ServerMetrics {
 public:
  explicit ServerMetrics(Registry& registry);

  // net: a connection was accepted / ended (role "submissions", "submission", "smtp").
  void connection_opened(std::string_view role);
  void connection_closed(std::string_view role);
  // net: a TLS handshake succeeded with this version ("TLSv1.3"), or failed; the reason is
  // OpenSSL's or the host's text, mapped onto protocol_version, no_shared_cipher, timeout,
  // eof, http, other.
  void tls_established(std::string_view role, std::string_view version);
  void tls_handshake_failed(std::string_view role, std::string_view reason);
  // net: the end of an AUTH exchange.
  void auth_result(std::string_view mechanism, bool success);
  // auth: a password verification refused because the verification queue was full (454).
  void auth_verification_refused();
  // net: bytes about to be sent to a client; each final reply line ("250 …", not
  // "250-…") counts once under its code.
  void replies_sent(std::string_view output);
  // net: a message is durable and about to get its 250; `since_accept` is the time since
  // the connection was accepted (README: accept-to-250).
  void message_accepted(std::size_t recipients, std::chrono::nanoseconds since_accept);
  // net: a user crossed a sending limit's recipient bound (window "1h" or "24h"): their mail
  // is held from now on (auth/sending_limiter.h). smtpsd_users_held_total{window}.
  void user_held(std::string_view window);
  // queue: the outcome of one delivery attempt for one recipient: result "delivered",
  // "deferred", "bounced"; transport "maildir", "lmtp", "smtp", "relay" (others: "other").
  void delivery_attempt(std::string_view result, std::string_view transport);
  // queue: how long one attempt took (all the recipients handed over in it).
  void delivery_duration(std::string_view transport, std::chrono::nanoseconds duration);

  // filter: one DNS list decision ("listed", "not_listed", "allowlisted"), and a list that
  // answered a provider error code (or outside 127.0.0.0/8).
  void dnsbl_decision(std::string_view result);
  void dnsbl_list_error();
  // net: a client refused by the early-talker screen ("pregreet": it spoke before the end
  // of the greeting; "pipelining": it did not wait for a reply it had to wait for), and the
  // pre-greet wait of a client ("passed": waited it out; "skipped": passed recently).
  void early_talker(std::string_view reason);
  void pregreet(std::string_view result);

  // Labels used (exposed for tests).
  static std::string_view handshake_failure_reason(std::string_view reason);

 private:
  static constexpr std::size_t kRoles = 4;     // submissions, submission, smtp, other
  static constexpr std::size_t kVersions = 3;  // TLSv1.2, TLSv1.3, other
  static constexpr std::size_t kReasons = 6;
  static constexpr std::size_t kMechanisms = 6;  // PLAIN LOGIN SCRAM-SHA-256(-PLUS) EXTERNAL other
  static constexpr std::size_t kResults = 3;
  static constexpr std::size_t kTransports = 5;

  Counter* accepted_[kRoles];
  Gauge* open_[kRoles];
  Counter* tls_[kRoles][kVersions];
  Counter* tls_failed_[kRoles][kReasons];
  Counter* auth_[kMechanisms][2];
  Counter* auth_busy_;
  Counter* users_held_[2];                                 // window 1h, 24h
  std::array<std::atomic<std::uint64_t>, 600> replies_{};  // index: reply code
  Counter* messages_;
  Counter* recipients_;
  Histogram* accept_to_250_;
  Counter* deliveries_[kResults][kTransports];
  Histogram* delivery_seconds_[kTransports];
  Counter* dnsbl_[3];
  Counter* dnsbl_errors_;
  Counter* early_talkers_[2];
  Counter* pregreet_[2];
};

ServerMetrics& server_metrics();

// Counts a connection as accepted and open for its scope (one per session coroutine, so
// the gauge comes down however the session ends).
class ConnectionScope {
 public:
  explicit ConnectionScope(std::string_view role) : role_(role) {
    server_metrics().connection_opened(role_);
  }
  ~ConnectionScope() { server_metrics().connection_closed(role_); }
  ConnectionScope(const ConnectionScope&) = delete;
  ConnectionScope& operator=(const ConnectionScope&) = delete;

 private:
  std::string_view role_;  // the listener's options outlive the session
};

// Certificate expiry, for the TLS layer's certificate store to report through a collector:
// smtpsd_certificate_expiry_seconds{file, names} and smtpsd_certificate_not_after_seconds.
struct CertificateExpiry {
  std::string file;
  std::string names;           // the names it serves, comma separated
  std::int64_t not_after = 0;  // Unix time
};
void add_certificate_collector(Registry& registry,
                               std::function<std::vector<CertificateExpiry>()> list);

}  // namespace obs
