// spool.h — the durable message store between acceptance and delivery.
//
// Layout under <data>/spool: tmp/<id> while a message is being received, queue/<id> once
// committed, state/<id> for what the scheduler has done with it (see append_state), log/ the
// commit log (queue/spool_log.h). One file per message: a small envelope header, a blank
// line, then the message exactly as it will be delivered (Received header first). Header
// fields learnt only after the body arrived (DKIM-Signature, Authentication-Results, milter
// edits) and a replaced body are taken without copying the message: see
// replace_header_section() and truncate_content(). Whoever reads a message reads it through
// queue::MessageReader (message_reader.h), never by offsets of its own: the content may lie in
// several pieces of the file. Invariant: a committed message is durable — its whole file is
// appended to the commit log, and the log fdatasynced (one sync for a whole batch of
// messages), before it is renamed into queue/ and before commit() returns success; queue/<id>
// itself is never fsynced: after a power cut, Spool::open() rebuilds it from the log when it
// is missing or differs. Anything left in tmp/ after a crash was never acknowledged and is
// removed at open. RFC 5321 §4.5.4 and §6.1: once 250 is sent the server MUST NOT lose the
// message; so any failed write or sync fails the commit (as Postfix global/mail_stream.c
// does) and the session answers 4xx instead. The file format is documented in spool.cpp.
// One process owns a spool directory at a time: open() takes an exclusive flock(2) on it,
// because it clears tmp/ (which would destroy another process's messages in progress).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.h"
#include "smtp/envelope.h"

namespace queue {

struct SpoolError {
  std::string message;  // what failed, with the path and strerror
  bool transient = true;
  int error_number = 0;  // errno of the failed system call (ENOENT: no such message), or 0

  // Out of space or not writable (ENOSPC, EDQUOT, EROFS, EACCES, EPERM): the mail system
  // is "full" in the sense of RFC 3463 X.3.1, which passes without anyone's help once
  // space returns or the permissions are fixed.
  bool storage_unavailable() const;
};

// One piece of the content: length octets of the file at StoredMessage::path from offset.
struct ContentSegment {
  // A length that runs to the end of the file, whatever its size when it is opened.
  static constexpr std::uint64_t kToEndOfFile = UINT64_MAX;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool operator==(const ContentSegment&) const = default;
};

// A file of queue/ open for reading, shared by the readers of one loaded message (a file
// in queue/ never changes). Closed with its last holder. Or the file's octets in memory
// (fd -1): a message SpoolWriter::finish() took whole from its buffer, which never needed
// a file (delivered at acceptance).
struct OpenSpoolFile {
  OpenSpoolFile(int fd_in, std::uint64_t size_in) : fd(fd_in), size(size_in) {}
  explicit OpenSpoolFile(std::string bytes_in)
      : fd(-1), size(bytes_in.size()), bytes(std::move(bytes_in)) {}
  ~OpenSpoolFile();
  OpenSpoolFile(const OpenSpoolFile&) = delete;
  OpenSpoolFile& operator=(const OpenSpoolFile&) = delete;
  const int fd;
  const std::uint64_t size;
  const std::string bytes;  // fd < 0: the whole file
};

// A committed message as read back from queue/.
struct StoredMessage {
  std::string id;
  std::string path;  // full path of queue/<id>
  smtp::Envelope envelope;
  // The message exactly as it will be delivered, in order, as pieces of the file at path:
  // read it with queue::MessageReader. load() sets exact lengths (no empty segment). The
  // default describes a file that is all message (smtpsctl send hands its temporary file
  // to the transport that way).
  std::vector<ContentSegment> segments{ContentSegment{0, ContentSegment::kToEndOfFile}};
  std::uint64_t content_size = 0;  // the sum of the segment lengths, set by load()
  // The Maildir++ folder a check chose for local delivery ("" = INBOX; SpoolWriter::set_folder).
  std::string folder;
  // Not stored: the folder comes from the address's +detail (the sender chose it), so Maildir
  // files into it only when the mailbox owner has made it, else into INBOX; a sender must
  // not be able to create folders.
  bool folder_if_exists = false;
  // "TLS-Required: No" (RFC 8689 §3) from one of our authenticated senders, on a message sent
  // without REQUIRETLS (SpoolWriter::set_tls_optional): the sender asks that the recipient
  // domain's TLS policy (DANE, MTA-STS, the learned memory) not hold the message back.
  bool tls_optional = false;
  std::int64_t received_unix = 0;  // when it was accepted
  // A notice (a DSN) about another message (Spool::new_notice_id, SpoolWriter::set_notice): the id
  // of the message it reports on and the lines of that message's state (Spool::append_state) it
  // stands for ("failed 0", "warned", "delivered 2"). Empty for any other message.
  std::string notice_of;
  std::vector<std::string> notice_state;
  // Found in the spool at start-up: a delivery may have completed before a crash, so a
  // deliverer must look harder for an earlier copy (Maildir: also scan cur/).
  bool recovered = false;
  // Set by SpoolWriter::finish() only: the message was accepted just now and no deliverer has
  // had it, so no copy of it can exist yet (Maildir skips its look for an earlier one). A
  // message read back from the spool, even in the same process, has it false.
  bool never_delivered = false;
  // load()'s descriptor of path, which MessageReader reads through (no second open and
  // fstat per delivery); null: MessageReader opens path.
  std::shared_ptr<const OpenSpoolFile> file;
};

// Parses a spool file from its first octets (through the blank line that ends the envelope
// header at least; what follows is not looked at) and its size in all: the envelope and the
// segments of the content. Spool::load() reads the file into it; the fuzzer feeds it bytes.
// The error says what is wrong and where (load() reports it as a corrupt spool file).
base::Expected<StoredMessage, std::string> parse_spool_file(std::string_view id,
                                                            std::string_view head,
                                                            std::uint64_t file_size);

class Spool;
class SpoolLog;

// How long a commit-log segment must have stopped taking appends before its last live
// messages (deferred, held) are copied forward so that it can be deleted (SpoolLog::open).
inline constexpr std::chrono::seconds kLogCompactAfter{60};

// The content of a message still being received, as appended so far, for a check that reads
// it at the end of its data off the I/O thread (a milter is given the body from here, not
// from memory). It holds a descriptor of its own: it stays readable after the writer went
// away (aborted, committed), and a later truncate_content() shortens what it reads. Reads are
// pread(2): any thread, concurrently.
class ContentReader {
 public:
  ContentReader(int fd, std::uint64_t offset, std::uint64_t size, std::string path)
      : fd_(fd), offset_(offset), size_(size), path_(std::move(path)) {}
  ~ContentReader();
  ContentReader(const ContentReader&) = delete;
  ContentReader& operator=(const ContentReader&) = delete;

