// connection.h — one stream socket to a milter (unix or TCP), blocking with a deadline on
// every wait (poll(2)): for the milter threads only, never an I/O thread. TCP addresses are IP
// literals (the configuration refuses names: no system resolver is ever asked).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "base/endpoint.h"
#include "base/expected.h"
#include "milter/protocol.h"

namespace milter {

using Clock = std::chrono::steady_clock;

struct Failure {
  enum class Kind { kConnect, kTimeout, kClosed, kIo, kProtocol };
  Kind kind = Kind::kIo;
  std::string text;  // for the log line: "timed out after 10s", "closed the connection", …
};

class Connection {
 public:
  // Connects by `deadline`.
  static base::Expected<std::unique_ptr<Connection>, Failure> open(const base::Endpoint& endpoint,
                                                                   Clock::time_point deadline);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  base::Expected<base::Ok, Failure> send(std::string_view bytes, Clock::time_point deadline);
  // The next packet, read by `deadline`.
  base::Expected<Packet, Failure> receive(Clock::time_point deadline);

 private:
  explicit Connection(int fd) : fd_(fd) {}
  int fd_ = -1;
  PacketReader reader_;
};

}  // namespace milter
