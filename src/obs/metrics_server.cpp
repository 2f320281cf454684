// metrics_server.cpp — see metrics_server.h.
#include "obs/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "obs/log.h"

namespace obs {
namespace {

using Clock = std::chrono::steady_clock;

std::string http_response(int status, std::string_view reason, std::string_view content_type,
                          std::string_view body, bool head_only = false,
                          std::string_view extra_header = {}) {
  std::string out;
  out.reserve(body.size() + 200);
  out.append("HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(reason);
  out.append("\r\nContent-Type: ");
  out.append(content_type);
  out.append("\r\nContent-Length: ");
  out.append(std::to_string(body.size()));
  out.append("\r\nConnection: close\r\n");
  out.append(extra_header);
  out.append("\r\n");
  if (!head_only) out.append(body);
  return out;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the scraper went away or timed out (SO_SNDTIMEO)
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

struct Client {
  int fd;
  Clock::time_point deadline;
  std::string buffer;
};

}  // namespace

MetricsServer::MetricsServer(Registry& registry, std::chrono::milliseconds read_timeout)
    : registry_(registry), read_timeout_(read_timeout) {}

MetricsServer::~MetricsServer() {
  stop();
}

base::Expected<std::uint16_t, std::string> MetricsServer::start(const std::string& host,
                                                                std::uint16_t port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    return base::unexpected("not a numeric address: " + host);
  }
  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::unexpected(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, 64) != 0) {
    std::string error = std::strerror(errno);
    ::close(fd);
    return base::unexpected("cannot listen on " + host + " port " + std::to_string(port) + ": " +
                            error);
  }
  socklen_t bound_length = sizeof storage;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &bound_length);
  std::uint16_t bound = ntohs(storage.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(fd);
    return base::unexpected(std::string("pipe: ") + std::strerror(errno));
  }
  listen_fd_ = fd;
  thread_ = std::thread([this] { run(); });
  return bound;
}

void MetricsServer::stop() {
  if (thread_.joinable()) {
    char byte = 0;
    (void)!::write(wake_pipe_[1], &byte, 1);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_pipe_[0], &wake_pipe_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

std::string MetricsServer::respond(std::string_view head) const {
  // request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3)
  std::size_t line_end = head.find("\r\n");
  std::string_view line = head.substr(0, line_end);
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (line_end == std::string_view::npos || sp1 == std::string_view::npos || sp1 == 0 ||
      sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
      line.substr(sp2 + 1).substr(0, 7) != "HTTP/1." || line.size() != sp2 + 9) {
    return http_response(400, "Bad Request", "text/plain; charset=utf-8", "bad request\n");
  }
  std::string_view method = line.substr(0, sp1);
  for (char c : method) {
    if (c < 'A' || c > 'Z') {
      return http_response(400, "Bad Request", "text/plain; charset=utf-8", "bad request\n");
    }
  }
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") {
    return http_response(404, "Not Found", "text/plain; charset=utf-8", "not found\n");
  }
  bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return http_response(405, "Method Not Allowed", "text/plain; charset=utf-8",
                         "method not allowed\n", false, "Allow: GET, HEAD\r\n");
  }
  return http_response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry_.render(),
                       head_only);
}

void MetricsServer::run() {
  std::vector<Client> clients;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    fds.push_back({listen_fd_, static_cast<short>(clients.size() < kMaxClients ? POLLIN : 0), 0});
    auto now = Clock::now();
    int timeout_ms = -1;
    for (const Client& c : clients) {
      fds.push_back({c.fd, POLLIN, 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count();
      int wait = left < 0 ? 0 : static_cast<int>(left) + 1;
      if (timeout_ms < 0 || wait < timeout_ms) timeout_ms = wait;
    }
    int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      Log("metrics_failed", Level::kError).kv("error", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;  // stop()
    if ((fds[1].revents & POLLIN) != 0) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) clients.push_back(Client{fd, Clock::now() + read_timeout_, {}});
    }
    now = Clock::now();
    std::vector<Client> kept;
    for (std::size_t i = 0; i < clients.size(); ++i) {
      Client& c = clients[i];
      short revents = i + 2 < fds.size() && fds[i + 2].fd == c.fd ? fds[i + 2].revents : 0;
      std::string response;
      bool done = false;
      if (revents != 0) {
        char buffer[2048];
        ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (n > 0) {
          c.buffer.append(buffer, static_cast<std::size_t>(n));
          if (c.buffer.find("\r\n\r\n") != std::string::npos) {
            response = respond(c.buffer);
            done = true;
          } else if (c.buffer.size() > kMaxRequest) {
            response = http_response(431, "Request Header Fields Too Large",
                                     "text/plain; charset=utf-8", "request too large\n");
            done = true;
          } else if (c.buffer.find('\n') != std::string::npos &&
                     c.buffer.find("\r\n") == std::string::npos) {
            response =
                http_response(400, "Bad Request", "text/plain; charset=utf-8", "bad request\n");
            done = true;
          }
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          done = true;
        }
      }
      if (!done && now >= c.deadline) {
        response =
            http_response(408, "Request Timeout", "text/plain; charset=utf-8", "request timeout\n");
        done = true;
      }
      if (!done) {
        kept.push_back(std::move(c));
        continue;
      }
      if (!response.empty()) {
        // The answer is written blocking, bounded by a send timeout: a scraper that does
        // not read holds this thread for at most read_timeout, never an SMTP thread.
        int flags = ::fcntl(c.fd, F_GETFL);
        ::fcntl(c.fd, F_SETFL, flags & ~O_NONBLOCK);
        timeval tv{static_cast<time_t>(read_timeout_.count() / 1000),
                   static_cast<suseconds_t>(read_timeout_.count() % 1000 * 1000)};
        ::setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        write_all(c.fd, response);
        ::shutdown(c.fd, SHUT_WR);
      }
      ::close(c.fd);
    }
    clients = std::move(kept);
  }
}

}  // namespace obs
