// verification_queue.h — the bound on password verifications handed to the worker pool
// (argon2id, off the I/O threads; docs/architecture.md "Threads").
//
// Every queue shared by clients is bounded: without this, AUTH attempts from many clients
// (each below the failure limiter's bounds) would pile up on the pool without end, each
// holding a password in memory, and every login would wait behind all of them. The
// authenticator takes a ticket before it asks the host to verify a password; with none left
// the client gets 454 4.7.0 (a temporary failure: it retries) without any argon2id work.
//
// Invariants: in_use() ≤ capacity(); a ticket counts from try_enter() until it is destroyed,
// so it covers both the wait for a pool thread and the verification itself.
// Thread-safe: one atomic counter, taken and given back from any I/O thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>

namespace auth {

class VerificationQueue {
 public:
  // Verifications queued or running per pool thread: with argon2id's interactive
  // parameters (~50–100 ms, 64 MiB each) the last of a full queue waits ~1–2 s, well
  // within any client's timeout, and a burst of that many logins (mail clients coming back
  // after a restart, the verified-password cache empty) is served without a refusal.
  static constexpr std::size_t kPerThread = 16;

  explicit VerificationQueue(std::size_t capacity) : capacity_(capacity) {}
  VerificationQueue(const VerificationQueue&) = delete;
  VerificationQueue& operator=(const VerificationQueue&) = delete;

  // One place in the queue, given back when destroyed. Move-only.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept : queue_(other.queue_) { other.queue_ = nullptr; }
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket();

   private:
    friend class VerificationQueue;
    explicit Ticket(VerificationQueue* queue) : queue_(queue) {}
    VerificationQueue* queue_;
  };

  // A ticket, or nullopt when capacity() verifications are already queued or running.
  std::optional<Ticket> try_enter();

  std::size_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  std::size_t capacity() const { return capacity_; }

 private:
  const std::size_t capacity_;
  std::atomic<std::size_t> in_use_{0};
};

}  // namespace auth