  // Octets of content when it was made (SpoolWriter::content_size()).
  std::uint64_t size() const { return size_; }
  // Up to `length` octets from `position` of the content into `out` (replacing what it held);
  // fewer only at the end. The error names the file and strerror.
  base::Expected<base::Ok, std::string> read(std::uint64_t position, std::size_t length,
                                             std::string& out) const;

 private:
  int fd_;
  std::uint64_t offset_;  // where the content starts in the file
  std::uint64_t size_;
  std::string path_;
};

// Writes one incoming message. Not thread-safe; owned by one session.
// A failure removes the file: after any step failed, every later call returns that error
// (a late edit refused for misuse is not a failure: it changes nothing, see below).
//
// Content offsets (original_length, keep, content_size()) count octets of the content as
// appended, the Received header the intake appends first included.
//
// How the intake uses it, in order:
//   append(Received header); append(data)...           streamed while the client sends
//   [truncate_content(keep); append(new body)...]      a milter replaced the body
//   [replace_header_section(original_length, fields)]  once, with the final header block
//   [replace_envelope(sender, recipients)]             a check changed the envelope
//   [set_folder(folder)]                               a check chose a Maildir folder
//   [set_tls_optional(true)]                           "TLS-Required: No" is honoured
//   [mark_held()]                                      a check held the message
//   commit() (or the GroupCommitter steps)
// The two late calls may come in either order and be repeated; nothing already on disk is
// moved or copied: the new header section is held (at most kMaxHeaderSectionSize octets)
// and written after the content by flush_to_log(), before it goes to the log, so that a committed
// message always has it.
class SpoolWriter {
 public:
  // The largest header section replace_header_section() takes.
  static constexpr std::size_t kMaxHeaderSectionSize = 1024 * 1024;

