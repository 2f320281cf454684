// spool_space.cpp — see spool_space.h.
#include "queue/spool_space.h"

#include "obs/log.h"

namespace queue {
namespace {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SpoolSpace::SpoolSpace(std::function<std::uint64_t()> measure, std::string directory,
                       std::chrono::milliseconds max_age)
    : measure_(std::move(measure)),
      directory_(std::move(directory)),
      max_age_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(max_age).count()),
      free_(measure_()),
      measured_at_ns_(steady_ns()) {}

std::uint64_t SpoolSpace::free_bytes() {
  const std::int64_t now = steady_ns();
  if (now - measured_at_ns_.load(std::memory_order_acquire) >= max_age_ns_ &&
      !measuring_.exchange(true, std::memory_order_acquire)) {
    // This caller measures; the others go on with the last value instead of waiting.
    free_.store(measure_(), std::memory_order_relaxed);
    measured_at_ns_.store(steady_ns(), std::memory_order_release);
    measuring_.store(false, std::memory_order_release);
  }
  return free_.load(std::memory_order_relaxed);
}

bool SpoolSpace::has_room(std::uint64_t reserve, std::uint64_t declared_size) {
  auto fits = [&](std::uint64_t free) {
    return free >= reserve && free - reserve >= declared_size;
  };
  if (fits(free_bytes())) return true;
  // A refusal is decided on a fresh measure, so that space that returns is seen at once.
  const std::uint64_t free = measure_();
  free_.store(free, std::memory_order_relaxed);
  if (fits(free)) return true;
  const std::int64_t now = steady_ns() / 1'000'000'000;
  std::int64_t last = last_log_s_.load(std::memory_order_relaxed);
  if (now - last >= 10 && last_log_s_.compare_exchange_strong(last, now)) {
    obs::Log("storage_low", obs::Level::kWarning)
        .kv("spool", directory_)
        .kv("free", free)
        .kv("needed", reserve + declared_size)
        .kv("hint", "new mail gets 452 4.3.1 until space returns");
  }
  return false;
}

}  // namespace queue
