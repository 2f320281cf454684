// systemd_notify.cpp — see systemd_notify.h.
#include "app/smtpsd/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace app {

SystemdNotifier::SystemdNotifier() {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr || name[0] == '\0') return;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::size_t length = std::strlen(name);
  if ((name[0] != '/' && name[0] != '@') || length >= sizeof address.sun_path) {
    ::unsetenv("NOTIFY_SOCKET");
    return;
  }
  std::memcpy(address.sun_path, name, length);
  if (name[0] == '@') address.sun_path[0] = '\0';  // abstract namespace
  ::unsetenv("NOTIFY_SOCKET");
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), size) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

SystemdNotifier::~SystemdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

void SystemdNotifier::notify(std::string_view state) const {
  if (fd_ < 0) return;
  [[maybe_unused]] ssize_t sent = ::send(fd_, state.data(), state.size(), MSG_NOSIGNAL);
}

void SystemdNotifier::ready(std::string_view status) const {
  std::string message = "READY=1\nSTATUS=";
  message.append(status);
  notify(message);
}

void SystemdNotifier::reloading() const {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const long long usec = static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
  notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void SystemdNotifier::stopping() const {
  notify("STOPPING=1\nSTATUS=stopping: open transactions may finish");
}

}  // namespace app
