// systemd_notify.h — the sd_notify(3) protocol without libsystemd: one datagram per state
// change to the socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract
// namespace). With Type=notify (contrib/systemd/smtpsd.service) systemd waits for READY=1
// before it counts the server as started, and shows STATUS= in `systemctl status`.
//
// The socket is opened once, at construction (before privileges are dropped), and
// $NOTIFY_SOCKET is removed from the environment so that no child inherits it.
#pragma once

#include <string>
#include <string_view>

namespace app {

class SystemdNotifier {
 public:
  SystemdNotifier();  // reads and unsets $NOTIFY_SOCKET; a no-op notifier without it
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // Sends newline-separated assignments ("READY=1\nSTATUS=…"); errors are ignored, as
  // sd_notify's are (the service works without its manager's view of it).
  void notify(std::string_view state) const;

  void ready(std::string_view status) const;
  void reloading() const;  // RELOADING=1 with MONOTONIC_USEC (systemd ≥ 253 asks for it)
  void stopping() const;

 private:
  int fd_ = -1;
};

}  // namespace app