  virtual ~SpoolWriter() = default;
  virtual const std::string& id() const = 0;
  // Buffered append of message content. Fails (and keeps failing) on a write error.
  virtual base::Expected<base::Ok, SpoolError> append(std::string_view bytes) = 0;
  // Octets of content so far: everything appended, less what truncate_content() discarded.
  virtual std::uint64_t content_size() const = 0;
  // The content appended so far, readable from any thread (what is buffered is written out
  // first, not synced). Fails as append() does.
  virtual base::Expected<std::shared_ptr<const ContentReader>, SpoolError> content_reader() = 0;

  // The header section as it will be delivered: new_section takes the place of the first
  // original_length octets of the content. original_length 0 inserts new_section before
  // the content (prepending Authentication-Results or DKIM-Signature: the delivered message
  // starts with them, then the Received header). To change fields (a milter's add, insert,
  // change, delete), pass the whole edited block with original_length the length of the
  // block it replaces (the blank line after the header section may be part of both or of
  // neither: the spool only splices octets). The last call wins: each call replaces what
  // an earlier one set, so pass everything that is to be added at once; an empty
  // new_section with original_length 0 cancels an earlier call.
  // Refused (a SpoolError that is not transient, errno EINVAL; the writer is unchanged and
  // stays usable) unless: new_section is at most kMaxHeaderSectionSize octets of lines that
  // each end in CRLF, with no other CR or LF and no NUL; original_length is at most
  // content_size().
  virtual base::Expected<base::Ok, SpoolError> replace_header_section(
      std::uint64_t original_length, std::string_view new_section) = 0;
  // Replaces the body: keeps the first keep octets of the content and discards the rest
  // (the tmp file is truncated; nothing is copied). Later append() calls write the new body.
  // Refused like replace_header_section() when keep is over content_size() or under the
  // original_length of a replace_header_section() in force (that part is already replaced).
  // A failing ftruncate(2) fails the writer, as a failed write does.
  virtual base::Expected<base::Ok, SpoolError> truncate_content(std::uint64_t keep) = 0;
  // The envelope as it will be delivered: reverse_path ("" for <>) and recipients take the
  // place of the ones given to begin() (HELO, BODY, SMTPUTF8, SIZE, RET, ENVID stay). Held
  // and written after the content by flush_to_log() (the file is then version 3, see
  // spool.cpp): nothing already on disk is moved. The last call wins. Refused like
  // replace_header_section() (the writer is unchanged) when recipients is empty, an address
  // is empty, or the encoded envelope is over 4 MiB. The addresses are not checked against
  // the SMTP grammar: the caller does that.
  virtual base::Expected<base::Ok, SpoolError> replace_envelope(
      std::string_view reverse_path, const std::vector<smtp::Recipient>& recipients) = 0;
  // Local delivery goes into this Maildir++ folder ("Junk", "Lists.smtpsd") instead of INBOX.
  // Held and written after the content like replace_envelope() (the file is then version 3);
  // the last call wins, "" cancels. Refused like replace_header_section() (the writer is
  // unchanged) unless Spool::is_valid_folder(folder) or folder is "".
  virtual base::Expected<base::Ok, SpoolError> set_folder(std::string_view folder) = 0;
  // The sender's "TLS-Required: No" is to be honoured (StoredMessage::tls_optional). Held and
  // written after the content like set_folder() (the file is then version 3); the last call
  // wins, false cancels.
  virtual base::Expected<base::Ok, SpoolError> set_tls_optional(bool optional) = 0;
  // The message is a notice about the message original_id and stands for these lines of its
  // state (StoredMessage::notice_of, notice_state; Spool::new_notice_id says when): held and
  // written after the content like set_folder() (the file is then version 3); the last call
  // wins. Refused like replace_header_section() (the writer is unchanged) unless
  // Spool::is_valid_id(original_id) and there are 1 to 1,000 lines, each 1 to 1,000 octets of
  // printable ASCII.
  virtual base::Expected<base::Ok, SpoolError> set_notice(
      std::string_view original_id, const std::vector<std::string>& state_lines) = 0;
  // The message is held (queue::Scheduler delivers it only once released): flush_to_log()
  // writes state/<id> = "held" and fsyncs it and state/ after the message and before
  // publish(), so a message in queue/ is never seen without its hold. abort() removes it.
  virtual base::Expected<base::Ok, SpoolError> mark_held() = 0;
  // Make durable: flush, append to the commit log, sync the log, rename into queue/. Blocks
  // on the disk: call it off the I/O thread.
  virtual base::Expected<base::Ok, SpoolError> commit() = 0;
  // Give up: the tmp file is removed. Called by the destructor if neither was called.
  // After publish() but before mark_committed() it removes queue/<id> instead; once the
  // message is in the log, a D record follows it there. A no-op once committed.
  virtual void abort() = 0;

