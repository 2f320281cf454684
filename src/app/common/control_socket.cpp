// control_socket.cpp — see control_socket.h.
#include "app/common/control_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "base/poll.h"
#include "base/socket_file.h"

namespace app {
namespace {

constexpr std::size_t kMaxRequest = 4096;
constexpr std::chrono::seconds kRequestDeadline{5};  // the whole request line

std::string errno_text() {
  return std::strerror(errno);
}

base::Expected<sockaddr_un, std::string> socket_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    return base::unexpected("control socket path too long (at most " +
                            std::to_string(sizeof address.sun_path - 1) + " octets): " + path);
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

void write_all(int fd, const std::string& text) {
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::send(fd, data, left, MSG_NOSIGNAL);
    if (n <= 0) return;
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

ControlSocket::~ControlSocket() {
  stop();
}

base::Expected<base::Ok, std::string> ControlSocket::start(const std::string& path,
                                                           Handler handler) {
  handler_ = [handler = std::move(handler)](const std::string& request, uid_t) {
    return handler(request);
  };
  owner_only_ = true;
  return bind_and_serve(path, 0600);
}

base::Expected<base::Ok, std::string> ControlSocket::start_for_everyone(const std::string& path,
                                                                        PeerHandler handler) {
  handler_ = std::move(handler);
  owner_only_ = false;
  return bind_and_serve(path, 0666);  // connecting to a unix socket needs write access
}

base::Expected<base::Ok, std::string> ControlSocket::bind_and_serve(const std::string& path,
                                                                    mode_t mode) {
  auto address = socket_address(path);
  if (!address) return base::unexpected(address.error());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::unexpected("control socket: " + errno_text());
  ::unlink(path.c_str());  // a socket file left by an earlier run
  // Created owner-only from the start: no window in which another user could connect. The
  // umask is the process's: widening it here would widen every file other threads create
  // meanwhile, so a wider mode is given afterwards with chmod(2).
  mode_t old_mask = ::umask(0177);
  int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&address.value()), sizeof(sockaddr_un));
  ::umask(old_mask);
  if (bound == 0 && mode != 0600) {
    // Never through a link swapped in after bind (set_socket_mode), and only in a directory
    // no other user may write to.
    // A bare file name ("mailq.sock", relative to the working directory) has the empty path
    // as its parent: that is the current directory.
    std::string directory = std::filesystem::path(path).parent_path().string();
    auto safe = base::check_socket_directory(directory.empty() ? "." : directory);
    if (safe) safe = base::set_socket_mode(path, mode);
    if (!safe) {
      ::close(fd);
      return base::unexpected("listing socket: " + safe.error());
    }
  }
  if (bound != 0 || ::listen(fd, 8) != 0) {
    std::string error = errno_text();
    ::close(fd);
    return base::unexpected("control socket " + path + ": " + error);
  }
  path_ = path;
  listen_fd_ = fd;
  thread_ = std::thread([this] { serve(); });
  return base::Ok{};
}

void ControlSocket::stop() {
  if (listen_fd_ < 0) return;
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes the poll in serve()
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::unlink(path_.c_str());
  listen_fd_ = -1;
}

void ControlSocket::serve() {
  while (!stopping_) {
    pollfd waiting{listen_fd_, POLLIN, 0};
    if (::poll(&waiting, 1, 500) <= 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(client, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
        (owner_only_ && peer.uid != ::geteuid() && peer.uid != 0)) {
      write_all(client, "error: permission denied\n");
      ::close(client);
      continue;
    }
    // One client at a time, so each has a deadline for its whole request (a local user
    // trickling bytes cannot hold the socket) and for each write of the answer (nor by
    // never reading it).
    timeval send_timeout{5, 0};
    ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    const auto deadline = std::chrono::steady_clock::now() + kRequestDeadline;
    std::string request;
    char buffer[512];
    while (request.find('\n') == std::string::npos && request.size() < kMaxRequest) {
      if (deadline <= std::chrono::steady_clock::now() ||
          !base::poll_until(client, POLLIN, deadline))
        break;
      ssize_t n = ::recv(client, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) break;
      request.append(buffer, static_cast<std::size_t>(n));
    }
    std::size_t end = request.find('\n');
    if (end == std::string::npos) {
      write_all(client, "error: request must be one line\n");
    } else {
      request.resize(end);
      if (!request.empty() && request.back() == '\r') request.pop_back();
      write_all(client, handler_(request, peer.uid));
    }
    ::close(client);
  }
}

base::Expected<std::string, std::string> control_request(const std::string& path,
                                                         const std::string& request) {
  auto address = socket_address(path);
  if (!address) return base::unexpected(address.error());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return base::unexpected(errno_text());
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address.value()), sizeof(sockaddr_un)) !=
      0) {
    std::string error = errno_text();
    ::close(fd);
    return base::unexpected("cannot reach the server at " + path + ": " + error +
                            " (is smtpsd running, and are you its user?)");
  }
  write_all(fd, request + "\n");
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) {
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

}  // namespace app
