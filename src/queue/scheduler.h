// scheduler.h — the queue manager: takes committed messages from the spool, hands their
// recipients to the deliverer, retries temporary failures on a timer queue with a backoff
// schedule, gives up after the queue lifetime, sends delivery status notifications, and
// removes the spool file once every recipient reached a final state.
//
// Invariants:
// - A message is worked on by at most one thread at a time.
// - Its spool file is removed only after every recipient is final (RFC 5321 §4.5.4, §6.1:
//   accepted mail MUST NOT be lost), so a crash at any instant leaves the file and start()
//   picks it up again.
// - Which recipients are final is appended to the spool's state file (Spool::append_state)
//   as soon as it is known, so a restart does not deliver them again. A final failure is
//   recorded only after its DSN is durably in the spool, and a DSN is delivered only after
//   the state lines it stands for are durable (Spool::new_notice_id): however the power
//   fails, each failure, delay and success notice goes out once. A temporary failure's text is
//   appended too ("deferred N TEXT", only when it changed, at most kMaxDeferredLines per
//   message, one line of at most kMaxDeferredText octets), so `smtpsctl queue list` still
//   says why after a restart; the state file stays small.
// - Never a DSN to the null reverse-path (RFC 5321 §4.5.5, RFC 3461 §6.2), and a DSN's own
//   envelope has the null reverse-path, so bounces cannot loop.
// - A held message is not delivered until released, across restarts.
// - Two lanes when local_threads > 0: local recipients (the mailboxes of this server) are
//   delivered by their own threads, so mail for them never waits behind remote delivery to
//   a slow or silent server. A message first goes through the local lane (which reads it
//   and delivers its local recipients), then, if it has remote recipients, through the
//   remote lane; one attempt is both halves, and still one thread at a time per message.
// Retry schedule and lifetime: RFC 5321 §4.5.4.1 (retry later; give up only after days).
// DSN content: queue/dsn.h (RFC 3464); which ones are sent: RFC 3461 §4.1 NOTIFY.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "queue/spool.h"

namespace queue {

enum class DeliveryStatus {
  kDelivered,  // final: in the mailbox, or accepted by the next hop
  kTransient,  // try again later (disk full, mailbox locked, remote 4xx, no connection)
  kPermanent,  // final: cannot ever be delivered (a DSN goes back to the sender)
};

struct DeliveryResult {
  DeliveryResult() = default;
  DeliveryResult(DeliveryStatus status_in, std::string detail_in, std::string transport_in = {},
                 std::string enhanced_in = {})
      : status(status_in),
        detail(std::move(detail_in)),
        transport(std::move(transport_in)),
        enhanced(std::move(enhanced_in)) {}

