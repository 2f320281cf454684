// scheduler.cpp — the delivery worker (see scheduler.h).
//
// One timer queue (a min-heap of due times) serves every message waiting for a retry; the
// worker threads of each lane sleep on their lane's condition variable until a message is
// ready for the lane or the earliest timer is due, never in a sleep per message. The spool file is
// removed only once every recipient is final (RFC 5321 §4.5.4, §6.1); the deliverer is called
// outside the lock. Each event is one obs::Log line (README "Logs": delivered, deferred, retry,
// dsn, …); its keys and their order are what operators and tests match on. DSNs (RFC 3464,
// queue/dsn.h) are built here from the deliverer's results and spooled as new messages with the
// null reverse-path.
#include "queue/scheduler.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <span>
#include <unordered_set>
#include <utility>

#include "base/clock.h"
#include "base/duration_text.h"
#include "obs/log.h"
#include "obs/server_metrics.h"
#include "queue/dsn.h"
#include "queue/message_reader.h"

namespace queue {
namespace {

// The RFC 3463 status a DSN reports for a result that has none of its own.
std::string status_of(const DeliveryResult& result) {
  if (!result.enhanced.empty()) return result.enhanced;
  switch (result.status) {
    case DeliveryStatus::kDelivered:
      return "2.0.0";
    case DeliveryStatus::kTransient:
      return "4.0.0";
    case DeliveryStatus::kPermanent:
      return "5.0.0";
  }
  return "4.0.0";
}

// The start of the stored content, enough for a DSN: all of it when it is small, else a
// prefix one octet longer than the DSN returns (so the DSN sees it is too large and returns
// the header only).
std::string read_content(const StoredMessage& message, std::size_t limit) {
  std::string content;
  auto reader = MessageReader::open(message);
  if (!reader) return content;
  content.resize(static_cast<std::size_t>(std::min<std::uint64_t>(reader->size(), limit + 1)));
  std::size_t filled = 0;
  while (filled < content.size()) {
    auto got = reader->read(std::span<char>(content).subspan(filled));
    if (!got || *got == 0) break;
    filled += *got;
  }
  content.resize(filled);
  return content;
}

constexpr std::size_t kDsnReturnLimit = 64 * 1024;
// From this attempt on, a deferral is logged at warning level (README "Logs").
constexpr std::size_t kDeferralsBeforeWarning = 3;

// A delivery outcome as one line of state/<id>: control characters (a remote reply's CR LF)
// become spaces, and it is cut at kMaxDeferredText octets (on a UTF-8 character boundary).
std::string state_line_text(std::string_view detail) {
  std::string text(detail.substr(0, kMaxDeferredText));
  if (text.size() < detail.size()) {
    while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80)
      text.pop_back();
    if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
  }
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  }
  return text;
}

// "delivered id=… rcpt=… [to=…] [requiretls=yes] detail=…": `to` only when the deliverer named
// its transport, `requiretls` for a message sent with REQUIRETLS (RFC 8689).
// "at=acceptance" for a delivery before the message was queued (deliver_at_acceptance),
// "at=after_reply" right after its reply (reply_after = "log"): the `at` given, if any.
void log_delivered(const std::string& id, const std::string& rcpt, const DeliveryResult& result,
                   bool require_tls, std::string_view at = {}) {
  obs::Log line("delivered");
  line.kv("id", id).kv("rcpt", rcpt);
  if (!result.transport.empty()) line.kv("to", result.transport);
  if (require_tls) line.kv("requiretls", "yes");
  line.kv("detail", result.detail);
  if (!result.tls_policy.empty()) line.kv("policy", result.tls_policy);
  if (!at.empty()) line.kv("at", at);
}

}  // namespace

Scheduler::Scheduler(Spool& spool, DeliverFn deliver, SchedulerOptions options)
    : spool_(spool), deliver_(std::move(deliver)), options_(std::move(options)) {
  if (options_.retry_schedule.empty()) {
    options_.retry_schedule.push_back(std::chrono::seconds(60));
  }
  if (options_.threads == 0) options_.threads = 1;
}

Scheduler::~Scheduler() {
  stop();
}

bool Scheduler::takes_at_acceptance(const StoredMessage& message) const {
  const std::vector<smtp::Recipient>& recipients = message.envelope.recipients;
  if (!options_.at_acceptance || recipients.empty() || !message.notice_of.empty() ||
      message.content_size > kMaxBytesAtAcceptance / recipients.size()) {
    return false;
  }
  for (const smtp::Recipient& recipient : recipients) {
    if (wants_notification(recipient, DsnAction::kDelivered)) return false;
    if (!recipient.expansion_record && !options_.at_acceptance(recipient.address)) return false;
  }
  return true;
}

