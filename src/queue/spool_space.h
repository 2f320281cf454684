// spool_space.h — MAIL's storage check: does a message of the declared size, plus the
// configured reserve, fit on the spool's file system? A "no" becomes 452 4.3.1 (RFC 1870
// §6.1, RFC 3463 X.3.1) and the client retries later.
//
// Invariants:
// - The free space is measured (statvfs(3), Spool::free_bytes) at most once per max_age,
//   by one caller at a time; every other caller, meanwhile, uses the last measure. Nothing
//   here waits for a lock or for another caller's measure. So a disk that fills up is seen
//   within max_age (the spool writer's own errors cover that window: 452 at DATA).
// - A refusal is always decided on a fresh measure: space that returns is seen at once, and
//   the cost of a measure per MAIL is paid only while refusing.
// - A refusal is logged (storage_low) at most every 10 s: a full disk refuses every
//   transaction until space returns, and the log must not fill what is left.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace queue {

class SpoolSpace {
 public:
  // measure returns the bytes free now (Spool::free_bytes); directory names the spool in
  // the log. The first measure is taken here.
  SpoolSpace(std::function<std::uint64_t()> measure, std::string directory,
             std::chrono::milliseconds max_age = std::chrono::seconds(1));
  SpoolSpace(const SpoolSpace&) = delete;
  SpoolSpace& operator=(const SpoolSpace&) = delete;

  // Thread-safe; called from I/O threads at each MAIL.
  bool has_room(std::uint64_t reserve, std::uint64_t declared_size);

 private:
  std::uint64_t free_bytes();

  const std::function<std::uint64_t()> measure_;
  const std::string directory_;
  const std::int64_t max_age_ns_;
  std::atomic<std::uint64_t> free_;
  std::atomic<std::int64_t> measured_at_ns_;  // steady clock
  std::atomic<bool> measuring_{false};
  std::atomic<std::int64_t> last_log_s_{INT64_MIN / 2};  // steady clock
};

}  // namespace queue
