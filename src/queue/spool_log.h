// spool_log.h — the spool's commit log: what makes an accepted message durable (issue 19).
//
// Before, each message cost an fsync of its own file and (shared by a batch) of queue/. Now
// the committer appends each message's whole spool file image to one segment file,
// <spool>/log/<16 hex>.seg, and ONE fdatasync(2) of that segment makes a whole batch durable;
// queue/<id> is still written (a plain copy the deliverers read) but never fsynced. Recovery
// (Spool::open) rebuilds queue/<id> from the log whenever a power cut left it missing, short
// or different.
//
// Segment format: the line "smtpsd-spool-log 1\n", then records, each a text line and a
// payload:
//
//   M <id> <length> <crc>\n<length octets>   a committed message: its spool file, whole
//   D <id> 0 <crc>\n                         the message left the queue (Spool::remove)
//
// <id> is Spool::is_valid_id, <length> a decimal without leading zeros (at most 2^40),
// <crc> 8 lowercase hex digits: CRC-32 (zlib) of the line up to and including the space
// before it, then of the payload. A scan stops at the first record that is incomplete or
// fails its CRC: what follows was never made durable by a completed fdatasync, because
// every fdatasync that completed covered every append that completed before it began.
//
// Invariants:
// - an M record is appended and its segment fdatasynced before the message's 250 and
//   before queue/<id> exists (publish() comes after the sync);
// - a segment never takes appends after a failed or partial write (it is truncated back to
//   its last complete record, or closed), nor after a restart (each start opens a new one);
// - a segment is deleted only when it is the oldest and holds no live message, after queue/
//   (where its messages' files were unlinked) and the active segment (their D records) were
//   synced, and log/ is synced after each deletion: no older record ever reappears without
//   the records that ended it;
// - compaction: when a new segment starts and the oldest, sealed at least compact_after
//   ago, holds live messages that are at most a quarter of its size, their records are
//   copied (copy_file_range(2), record by record, never the whole segment) to the new
//   segment and fdatasynced, so that one message deferred for days does not pin its
//   segment. The age keeps messages still on their way to a mailbox from being copied;
//   it is not waited for when the file system runs low (free space under kLowSpaceSegments
//   segments), so that dead segments never fill the disk.
// - reserve: log/reserve, a file of a quarter segment allocated at open (fallocate), is
//   what compaction spends when the disk is full: it is deleted before a compaction that
//   would not fit otherwise (or a segment that cannot be created), and made again once the
//   old segment went. Compaction never moves more than the reserve holds, so reclaiming
//   never needs free space; the intake still answers 452 4.3.1 for lack of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.h"
#include "queue/spool.h"

namespace queue {

// One record of a segment, as parse_log_records() found it.
struct LogRecord {
  char kind = 0;  // 'M' or 'D'
  std::string_view id;
  std::uint64_t payload_offset = 0;  // from the start of the segment
  std::uint64_t length = 0;
  std::uint32_t crc = 0;  // as stored (it matched)
};

// The valid records of a segment's octets from its start (the header line included), in
// order; stops at the first invalid one. end is where the valid part ends; error says why
// the scan stopped before the end of the octets ("" when it read them all).
std::vector<LogRecord> parse_log_records(std::string_view segment, std::uint64_t& end,
                                         std::string& error);

// CRC-32 (zlib's) of bytes, continued from crc (0 to start).
std::uint32_t crc32_update(std::uint32_t crc, std::string_view bytes);
// The CRC-32 of A then B, from the CRC-32 of A, that of B and B's length.
std::uint32_t crc32_concat(std::uint32_t first, std::uint32_t second, std::uint64_t second_length);

// Octets free for the account on the file system of an open directory (statvfs(3));
// UINT64_MAX when it cannot be told.
std::uint64_t free_space_of(int directory_fd);

// The CRC a record line carries for this kind, id, length and payload.
std::uint32_t log_record_crc(char kind, std::string_view id, std::uint64_t length,
                             std::string_view payload);
// The text line of a record ("M <id> <length> <crc>\n").
std::string format_log_record_line(char kind, std::string_view id, std::uint64_t length,
                                   std::uint32_t crc);

class SpoolLog {
 public:
  static constexpr std::uint64_t kDefaultSegmentSize = 64ULL << 20;
  static constexpr std::string_view kSegmentHeader = "smtpsd-spool-log 1\n";
  static constexpr std::string_view kReserveName = "reserve";
  static constexpr std::uint64_t kLowSpaceSegments = 4;

  // A live message found by open(): where its spool file image lies.
  struct Live {
    std::string id;
    std::string segment_path;
    std::uint64_t offset = 0;  // of the payload in the segment
    std::uint64_t length = 0;
    std::uint32_t crc = 0;  // of the record (log_record_crc)
  };
  // Whether the file open at fd holds exactly that image (size and CRC).
  static bool file_matches(const Live& live, int fd);
  // Writes the image into out_fd (from its start); the error names the files.
  static base::Expected<base::Ok, SpoolError> copy_image(const Live& live, int out_fd);

  // Opens <spool>/log (created when missing: `created` says so), reads every segment and
  // returns the live messages (an M record with no D record after it) in `live`, and in
  // `removed` the ids whose last record is a D (their queue file may still be there: the
  // unlink was not synced, the D record made it); what was
  // cut or corrupt is reported through obs::Log warnings. A new segment is started for
  // this process's appends. queue_dir_fd is fsynced before a segment is deleted.
  // compact_after: how long a segment must have stopped taking appends before its last
  // live messages are copied forward (tests pass 0).
  static base::Expected<std::unique_ptr<SpoolLog>, SpoolError> open(
      const std::string& log_dir, int queue_dir_fd, std::uint64_t segment_size,
      std::vector<Live>& live, std::set<std::string>& removed, bool& created,
      std::chrono::seconds compact_after = kLogCompactAfter);
  ~SpoolLog();
  SpoolLog(const SpoolLog&) = delete;
  SpoolLog& operator=(const SpoolLog&) = delete;