std::optional<std::vector<DeliveryResult>> Scheduler::attempt_at_acceptance(
    const StoredMessage& message) {
  const std::vector<smtp::Recipient>& recipients = message.envelope.recipients;
  if (!takes_at_acceptance(message)) return std::nullopt;
  std::vector<std::size_t> all(recipients.size());
  for (std::size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  std::vector<DeliveryResult> results = deliver_(message, all);
  results.resize(recipients.size(),
                 DeliveryResult{DeliveryStatus::kTransient, "deliverer gave no result"});
  return results;
}

std::vector<bool> Scheduler::settle_at_acceptance(const StoredMessage& message,
                                                  const std::vector<DeliveryResult>& results,
                                                  std::chrono::steady_clock::duration spent,
                                                  std::string_view at) {
  const std::vector<smtp::Recipient>& recipients = message.envelope.recipients;
  if (!results.empty()) obs::server_metrics().delivery_duration(results.front().transport, spent);
  std::vector<bool> done(recipients.size(), false);
  for (std::size_t i = 0; i < results.size() && i < done.size(); ++i) {
    if (results[i].status == DeliveryStatus::kTransient) {
      // The queue tries it again at once; a local copy that fails is never routine (a
      // failing disk, a broken mailbox): the operator's to look at.
      obs::Log("deferred", obs::Level::kWarning)
          .kv("id", message.id)
          .kv("rcpt", recipients[i].address)
          .kv("detail", results[i].detail)
          .kv("at", at);
      obs::server_metrics().delivery_attempt("deferred", results[i].transport);
    }
    if (results[i].status != DeliveryStatus::kDelivered) continue;
    done[i] = true;
    log_delivered(message.id, recipients[i].address, results[i], message.envelope.require_tls, at);
    obs::server_metrics().delivery_attempt("delivered", results[i].transport);
  }
  return done;
}

void Scheduler::start() {
  std::vector<std::string> ids = spool_.list();  // oldest first
  std::size_t recovered = 0;
  {
    std::lock_guard lock(mutex_);
    if (started_) return;
  }
  recover_notices(ids);  // before any worker runs
  {
    std::lock_guard lock(mutex_);
    if (started_) return;
    started_ = true;
    for (const std::string& id : ids) {
      if (messages_.contains(id)) continue;
      MessageState& state = messages_[id];
      state.recovered = true;
      state.queued_unix = base::unix_now();  // until loaded: the age counts from the restart
      // A hold outlives a restart: the message waits without being loaded.
      if (spool_.is_held(id)) {
        state.phase = Phase::kHeld;
        continue;
      }
      ready_[kLocalLane].push_back(id);  // not read yet: the local lane reads it first
      ++recovered;
    }
  }
  if (recovered > 0) obs::Log("recovered").kv("count", static_cast<std::uint64_t>(recovered));
  const Lane shared = lanes() ? kRemoteLane : kLocalLane;
  for (unsigned i = 0; i < options_.threads; ++i)
    threads_.emplace_back([this, shared] { run(shared); });
  if (lanes()) {
    for (unsigned i = 0; i < options_.local_threads; ++i)
      threads_.emplace_back([this] { run(kLocalLane); });
  }
}

void Scheduler::enqueue(const std::string& id) {
  // Held at intake (a check's verdict, SpoolWriter::mark_held): it waits for a release.
  // For any other message this is one open(2) that finds no state file.
  const bool held = spool_.is_held(id);
  std::lock_guard lock(mutex_);
  auto [it, inserted] = messages_.try_emplace(id);
  if (!inserted) return;  // already known: ready, waiting, in flight or held
  it->second.queued_unix = base::unix_now();
  if (held) {
    it->second.phase = Phase::kHeld;
    obs::Log("held").kv("id", id);
    return;
  }
  push_ready(id, kLocalLane);
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  for (auto& wake : wake_)
    wake.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

Scheduler::Stats Scheduler::stats() const {
  Stats stats;
  std::lock_guard lock(mutex_);
  stats.messages = messages_.size();
  for (const auto& [id, state] : messages_) {
    std::int64_t since = state.received_unix != 0 ? state.received_unix : state.queued_unix;
    if (since != 0 && (stats.oldest_unix == 0 || since < stats.oldest_unix))
      stats.oldest_unix = since;
  }
  return stats;
}

std::size_t Scheduler::pending() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(
      std::count_if(messages_.begin(), messages_.end(), [](const auto& entry) {
        Phase phase = entry.second.phase;
        return phase == Phase::kReady || phase == Phase::kWaiting || phase == Phase::kActive;
      }));
}

bool Scheduler::in_lane(const MessageState& state, std::size_t i, Lane lane) const {
  if (!lanes()) return true;
  return state.local[i] == (lane == kLocalLane);
}

Scheduler::Lane Scheduler::lane_for(const MessageState& state) const {
  if (!lanes() || !state.loaded) return kLocalLane;
  for (std::size_t i = 0; i < state.recipients.size(); ++i) {
    if (state.recipients[i] == RecipientState::kPending && in_lane(state, i, kLocalLane)) {
      return kLocalLane;
    }
  }
  return kRemoteLane;
}

void Scheduler::push_ready(const std::string& id, Lane lane) {
  ready_[lane].push_back(id);
  wake_[lane].notify_one();
}

void Scheduler::run(Lane lane) {
  std::unique_lock lock(mutex_);
  std::deque<std::string>& ready = ready_[lane];
  while (!stopping_) {
    Clock::time_point now = Clock::now();
    while (!timers_.empty() && timers_.top().due <= now) {
      Timer timer = timers_.top();
      timers_.pop();
      auto it = messages_.find(timer.id);
      if (it == messages_.end() || it->second.phase != Phase::kWaiting ||
          it->second.generation != timer.generation) {
        continue;  // flushed, held or removed since: a stale timer
      }
      it->second.phase = Phase::kReady;
      push_ready(timer.id, lane_for(it->second));
    }
    if (!ready.empty()) {
      std::string id = std::move(ready.front());
      ready.pop_front();
      auto it = messages_.find(id);
      if (it == messages_.end() || it->second.phase != Phase::kReady) continue;  // stale entry
      it->second.phase = Phase::kActive;
      lock.unlock();
      attempt(id, lane);
      lock.lock();
      continue;
    }
    if (timers_.empty()) {
      wake_[lane].wait(lock);
    } else {
      Clock::time_point due = timers_.top().due;  // a copy: the heap may change while waiting
      wake_[lane].wait_until(lock, due);
    }
  }
}

void Scheduler::load_state(const std::string& id, const StoredMessage& message,
                           MessageState& state) const {
  const std::size_t count = message.envelope.recipients.size();
  state.sender = message.envelope.reverse_path;
  state.user = message.envelope.authenticated_user;
  state.require_tls = message.envelope.require_tls;
  state.tls_optional = message.tls_optional;
  state.received_unix = message.received_unix;
  state.size = spool_.file_size(id);
  state.addresses.clear();
  state.local.clear();
  for (const smtp::Recipient& r : message.envelope.recipients) {
    state.addresses.push_back(r.address);
    state.local.push_back(lanes() && options_.is_local(r.address));
  }
  state.recipients.assign(count, RecipientState::kPending);
  state.details.assign(count, std::string());
  state.deferred_lines = 0;
  for (const std::string& line : spool_.read_state(id)) {
    std::size_t space = line.find(' ');
    std::string_view verb = std::string_view(line).substr(0, space);
    if (verb == "warned") state.warned = true;
    if (space == std::string::npos) continue;
    std::size_t index = 0;
    std::string_view number = std::string_view(line).substr(space + 1);
    std::string_view text;  // "deferred N TEXT"
    if (verb == "deferred") {
      ++state.deferred_lines;
      std::size_t second = number.find(' ');
      if (second == std::string_view::npos) continue;
      text = number.substr(second + 1);
      number = number.substr(0, second);
    }
    bool valid = !number.empty() && number.size() < 7;
    for (char c : number) {
      valid = valid && c >= '0' && c <= '9';
      if (valid) index = index * 10 + static_cast<std::size_t>(c - '0');
    }
    if (!valid || index >= count) continue;
    if (verb == "delivered") {
      state.recipients[index] = RecipientState::kDelivered;
      state.details[index] = "delivered before a restart";
    } else if (verb == "failed") {
      state.recipients[index] = RecipientState::kFailed;
      state.details[index] = "failed before a restart (DSN sent)";
    } else if (verb == "deferred" && state.recipients[index] == RecipientState::kPending) {
      state.details[index] = std::string(text);
    }
  }
  state.loaded = true;
}

void Scheduler::attempt(const std::string& id, Lane lane) {
  auto loaded = spool_.load(id);
  if (!loaded) {
    const SpoolError& error = loaded.error();
    std::lock_guard lock(mutex_);
    auto it = messages_.find(id);
    if (error.error_number == ENOENT || it == messages_.end()) {
      obs::Log("gone").kv("id", id).kv("detail", error.message);
      if (it != messages_.end()) messages_.erase(it);
      return;
    }
    if (!error.transient) {
      // A corrupt file stays in the spool for the administrator; it is not retried.
      obs::Log("error", obs::Level::kError)
          .kv("id", id)
          .kv("action", "kept")
          .kv("detail", error.message);
      it->second.phase = Phase::kBroken;
      return;
    }
    obs::Log("error", obs::Level::kError)
        .kv("id", id)
        .kv("action", "retry")
        .kv("detail", error.message);
    retry_later(id, it->second);
    return;
  }
  StoredMessage& message = *loaded;
  const std::size_t count = message.envelope.recipients.size();

  std::vector<std::size_t> pending;
  std::size_t attempt = 0;  // this attempt's number, for the level of its deferral lines
  {
    std::lock_guard lock(mutex_);
    MessageState& state = messages_[id];
    if (!state.loaded || state.recipients.size() != count) load_state(id, message, state);
    message.recovered = state.recovered;
    for (std::size_t i = 0; i < count; ++i) {
      if (state.recipients[i] == RecipientState::kPending && in_lane(state, i, lane)) {
        pending.push_back(i);
      }
    }
    if (!state.remote_half) ++state.attempts;  // the remote half continues the same attempt
    state.remote_half = false;
    attempt = state.attempts;
  }

  std::vector<DeliveryResult> results;
  if (!pending.empty() && !stopping_) {
    auto attempt_started = std::chrono::steady_clock::now();
    results = deliver_(message, pending);
    results.resize(pending.size(),
                   DeliveryResult{DeliveryStatus::kTransient, "deliverer gave no result"});
    obs::server_metrics().delivery_duration(results.front().transport,
                                            std::chrono::steady_clock::now() - attempt_started);
  }

  const std::int64_t now = base::unix_now();
  const std::int64_t age = now - message.received_unix;
  const bool expired = std::chrono::seconds(age) >=
                       std::chrono::duration_cast<std::chrono::seconds>(options_.max_lifetime);
  std::vector<std::size_t> delivered, failed, still_pending;
  std::vector<DeliveryResult> delivered_results, failed_results, pending_results;
  for (std::size_t k = 0; k < results.size(); ++k) {
    std::size_t i = pending[k];
    DeliveryResult& result = results[k];
    const std::string& rcpt = message.envelope.recipients[i].address;
    switch (result.status) {
      case DeliveryStatus::kDelivered:
        log_delivered(id, rcpt, result, message.envelope.require_tls);
        obs::server_metrics().delivery_attempt("delivered", result.transport);
        delivered.push_back(i);
        delivered_results.push_back(std::move(result));
        break;
      case DeliveryStatus::kPermanent: {
        {
          // Warning and above is what an operator alerts on: mail that will not arrive.
          obs::Log line("failed", obs::Level::kWarning);  // written at the end of its scope
          line.kv("id", id).kv("rcpt", rcpt);
          if (message.envelope.require_tls) line.kv("requiretls", "yes");
          line.kv("detail", result.detail).kv_if("policy", result.tls_policy);
        }
        obs::server_metrics().delivery_attempt("bounced", result.transport);
        failed.push_back(i);
        failed_results.push_back(std::move(result));
        break;
      }
      case DeliveryStatus::kTransient:
        if (expired) {
          obs::Log("expired", obs::Level::kWarning)
              .kv("id", id)
              .kv("rcpt", rcpt)
              .kv("age", std::to_string(age) + "s")
              .kv("detail", result.detail);
          if (result.enhanced.empty()) result.enhanced = "4.4.7";
          obs::server_metrics().delivery_attempt("bounced", result.transport);
          result.detail =
              "gave up after " + std::to_string(age) + "s in the queue: " + result.detail;
          failed.push_back(i);
          failed_results.push_back(std::move(result));
        } else {
          // A first deferral is routine (greylisting, a busy server); one that keeps
          // failing is the operator's to look at.
          obs::Log("deferred",
                   attempt >= kDeferralsBeforeWarning ? obs::Level::kWarning : obs::Level::kInfo)
              .kv("id", id)
              .kv("rcpt", rcpt)
              .kv("detail", result.detail)
              .kv_if("policy", result.tls_policy)
              .kv("attempt", static_cast<std::uint64_t>(attempt));
          obs::server_metrics().delivery_attempt("deferred", result.transport);
          still_pending.push_back(i);
          pending_results.push_back(std::move(result));
        }
        break;
    }
  }

  // Notices (RFC 3461 §4.1). A failure becomes final only once its DSN is durable. Each
  // notice is committed before the state lines it stands for are appended, and handed to the
  // deliverers only once those lines are durable (hand_over_notices; Spool::new_notice_id):
  // after a power cut at any instant the message's state has them or a queued notice does,
  // so that no notice is sent twice and none is lost.
  std::vector<std::string> notices;  // committed, not yet enqueued
  std::vector<std::string> failed_lines, delivered_lines;
  for (std::size_t i : failed)
    failed_lines.push_back("failed " + std::to_string(i));
  for (std::size_t i : delivered)
    delivered_lines.push_back("delivered " + std::to_string(i));
  bool dsn_ok = true;
  if (!failed.empty()) dsn_ok = send_dsn(message, failed, failed_results, 0, failed_lines, notices);
  if (!delivered.empty() &&
      !send_dsn(message, delivered, delivered_results, 2, delivered_lines, notices)) {
    obs::Log("error", obs::Level::kError)
        .kv("id", id)
        .kv("action", "dropped")
        .kv("detail", "the success DSN could not be queued; the delivery itself is done");
  }
  // The usual case, every recipient delivered now and nothing else to say: the message is
  // removed next, so its "delivered" lines are written only if that fails. That spares a
  // state file made and unlinked per message; a crash in between brings a delivery back,
  // which the deliverers recognise (Maildir by its file name), as a crash before these
  // lines always did.
  bool lines_deferred = false;
  if (!delivered.empty() && failed.empty() && still_pending.empty() && notices.empty()) {
    std::lock_guard lock(mutex_);
    const MessageState& state = messages_[id];
    std::size_t final_before = 0;
    for (RecipientState recipient : state.recipients)
      final_before += recipient != RecipientState::kPending;
    lines_deferred = final_before + delivered.size() == state.recipients.size();
  }
  if (!lines_deferred) {
    for (const std::string& line : delivered_lines)
      spool_.append_state(id, line);
  }
  bool warned_now = false;
  if (!still_pending.empty() && options_.delay_warning.count() > 0 && !expired) {
    std::lock_guard lock(mutex_);
    warned_now = !messages_[id].warned &&
                 std::chrono::seconds(age) >=
                     std::chrono::duration_cast<std::chrono::seconds>(options_.delay_warning);
  }
  if (warned_now && send_dsn(message, still_pending, pending_results, 1, {"warned"}, notices)) {
    spool_.append_state(id, "warned");
  } else {
    warned_now = false;
  }
  if (dsn_ok) {
    for (const std::string& line : failed_lines)
      spool_.append_state(id, line);
  }

  std::unique_lock lock(mutex_);
  MessageState& state = messages_[id];
  if (warned_now) state.warned = true;
  for (std::size_t k = 0; k < delivered.size(); ++k) {
    state.recipients[delivered[k]] = RecipientState::kDelivered;
    state.details[delivered[k]] = delivered_results[k].detail;
  }
  for (std::size_t k = 0; k < failed.size(); ++k) {
    if (dsn_ok) state.recipients[failed[k]] = RecipientState::kFailed;
    state.details[failed[k]] = failed_results[k].detail;
  }
  std::vector<std::string> record;  // "deferred N TEXT" lines, appended outside the lock
  for (std::size_t k = 0; k < still_pending.size(); ++k) {
    std::string& detail = state.details[still_pending[k]];
    if (detail != pending_results[k].detail && state.deferred_lines < kMaxDeferredLines) {
      ++state.deferred_lines;
      record.push_back("deferred " + std::to_string(still_pending[k]) + " " +
                       state_line_text(pending_results[k].detail));
    }
    detail = pending_results[k].detail;
  }
  if (!record.empty()) {
    lock.unlock();
    for (const std::string& line : record)
      spool_.append_state(id, line);
    lock.lock();
  }

  const bool all_final =
      std::none_of(state.recipients.begin(), state.recipients.end(),
                   [](RecipientState s) { return s == RecipientState::kPending; });
  if (state.remove_requested || all_final) {
    bool by_operator = state.remove_requested;
    lock.unlock();
    auto removed = spool_.remove(id);
    // Its D record, after the notices' M records in the log, makes their lines durable with
    // any later record (a notice's own D record included).
    hand_over_notices(id, notices, /*original_removed=*/bool(removed));
    lock.lock();
    if (removed) {
      obs::Log(by_operator ? "deleted" : "removed").kv("id", id);
      messages_.erase(id);
      return;
    }
    // Every recipient is done; the next attempt only retries the removal.
    if (lines_deferred) {
      lock.unlock();
      for (const std::string& line : delivered_lines)
        spool_.append_state(id, line);
      lock.lock();
    }
    obs::Log("error", obs::Level::kError)
        .kv("id", id)
        .kv("action", "retry")
        .kv("detail", removed.error().message);
  } else if (!notices.empty()) {
    lock.unlock();
    hand_over_notices(id, notices, /*original_removed=*/false);
    lock.lock();
  }
  MessageState& again = messages_[id];
  if (again.hold_requested) {
    again.hold_requested = false;
    again.phase = Phase::kHeld;
    return;
  }
  if (stopping_) {
    again.phase = Phase::kWaiting;  // the next start() picks it up
    return;
  }
  if (lanes() && lane == kLocalLane) {
    for (std::size_t i = 0; i < again.recipients.size(); ++i) {
      if (again.recipients[i] == RecipientState::kPending && in_lane(again, i, kRemoteLane)) {
        // The local half is done; the remote recipients go now, on the remote lane.
        again.remote_half = true;
        ++again.generation;
        again.phase = Phase::kReady;
        push_ready(id, kRemoteLane);
        return;
      }
    }
  }
  retry_later(id, again);
}

void Scheduler::hand_over_notices(const std::string& id, const std::vector<std::string>& notices,
                                  bool original_removed) {
  if (notices.empty()) return;
  // XXX: SpoolLog::append_done() is best effort: when the original's D record could not be
  // written (a write error on the log), its removal covers nothing, and a power cut before
  // the next log sync can still bring a second notice.
  if (!original_removed) {
    if (auto synced = spool_.sync_state(id); !synced) {
      // The notices go all the same: a lost notice is worse than one sent twice, which only
      // a power cut before the next sync of state/ can bring.
      obs::Log("error", obs::Level::kError)
          .kv("id", id)
          .kv("action", "sent")
          .kv("detail",
              "the state its notices stand for is not durable: " + synced.error().message);
    }
  }
  for (const std::string& notice : notices)
    enqueue(notice);
}

void Scheduler::recover_notices(const std::vector<std::string>& ids) {
  // A notice committed before a crash whose lines its original's state lost: the lines are
  // written again, durably, before either is delivered (Spool::new_notice_id). Notice ids sort
  // right after their original's.
  const std::unordered_set<std::string_view> queued(ids.begin(), ids.end());
  for (const std::string& id : ids) {
    const std::string_view original = Spool::original_of(id);
    if (original.empty() || !queued.contains(original)) continue;
    auto notice = spool_.load(id);
    if (!notice || notice->notice_of != original) continue;
    const std::string original_id(original);
    const std::vector<std::string> known = spool_.read_state(original_id);
    std::uint64_t added = 0;
    for (const std::string& line : notice->notice_state) {
      if (std::find(known.begin(), known.end(), line) != known.end()) continue;
      spool_.append_state(original_id, line);
      ++added;
    }
    // Synced even when nothing was missing: lines appended just before a kill -9 may still
    // be only in the page cache.
    auto synced = spool_.sync_state(original_id);
    if (added == 0 && synced) continue;
    obs::Log("notice_recovered", synced ? obs::Level::kInfo : obs::Level::kError)
        .kv("id", original_id)
        .kv("dsn_id", id)
        .kv("lines", added)
        .kv_if("detail", synced ? std::string() : synced.error().message);
  }
}

bool Scheduler::send_dsn(const StoredMessage& message, const std::vector<std::size_t>& indices,
                         const std::vector<DeliveryResult>& results, int action_code,
                         const std::vector<std::string>& state_lines,
                         std::vector<std::string>& notices) {
  // action_code: 0 failed, 1 delayed, 2 delivered/relayed.
  const smtp::Envelope& envelope = message.envelope;
  if (envelope.reverse_path.empty()) return true;  // never a DSN to <> (RFC 3461 §6.2)
  const std::int64_t now = base::unix_now();
  DsnRequest request;
  request.reporting_mta = options_.hostname;
  request.sender = envelope.reverse_path;
  request.envelope_id = envelope.envelope_id;
  request.arrival_unix = message.received_unix;
  request.now_unix = now;
  request.ret = envelope.dsn_return;
  request.require_tls = envelope.require_tls;
  request.max_returned = kDsnReturnLimit;
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const smtp::Recipient& recipient = envelope.recipients[indices[k]];
    const DeliveryResult& result = results[k];
    DsnAction action = action_code == 0   ? DsnAction::kFailed
                       : action_code == 1 ? DsnAction::kDelayed
                       : result.expanded  ? DsnAction::kExpanded
                       : result.remote    ? DsnAction::kRelayed
                                          : DsnAction::kDelivered;
    if (action_code == 2 && result.dsn_passed_on) continue;  // the next hop reports it
    if (!wants_notification(recipient, action)) continue;
    DsnRecipient entry;
    entry.final_recipient = recipient.address;
    entry.original_recipient = recipient.original_recipient;
    entry.action = action;
    entry.status = status_of(result);
    entry.remote_mta = result.remote_mta;
    entry.diagnostic = result.diagnostic;
    entry.last_attempt_unix = now;
    if (action == DsnAction::kDelayed) {
      entry.will_retry_until_unix =
          message.received_unix +
          std::chrono::duration_cast<std::chrono::seconds>(options_.max_lifetime).count();
    }
    request.recipients.push_back(std::move(entry));
  }
  if (request.recipients.empty()) return true;
  if (action_code == 2 && !envelope.authenticated) {
    // Anyone can ask for a success notice on port 25 with a forged sender: it carries
    // nothing of the message, and only so many go out a minute.
    request.omit_original = true;
    if (!take_success_token()) {
      obs::Log("dsn_suppressed", obs::Level::kWarning)
          .kv("id", message.id)
          .kv("kind", "success")
          .kv("to", envelope.reverse_path)
          .kv("detail", "more than " +
                            std::to_string(options_.unauthenticated_success_dsns_per_minute) +
                            " success notices a minute for unauthenticated senders");
      return true;
    }
  }
  std::string content =
      request.omit_original ? std::string() : read_content(message, kDsnReturnLimit);
  request.original = content;
  std::string dsn_id = spool_.new_notice_id(message.id);
  request.message_id = dsn_id + ".dsn@" + options_.hostname;
  DsnMessage dsn = build_dsn(request);
  auto writer = spool_.begin_with_id(dsn_id, dsn.envelope, now);
  base::Expected<base::Ok, SpoolError> done =
      writer ? writer.value()->set_notice(message.id, state_lines)
             : base::unexpected(writer.error());
  if (done) done = writer.value()->append(dsn.content);
  if (done) done = writer.value()->commit();
  const char* kind = action_code == 0 ? "failure" : action_code == 1 ? "delay" : "success";
  if (!done) {
    obs::Log("error", obs::Level::kError)
        .kv("id", message.id)
        .kv("action", "retry")
        .kv("detail", "cannot queue the " + std::string(kind) + " DSN: " + done.error().message);
    return false;
  }
  obs::Log("dsn")
      .kv("id", message.id)
      .kv("kind", kind)
      .kv("dsn_id", dsn_id)
      .kv("to", envelope.reverse_path)
      .kv("recipients", static_cast<std::uint64_t>(request.recipients.size()));
  notices.push_back(std::move(dsn_id));
  return true;
}