  DeliveryStatus status = DeliveryStatus::kTransient;
  std::string detail;      // for the log: where it went, or why not
  std::string transport;   // for the log ("maildir", "lmtp", "smtp", "relay"), may be empty
  std::string enhanced;    // RFC 3463 status for a DSN ("5.1.1"); empty: X.0.0 of the class
  std::string remote_mta;  // the server that answered (DSN Remote-MTA), empty when local
  std::string diagnostic;  // that server's reply, e.g. "550 5.1.1 no such user"
  // The next hop took the recipient's NOTIFY= (RFC 3461 §5.2.2): it reports success itself.
  bool dsn_passed_on = false;
  bool remote = false;    // relayed to another server (a SUCCESS notice says "relayed")
  bool expanded = false;  // the record of an alias expanded at RCPT (a notice says "expanded")
  // Remote delivery: the policy that decided the TLS ("dane", "static", "learned",
  // "opportunistic"), for the log line; empty for local delivery.
  std::string tls_policy;
};

// Delivers some recipients of a stored message: result i is for recipients[i]. Must be
// idempotent (called again after a crash). Called from the scheduler's worker threads.
using DeliverFn = std::function<std::vector<DeliveryResult>(
    const StoredMessage& message, std::span<const std::size_t> recipients)>;

struct SchedulerOptions {
  // Delay before attempt n+1 after the n-th failed attempt; the last one repeats.
  // Milliseconds so that tests can use tiny schedules; seconds convert implicitly.
  std::vector<std::chrono::milliseconds> retry_schedule{
      std::chrono::seconds(60), std::chrono::seconds(300), std::chrono::seconds(900),
      std::chrono::seconds(1800), std::chrono::seconds(3600)};
  // Age (since acceptance) after which a temporary failure becomes final: a DSN with
  // Action: failed, Status 4.4.7 unless the last attempt said something more precise.
  std::chrono::milliseconds max_lifetime = std::chrono::hours(24 * 5);
  // Age after which a "delayed" DSN is sent once, for recipients still pending; 0: never.
  std::chrono::milliseconds delay_warning{0};
  unsigned threads = 1;  // 0 means 1; the remote lane's when there are two
  // Threads of the local lane; 0: one lane for every recipient (threads of them).
  unsigned local_threads = 0;
  // Whether a recipient stays on this server (needed for two lanes; none: one lane).
  std::function<bool(std::string_view address)> is_local;
  // Whether a recipient goes into a mailbox on this machine's disk (Maildir): a message whose
  // recipients all do may be delivered at acceptance (deliver_at_acceptance). None: never.
  std::function<bool(std::string_view address)> at_acceptance;
  // Success notices (NOTIFY=SUCCESS) for messages from unauthenticated sessions: at most this
  // many a minute in all (a burst of as many), so that forged senders cannot turn the
  // server into a source of backscatter; the rest are logged and not sent. 0: none at all.
  unsigned unauthenticated_success_dsns_per_minute = 10;
  std::string hostname = "localhost";  // Reporting-MTA and From: of DSNs
};

// What `smtpsctl queue list|show` prints.
struct QueueRecipientView {
  std::string address;
  std::string state;                   // "pending", "delivered", "failed"
  std::string detail;                  // the last attempt's outcome ("" before the first attempt)
  std::int64_t next_attempt_unix = 0;  // a pending recipient of a deferred message; else 0
};
struct QueueEntryView {
  std::string id;
  std::string sender;  // "" for the null reverse-path
  std::string user;    // who had authenticated to send it ("" if nobody or not known yet)
  std::int64_t received_unix = 0;
  std::uint64_t size = 0;  // octets of the spool file
  std::string state;       // "ready", "deferred", "active", "held", "broken"
  std::size_t attempts = 0;
  std::int64_t next_attempt_unix = 0;  // "deferred" only
  std::vector<QueueRecipientView> recipients;
  bool require_tls = false;   // REQUIRETLS (RFC 8689 §2): onward over verified TLS only
  bool tls_optional = false;  // "TLS-Required: No" honoured (StoredMessage::tls_optional)
};

inline constexpr std::size_t kMaxDeferredLines = 64;
// Scheduler::attempt_at_acceptance: content size times recipients, at most.
inline constexpr std::uint64_t kMaxBytesAtAcceptance = 64 * 1024 * 1024;
inline constexpr std::size_t kMaxDeferredText = 300;

class Scheduler {
 public:
  // Each event (delivered, deferred, retry, dsn, …) is logged with obs::Log, from worker
  // threads.
  Scheduler(Spool& spool, DeliverFn deliver, SchedulerOptions options = {});
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Picks up everything already in the spool (crash recovery) and starts the worker thread(s).
  void start();
  // A freshly committed message (thread-safe, never blocks the caller on the disk: it looks
  // up state/<id>, an open(2) the kernel's directory cache answers). One held at intake
  // (SpoolWriter::mark_held) waits for release() like one held by hold().
  void enqueue(const std::string& id);
  // Delivery at acceptance (GroupCommitter::set_deliverer), on a committer thread, for a
  // message not yet in the queue: when every recipient is at_acceptance and none asked for
  // a success notice (NOTIFY=SUCCESS), it is no notice itself, and its copies come to at
  // most kMaxBytesAtAcceptance (the other 250s of its batch wait for them), delivers it as an
  // attempt would and returns the results (nothing logged yet); else nullopt, and nothing is tried.
  // Once the results are final (a delivery.MaildirBatch completed), settle_at_acceptance()
  // logs the delivered ones ("delivered … at=acceptance") and those that failed for now
  // ("deferred … at=acceptance": a disk error, a broken mailbox) and says which recipients
  // are done. A recipient not done is left to the queue, which tries it at once as a fresh
  // message (and logs what it finds).
  std::optional<std::vector<DeliveryResult>> attempt_at_acceptance(const StoredMessage& message);
  // Whether attempt_at_acceptance() would deliver the message (and not say nullopt).
  bool takes_at_acceptance(const StoredMessage& message) const;
  // spent: what the deliveries took (the batch's syncs included), for the metrics. at: the
  // log's "at=" ("acceptance"; "after_reply" for the reply after the log).
  std::vector<bool> settle_at_acceptance(const StoredMessage& message,
                                         const std::vector<DeliveryResult>& results,
                                         std::chrono::steady_clock::duration spent,
                                         std::string_view at = "acceptance");
  // Finishes the current delivery attempts, joins. Messages not done stay in the spool.
  void stop();
  // Messages with work left: ready, waiting for a retry, or being delivered (held and
  // broken ones do not count).
  std::size_t pending() const;
  // For metrics: every message in the queue (held and broken too) and the Unix time the
  // oldest of them was accepted (0: queue empty). One pass under the lock, no disk.
  struct Stats {
    std::size_t messages = 0;
    std::int64_t oldest_unix = 0;
  };
  Stats stats() const;

