// connection.cpp — see connection.h.
#include "milter/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/poll.h"

namespace milter {
namespace {

std::string error_text(int error) {
  return std::strerror(error);
}

}  // namespace

base::Expected<std::unique_ptr<Connection>, Failure> Connection::open(
    const base::Endpoint& endpoint, Clock::time_point deadline) {
  sockaddr_storage address{};
  socklen_t length = 0;
  int family = AF_UNIX;
  if (endpoint.is_unix()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&address);
    un->sun_family = AF_UNIX;
    if (endpoint.unix_path.size() >= sizeof un->sun_path)
      return base::unexpected(Failure{Failure::Kind::kConnect, "socket path too long"});
    std::memcpy(un->sun_path, endpoint.unix_path.data(), endpoint.unix_path.size());
    length = static_cast<socklen_t>(sizeof(sa_family_t) + endpoint.unix_path.size() + 1);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
    if (::inet_pton(AF_INET, endpoint.tcp.host.c_str(), &v4->sin_addr) == 1) {
      family = AF_INET;
      v4->sin_family = AF_INET;
      v4->sin_port = htons(endpoint.tcp.port);
      length = sizeof *v4;
    } else if (::inet_pton(AF_INET6, endpoint.tcp.host.c_str(), &v6->sin6_addr) == 1) {
      family = AF_INET6;
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(endpoint.tcp.port);
      length = sizeof *v6;
    } else {
      return base::unexpected(
          Failure{Failure::Kind::kConnect, "not an IP address: " + endpoint.tcp.host});
    }
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::unexpected(Failure{Failure::Kind::kConnect, error_text(errno)});
  std::unique_ptr<Connection> connection(new Connection(fd));
  if (family != AF_UNIX) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return base::unexpected(Failure{Failure::Kind::kConnect, error_text(errno)});
    }
    if (!base::poll_until(fd, POLLOUT, deadline)) {
      return base::unexpected(Failure{Failure::Kind::kConnect, "connect timed out"});
    }
    int error = 0;
    socklen_t size = sizeof error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) return base::unexpected(Failure{Failure::Kind::kConnect, error_text(error)});
  }
  return connection;
}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

base::Expected<base::Ok, Failure> Connection::send(std::string_view bytes,
                                                   Clock::time_point deadline) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!base::poll_until(fd_, POLLOUT, deadline))
        return base::unexpected(Failure{Failure::Kind::kTimeout, "timed out writing"});
      continue;
    }
    if (sent < 0 && (errno == EPIPE || errno == ECONNRESET))
      return base::unexpected(Failure{Failure::Kind::kClosed, "closed the connection"});
    return base::unexpected(Failure{Failure::Kind::kIo, error_text(errno)});
  }
  return base::Ok{};
}

base::Expected<Packet, Failure> Connection::receive(Clock::time_point deadline) {
  char buffer[16 * 1024];
  for (;;) {
    auto packet = reader_.next();
    if (!packet) return base::unexpected(Failure{Failure::Kind::kProtocol, packet.error()});
    if (packet.value()) return std::move(*packet.value());
    const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
    if (got > 0) {
      reader_.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
      continue;
    }
    if (got == 0) return base::unexpected(Failure{Failure::Kind::kClosed, "closed the connection"});
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!base::poll_until(fd_, POLLIN, deadline))
        return base::unexpected(Failure{Failure::Kind::kTimeout, "timed out"});
      continue;
    }
    if (errno == ECONNRESET)
      return base::unexpected(Failure{Failure::Kind::kClosed, "closed the connection"});
    return base::unexpected(Failure{Failure::Kind::kIo, error_text(errno)});
  }
}

}  // namespace milter