void Scheduler::make_ready(const std::string& id, MessageState& state) {
  ++state.generation;
  state.phase = Phase::kReady;
  push_ready(id, lane_for(state));
}

void Scheduler::retry_later(const std::string& id, MessageState& state) {
  std::size_t index =
      std::min(state.attempts > 0 ? state.attempts - 1 : 0, options_.retry_schedule.size() - 1);
  std::chrono::milliseconds delay = options_.retry_schedule[index];
  // Never wait past the lifetime: the last attempt is at the deadline, and then it expires.
  if (state.loaded) {
    std::int64_t left =
        state.received_unix +
        std::chrono::duration_cast<std::chrono::seconds>(options_.max_lifetime).count() -
        base::unix_now();
    if (left >= 0 && std::chrono::seconds(left) < delay) {
      delay = std::chrono::seconds(left) + std::chrono::milliseconds(100);
    }
  }
  ++state.generation;
  state.phase = Phase::kWaiting;
  state.next_attempt = Clock::now() + delay;
  obs::Log("retry")
      .kv("id", id)
      .kv("attempts", static_cast<std::uint64_t>(state.attempts))
      .kv("retry_in", base::duration_text(delay));
  timers_.push(Timer{state.next_attempt, id, state.generation});
  for (auto& wake : wake_)
    wake.notify_one();  // a thread of each lane waits for the new earliest timer
}

