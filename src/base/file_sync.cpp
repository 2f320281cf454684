// file_sync.cpp — see file_sync.h.
#include "base/file_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace base {

namespace {

constexpr std::uint64_t kUnknown = std::numeric_limits<std::uint64_t>::max();

// statfs(2) f_type values (linux/magic.h).
constexpr std::uint64_t kExt4Magic = 0xEF53;  // ext2, ext3 and ext4 alike
constexpr std::uint64_t kXfsMagic = 0x58465342;
constexpr std::uint64_t kBtrfsMagic = 0x9123683E;
constexpr std::uint64_t kF2fsMagic = 0xF2F52010;

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

// Whether the ext file system on device runs a jbd2 journal. jbd2 names each journal it runs
// "<device name>-<journal inode>" under /proc/fs/jbd2; the name ("vda1", "dm-0", "loop0")
// comes from the device's numbers.
bool has_jbd2_journal(dev_t device) {
  const std::string numbers = std::to_string(major(device)) + ":" + std::to_string(minor(device));
  std::error_code error;
  const std::filesystem::path name =
      std::filesystem::read_symlink("/sys/dev/block/" + numbers, error);
  if (error || name.filename().empty()) return false;
  const std::string prefix = name.filename().string() + "-";
  std::filesystem::directory_iterator entry("/proc/fs/jbd2", error);
  for (; !error && entry != std::filesystem::directory_iterator(); entry.increment(error)) {
    if (entry->path().filename().string().starts_with(prefix)) return true;
  }
  return false;
}

}  // namespace

SyncfsUse syncfs_use(int fd) {
  // Before 5.8, syncfs returned 0 after a failed writeback.
  static const bool kernel = [] {
    struct utsname name {};
    return ::uname(&name) == 0 && release_at_least(name.release, 5, 8);
  }();
  if (!kernel) return SyncfsUse::kNever;
  struct statfs status {};
  if (::fstatfs(fd, &status) != 0) return SyncfsUse::kNever;
  const auto type = static_cast<std::uint64_t>(status.f_type);
  if (type == kXfsMagic || type == kBtrfsMagic || type == kF2fsMagic) return SyncfsUse::kAlone;
  if (type != kExt4Magic) return SyncfsUse::kNever;
  // Whether this ext file system has a journal: the last one asked about on this thread.
  struct stat file {};
  if (::fstat(fd, &file) != 0) return SyncfsUse::kNever;
  struct Known {
    dev_t device;
    fsid_t fsid;
    std::chrono::steady_clock::time_point checked;
    bool journaled;
  };
  thread_local std::optional<Known> known;
  const auto now = std::chrono::steady_clock::now();
  if (!known || known->device != file.st_dev ||
      std::memcmp(&known->fsid, &status.f_fsid, sizeof(fsid_t)) != 0 ||
      now - known->checked >= kJournalRecheckEvery) {
    known = Known{file.st_dev, status.f_fsid, now, has_jbd2_journal(file.st_dev)};
  }
  return known->journaled ? SyncfsUse::kAlone : SyncfsUse::kThenFlush;
}

bool syncs_are_journal_commits(int fd) {
  struct statfs status {};
  if (::fstatfs(fd, &status) != 0) return false;
  const auto type = static_cast<std::uint64_t>(status.f_type);
  if (type == kXfsMagic) return true;
  struct stat file {};
  return type == kExt4Magic && ::fstat(fd, &file) == 0 && has_jbd2_journal(file.st_dev);
}

bool release_at_least(std::string_view release, unsigned want_major, unsigned want_minor) {
  std::size_t at = 0;
  // The number at `at` (1 to 4 digits), or nullopt.
  auto number = [&]() -> std::optional<unsigned> {
    unsigned value = 0;
    const std::size_t start = at;
    for (; at < release.size() && release[at] >= '0' && release[at] <= '9'; ++at) {
      if (at - start == 4) return std::nullopt;
      value = value * 10 + static_cast<unsigned>(release[at] - '0');
    }
    if (at == start) return std::nullopt;
    return value;
  };
  const std::optional<unsigned> major_part = number();
  if (!major_part || at == release.size() || release[at++] != '.') return false;
  const std::optional<unsigned> minor_part = number();
  if (!minor_part) return false;
  return *major_part > want_major || (*major_part == want_major && *minor_part >= want_minor);
}

std::uint64_t parse_unwritten_bytes(const char* meminfo, std::size_t length) {
  const std::string_view text(meminfo, length);
  const std::uint64_t dirty = field_kib(text, "Dirty");
  const std::uint64_t writeback = field_kib(text, "Writeback");
  // Each has at most 16 digits: the sum in octets fits in 64 bits only below 2^54 KiB.
  if (dirty >= (1ULL << 53) || writeback >= (1ULL << 53)) return kUnknown;
  return (dirty + writeback) * 1024;
}

std::uint64_t unwritten_bytes() {
  static std::atomic<std::int64_t> sampled_at{std::numeric_limits<std::int64_t>::min()};
  static std::atomic<std::uint64_t> sampled{kUnknown};
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t last = sampled_at.load(std::memory_order_relaxed);
  if (last != std::numeric_limits<std::int64_t>::min() &&
      now - last < kUnwrittenSampleEvery.count()) {
    return sampled.load(std::memory_order_relaxed);
  }
  // One thread reads; the others keep the last value meanwhile.
  if (!sampled_at.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    return sampled.load(std::memory_order_relaxed);
  }
  const std::uint64_t value = read_unwritten_bytes();
  sampled.store(value, std::memory_order_relaxed);
  return value;
}

}  // namespace base
