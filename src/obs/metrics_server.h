// metrics_server.h — the HTTP endpoint that Prometheus scrapes: GET /metrics.
//
// Its own thread runs a poll(2) loop, so a slow or hostile scraper never touches the SMTP
// I/O threads. Deliberately tiny HTTP/1.x (RFC 9112): one request per connection, the
// request line and headers bounded to kMaxRequest bytes and to a read timeout, no body;
// the answer carries "Connection: close". 200 for GET (and HEAD) /metrics, 404 for other
// paths, 405 for other methods, 400 for anything that is not a request line, 431 for an
// oversized request, 408 on timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "base/expected.h"
#include "obs/metrics.h"

namespace obs {

class MetricsServer {
 public:
  static constexpr std::size_t kMaxRequest = 8192;
  static constexpr std::size_t kMaxClients = 32;

  MetricsServer(Registry& registry, std::chrono::milliseconds read_timeout);
  ~MetricsServer();  // stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds host (a numeric IPv4 or IPv6 address) and port (0: the kernel picks one) and
  // starts the thread; returns the bound port.
  base::Expected<std::uint16_t, std::string> start(const std::string& host, std::uint16_t port);
  void stop();

  // The response to one complete request head (exposed for tests).
  std::string respond(std::string_view request_head) const;

 private:
  void run();

  Registry& registry_;
  std::chrono::milliseconds read_timeout_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace obs
