// group_commit.h — batches the fsyncs of concurrent sessions' commits (docs/architecture.md
// "Budgets").
//
// A small pool of committer threads. Each thread takes ALL writers waiting at that moment,
// appends each message to the spool's commit log (queue/spool_log.h), fdatasyncs the log
// ONCE for the batch, renames each into queue/, and only then reports success to every
// writer: each message is durable before its done callback runs, so the session may answer
// 250 (RFC 5321 §4.5.4, §6.1: a message MUST NOT be lost once 250 is sent). While one thread
// waits on the disk the next batch gathers, so messages/s is not capped at one sync each;
// that batch waits for the thread in a batch to end, unless the constructor's
// second_committer_after is zero or that batch runs long (wait_for_turn), so that where syncs
// do not merge two threads do not split the batches between them.
// Invariants: done is called exactly once per commit_async(); a writer whose step failed
// has its file removed (tmp/<id>, or queue/<id>) and, once logged, a D record in the log.
//
// Delivery at acceptance (set_deliverer): a message that is not held is first finished in
// tmp/ (SpoolWriter::finish) and offered to the deliverer, on the committer thread. When it
// reports every recipient delivered (durably: Maildir fsyncs file and new/), the file is
// discarded and done reports success with SpoolWriter::delivered(): no log record, no queue
// file, no scheduler. Otherwise the message is committed as any other, with "delivered N"
// state lines (not synced: Maildir recognises its own file name) for the recipients that
// were done, so the scheduler delivers only the rest. Either way the 250 comes after the
// message is durable somewhere; a crash before it may leave a mailbox copy of a message the
// client will send again (at least once, as for any MTA before its reply).
//
// The reply after the log (set_reply_after_log, `[queue] reply_after = "log"`): a message that
// is not held and that takes(message) says the deliverer takes now is finished and committed
// to the log as any other (one fdatasync for the batch; a message whole in memory gets no
// file, SpoolWriter::log_without_file), answered, and only then offered to the deliverer, on
// the committer's delivery thread, in batches of what has gathered meanwhile (up to
// kDeliveryCopies copies). A message it delivered to every recipient gets its D record
// (Spool::remove_logged or remove), durable with the next commit's log sync or, when none
// comes within kRemovalsSyncedAfter, the thread's own (Spool::sync_removals), so that a power
// cut does not bring it back into a mailbox its owner may have emptied since; the
// others are put in queue/ with the state lines of what was delivered and handed to
// queued(id) (a queue file that cannot be written yet is tried again every second). At most
// kTakenMax messages or kTakenMaxBytes of them wait for that thread: past either, a committer
// waits before it hands over more. Other messages go the usual way.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/expected.h"
#include "queue/spool.h"

namespace queue {

class GroupCommitter {
 public:
  using Done = std::function<void(base::Expected<base::Ok, SpoolError>)>;

  // How long a committer thread waits for more to commit before it closes the commit log's
  // segment of the spools it wrote to (Spool::close_idle_log; tests pass less).
  static constexpr std::chrono::milliseconds kLogIdleClose{1000};

  // How long a batch runs before a second committer takes what gathered meanwhile, where the
  // daemon asks for it (no journal: one committer's next batch then holds everything that
  // came during the first's syncs; a large message still does not hold up the small ones
  // behind it for longer than this). Zero: a free committer takes what waits at once.
  static constexpr std::chrono::microseconds kSecondCommitterAfter{4000};
  static constexpr std::uint64_t kLargeBatch = 1 << 20;  // and at once past this many octets

  explicit GroupCommitter(unsigned threads = 2,  // 0 means 1
                          std::chrono::milliseconds log_idle_close = kLogIdleClose,
                          std::chrono::microseconds second_committer_after = {});
  ~GroupCommitter();  // stop()
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues writer for a durable commit and returns at once. done runs on a committer thread
  // (re-post to your own event loop from it); writer must stay alive until done has run, and
  // its spool until stop() (a committer closes the spool's log segment once it is idle).
  // After stop(), done runs at once on the caller's thread with an error and the writer is
  // left untouched.
  void commit_async(SpoolWriter& writer, Done done);
  // Delivers the finished messages of a batch now, those it is for: for each message (in
  // order) nullopt when it is not for delivery now, else true for each recipient (by index)
  // now durably delivered. Blocking; called on committer threads, one batch at a time each.
  using Deliverer = std::function<std::vector<std::optional<std::vector<bool>>>(
      std::span<const StoredMessage> messages)>;
  // Before the first commit_async().
  void set_deliverer(Deliverer deliverer) { deliverer_ = std::move(deliverer); }
  // With a deliverer, once, before the first commit_async(): the reply comes after the log
  // sync, the delivery after the reply (above) for the messages takes() accepts; queued(id)
  // takes each message that then waits in queue/ (from the delivery thread).
  using Queued = std::function<void(const std::string& id)>;
  using Takes = std::function<bool(const StoredMessage& message)>;
  void set_reply_after_log(Queued queued, Takes takes);
  static constexpr std::size_t kTakenMax = 256;
  static constexpr std::uint64_t kTakenMaxBytes = 64ULL << 20;
  static constexpr std::size_t kDeliveryCopies = 64;  // delivery::MaildirBatch::kMaxCopies
  // How long the delivery thread, idle, leaves D records to a commit's sync before its own.
  static constexpr std::chrono::milliseconds kRemovalsSyncedAfter{2};
  // Commits everything already queued, then joins the threads. Idempotent.
  void stop();

