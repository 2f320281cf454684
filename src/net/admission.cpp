// admission.cpp — see admission.h.
#include "net/admission.h"

#include "net/server.h"
#include "obs/log.h"
#include "smtp/server_session.h"

namespace net {
namespace {

// Bound on the connection-rate table (rate_limit.h): ~100 bytes an entry, ~10 MiB at most.
constexpr std::size_t kMaxRateEntries = 100000;

}  // namespace

Admission::Admission(std::string hostname, std::size_t max_connections,
                     std::size_t max_connections_per_ip, unsigned max_connections_per_minute_per_ip,
                     unsigned ipv6_prefix)
    : hostname_(std::move(hostname)),
      ipv6_prefix_(ipv6_prefix),
      max_connections_(max_connections),
      max_connections_per_ip_(max_connections_per_ip),
      connection_rate_(max_connections_per_minute_per_ip, std::chrono::minutes(1),
                       kMaxRateEntries) {}

void Admission::set_limits(std::size_t max_connections, std::size_t max_connections_per_ip) {
  std::lock_guard lock(mutex_);
  max_connections_ = max_connections;
  max_connections_per_ip_ = max_connections_per_ip;
}

std::optional<Refusal> Admission::admit(const std::shared_ptr<Connection>& connection,
                                        const std::string& client, bool per_client) {
  std::lock_guard lock(mutex_);
  if (connections_.size() >= max_connections_) {
    return Refusal{"Too many connections, try again later", "total"};
  }
  if (per_client) {
    if (auto refusal = admit_client_locked(client)) return refusal;
  }
  connections_.insert(connection);
  return std::nullopt;
}

std::optional<Refusal> Admission::admit_client(const std::string& client) {
  std::lock_guard lock(mutex_);
  return admit_client_locked(client);
}

std::optional<Refusal> Admission::admit_client_locked(const std::string& client) {
  std::string key = base::client_key(client, ipv6_prefix_);
  auto it = per_ip_.find(key);
  if (it != per_ip_.end() && it->second >= max_connections_per_ip_) {
    return Refusal{"Too many connections from your address, try again later", "per_ip"};
  }
  // Counted only when admitted, so a refused client is back as soon as its rate drops.
  if (!connection_rate_.admit(address_key(client, ipv6_prefix_), Clock::now())) {
    return Refusal{"Too many connections from your address per minute, try again later", "rate"};
  }
  ++per_ip_[std::move(key)];
  return std::nullopt;
}

void Admission::release(const std::shared_ptr<Connection>& connection, const std::string& client,
                        bool counted_for_client) {
  std::lock_guard lock(mutex_);
  connections_.erase(connection);
  auto it =
      counted_for_client ? per_ip_.find(base::client_key(client, ipv6_prefix_)) : per_ip_.end();
  if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

std::vector<std::shared_ptr<Connection>> Admission::open_connections() {
  std::lock_guard lock(mutex_);
  return {connections_.begin(), connections_.end()};
}

bool Admission::none_open() {
  std::lock_guard lock(mutex_);
  return connections_.empty();
}

void Admission::refuse(Connection& connection, const ListenerOptions& options,
                       const std::string& session_id, const std::string& client,
                       const Refusal& why) {
  if (!options.implicit_tls) {
    std::string reply;
    smtp::ServerSession::append_refusal(reply, hostname_, why.text);
    connection.write_now(reply);
  }
  connection.close();
  std::lock_guard lock(refusal_log_mutex_);
  ++refused_since_log_;
  auto now = Clock::now();
  if (now - last_refusal_log_ >= std::chrono::seconds(1)) {
    obs::Log("connection_refused", obs::Level::kWarning)
        .kv("session", session_id)
        .kv("role", options.role)
        .kv("client", client)
        .kv("limit", why.limit)
        .kv("reason", why.text)
        .kv("refused_since_last_line", refused_since_log_);
    refused_since_log_ = 0;
    last_refusal_log_ = now;
  }
}

}  // namespace net
