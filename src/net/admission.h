// admission.h — who may open a connection: the table of open connections and the limits
// on it (in total, per client address, new connections per client per minute), and the
// refusal of a connection over a limit.
//
// Counting: a new connection enters the table unless the total is reached; it is counted
// for its client at once, or — behind a PROXY listener — once the header has named the
// client (admit_client). release() takes it out again when its session ends. A client is
// what base::client_key() names: an IPv4 address, or an IPv6 prefix (ipv6_prefix bits, /64
// by default), so that one host cannot pass the per-client limits by changing address
// within its own network. Thread-safe:
// accept loops run on the first I/O thread, PROXY admissions and releases on any; one
// mutex, held for a hash lookup, never across I/O.
//
// Refusal (RFC 5321 §3.1): a 421 written by the session's own refusal reply where the role
// speaks plaintext first, a plain close on implicit TLS. Logged at most once a second, with
// the count since the last line, so that a flood cannot flood the log too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/network.h"
#include "net/connection.h"
#include "net/rate_limit.h"

namespace net {

struct ListenerOptions;

struct Refusal {
  std::string_view text;   // after "421 4.7.0 <hostname> "
  std::string_view limit;  // for the log: total, per_ip, rate, proxy_from
};

class Admission {
 public:
  Admission(std::string hostname, std::size_t max_connections, std::size_t max_connections_per_ip,
            unsigned max_connections_per_minute_per_ip,
            unsigned ipv6_prefix = base::kDefaultIpv6ClientPrefix);

  // New limits, for connections admitted from now on.
  void set_limits(std::size_t max_connections, std::size_t max_connections_per_ip);

  // A new connection (not yet counted anywhere) enters the table of open connections unless
  // the total is reached; with per_client it is also counted for its client (else
  // admit_client() does that later).
  std::optional<Refusal> admit(const std::shared_ptr<Connection>& connection,
                               const std::string& client, bool per_client);
  std::optional<Refusal> admit_client(const std::string& client);
  // The connection leaves the tables (and its client's count if it was counted there).
  void release(const std::shared_ptr<Connection>& connection, const std::string& client,
               bool counted_for_client);

  std::vector<std::shared_ptr<Connection>> open_connections();
  bool none_open();

  // Writes the refusal (plaintext roles), closes the connection, logs (throttled).
  void refuse(Connection& connection, const ListenerOptions& options, const std::string& session_id,
              const std::string& client, const Refusal& why);

 private:
  std::optional<Refusal> admit_client_locked(const std::string& client);

  const std::string hostname_;
  const unsigned ipv6_prefix_;  // how much of an IPv6 address names the client
  std::mutex mutex_;
  std::size_t max_connections_;                                  // guarded by mutex_
  std::size_t max_connections_per_ip_;                           // guarded by mutex_
  std::unordered_set<std::shared_ptr<Connection>> connections_;  // guarded by mutex_
  std::unordered_map<std::string, std::size_t> per_ip_;          // by client_key; mutex_
  ConnectionRateTable connection_rate_;                          // thread-safe itself

  std::mutex refusal_log_mutex_;
  Clock::time_point last_refusal_log_{};  // guarded by refusal_log_mutex_
  std::uint64_t refused_since_log_ = 0;   // guarded by refusal_log_mutex_
};

}  // namespace net
