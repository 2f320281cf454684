// ticket_keys.h — the keys that seal a listener's TLS session tickets (RFC 5077 §4 for
// TLS 1.2, RFC 8446 §4.6.1 for TLS 1.3), rotated on a schedule while the process runs.
//
// Invariants: a new ticket is always sealed with the current key; the current key is
// replaced by a fresh random one once it is `rotation` old, and the key it replaces only
// opens tickets for one more `rotation`,
// after which it is forgotten. So a ticket key is in use at most two rotation periods, and
// a key that leaks opens at most that much of past traffic's resumption secrets. The keys
// never leave memory and are wiped when dropped. Thread-safe: every handshake of every I/O
// thread may call in (one short mutex hold per ticket sealed or opened).
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <span>

#include "base/expected.h"

namespace tls {

class TicketKeys {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  static constexpr std::chrono::seconds kDefaultRotation = std::chrono::hours(12);

  struct Key {
    std::array<unsigned char, 16> name{};  // sent in the clear in the ticket: which key
    std::array<unsigned char, 32> hmac{};  // HMAC-SHA-256 over the sealed ticket
    std::array<unsigned char, 32> aes{};   // AES-256-CBC
  };

  explicit TicketKeys(std::chrono::seconds rotation = kDefaultRotation,
                      Clock clock = &std::chrono::steady_clock::now);
  ~TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // The key to seal a new ticket with (rotating first when due).
  Key for_sealing();
  // The key a ticket names, if it may still be opened (the current or the previous key).
  std::optional<Key> for_opening(std::span<const unsigned char, 16> name);

  // Makes `ctx` seal and open tickets with these keys (SSL_CTX_set_tlsext_ticket_key_evp_cb).
  // This object must outlive every connection on ctx.
  base::Expected<base::Ok, std::string> install(SSL_CTX* ctx);

 private:
  void rotate_if_due_locked();

  const std::chrono::seconds rotation_;
  const Clock clock_;
  std::mutex mutex_;  // guards what follows
  Key current_;
  std::optional<Key> previous_;
  std::chrono::steady_clock::time_point current_since_;
};

}  // namespace tls