  // The steps of commit(), for GroupCommitter (group_commit.h), which batches the log sync of
  // many writers. commit() == flush_to_log(); sync_log(); publish(); mark_committed().
  // 1. Writes what is buffered and the late header section, then the layout that points at
  //    it, closes the file (still in tmp/, not fsynced) and appends its image to the commit
  //    log (not synced yet). A hold is written (and fsynced) here too.
  virtual base::Expected<base::Ok, SpoolError> flush_to_log() = 0;
  // 2. Makes the append durable (SpoolLog::sync): of writers that flushed together, the
  //    first call fdatasyncs the log and the others find themselves covered. On failure
  //    the writer aborts.
  virtual base::Expected<base::Ok, SpoolError> sync_log() = 0;
  // 3. After sync_log() succeeded: renames tmp/<id> to queue/<id> (never replacing an
  //    existing file). Not fsynced: the log holds the message.
  virtual base::Expected<base::Ok, SpoolError> publish() = 0;
  // 4. The message is committed.
  virtual void mark_committed() = 0;
  // The spool this writer belongs to.
  virtual Spool& spool() const = 0;
  // Whether mark_held() was called.
  virtual bool held() const = 0;

  // Delivery at acceptance (GroupCommitter::set_deliverer), instead of step 1's start:
  // finish() makes the file complete as flush_to_log() would (not synced, not logged) and
  // returns the message as Spool::load() reads it: from memory when the whole file is still
  // in the writer's buffer (a message under Spool::kMemoryMessageMax while the spool's memory
  // budget lasts, which then never gets a file in tmp/),
  // else through a descriptor of its own of tmp/<id> (path: tmp/<id> either way). Refused
  // for a held message (not transient, EINVAL). Then either
  //   mark_delivered(): every recipient has the message durably (in its mailbox): the file,
  //     if any, is discarded, nothing reaches the log or queue/, and the writer is done as
  //     if committed (delivered() is then true); or
  //   flush_to_log() and the steps after it, as for any message.
  // A failure removes the file, as with every step.
  virtual base::Expected<StoredMessage, SpoolError> finish() = 0;
  virtual void mark_delivered() = 0;
  virtual bool delivered() const = 0;

  // The reply after the log (GroupCommitter::set_reply_after_log), after finish():
  //   log_without_file(): step 1 for a message finish() read from memory, without its file:
  //     the image goes to the commit log only; sync_log() follows, then mark_taken() instead
  //     of publish(). queue/<id> is made later by Spool::publish_image() if the message has
  //     to wait in the queue, or by Spool::open() from the log after a crash. Refused (not
  //     transient, EINVAL) unless finish() read the message from memory.
  //   mark_taken(): after sync_log() (and publish(), for a message with a file): the
  //     message is committed, and the committer delivers it itself after the reply, so the
  //     session does not hand it to the queue (taken() is then true).
  virtual base::Expected<base::Ok, SpoolError> log_without_file() = 0;
  virtual void mark_taken() = 0;
  virtual bool taken() const = 0;
};

class Spool {
 public:
  // Creates <dir>/tmp, queue, state and log if missing, clears tmp/, cuts a torn last line
  // off each state file (so that the next append_state() line stands alone), and recovers: every
  // message the log holds is in queue/ as the log has it (rebuilt when a power cut left it
  // missing or different); a queue file the log does not know is moved to orphaned/ (never
  // acknowledged: it cannot happen but through a bug or a hand). A spool without log/ (an
  // older smtpsd's) has its queue/ files entered into a new log first. segment_size 0: the
  // default (SpoolLog::kDefaultSegmentSize); compact_after: see SpoolLog::open.
  static base::Expected<std::unique_ptr<Spool>, SpoolError> open(
      const std::string& dir, std::uint64_t segment_size = 0,
      std::chrono::seconds compact_after = kLogCompactAfter);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Starts a message: a fresh unique id, the envelope in the writer's buffer (tmp/<id> is
  // made when the buffer first goes to disk). received_unix is stored with the message.
  base::Expected<std::unique_ptr<SpoolWriter>, SpoolError> begin(const smtp::Envelope& envelope,
                                                                 std::int64_t received_unix);
  // A fresh queue id (also used for the Received header before begin()).
  std::string new_id();
  base::Expected<std::unique_ptr<SpoolWriter>, SpoolError> begin_with_id(
      const std::string& id, const smtp::Envelope& envelope, std::int64_t received_unix);
  // A fresh id for a notice (a DSN) about the message original_id: original_id, 'N', then 8
  // fresh characters (original_of() gives original_id back), so that a restart finds the
  // notices of a message without reading every queued file (Scheduler::start()). Begin it
  // with begin_with_id() and say what it stands for with SpoolWriter::set_notice().
  //
  // The contract that makes a notice go out once however the power fails: the notice is
  // committed (its M record synced) before the original's state lines it stands for are
  // appended; then, before the notice is handed to a deliverer, those lines are made durable
  // — by the original's removal (its D record follows the notice's M record in the log: any
  // state that keeps a later record keeps it too) or by sync_state(original_id). Whenever a
  // power cut loses the lines, the notice is still queued, and whoever recovers writes its
  // notice_state into the original's state again, durably, before delivering either.
  // XXX: an original_id over 55 characters (none that new_id() makes) leaves no room: the
  // notice gets a plain new_id() and a restart does not find it.
  std::string new_notice_id(const std::string& original_id);
  // The id of the message a notice id (new_notice_id) is about, else "".
  static std::string_view original_of(std::string_view id);

