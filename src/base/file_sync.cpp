// file_sync.cpp — see file_sync.h.
#include "base/file_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <limits>
#include <string_view>

namespace base {

namespace {

constexpr std::uint64_t kUnknown = std::numeric_limits<std::uint64_t>::max();

// The kB value of the line "<name>:   <digits> kB", or kUnknown.
std::uint64_t field_kib(std::string_view text, std::string_view name) {
  std::size_t at = 0;
  for (;;) {
    at = text.find(name, at);
    if (at == std::string_view::npos) return kUnknown;
    if ((at == 0 || text[at - 1] == '\n') && text.substr(at + name.size()).starts_with(":")) break;
    at += name.size();
  }
  std::size_t i = at + name.size() + 1;
  while (i < text.size() && text[i] == ' ')
    ++i;
  std::uint64_t value = 0;
  std::size_t digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 16; ++i, ++digits)
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
  if (digits == 0 || !text.substr(i).starts_with(" kB")) return kUnknown;
  return value;
}

std::uint64_t read_unwritten_bytes() {
  int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return kUnknown;
  char buffer[8192];
  std::size_t length = 0;
  for (;;) {
    ssize_t got = ::read(fd, buffer + length, sizeof buffer - length);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    length += static_cast<std::size_t>(got);
    if (length == sizeof buffer) break;
  }
  ::close(fd);
  return parse_unwritten_bytes(buffer, length);
}

}  // namespace

std::uint64_t parse_unwritten_bytes(const char* meminfo, std::size_t length) {
  const std::string_view text(meminfo, length);
  const std::uint64_t dirty = field_kib(text, "Dirty");
  const std::uint64_t writeback = field_kib(text, "Writeback");
  if (dirty == kUnknown || writeback == kUnknown) return kUnknown;
  return (dirty + writeback) * 1024;
}

std::uint64_t unwritten_bytes() {
  static std::atomic<std::int64_t> sampled_at{std::numeric_limits<std::int64_t>::min()};
  static std::atomic<std::uint64_t> sampled{kUnknown};
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t last = sampled_at.load(std::memory_order_acquire);
  if (last != std::numeric_limits<std::int64_t>::min() &&
      now - last < kUnwrittenSampleEvery.count()) {
    return sampled.load(std::memory_order_relaxed);
  }
  // One thread reads; the others keep the last value meanwhile.
  if (!sampled_at.compare_exchange_strong(last, now, std::memory_order_acq_rel)) {
    return sampled.load(std::memory_order_relaxed);
  }
  const std::uint64_t value = read_unwritten_bytes();
  sampled.store(value, std::memory_order_relaxed);
  return value;
}

}  // namespace base