  // Operator commands (thread-safe). Ids are spool ids.
  enum class Outcome { kDone, kNotFound, kLater /* in delivery now: done when it ends */ };
  // Oldest first; with_recipients: each recipient's state, last outcome and next attempt
  // (messages not attempted yet are read from the spool for it).
  std::vector<QueueEntryView> list(bool with_recipients = false) const;
  std::optional<QueueEntryView> show(const std::string& id) const;
  std::size_t flush();  // every deferred message is tried now; returns how many
  // A deferred message is tried now: true. False when it is not deferred (ready or in
  // delivery already, held, or not in the queue).
  bool retry_now(const std::string& id);
  Outcome hold(const std::string& id);
  Outcome release(const std::string& id);
  Outcome remove(const std::string& id);  // deleted without a DSN (as postsuper -d)

 private:
  using Clock = std::chrono::steady_clock;
  enum class RecipientState { kPending, kDelivered, kFailed };
  enum class Phase { kReady, kWaiting, kActive, kHeld, kBroken };
  enum Lane : unsigned { kLocalLane = 0, kRemoteLane = 1 };
  struct MessageState {
    Phase phase = Phase::kReady;
    std::uint64_t generation = 0;  // timers of an older generation are stale
    bool loaded = false;           // the fields below were read from the spool
    std::string sender;
    std::string user;  // Envelope::authenticated_user
    bool require_tls = false;
    bool tls_optional = false;
    std::int64_t received_unix = 0;
    std::int64_t queued_unix = 0;  // when the scheduler learned of it (until loaded)
    std::uint64_t size = 0;
    std::vector<std::string> addresses;
    std::vector<bool> local;  // is_local of each address, asked once when loaded
    std::vector<RecipientState> recipients;
    std::vector<std::string> details;
    std::size_t deferred_lines = 0;  // "deferred N TEXT" lines in state/<id> (bounded)
    std::size_t attempts = 0;
    Clock::time_point next_attempt{};
    bool recovered = false;  // found at start(): may have been delivered before a crash
    bool warned = false;     // the "delayed" DSN was sent
    bool hold_requested = false;
    bool remove_requested = false;
    bool remote_half = false;  // handed from the local lane to the remote one in this attempt
  };
  struct Timer {
    Clock::time_point due;
    std::string id;
    std::uint64_t generation;
    bool operator>(const Timer& other) const { return due > other.due; }
  };

  void run(Lane lane);
  void attempt(const std::string& id, Lane lane);
  // Fills state from the spool (envelope, and state/<id>: final recipients, last
  // outcomes recorded by "deferred N TEXT" lines, the warning). Reads only; no lock needed.
  void load_state(const std::string& id, const StoredMessage& message, MessageState& state) const;
  bool lanes() const { return options_.local_threads > 0 && options_.is_local != nullptr; }
  // Whether recipient i of a loaded message belongs to lane (as of its loading: a reload
  // that adds a domain moves nobody between lanes; the router still decides the route).
  bool in_lane(const MessageState& state, std::size_t i, Lane lane) const;
  // Whether a success notice for an unauthenticated sender may go now (takes a token).
  bool take_success_token();
  // with mutex_ held:
  Lane lane_for(const MessageState& state) const;
  void push_ready(const std::string& id, Lane lane);
  void make_ready(const std::string& id, MessageState& state);
  void retry_later(const std::string& id, MessageState& state);
  QueueEntryView view(const std::string& id, const MessageState& state, bool details) const;
  // Spools a DSN that stands for state_lines of message's state (Spool::new_notice_id) and
  // adds its id to notices, for hand_over_notices(); false if it could not be made durable
  // (true when no DSN was wanted).
  bool send_dsn(const StoredMessage& message, const std::vector<std::size_t>& indices,
                const std::vector<DeliveryResult>& results, int action,
                const std::vector<std::string>& state_lines, std::vector<std::string>& notices);
  // Enqueues the notices committed about id once the state lines they stand for are durable:
  // made so by id's removal (original_removed), else by Spool::sync_state.
  void hand_over_notices(const std::string& id, const std::vector<std::string>& notices,
                         bool original_removed);
  // start(): for each queued notice whose original is queued too, the lines it stands for
  // that the original's state lacks (lost to a power cut) are appended again and synced.
  void recover_notices(const std::vector<std::string>& ids);

  Spool& spool_;
  DeliverFn deliver_;
  SchedulerOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_[2];                                             // one per lane
  std::deque<std::string> ready_[2];                                            // mutex_
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;  // mutex_
  std::unordered_map<std::string, MessageState> messages_;                      // mutex_
  bool started_ = false;                                                        // mutex_
  double success_tokens_ = 0;                                                   // mutex_
  Clock::time_point success_refilled_{};                                        // mutex_
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace queue
