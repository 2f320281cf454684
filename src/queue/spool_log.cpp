// spool_log.cpp — the spool's commit log (format and invariants: spool_log.h).
#include "queue/spool_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>

#include "base/file_copy.h"
#include "obs/log.h"
#include "queue/crc32.h"

namespace queue {

std::uint32_t crc32_update(std::uint32_t crc, std::string_view bytes) {
  // The fastest engine this CPU runs, decided once; all give zlib's value (queue/crc32.h).
  static const auto engine = crc32_carryless_wide_supported() ? crc32_carryless_wide
                             : crc32_carryless_supported()    ? crc32_carryless
                                                              : crc32_zlib;
  return engine(crc, bytes);
}

std::uint32_t crc32_concat(std::uint32_t first, std::uint32_t second, std::uint64_t second_length) {
  return static_cast<std::uint32_t>(
      ::crc32_combine(first, second, static_cast<z_off_t>(second_length)));
}

std::uint64_t free_space_of(int directory_fd) {
  struct statvfs status {};
  if (::fstatvfs(directory_fd, &status) != 0) return UINT64_MAX;  // unknown: not low
  return static_cast<std::uint64_t>(status.f_bavail) * status.f_frsize;
}

namespace {

constexpr std::uint64_t kMaxRecordLength = 1ULL << 40;
constexpr std::size_t kMaxLineLength = 128;
constexpr std::size_t kCopyChunk = 256 * 1024;
// Free space beyond the octets a compaction copies: block rounding of the segment.
constexpr std::uint64_t kReserveMargin = 64 * 1024;

SpoolError log_error(std::string_view what, const std::string& path, int error_number) {
  return SpoolError{std::string(what) + " " + path + ": " + std::strerror(error_number),
                    /*transient=*/true, error_number};
}

std::string line_prefix(char kind, std::string_view id, std::uint64_t length) {
  std::string prefix;
  prefix.reserve(96);
  prefix += kind;
  prefix += ' ';
  prefix += id;
  prefix += ' ';
  prefix += std::to_string(length);
  prefix += ' ';
  return prefix;
}

// Reads length octets at offset of fd into out (replacing it); false with errno on failure
// or a short file.
bool pread_exact(int fd, std::uint64_t offset, std::size_t length, std::string& out) {
  out.resize(length);
  std::size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool pwrite_exact(int fd, std::string_view bytes, std::uint64_t offset) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

// CRC of length octets of fd from offset, started from crc.
bool crc_of_file(int fd, std::uint64_t offset, std::uint64_t length, std::uint32_t& crc) {
  std::string chunk;
  while (length > 0) {
    const auto piece = static_cast<std::size_t>(std::min<std::uint64_t>(length, kCopyChunk));
    if (!pread_exact(fd, offset, piece, chunk)) return false;
    crc = crc32_update(crc, chunk);
    offset += piece;
    length -= piece;
  }
  return true;
}

std::optional<std::uint64_t> segment_sequence(std::string_view name) {
  if (name.size() != 20 || name.substr(16) != ".seg") return std::nullopt;
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(name.data(), name.data() + 16, value, 16);
  if (error != std::errc() || end != name.data() + 16) return std::nullopt;
  return value;
}

}  // namespace

std::uint32_t log_record_crc(char kind, std::string_view id, std::uint64_t length,
                             std::string_view payload) {
  std::uint32_t crc = crc32_update(0, line_prefix(kind, id, length));
  return crc32_update(crc, payload);
}

std::string format_log_record_line(char kind, std::string_view id, std::uint64_t length,
                                   std::uint32_t crc) {
  std::string line = line_prefix(kind, id, length);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 28; shift >= 0; shift -= 4)
    line += kHex[(crc >> shift) & 0xF];
  line += '\n';
  return line;
}

std::vector<LogRecord> parse_log_records(std::string_view segment, std::uint64_t& end,
                                         std::string& error) {
  std::vector<LogRecord> records;
  end = 0;
  error.clear();
  if (segment.substr(0, SpoolLog::kSegmentHeader.size()) != SpoolLog::kSegmentHeader) {
    error = "no segment header";
    return records;
  }
  std::uint64_t position = SpoolLog::kSegmentHeader.size();
  end = position;
  while (position < segment.size()) {
    std::string_view rest = segment.substr(position);
    const std::size_t newline = rest.substr(0, kMaxLineLength).find('\n');
    if (newline == std::string_view::npos) {
      error = "incomplete record line at octet " + std::to_string(position);
      return records;
    }
    std::string_view line = rest.substr(0, newline);
    // kind SP id SP length SP crc
    const std::size_t first = line.find(' ');
    const std::size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
    const std::size_t third =
        second == std::string_view::npos ? second : line.find(' ', second + 1);
    LogRecord record;
    bool ok = first == 1 && third != std::string_view::npos && (line[0] == 'M' || line[0] == 'D');
    std::string_view length_text;
    std::string_view crc_text;
    if (ok) {
      record.kind = line[0];
      record.id = line.substr(2, second - 2);
      length_text = line.substr(second + 1, third - second - 1);
      crc_text = line.substr(third + 1);
      ok = Spool::is_valid_id(record.id) && !length_text.empty() && length_text.size() <= 13 &&
           (length_text.size() == 1 || length_text[0] != '0') && crc_text.size() == 8;
    }
    if (ok) {
      auto [p, e] = std::from_chars(length_text.data(), length_text.data() + length_text.size(),
                                    record.length);
      ok = e == std::errc() && p == length_text.data() + length_text.size() &&
           record.length <= kMaxRecordLength && (record.kind == 'M' || record.length == 0);
    }
    if (ok) {
      ok = std::all_of(crc_text.begin(), crc_text.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
      if (ok) std::from_chars(crc_text.data(), crc_text.data() + 8, record.crc, 16);
    }
    if (!ok) {
      error = "malformed record line at octet " + std::to_string(position);
      return records;
    }
    record.payload_offset = position + newline + 1;
    if (record.length > segment.size() - record.payload_offset) {
      error =
          "record of " + std::string(record.id) + " cut short at octet " + std::to_string(position);
      return records;
    }
    std::string_view payload = segment.substr(record.payload_offset, record.length);
    if (log_record_crc(record.kind, record.id, record.length, payload) != record.crc) {
      error = "CRC mismatch in the record of " + std::string(record.id) + " at octet " +
              std::to_string(position);
      return records;
    }
    records.push_back(record);
    position = record.payload_offset + record.length;
    end = position;
  }
  return records;
}

SpoolLog::SpoolLog(std::string dir, int dir_fd, int queue_dir_fd, std::uint64_t segment_size,
                   std::chrono::seconds compact_after)
    : dir_(std::move(dir)),
      dir_fd_(dir_fd),
      queue_dir_fd_(queue_dir_fd),
      segment_size_(segment_size),
      compact_after_(compact_after) {}

SpoolLog::~SpoolLog() {
  for (Segment& segment : segments_)
    if (segment.fd >= 0) ::close(segment.fd);
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

bool SpoolLog::file_matches(const Live& live, int fd) {
  struct stat status {};
  if (::fstat(fd, &status) != 0 || static_cast<std::uint64_t>(status.st_size) != live.length) {
    return false;
  }
  std::uint32_t crc = crc32_update(0, line_prefix('M', live.id, live.length));
  return crc_of_file(fd, 0, live.length, crc) && crc == live.crc;
}

base::Expected<base::Ok, SpoolError> SpoolLog::copy_image(const Live& live, int out_fd) {
  int in = ::open(live.segment_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return base::unexpected(log_error("open", live.segment_path, errno));
  bool ok = base::copy_file_part(in, live.offset, out_fd, 0, live.length);
  int saved = errno;
  ::close(in);
  if (!ok)
    return base::unexpected(
        log_error("copy message " + live.id + " from", live.segment_path, saved));
  return base::Ok{};
}

std::string SpoolLog::path_of(std::uint64_t sequence) const {
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.seg", static_cast<unsigned long long>(sequence));
  return dir_ + "/" + name;
}

base::Expected<std::unique_ptr<SpoolLog>, SpoolError> SpoolLog::open(
    const std::string& log_dir, int queue_dir_fd, std::uint64_t segment_size,
    std::vector<Live>& live, std::set<std::string>& removed, bool& created,
    std::chrono::seconds compact_after) {
  live.clear();
  removed.clear();
  created = false;
  if (::mkdir(log_dir.c_str(), 0700) == 0) {
    created = true;
    const std::string parent = log_dir.substr(0, log_dir.rfind('/'));
    int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent_fd < 0) return base::unexpected(log_error("open", parent, errno));
    int result = ::fsync(parent_fd);
    int saved = errno;
    ::close(parent_fd);
    if (result != 0) return base::unexpected(log_error("fsync", parent, saved));
  } else if (errno != EEXIST) {
    return base::unexpected(log_error("mkdir", log_dir, errno));
  }
  // Root opens the spool before it drops its privileges, in a directory the account owns
  // after the first start: no link is followed (O_NOFOLLOW here and for each segment).
  int dir_fd = ::open(log_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return base::unexpected(log_error("open", log_dir, errno));
  std::unique_ptr<SpoolLog> log(new SpoolLog(log_dir, dir_fd, queue_dir_fd,
                                             segment_size == 0 ? kDefaultSegmentSize : segment_size,
                                             compact_after));

  std::vector<std::uint64_t> sequences;
  if (DIR* directory = ::fdopendir(::dup(dir_fd))) {
    while (const dirent* entry = ::readdir(directory)) {
      if (auto sequence = segment_sequence(entry->d_name)) sequences.push_back(*sequence);
    }
    ::closedir(directory);
  }
  std::sort(sequences.begin(), sequences.end());

  std::string contents;
  for (std::uint64_t sequence : sequences) {
    const std::string path = log->path_of(sequence);
    int fd = ::openat(dir_fd, path.substr(log_dir.size() + 1).c_str(),
                      O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return base::unexpected(log_error("open", path, errno));
    struct stat status {};
    if (::fstat(fd, &status) != 0 ||
        !pread_exact(fd, 0, static_cast<std::size_t>(status.st_size), contents)) {
      int saved = errno;
      ::close(fd);
      return base::unexpected(log_error("read", path, saved));
    }
    std::uint64_t end = 0;
    std::string error;
    const std::vector<LogRecord> records = parse_log_records(contents, end, error);
    if (!error.empty()) {
      // Never acknowledged: the tail after the last complete record (a power cut, a full disk).
      obs::Log("spool_log_cut", obs::Level::kWarning)
          .kv("file", path)
          .kv("detail", error)
          .kv("discarded", static_cast<std::uint64_t>(contents.size() - end));
    }
    for (const LogRecord& record : records) {
      if (record.kind == 'M') {
        log->where_[std::string(record.id)] =
            Place{sequence, record.payload_offset, record.length, record.crc};
        removed.erase(std::string(record.id));
      } else {
        auto at = log->where_.find(record.id);
        if (at != log->where_.end()) log->where_.erase(at);
        removed.emplace(record.id);
      }
    }
    ::close(fd);  // only the newest segment is written, and it is opened when it is
    log->segments_.push_back(Segment{sequence, -1, end, 0, 0, std::chrono::steady_clock::now()});
  }
  for (const auto& [id, where] : log->where_) {
    auto segment = std::find_if(log->segments_.begin(), log->segments_.end(),
                                [&](const Segment& s) { return s.sequence == where.sequence; });
    segment->live += 1;
    segment->live_bytes += where.length;
    live.push_back(
        Live{id, log->path_of(where.sequence), where.payload_offset, where.length, where.crc});
  }
  // A new segment for this process; segments left without a live message go now. No
  // compaction here: `live` points into the old segments until Spool::open has used it.
  std::lock_guard lock(log->mutex_);
  if (auto started = log->start_segment_locked(/*compact=*/false); !started) {
    return base::unexpected(started.error());
  }
  if (!log->make_reserve_locked()) {
    obs::Log("spool_log_no_reserve", obs::Level::kWarning)
        .kv("file", log_dir + "/" + std::string(kReserveName))
        .kv("detail", std::strerror(errno))
        .kv("hint",
            "made again when space returns; until then a full disk may keep old "
            "segments");
  }
  return log;
}

base::Expected<base::Ok, SpoolError> SpoolLog::start_segment_locked(bool compact) {
  const std::uint64_t sequence = segments_.empty() ? 1 : segments_.back().sequence + 1;
  const std::string path = path_of(sequence);
  if (!segments_.empty() && segments_.back().fd >= 0) {
    // Appends already made to the segment that stops taking them must be durable before
    // a sync of the next one is taken for a sync of them.
    if (::fdatasync(segments_.back().fd) != 0) {
      sync_failed_locked(appends_);
    } else {
      durable_through_ = appends_;
      written_synced_ = written_;
    }
    ++syncs_;
    ::close(segments_.back().fd);
    segments_.back().fd = -1;
  }
  if (!segments_.empty()) segments_.back().sealed = std::chrono::steady_clock::now();
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    fd = ::openat(dir_fd_, path.substr(dir_.size() + 1).c_str(),
                  O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return base::unexpected(log_error("create", path, errno));
    if (!pwrite_exact(fd, kSegmentHeader, 0) || ::fsync(dir_fd_) != 0) {
      int saved = errno;
      ::close(fd);
      fd = -1;
      ::unlinkat(dir_fd_, path.substr(dir_.size() + 1).c_str(), 0);
      // A full disk: the reserve makes room for the segment that lets old ones go.
      if (saved != ENOSPC || !reserve_ || attempt > 0) {
        return base::unexpected(log_error("start segment", path, saved));
      }
      release_reserve_locked();
    }
  }
  segments_.push_back(Segment{sequence, fd, kSegmentHeader.size(), 0, 0, {}});
  broken_ = false;
  if (compact && segments_.size() > 1) compact_locked();
  reclaim_locked();
  if (!reserve_) (void)make_reserve_locked();
  close_newest_if_idle_locked();
  return base::Ok{};
}

// The newest segment open for writing. It stays open from one batch to the next until
// close_idle() (with the reply after the log, opening and closing it at each batch and D
// record cost 6-25 % of the messages/s, bench/README.md); a D record or a sync that had to
// open it closes it again when every append is synced (the queue's removals on an otherwise
// idle server).
base::Expected<base::Ok, SpoolError> SpoolLog::open_newest_locked() {
  Segment& segment = segments_.back();
  if (segment.fd >= 0) return base::Ok{};
  const std::string path = path_of(segment.sequence);
  segment.fd =
      ::openat(dir_fd_, path.substr(dir_.size() + 1).c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (segment.fd < 0) return base::unexpected(log_error("open", path, errno));
  return base::Ok{};
}

void SpoolLog::close_newest_if_idle_locked() {
  Segment& segment = segments_.back();
  if (durable_through_ == appends_ && segment.fd >= 0) {
    ::close(segment.fd);
    segment.fd = -1;
  }
}

base::Expected<std::uint64_t, SpoolError> SpoolLog::write_record_locked(char kind,
                                                                        std::string_view id,
                                                                        std::string_view image,
                                                                        int fd, std::uint64_t size,
                                                                        std::uint32_t crc) {
  if (broken_ || segments_.back().size >= segment_size_) {
    if (auto started = start_segment_locked(/*compact=*/true); !started) {
      return base::unexpected(started.error());
    }
  }
  if (auto opened = open_newest_locked(); !opened) return base::unexpected(opened.error());
  Segment& segment = segments_.back();
  const std::uint64_t length = fd >= 0 ? size : image.size();
  const std::string line = format_log_record_line(kind, id, length, crc);
  bool ok;
  if (fd >= 0) {
    ok = pwrite_exact(segment.fd, line, segment.size) &&
         base::copy_file_part(fd, 0, segment.fd, segment.size + line.size(), size);
  } else {
    std::array<iovec, 2> pieces{iovec{const_cast<char*>(line.data()), line.size()},
                                iovec{const_cast<char*>(image.data()), image.size()}};
    ssize_t n = ::pwritev(segment.fd, pieces.data(), image.empty() ? 1 : 2,
                          static_cast<off_t>(segment.size));
    ok = n == static_cast<ssize_t>(line.size() + image.size());
    if (n >= 0 && !ok) {
      // A short write (a full disk): finish it or fail.
      std::string whole = line;
      whole += image;
      ok = pwrite_exact(segment.fd, std::string_view(whole).substr(static_cast<std::size_t>(n)),
                        segment.size + static_cast<std::uint64_t>(n));
    }
  }
  if (!ok) {
    const int saved = errno;
    // Nothing may follow a partial record: cut it off, or stop using the segment.
    if (::ftruncate(segment.fd, static_cast<off_t>(segment.size)) != 0) broken_ = true;
    return base::unexpected(log_error("write to the commit log", path_of(segment.sequence), saved));
  }
  ++written_;
  const std::uint64_t payload_offset = segment.size + line.size();
  segment.size = payload_offset + length;
  return payload_offset;
}

base::Expected<std::uint64_t, SpoolError> SpoolLog::append_message(
    std::string_view id, std::string_view image, int fd, std::uint64_t size,
    std::optional<std::uint32_t> file_crc) {
  // The CRC before the lock: for a large message whose writer has none it reads the whole
  // file back, and the other committers need not wait for that.
  const std::uint64_t length = fd >= 0 ? size : image.size();
  std::uint32_t crc = crc32_update(0, line_prefix('M', id, length));
  if (fd < 0) {
    crc = crc32_update(crc, image);
  } else if (file_crc) {
    crc = crc32_concat(crc, *file_crc, length);
  } else if (!crc_of_file(fd, 0, size, crc)) {
    return base::unexpected(log_error("read", "message " + std::string(id), errno));
  }
  std::lock_guard lock(mutex_);
  auto written = write_record_locked('M', id, image, fd, size, crc);
  if (!written) return base::unexpected(written.error());
  Segment& segment = segments_.back();
  forget_locked(id);  // an id is committed once; a stale entry would count twice
  segment.live += 1;
  segment.live_bytes += length;
  where_[std::string(id)] = Place{segment.sequence, *written, length, crc};
  return ++appends_;
}

bool SpoolLog::failed_locked(std::uint64_t ticket) const {
  return std::any_of(failed_.begin(), failed_.end(), [&](const auto& range) {
    return ticket > range.first && ticket <= range.second;
  });
}

void SpoolLog::sync_failed_locked(std::uint64_t covered) {
  // fdatasync(2) reports a writeback error once: whatever it covered is lost for good, even
  // if a later call on the segment succeeds. The segment takes no more appends.
  if (covered > durable_through_) failed_.emplace_back(durable_through_, covered);
  durable_through_ = std::max(durable_through_, covered);
  broken_ = true;
}

base::Expected<base::Ok, SpoolError> SpoolLog::sync(std::uint64_t ticket) {
  auto verdict = [&]() -> base::Expected<base::Ok, SpoolError> {  // mutex_ held
    if (!failed_locked(ticket)) return base::Ok{};
    return base::unexpected(SpoolError{
        "fdatasync of the commit log in " + dir_ + " failed: the message may not be on disk",
        /*transient=*/true, EIO});
  };
  {
    std::lock_guard lock(mutex_);
    if (ticket <= durable_through_) return verdict();
  }
  if (auto synced = sync_newest(); !synced) return synced;
  std::lock_guard lock(mutex_);
  return verdict();
}

base::Expected<base::Ok, SpoolError> SpoolLog::sync_all() {
  {
    std::lock_guard lock(mutex_);
    if (written_synced_ >= written_) return base::Ok{};
  }
  return sync_newest();
}

base::Expected<base::Ok, SpoolError> SpoolLog::sync_newest() {
  int fd;
  std::uint64_t sequence;
  std::uint64_t covered;
  std::uint64_t written;
  bool opened_here;
  {
    std::lock_guard lock(mutex_);
    opened_here = segments_.back().fd < 0;
    if (auto opened = open_newest_locked(); !opened) return opened;
    // A descriptor of its own: the segment's may be closed by another thread meanwhile.
    fd = ::dup(segments_.back().fd);
    sequence = segments_.back().sequence;
    covered = appends_;  // every append so far is in this segment or in a synced older one
    written = written_;
    ++syncs_;
  }
  if (fd < 0) return base::unexpected(log_error("dup", path_of(sequence), errno));
  int result = ::fdatasync(fd);
  int saved = errno;
  ::close(fd);
  std::lock_guard lock(mutex_);
  if (result != 0) {
    sync_failed_locked(covered);
  } else {
    durable_through_ = std::max(durable_through_, covered);
    written_synced_ = std::max(written_synced_, written);
  }
  // Opened for this sync (no commit had it open): closed again, whichever segment is the
  // newest now (a D record meanwhile may have started the next one).
  if (opened_here) close_newest_if_idle_locked();
  if (result != 0) return base::unexpected(log_error("fdatasync", path_of(sequence), saved));
  return base::Ok{};
}

void SpoolLog::forget_locked(std::string_view id) {
  auto at = where_.find(id);
  if (at == where_.end()) return;
  for (Segment& segment : segments_) {
    if (segment.sequence == at->second.sequence) {
      segment.live -= 1;
      segment.live_bytes -= at->second.length;
      break;
    }
  }
  where_.erase(at);
}

void SpoolLog::append_done(std::string_view id) {
  std::lock_guard lock(mutex_);
  if (where_.find(id) == where_.end()) return;  // not committed through the log
  const bool was_open = segments_.back().fd >= 0;
  // Best effort: a D record lost (write error, power cut) only makes the message come back.
  (void)write_record_locked('D', id, {}, -1, 0, log_record_crc('D', id, 0, {}));
  forget_locked(id);
  reclaim_locked();
  if (!was_open) close_newest_if_idle_locked();
}

void SpoolLog::close_idle() {
  std::lock_guard lock(mutex_);
  close_newest_if_idle_locked();
}

void SpoolLog::compact_locked() {
  // The oldest segment, sealed long enough ago that its live messages are waiting (deferred,
  // held) rather than on their way, when they are at most a quarter of it, moves them to
  // the newest (which was just started) so that it can go. Record by record, in the kernel:
  // nothing of the segment is read into memory.
  Segment& oldest = segments_.front();
  Segment& newest = segments_.back();
  if (&oldest == &newest || oldest.live == 0 || oldest.live_bytes * 4 > oldest.size) return;
  // What the copies take: the payloads and at most kMaxLineLength per record line.
  const std::uint64_t needed = oldest.live_bytes + oldest.live * kMaxLineLength;
  if (needed > reserve_size()) return;  // more than the reserve: never moved
  const std::uint64_t free = free_space_of(dir_fd_);
  if (std::chrono::steady_clock::now() - oldest.sealed < compact_after_ &&
      free >= kLowSpaceSegments * segment_size_) {
    return;
  }
  if (free < needed + kReserveMargin && reserve_) release_reserve_locked();
  if (auto opened = open_newest_locked(); !opened) return;
  int old_fd = ::open(path_of(oldest.sequence).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (old_fd < 0) return;
  std::vector<std::pair<Place*, std::uint64_t>> moved;  // and the new payload offset
  const std::uint64_t start_size = newest.size;
  bool ok = true;
  for (auto& [id, place] : where_) {
    if (place.sequence != oldest.sequence) continue;
    const std::string line = format_log_record_line('M', id, place.length, place.crc);
    const std::uint64_t payload_offset = newest.size + line.size();
    ok =
        pwrite_exact(newest.fd, line, newest.size) &&
        base::copy_file_part(old_fd, place.payload_offset, newest.fd, payload_offset, place.length);
    if (!ok) break;
    newest.size = payload_offset + place.length;
    moved.emplace_back(&place, payload_offset);
  }
  int saved = errno;
  ::close(old_fd);
  if (!ok) {
    // Nothing may follow a partial record, and nothing points at the copies: cut them off,
    // or stop using the segment. The originals stay where they are.
    if (::ftruncate(newest.fd, static_cast<off_t>(start_size)) != 0) broken_ = true;
    newest.size = start_size;
  } else if (::fdatasync(newest.fd) != 0) {  // the copies must be durable before the originals go
    saved = errno;
    ok = false;
    broken_ = true;  // a failed fdatasync is reported once: the next append starts a segment
  }
  if (!ok) {
    obs::Log("spool_log_compaction_failed", obs::Level::kWarning)
        .kv("file", path_of(newest.sequence))
        .kv("detail", std::strerror(saved));
    return;
  }
  ++syncs_;
  for (auto& [place, payload_offset] : moved) {
    place->sequence = newest.sequence;
    place->payload_offset = payload_offset;
    newest.live += 1;
    newest.live_bytes += place->length;
  }
  oldest.live = 0;
  oldest.live_bytes = 0;
  obs::Log("spool_log_compacted")
      .kv("file", path_of(oldest.sequence))
      .kv("moved", static_cast<std::uint64_t>(moved.size()));
}

void SpoolLog::reclaim_locked() {
  while (segments_.size() > 1 && segments_.front().live == 0) {
    Segment& oldest = segments_.front();
    // Its messages' queue files were unlinked and their D records appended: both durable
    // first, then the segment goes, then that is durable before the next one may go.
    if (::fsync(queue_dir_fd_) != 0) return;
    if (segments_.back().fd >= 0 && ::fdatasync(segments_.back().fd) != 0) return;
    const std::string path = path_of(oldest.sequence);
    if (::unlinkat(dir_fd_, path.substr(dir_.size() + 1).c_str(), 0) != 0 && errno != ENOENT) {
      return;
    }
    if (::fsync(dir_fd_) != 0) return;
    if (oldest.fd >= 0) ::close(oldest.fd);
    segments_.pop_front();
  }
}

bool SpoolLog::make_reserve_locked() {
  const std::string name(kReserveName);
  int fd = ::openat(dir_fd_, name.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const int result = ::posix_fallocate(fd, 0, static_cast<off_t>(reserve_size()));
  ::close(fd);
  if (result != 0) {
    ::unlinkat(dir_fd_, name.c_str(), 0);
    errno = result;
    return false;
  }
  reserve_ = true;
  return true;
}

void SpoolLog::release_reserve_locked() {
  // Its blocks are free at once; nothing needs it to be durable.
  ::unlinkat(dir_fd_, std::string(kReserveName).c_str(), 0);
  reserve_ = false;
  obs::Log("spool_log_reserve_used", obs::Level::kWarning)
      .kv("file", dir_ + "/" + std::string(kReserveName))
      .kv("hint", "the disk of the spool is full");
}

std::optional<std::uint64_t> SpoolLog::live_length(std::string_view id) const {
  std::lock_guard lock(mutex_);
  auto at = where_.find(id);
  if (at == where_.end()) return std::nullopt;
  return at->second.length;
}

std::uint64_t SpoolLog::last_ticket() const {
  std::lock_guard lock(mutex_);
  return appends_;
}

std::size_t SpoolLog::segment_count() const {
  std::lock_guard lock(mutex_);
  return segments_.size();
}

std::uint64_t SpoolLog::syncs() const {
  std::lock_guard lock(mutex_);
  return syncs_;
}

}  // namespace queue