  // Appends the M record of a message whose spool file is `image` (not synced). When the
  // image is not in memory, pass image empty and the file descriptor and size of the file:
  // it is copied in the kernel (copy_file_range), and read once for the CRC unless
  // file_crc gives it (CRC-32 of the whole file, as the writer computed it while writing).
  // Returns the append's ticket, for sync().
  base::Expected<std::uint64_t, SpoolError> append_message(
      std::string_view id, std::string_view image, int fd = -1, std::uint64_t size = 0,
      std::optional<std::uint32_t> file_crc = std::nullopt);
  // Makes the append with this ticket durable: one fdatasync of the newest segment covers
  // every append made before it began (a rollover fdatasyncs the segment it leaves), so
  // of a batch only the first call syncs; the others find their ticket covered. An error
  // when a sync that covered the ticket failed (fdatasync reports a lost write only once:
  // the ticket stays failed).
  base::Expected<base::Ok, SpoolError> sync(std::uint64_t ticket);
  // Makes every record written so far durable, D records included (which have no ticket, so
  // sync() may find them covered when they are not): one fdatasync of the newest segment,
  // unless one that began after the last record was written has done it already. An error
  // only when that fdatasync failed.
  base::Expected<base::Ok, SpoolError> sync_all();
  // The D record of a message that left the queue (not synced; a lost D record only makes
  // the message be delivered again, which the deliverers tolerate). Then deletes what can be.
  void append_done(std::string_view id);
  // Closes the newest segment when every M record in it is synced. The segment stays open
  // from one batch to the next; the committers call this once they have had nothing to
  // commit for a while (GroupCommitter::kLogIdleClose), so that an idle server holds no file
  // open for writing on the spool's file system (which may then be remounted read-only). A
  // D record or a sync that had to open the segment closes it again itself.
  void close_idle();

  // The payload length of a live message's record (nullopt: not in the log).
  std::optional<std::uint64_t> live_length(std::string_view id) const;
  // The ticket of the newest append (0: none yet).
  std::uint64_t last_ticket() const;
  // For tests and metrics: segments on disk and fdatasyncs done.
  std::size_t segment_count() const;
  std::uint64_t syncs() const;

 private:
  struct Segment {
    std::uint64_t sequence = 0;
    int fd = -1;  // the newest only, from its first write until close_idle()
    std::uint64_t size = 0;
    std::uint64_t live = 0;        // live messages whose latest M record is here
    std::uint64_t live_bytes = 0;  // their payload octets
    // When it stopped taking appends (a segment found at start: the start).
    std::chrono::steady_clock::time_point sealed{};
  };
  // Where a live message's latest M record is.
  struct Place {
    std::uint64_t sequence = 0;
    std::uint64_t payload_offset = 0;  // in that segment
    std::uint64_t length = 0;
    std::uint32_t crc = 0;  // of the record
  };
  SpoolLog(std::string dir, int dir_fd, int queue_dir_fd, std::uint64_t segment_size,
           std::chrono::seconds compact_after);
  std::string path_of(std::uint64_t sequence) const;
  base::Expected<base::Ok, SpoolError> start_segment_locked(bool compact);
  base::Expected<base::Ok, SpoolError> open_newest_locked();
  // sync() past its early return, and sync_all(): fdatasyncs the newest segment.
  base::Expected<base::Ok, SpoolError> sync_newest();
  void close_newest_if_idle_locked();
  bool failed_locked(std::uint64_t ticket) const;
  void sync_failed_locked(std::uint64_t covered);
  // crc: log_record_crc of the record (computed by the caller, outside the lock). Returns
  // the offset of the record's payload in the newest segment.
  base::Expected<std::uint64_t, SpoolError> write_record_locked(char kind, std::string_view id,
                                                                std::string_view image, int fd,
                                                                std::uint64_t size,
                                                                std::uint32_t crc);
  void forget_locked(std::string_view id);
  void compact_locked();
  void reclaim_locked();
  std::uint64_t reserve_size() const { return segment_size_ / 4; }
  // log/reserve made (fallocate) when missing; false when there is no room for it.
  bool make_reserve_locked();
  void release_reserve_locked();

  std::string dir_;
  int dir_fd_;
  int queue_dir_fd_;
  std::uint64_t segment_size_;
  std::chrono::seconds compact_after_;
  mutable std::mutex mutex_;
  std::deque<Segment> segments_;                     // oldest first; the back one takes appends
  std::map<std::string, Place, std::less<>> where_;  // each live message's latest M record
  std::uint64_t appends_ = 0;          // M records appended by this process: the last ticket
  std::uint64_t durable_through_ = 0;  // every ticket up to here is synced, or failed
  std::uint64_t written_ = 0;          // records of any kind written by this process
  std::uint64_t written_synced_ = 0;   // of them, the first this many were synced (sync_all)
  std::vector<std::pair<std::uint64_t, std::uint64_t>> failed_;  // (from, through] ranges
  std::uint64_t syncs_ = 0;
  bool broken_ = false;   // the active segment failed a write and could not be cut back
  bool reserve_ = false;  // log/reserve is in place
};

}  // namespace queue