  // Ids of committed messages, oldest first.
  std::vector<std::string> list() const;
  // Reads the envelope and the layout of queue/<id> (parse_spool_file); the content stays
  // in the file. Version 1 files (written before late header sections existed) still load.
  base::Expected<StoredMessage, SpoolError> load(const std::string& id) const;
  // Whether the file a loaded message is read through is still queue/<id>: false once the
  // message left the queue (its file may then hold another message, spare/). A reader
  // outside the message's delivery (`smtpsctl queue` commands) checks it after reading.
  bool still_queued(const StoredMessage& message) const;
  // Removes queue/<id> (after every recipient is delivered) and appends its D record to the
  // log. Not synced: a removal undone by a crash only makes the message be delivered again,
  // idempotently. A small file is not unlinked but moved to spare/, and the next writer that
  // needs a file writes into it (create_tmp): a file system like ext4 spends more on making and
  // freeing inodes (the scan past recently deleted ones) than on the rest of a message's file
  // operations.
  base::Expected<base::Ok, SpoolError> remove(const std::string& id);
  // remove() for a message SpoolWriter::log_without_file() logged, delivered before it ever
  // needed queue/<id> or state/<id>: its D record only (not synced either).
  void remove_logged(const std::string& id);
  // The delivery state of a message: an append-only list of short lines in state/<id>
  // ("delivered 2", "failed 0", "held", ...), written by the scheduler so that a restart
  // neither delivers a finished recipient again nor forgets a hold. Not fsynced: it survives
  // a crash of the process (the page cache does), and what a power cut loses only makes a
  // recipient be tried again, which the deliverers tolerate.
  base::Expected<base::Ok, SpoolError> append_state(const std::string& id, std::string_view line);
  std::vector<std::string> read_state(const std::string& id) const;
  // Makes what append_state() wrote for id durable: fsync(2) of state/<id> (when it exists)
  // and of state/. For the lines a notice stands for (new_notice_id); nothing else needs it.
  base::Expected<base::Ok, SpoolError> sync_state(const std::string& id);
  // Whether read_state(id) leaves the message held: a "held" line with no "released" after
  // it (Scheduler::hold()/release(), SpoolWriter::mark_held()).
  bool is_held(const std::string& id) const;
  // Octets of queue/<id> (envelope header included), 0 if it cannot be read.
  std::uint64_t file_size(const std::string& id) const;
  // tmp/<id> for a new message's writer, open for reading and writing: a spare file renamed
  // and emptied, else a new file (O_EXCL). -1 with errno set when neither can be had. The
  // writer makes it only once its buffer must go to disk: a small message delivered at
  // acceptance never has one.
  int create_tmp(const std::string& id);
  // For SpoolWriter::mark_delivered(): tmp/<id>, length octets, goes to spare/ (or is
  // unlinked); nothing is logged, the message never was.
  void discard_delivered(const std::string& id, std::uint64_t length);
  // For a message SpoolWriter::log_without_file() logged and the committer could not
  // deliver to every recipient: queue/<id> written from the image message.file holds (not
  // fsynced: the log holds the message). Fails (not transient, EINVAL) for a message read
  // from a file, which is in queue/ already.
  base::Expected<base::Ok, SpoolError> publish_image(const StoredMessage& message);
  // A writer holds a message in memory until it would outgrow its 64 KiB buffer; beyond that
  // the buffer grows, up to kMemoryMessageMax octets for one message, while the memory all
  // writers of this spool hold past their 64 KiB stays within the budget; else the buffer goes
  // to tmp/<id> as before. A message that stays in memory and is delivered at acceptance
  // never gets a file (no inode made and freed, no copy through the page cache). 256 KiB is
  // where it stops paying (bench/ab_binaries.py, 10 messages × 8 connections): 1.08× msg/s
  // and 0.89× CPU at 128 KiB, 1.03× and 0.96× at 200 kB, 0.96× and 1.04× at 512 KiB with a
  // 1 MiB limit (growing and copying a large buffer, and its page faults, cost more).
  static constexpr std::uint64_t kMemoryMessageMax = 256 << 10;
  static constexpr std::uint64_t kDefaultMemoryBudget = 64 << 20;
  // Takes octets of the budget (false, nothing taken, when they do not fit) and gives them
  // back; thread-safe. set_memory_budget() is for tests (the default otherwise).
  bool take_memory(std::uint64_t octets);
  void give_memory(std::uint64_t octets);
  void set_memory_budget(std::uint64_t octets) { memory_budget_ = octets; }
  std::uint64_t memory_in_use() const { return memory_in_use_.load(); }
  // fdatasync(2) of the commit log even when every message record is durable already: the
  // D records of remove() and remove_logged() since (SpoolLog::sync_all).
  base::Expected<base::Ok, SpoolError> sync_removals();
  // SpoolLog::close_idle: the commit log's segment closed once every message in it is synced.
  void close_idle_log();
  // The commit log (tests, metrics).
  SpoolLog& log() { return *log_; }
  // Free space on the spool's file system (statvfs(3), for unprivileged users), or
  // UINT64_MAX when it cannot be read (an error then shows on the first write instead).
  std::uint64_t free_bytes() const;

