// http01_responder.cpp — see http01_responder.h.
#include "acme/http01_responder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

base::Expected<std::unique_ptr<Http01Responder>, std::string> Http01Responder::bind(
    const std::string& address, std::uint16_t port) {
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
    return base::unexpected("http-01 responder: '" + address + "' is not an IP address");
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return base::unexpected("http-01 responder: socket: " + std::string(strerror(errno)));
  const int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || ::listen(fd, 16) != 0) {
    const std::string why = strerror(errno);
    ::close(fd);
    return base::unexpected("http-01 responder: cannot listen on " + where + ": " + why);
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  const std::uint16_t actual =
      ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    ::close(fd);
    return base::unexpected("http-01 responder: eventfd: " + std::string(strerror(errno)));
  }
  return std::unique_ptr<Http01Responder>(new Http01Responder(fd, wake, actual));
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

void Http01Responder::publish(const std::string& token, const std::string& key_authorization) {
  std::lock_guard lock(mutex_);
  authorizations_[token] = key_authorization;
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

void Http01Responder::serve_one(int fd) {
  const auto deadline = std::chrono::steady_clock::now() + kRequestTimeout;
  std::string head;
  char buffer[2048];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < kMaxHead) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd waiting[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(waiting, 2, static_cast<int>(left.count())) <= 0 || waiting[1].revents) return;
    const ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) return;
    head.append(buffer, static_cast<std::size_t>(got));
  }
  const std::string out = answer(head);
  obs::Log("acme_http01_request", obs::Level::kDebug)
      .kv("request", head.substr(0, std::min<std::size_t>(head.find("\r\n"), 200)))
      .kv("status", out.substr(9, 3));
  std::size_t sent = 0;
  while (sent < out.size()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd waiting{fd, POLLOUT, 0};
    if (::poll(&waiting, 1, static_cast<int>(left.count())) <= 0) return;
    const ssize_t put = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (put <= 0) return;
    sent += static_cast<std::size_t>(put);
  }
}

void Http01Responder::run() {
  while (!stopping_) {
    pollfd waiting[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(waiting, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (waiting[1].revents || stopping_) break;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    serve_one(fd);
    ::close(fd);
  }
}

}  // namespace acme