bool Scheduler::take_success_token() {
  const double per_minute = options_.unauthenticated_success_dsns_per_minute;
  std::lock_guard lock(mutex_);
  const Clock::time_point now = Clock::now();
  if (success_refilled_ == Clock::time_point{}) {
    success_tokens_ = per_minute;
  } else {
    const double minutes =
        std::chrono::duration<double, std::ratio<60>>(now - success_refilled_).count();
    success_tokens_ = std::min(per_minute, success_tokens_ + minutes * per_minute);
  }
  success_refilled_ = now;
  if (success_tokens_ < 1) return false;
  success_tokens_ -= 1;
  return true;
}

QueueEntryView Scheduler::view(const std::string& id, const MessageState& state,
                               bool details) const {
  QueueEntryView entry;
  entry.id = id;
  entry.sender = state.sender;
  entry.user = state.user;
  entry.require_tls = state.require_tls;
  entry.tls_optional = state.tls_optional;
  entry.received_unix = state.received_unix;
  entry.size = state.size;
  entry.attempts = state.attempts;
  switch (state.phase) {
    case Phase::kReady:
      entry.state = "ready";
      break;
    case Phase::kWaiting:
      entry.state = "deferred";
      entry.next_attempt_unix = base::unix_now() + std::chrono::duration_cast<std::chrono::seconds>(
                                                       state.next_attempt - Clock::now())
                                                       .count();
      break;
    case Phase::kActive:
      entry.state = "active";
      break;
    case Phase::kHeld:
      entry.state = "held";
      break;
    case Phase::kBroken:
      entry.state = "broken";
      break;
  }
  if (details) {
    for (std::size_t i = 0; i < state.addresses.size(); ++i) {
      QueueRecipientView r;
      r.address = state.addresses[i];
      RecipientState s =
          i < state.recipients.size() ? state.recipients[i] : RecipientState::kPending;
      r.state = s == RecipientState::kDelivered ? "delivered"
                : s == RecipientState::kFailed  ? "failed"
                                                : "pending";
      if (i < state.details.size()) r.detail = state.details[i];
      if (s == RecipientState::kPending) r.next_attempt_unix = entry.next_attempt_unix;
      entry.recipients.push_back(std::move(r));
    }
  }
  return entry;
}

