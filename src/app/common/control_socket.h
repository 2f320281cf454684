// control_socket.h — the running server's administration channel: a unix socket that only
// its owner can use (mode 0600 and a SO_PEERCRED check: the same uid as the server, or
// root). One request per connection, one line in, text lines out, then close:
//
//   auth lockouts                → "IP USER FAILURES SECONDS_LEFT" per lockout ("-" = every user)
//   auth unlock IP_OR_USER       → "unlocked IP_OR_USER" or "error: nothing to unlock for …"
//
// Answers starting with "error: " are failures. It is served by one thread of its own,
// requests are tiny and rare, and the handlers it calls are thread-safe.
#pragma once

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

  ~ControlSocket();
  // Binds path (replacing a stale socket file), mode 0600, and starts serving.
  base::Expected<base::Ok, std::string> start(const std::string& path, Handler handler);
  void stop();

 private:
  void serve();
  std::string path_;
  Handler handler_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Client side, for smtpsctl: sends one request, returns the reply text.
base::Expected<std::string, std::string> control_request(const std::string& path,
                                                         const std::string& request);

}  // namespace app