  // How well batching works: messages committed and log syncs done for them (without
  // batching the two are equal).
  struct Stats {
    std::uint64_t messages = 0;
    std::uint64_t syncs = 0;
    std::uint64_t delivered = 0;         // of messages, delivered at acceptance (no log sync)
    std::uint64_t wakeups = 0;           // times a committer thread woke to look for work
    std::uint64_t waiting_for_turn = 0;  // committer threads in wait_for_turn now
  };
  Stats stats() const;

 private:
  struct Pending {
    SpoolWriter* writer;
    Done done;
  };
  struct Taken {
    StoredMessage message;
    Spool* spool;
  };
  // What a taken message holds in memory (its image, when it has no file).
  static std::uint64_t bytes_of(const StoredMessage& message);
  void run(std::size_t index);
  void run_delivery();
  Spool* deliver_taken(std::vector<Taken>& taken);
  // Each message of unpublished whose queue file can be written now goes to queued_; the
  // others stay.
  void publish_waiting(std::vector<Taken>& unpublished);
  // The reply after the log: finishes each message that is not held and logs it (without a
  // file when it is in memory); taken[i] then holds it. Failures set errors[i] and done[i].
  void take(std::vector<Pending>& batch, std::vector<std::optional<SpoolError>>& errors,
            std::vector<bool>& done, std::vector<std::optional<StoredMessage>>& taken);
  void commit_batch(std::vector<Pending>& batch);
  // Delivery at acceptance of a batch: done[i] when writer i needs nothing more (delivered,
  // or failed with errors[i] set); the others are committed with state_lines[i].
  void deliver_now(std::vector<Pending>& batch, std::vector<std::optional<SpoolError>>& errors,
                   std::vector<bool>& done, std::vector<std::vector<std::string>>& state_lines);

  // Until no other committer is in a batch, or one of them has been in it for
  // second_committer_after_ or holds a large batch (lock holds mutex_).
  void wait_for_turn(std::unique_lock<std::mutex>& lock);
  // When a waiting committer may take what waits (lock holds mutex_): the oldest batch under
  // way's start plus second_committer_after_; time_point::min(), at once, when no batch is
  // under way or one is large.
  std::chrono::steady_clock::time_point turn() const;
  // Whether a message queued now must wake a committer (lock holds mutex_): not while a
  // small batch is under way and another committer already waits for its turn, for the one in
  // the batch takes what gathered when it ends, and the one waiting goes at its turn.
  bool wake_needed() const;

  std::chrono::milliseconds log_idle_close_;
  std::chrono::microseconds second_committer_after_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Pending> pending_;  // guarded by mutex_
  bool stopping_ = false;         // guarded by mutex_
  // The batch each committer thread is in: when it began (a default time point when in none),
  // and whether it holds kLargeBatch octets or more.
  struct Running {
    std::chrono::steady_clock::time_point started;
    bool large = false;
  };
  std::vector<Running> running_;  // guarded by mutex_
  // Committers waiting in wait_for_turn: changed under mutex_, read by stats() without it.
  std::atomic<std::size_t> watching_{0};
  std::atomic<std::uint64_t> messages_{0};
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> wakeups_{0};
  Deliverer deliverer_;
  std::vector<std::thread> threads_;
  // The reply after the log: its thread and what waits for it.
  Queued queued_;
  Takes takes_;
  std::mutex taken_mutex_;
  std::condition_variable taken_wake_;   // taken_ has messages, or stopping
  std::condition_variable taken_space_;  // taken_ fell under kTakenMax
  std::vector<Taken> taken_;             // guarded by taken_mutex_
  std::uint64_t taken_bytes_ = 0;        // guarded by taken_mutex_: bytes_of() of taken_
  bool taken_stopping_ = false;          // guarded by taken_mutex_
  std::thread delivery_thread_;
};

}  // namespace queue
