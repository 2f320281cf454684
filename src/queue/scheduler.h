// scheduler.h — the delivery worker: takes committed messages from the spool, hands each
// recipient to a deliverer, retries transient failures on a timer queue, and removes the
// spool file once every recipient is delivered or has failed for good.
//
// Invariants: a message is worked on by at most one thread at a time; its spool file is
// removed only after every recipient reached a final state (RFC 5321 §4.5.4, §6.1: accepted
// mail MUST NOT be lost), so a crash at any instant leaves the file and start() picks it up
// again. Which recipients are done is kept in memory only; after a restart they are handed
// to the deliverer again, which must be idempotent (delivery::Maildir is: its file names are
// deterministic per message and recipient).
// Retry schedule: RFC 5321 §4.5.4.1 (retry later; give up only after days).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "queue/spool.h"

namespace queue {

enum class DeliveryStatus {
  kDelivered,  // final: in the mailbox
  kTransient,  // try again later (disk full, mailbox locked, remote 4xx)
  kPermanent,  // final: cannot ever be delivered (will bounce)
  kNotLocal,   // no local mailbox: needs relay, which does not exist yet
};

struct DeliveryResult {
  DeliveryStatus status;
  std::string detail;     // for the log: where it went, or why not
  std::string transport;  // for the log ("maildir", "lmtp", ...), may be empty
};

// Delivers one recipient of a stored message; must be idempotent (called again after a crash).
// Called from the scheduler's worker thread(s).
using DeliverFn =
    std::function<DeliveryResult(const StoredMessage& message, std::size_t recipient_index)>;

struct SchedulerOptions {
  // Delay before attempt n+1 after the n-th transient failure; the last one repeats.
  // Milliseconds so that tests can use tiny schedules; seconds convert implicitly.
  std::vector<std::chrono::milliseconds> retry_schedule{
      std::chrono::seconds(60), std::chrono::seconds(300), std::chrono::seconds(900),
      std::chrono::seconds(3600)};
  unsigned threads = 1;  // 0 means 1
};

class Scheduler {
 public:
  // log receives one key=value line per event (no trailing newline), from worker threads.
  Scheduler(Spool& spool, DeliverFn deliver, std::function<void(std::string_view)> log,
            SchedulerOptions options = {});
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Picks up everything already in the spool (crash recovery) and starts the worker thread(s).
  void start();
  // A freshly committed message (thread-safe, never blocks the caller on the disk).
  void enqueue(const std::string& id);
  // Finishes the current delivery (the recipient being delivered), joins. Messages not done
  // stay in the spool for the next start().
  void stop();
  // Messages with work left: ready, waiting for a retry, or being delivered. Messages kept
  // only for recipients that are not local (kNotLocal) do not count.
  std::size_t pending() const;

 private:
  using Clock = std::chrono::steady_clock;
  enum class RecipientState { kPending, kDone, kNotLocal };
  struct MessageState {
    std::vector<RecipientState> recipients;  // empty until first loaded
    std::size_t failed_attempts = 0;
    bool parked = false;     // only kNotLocal recipients left: no timer, stays in the spool
    bool recovered = false;  // found at start(): may have been delivered before a crash
  };
  struct Timer {
    Clock::time_point due;
    std::string id;
    bool operator>(const Timer& other) const { return due > other.due; }
  };

  void run();
  void attempt(const std::string& id);
  void retry_later(const std::string& id, MessageState& state);  // with mutex_ held
  void forget(const std::string& id);
  void log(const std::string& line) const;

  Spool& spool_;
  DeliverFn deliver_;
  std::function<void(std::string_view)> log_;
  SchedulerOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> ready_;                                               // mutex_
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;  // mutex_
  std::unordered_map<std::string, MessageState> messages_;                      // mutex_
  std::size_t in_flight_ = 0;                                                   // mutex_
  bool started_ = false;                                                        // mutex_
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace queue
