// http01_responder.cpp — see http01_responder.h.
#include "acme/http01_responder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "obs/log.h"

namespace acme {
namespace {

constexpr std::string_view kPrefix = "/.well-known/acme-challenge/";
constexpr std::size_t kMaxHead = 8192;

std::string reply(std::string_view status, std::string_view body) {
  return "HTTP/1.1 " + std::string(status) +
         "\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

}  // namespace

base::Expected<Listener, std::string> listen_on(const std::string& address, std::uint16_t port,
                                                const std::string& label) {
  const std::string where = (address.empty() ? "[::]" : address) + ":" + std::to_string(port);
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET6;
  if (address.empty() || address == "::") {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    v6->sin6_family = AF_INET6;
    v6->sin6_addr = in6addr_any;
    v6->sin6_port = htons(port);
    length = sizeof(*v6);
  } else if (auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
             inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(*v4);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
             inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(*v6);
  } else {
    return base::unexpected(label + ": '" + address + "' is not an IP address");
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return base::unexpected(label + ": socket: " + std::string(strerror(errno)));
  const int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, 128) != 0) {
    const std::string why = strerror(errno);
    ::close(fd);
    return base::unexpected(label + ": cannot listen on " + where + ": " + why);
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  const std::uint16_t actual =
      ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return Listener{fd, actual};
}

base::Expected<std::unique_ptr<Http01Responder>, std::string> Http01Responder::bind(
    const std::string& address, std::uint16_t port) {
  auto listener = listen_on(address, port, "http-01 responder");
  if (!listener) return base::unexpected(listener.error());
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    ::close(listener->fd);
    return base::unexpected("http-01 responder: eventfd: " + std::string(strerror(errno)));
  }
  return std::unique_ptr<Http01Responder>(new Http01Responder(listener->fd, wake, listener->port));
}

Http01Responder::Http01Responder(int listen_fd, int wake_fd, std::uint16_t port)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port) {}