std::vector<QueueEntryView> Scheduler::list(bool with_recipients) const {
  std::vector<std::pair<QueueEntryView, std::optional<MessageState>>> found;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, state] : messages_) {
      std::optional<MessageState> unloaded;
      if (!state.loaded) unloaded = state;
      found.emplace_back(view(id, state, with_recipients), std::move(unloaded));
    }
  }
  // Messages not attempted yet (held at start, or waiting in line) are read from the spool.
  std::vector<QueueEntryView> entries;
  entries.reserve(found.size());
  for (auto& [entry, unloaded] : found) {
    if (unloaded) {
      if (auto message = spool_.load(entry.id)) {
        load_state(entry.id, *message, *unloaded);
        QueueEntryView read = view(entry.id, *unloaded, with_recipients);
        read.attempts = entry.attempts;
        entry = std::move(read);
      }
    }
    entries.push_back(std::move(entry));
  }
  std::sort(entries.begin(), entries.end(),
            [](const QueueEntryView& a, const QueueEntryView& b) { return a.id < b.id; });
  return entries;
}

std::optional<QueueEntryView> Scheduler::show(const std::string& id) const {
  std::unique_lock lock(mutex_);
  auto it = messages_.find(id);
  if (it == messages_.end()) return std::nullopt;
  if (it->second.loaded) return view(id, it->second, /*details=*/true);
  MessageState copy = it->second;
  lock.unlock();
  auto message = spool_.load(id);
  if (!message) return view(id, copy, /*details=*/true);
  load_state(id, *message, copy);
  return view(id, copy, /*details=*/true);
}

