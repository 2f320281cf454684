// control_socket.h — the running server's administration channel: a unix socket that only
// its owner can use (mode 0600 and a SO_PEERCRED check: the same uid as the server, or
// root). One request per connection, one line in, text lines out, then close:
//
//   auth lockouts                → "IP USER FAILURES SECONDS_LEFT" per lockout ("-" = every user)
//   auth unlock IP_OR_USER       → "unlocked IP_OR_USER" or "error: nothing to unlock for …"
//
// Answers starting with "error: " are failures. It is served by one thread of its own,
// requests are tiny and rare, and the handlers it calls are thread-safe.
//
// The same class serves the read-only listing socket (`mailq` for every local user,
// start_for_everyone): mode 0666, every peer is served, and the handler is told the peer's
// uid (SO_PEERCRED, from the kernel: a client cannot choose it) so that it decides what
// that user may see. No credential travels in the request.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "base/expected.h"

namespace app {

class ControlSocket {
 public:
  // request line (without the newline) → reply text (lines ending in '\n').
  using Handler = std::function<std::string(const std::string& request)>;
  // The same, told the uid of the process that connected.
  using PeerHandler = std::function<std::string(const std::string& request, uid_t peer_uid)>;

  ~ControlSocket();
  // Binds path (replacing a stale socket file), mode 0600, and starts serving the server's
  // own uid and root only.
  base::Expected<base::Ok, std::string> start(const std::string& path, Handler handler);
  // Binds path mode 0666 and serves every local user; the handler decides by peer uid.
  base::Expected<base::Ok, std::string> start_for_everyone(const std::string& path,
                                                           PeerHandler handler);
  void stop();

 private:
  base::Expected<base::Ok, std::string> bind_and_serve(const std::string& path, mode_t mode);
  void serve();
  std::string path_;
  PeerHandler handler_;
  bool owner_only_ = true;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Client side, for smtpsctl: sends one request, returns the reply text.
base::Expected<std::string, std::string> control_request(const std::string& path,
                                                         const std::string& request);

}  // namespace app