  const std::string& directory() const { return dir_; }
  std::string queue_path(const std::string& id) const { return dir_ + "/queue/" + id; }
  std::string tmp_path(const std::string& id) const { return dir_ + "/tmp/" + id; }
  // An id that is safe as a file name: 1 to 64 characters of [0-9A-Za-z].
  static bool is_valid_id(std::string_view id);
  // A Maildir++ folder name that stays one directory below the mailbox as ".<folder>": 1 to
  // 200 octets of printable ASCII without '/' or '\', not starting with '.', with no "..";
  // '.' separates the levels of the hierarchy ("Lists.smtpsd").
  static bool is_valid_folder(std::string_view folder);

 private:
  explicit Spool(std::string dir);
  // open(): the log read, queue/ made to match it (see open()).
  base::Expected<base::Ok, SpoolError> recover(std::uint64_t segment_size,
                                               std::chrono::seconds compact_after);
  // remove() and discard_delivered(): moves <dir_fd>/<id> of length octets to spare/ when it
  // is small and spare/ not full.
  bool keep_spare(int dir_fd, const std::string& id, std::uint64_t length);
  // create_tmp(): a spare file renamed to tmp/<id>, emptied and open for writing; -1 if none.
  int reuse_spare(const std::string& id);
  std::string dir_;
  std::atomic<std::uint64_t> counter_{0};        // new_id() and begin() are thread-safe
  std::atomic<std::uint64_t> memory_in_use_{0};  // take_memory() minus give_memory()
  std::atomic<std::uint64_t> memory_budget_{kDefaultMemoryBudget};
  std::uint64_t nonce_ = 0;  // random per process: ids stay unique across restarts
  int lock_fd_ = -1;         // <dir>, flock(LOCK_EX) while open
  int tmp_dir_fd_ = -1;
  int queue_dir_fd_ = -1;
  int state_dir_fd_ = -1;
  int spare_dir_fd_ = -1;
  std::mutex spare_mutex_;
  std::vector<std::uint64_t> spares_;  // names of spare/ files, ready for begin()
  std::uint64_t next_spare_ = 0;
  std::unique_ptr<SpoolLog> log_;
};

}  // namespace queue