bool Scheduler::retry_now(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = messages_.find(id);
  if (it == messages_.end() || it->second.phase != Phase::kWaiting) return false;
  make_ready(id, it->second);
  obs::Log("flush").kv("count", std::uint64_t{1}).kv("id", id);
  return true;
}

std::size_t Scheduler::flush() {
  std::lock_guard lock(mutex_);
  std::size_t count = 0;
  for (auto& [id, state] : messages_) {
    if (state.phase != Phase::kWaiting) continue;
    make_ready(id, state);
    ++count;
  }
  if (count > 0) {
    obs::Log("flush").kv("count", static_cast<std::uint64_t>(count));
    for (auto& wake : wake_)
      wake.notify_all();
  }
  return count;
}

Scheduler::Outcome Scheduler::hold(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = messages_.find(id);
  if (it == messages_.end()) return Outcome::kNotFound;
  MessageState& state = it->second;
  if (state.phase == Phase::kHeld) return Outcome::kDone;
  spool_.append_state(id, "held");
  obs::Log("held").kv("id", id);
  if (state.phase == Phase::kActive) {
    state.hold_requested = true;
    return Outcome::kLater;
  }
  ++state.generation;
  state.phase = Phase::kHeld;
  return Outcome::kDone;
}

Scheduler::Outcome Scheduler::release(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = messages_.find(id);
  if (it == messages_.end()) return Outcome::kNotFound;
  MessageState& state = it->second;
  if (state.phase == Phase::kActive && state.hold_requested) {
    state.hold_requested = false;
    spool_.append_state(id, "released");
    return Outcome::kDone;
  }
  if (state.phase != Phase::kHeld) return Outcome::kDone;
  spool_.append_state(id, "released");
  obs::Log("released").kv("id", id);
  make_ready(id, state);
  return Outcome::kDone;
}

Scheduler::Outcome Scheduler::remove(const std::string& id) {
  std::unique_lock lock(mutex_);
  auto it = messages_.find(id);
  if (it == messages_.end()) return Outcome::kNotFound;
  if (it->second.phase == Phase::kActive) {
    it->second.remove_requested = true;
    return Outcome::kLater;
  }
  messages_.erase(it);  // stale ready entries and timers find nothing and are skipped
  lock.unlock();
  if (auto removed = spool_.remove(id); !removed) {
    obs::Log("error", obs::Level::kError).kv("id", id).kv("detail", removed.error().message);
  } else {
    obs::Log("deleted").kv("id", id);
  }
  return Outcome::kDone;
}

}  // namespace queue
