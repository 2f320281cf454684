// http01_responder.h — the http-01 responder (RFC 8555 §8.3): a small HTTP/1.x server that
// answers GET /.well-known/acme-challenge/<token> with the key authorization of a challenge
// under way, 404 for anything else, and nothing more (no files, no other paths, no
// keep-alive).
//
// Invariants: its own thread (never an I/O thread of the mail server); the socket is bound
// at start-up (port 80 needs CAP_NET_BIND_SERVICE or root, before the privilege drop); up to
// kMaxConnections non-blocking connections served at once by one poll loop, kMaxPerClient
// from one address, each bounded in time (kRequestTimeout) and size (8 KiB of request head).
// A newcomer over a cap pushes out the oldest connection (of its address, else of all): a
// crowd of idle connections cannot make the CA's validation wait. Out of descriptors
// (EMFILE, ENFILE), accepting pauses for kAcceptPause instead of spinning.
// XXX: a flood of new connections from many addresses could still push out a CA's connection
// before its request arrives; the CA retries from several vantage points, and so do we.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "acme/client.h"
#include "base/expected.h"

namespace acme {

// A listening TCP socket (non-blocking, close-on-exec) on address:port ("" or "::": every
// address, IPv4 too where the system allows) and the port it got; errors start with label.
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
};
base::Expected<Listener, std::string> listen_on(const std::string& address, std::uint16_t port,
                                                const std::string& label);

class Http01Responder : public ChallengePublisher {
 public:
  static constexpr std::chrono::milliseconds kRequestTimeout{2000};
  static constexpr int kMaxConnections = 64;
  static constexpr int kMaxPerClient = 8;
  static constexpr std::chrono::milliseconds kAcceptPause{100};

  // Binds address:port ("" or "::": every address, IPv4 too where the system allows).
  static base::Expected<std::unique_ptr<Http01Responder>, std::string> bind(
      const std::string& address, std::uint16_t port);
  ~Http01Responder() override;

  void start();  // the thread
  void stop();   // ends it (idempotent)
  std::uint16_t port() const { return port_; }

  base::Expected<base::Ok, std::string> publish(const std::string& token,
                                                const std::string& key_authorization) override;
  void withdraw(const std::string& token) override;

  // The reply to one request head (exposed for tests): status line, headers and body.
  std::string answer(std::string_view request_head) const;

 private:
  Http01Responder(int listen_fd, int wake_fd, std::uint16_t port);
  struct Connection;  // one client's request head, then the reply
  void run();
  // Reads or writes what the connection is ready for; sets `done` when it is over.
  void serve(Connection& connection);

  int listen_fd_;
  int wake_fd_;  // eventfd: stop()
  std::uint16_t port_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::map<std::string, std::string> authorizations_;  // token → key authorization
};

}  // namespace acme