Http01Responder::~Http01Responder() {
  stop();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void Http01Responder::start() {
  thread_ = std::thread([this] { run(); });
}

void Http01Responder::stop() {
  stopping_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

base::Expected<base::Ok, std::string> Http01Responder::publish(
    const std::string& token, const std::string& key_authorization) {
  std::lock_guard lock(mutex_);
  authorizations_[token] = key_authorization;
  return base::Ok{};
}

void Http01Responder::withdraw(const std::string& token) {
  std::lock_guard lock(mutex_);
  authorizations_.erase(token);
}

std::string Http01Responder::answer(std::string_view head) const {
  // Request line (RFC 9112 §3): METHOD SP target SP version.
  const std::string_view line = head.substr(0, head.find("\r\n"));
  const std::size_t first = line.find(' ');
  const std::size_t second = line.find(' ', first == std::string_view::npos ? 0 : first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos)
    return reply("400 Bad Request", "");
  const std::string_view method = line.substr(0, first);
  std::string_view target = line.substr(first + 1, second - first - 1);
  if (method != "GET" && method != "HEAD") return reply("405 Method Not Allowed", "");
  if (!target.starts_with(kPrefix)) return reply("404 Not Found", "");
  target.remove_prefix(kPrefix.size());
  std::string body;
  {
    std::lock_guard lock(mutex_);
    auto found = authorizations_.find(std::string(target));
    if (found == authorizations_.end()) return reply("404 Not Found", "");
    body = found->second;
  }
  std::string out = reply("200 OK", body);
  if (method == "HEAD") out.resize(out.size() - body.size());
  return out;
}

// One connection: its request head as it arrives, then the reply as it leaves.
struct Http01Responder::Connection {
  int fd = -1;
  std::string client;  // the peer's address bytes: the per-client cap
  std::chrono::steady_clock::time_point deadline;
  std::string head;
  std::string out;  // non-empty once the head is complete
  std::size_t sent = 0;
  bool done = false;
};

namespace {

std::string peer_of(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    return std::string(reinterpret_cast<const char*>(&v4->sin_addr), sizeof(v4->sin_addr));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
  return std::string(reinterpret_cast<const char*>(&v6->sin6_addr), sizeof(v6->sin6_addr));
}

}  // namespace

void Http01Responder::serve(Connection& connection) {
  if (connection.out.empty()) {
    char buffer[2048];
    const ssize_t got = ::recv(connection.fd, buffer, sizeof(buffer), 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (got <= 0) {
      connection.done = true;
      return;
    }
    connection.head.append(buffer, static_cast<std::size_t>(got));
    if (connection.head.find("\r\n\r\n") == std::string::npos && connection.head.size() < kMaxHead)
      return;
    connection.out = answer(connection.head);
    obs::Log("acme_http01_request", obs::Level::kDebug)
        .kv("request",
            connection.head.substr(0, std::min<std::size_t>(connection.head.find("\r\n"), 200)))
        .kv("status", connection.out.substr(9, 3));
  }
  const ssize_t put = ::send(connection.fd, connection.out.data() + connection.sent,
                             connection.out.size() - connection.sent, MSG_NOSIGNAL);
  if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (put <= 0) {
    connection.done = true;
    return;
  }
  connection.sent += static_cast<std::size_t>(put);
  connection.done = connection.sent == connection.out.size();
}

void Http01Responder::run() {
  using Clock = std::chrono::steady_clock;
  std::vector<Connection> connections;  // oldest first
  Clock::time_point accept_paused_until{};
  const auto close_at = [&connections](std::size_t index) {
    ::close(connections[index].fd);
    connections.erase(connections.begin() + static_cast<std::ptrdiff_t>(index));
  };
  while (!stopping_) {
    Clock::time_point now = Clock::now();
    const bool accepting = now >= accept_paused_until;
    std::vector<pollfd> waiting;
    waiting.push_back({wake_fd_, POLLIN, 0});
    waiting.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
    Clock::time_point next = accepting ? Clock::time_point::max() : accept_paused_until;
    for (const Connection& connection : connections) {
      waiting.push_back(
          {connection.fd, static_cast<short>(connection.out.empty() ? POLLIN : POLLOUT), 0});
      next = std::min(next, connection.deadline);
    }
    const int timeout =
        next == Clock::time_point::max()
            ? -1
            : static_cast<int>(std::clamp<std::int64_t>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1, 0,
                  60'000));
    if (::poll(waiting.data(), waiting.size(), timeout) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (waiting[0].revents || stopping_) break;
    for (std::size_t i = 0; i < connections.size(); ++i) {
      if (waiting[i + 2].revents != 0) serve(connections[i]);
    }
    now = Clock::now();
    for (std::size_t i = connections.size(); i-- > 0;) {
      if (connections[i].done || now >= connections[i].deadline) close_at(i);
    }
    if (!accepting || waiting[1].revents == 0) continue;
    for (int accepted = 0; accepted < kMaxConnections; ++accepted) {
      sockaddr_storage peer{};
      socklen_t peer_length = sizeof(peer);
      const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_length,
                               SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the pending connection stays queued; try again a little
          // later instead of a poll that wakes at once, forever.
          obs::Log("acme_http01_accept_failed", obs::Level::kWarning).kv("error", strerror(errno));
          accept_paused_until = Clock::now() + kAcceptPause;
        }
        break;
      }
      Connection connection;
      connection.fd = fd;
      connection.client = peer_of(peer);
      connection.deadline = Clock::now() + kRequestTimeout;
      // Room for the newcomer: the client's own oldest connection past its cap, else the
      // oldest of all past the total; a request arrives with its connection, so an idle
      // crowd is pushed out rather than making the CA wait.
      std::size_t same = 0;
      std::size_t oldest_same = connections.size();
      for (std::size_t i = 0; i < connections.size(); ++i) {
        if (connections[i].client != connection.client) continue;
        if (same++ == 0) oldest_same = i;
      }
      if (same >= static_cast<std::size_t>(kMaxPerClient)) {
        close_at(oldest_same);
      } else if (connections.size() >= static_cast<std::size_t>(kMaxConnections)) {
        close_at(0);
      }
      connections.push_back(std::move(connection));
    }
  }
  for (Connection& connection : connections)
    ::close(connection.fd);
}

}  // namespace acme
