// scheduler.cpp — the delivery worker (see scheduler.h).
//
// One timer queue (a min-heap of due times) serves every message waiting for a retry; the
// worker threads sleep on one condition variable until a message is ready or the earliest
// timer is due, never in a sleep per message. The spool file is removed only once every
// recipient is final (RFC 5321 §4.5.4, §6.1); the deliverer is called outside the lock.
// Log lines are key=value (DESIGN.md §2 src/obs), values quoted when they contain spaces.
#include "queue/scheduler.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

namespace queue {
namespace {

// A log value: bare when safe, else "quoted" with \" \\ and \xHH for control bytes, so a
// recipient address or an error text can never break the line (or forge another one).
std::string log_value(std::string_view value) {
  bool bare = !value.empty() && std::none_of(value.begin(), value.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c <= 0x20 || c == 0x7F || c == '"' || c == '\\' || c == '=';
  });
  if (bare) return std::string(value);
  std::string out = "\"";
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02X", c);
      out += escaped;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

std::string format_delay(std::chrono::milliseconds delay) {
  if (delay.count() % 1000 == 0) return std::to_string(delay.count() / 1000) + "s";
  return std::to_string(delay.count()) + "ms";
}

}  // namespace

Scheduler::Scheduler(Spool& spool, DeliverFn deliver, std::function<void(std::string_view)> log,
                     SchedulerOptions options)
    : spool_(spool),
      deliver_(std::move(deliver)),
      log_(std::move(log)),
      options_(std::move(options)) {
  if (options_.retry_schedule.empty()) {
    options_.retry_schedule.push_back(std::chrono::seconds(60));
  }
  if (options_.threads == 0) options_.threads = 1;
}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::start() {
  std::vector<std::string> ids = spool_.list();  // oldest first
  std::size_t recovered = 0;
  {
    std::lock_guard lock(mutex_);
    if (started_) return;
    started_ = true;
    for (const std::string& id : ids) {
      if (messages_.contains(id)) continue;
      MessageState state;
      state.recovered = true;
      messages_.emplace(id, std::move(state));
      ready_.push_back(id);
      ++recovered;
    }
  }
  if (recovered > 0) log("event=recovered count=" + std::to_string(recovered));
  for (unsigned i = 0; i < options_.threads; ++i)
    threads_.emplace_back([this] { run(); });
}

void Scheduler::enqueue(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = messages_.try_emplace(id);
  if (!inserted) {
    if (!it->second.parked) return;  // already ready, waiting for a retry, or in flight
    // Asked again for a message kept for non-local recipients: try those again.
    it->second.parked = false;
    std::replace(it->second.recipients.begin(), it->second.recipients.end(),
                 RecipientState::kNotLocal, RecipientState::kPending);
  }
  ready_.push_back(id);
  wake_.notify_one();
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

std::size_t Scheduler::pending() const {
  std::lock_guard lock(mutex_);
  return ready_.size() + timers_.size() + in_flight_;
}

void Scheduler::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    Clock::time_point now = Clock::now();
    while (!timers_.empty() && timers_.top().due <= now) {
      ready_.push_back(timers_.top().id);
      timers_.pop();
    }
    if (!ready_.empty()) {
      std::string id = std::move(ready_.front());
      ready_.pop_front();
      ++in_flight_;
      lock.unlock();
      attempt(id);
      lock.lock();
      --in_flight_;
      continue;
    }
    if (timers_.empty()) {
      wake_.wait(lock);
    } else {
      Clock::time_point due = timers_.top().due;  // a copy: the heap may change while waiting
      wake_.wait_until(lock, due);
    }
  }
}

void Scheduler::attempt(const std::string& id) {
  auto loaded = spool_.load(id);
  if (!loaded) {
    const SpoolError& error = loaded.error();
    if (error.error_number == ENOENT) {
      log("event=gone id=" + log_value(id) + " detail=" + log_value(error.message));
      forget(id);
      return;
    }
    std::lock_guard lock(mutex_);
    MessageState& state = messages_[id];
    if (!error.transient) {
      // A corrupt file stays in the spool for the administrator; it is not retried.
      log("event=error id=" + log_value(id) + " action=kept detail=" + log_value(error.message));
      state.parked = true;
      return;
    }
    log("event=error id=" + log_value(id) + " action=retry detail=" + log_value(error.message));
    retry_later(id, state);
    return;
  }
  StoredMessage& message = *loaded;
  {
    std::lock_guard lock(mutex_);
    message.recovered = messages_[id].recovered;
  }
  const std::size_t count = message.envelope.recipients.size();

  std::vector<RecipientState> recipients;
  std::chrono::milliseconds retry_delay{};
  {
    std::lock_guard lock(mutex_);
    MessageState& state = messages_[id];
    if (state.recipients.size() != count) state.recipients.assign(count, RecipientState::kPending);
    recipients = state.recipients;
    std::size_t index = std::min(state.failed_attempts, options_.retry_schedule.size() - 1);
    retry_delay = options_.retry_schedule[index];
  }

  for (std::size_t i = 0; i < count; ++i) {
    if (recipients[i] != RecipientState::kPending) continue;
    if (stopping_) break;  // the rest waits for the next start()
    DeliveryResult result = deliver_(message, i);
    std::string prefix =
        " id=" + log_value(id) + " rcpt=" + log_value(message.envelope.recipients[i].address);
    switch (result.status) {
      case DeliveryStatus::kDelivered:
        recipients[i] = RecipientState::kDone;
        log("event=delivered" + prefix +
            (result.transport.empty() ? "" : " to=" + log_value(result.transport)) +
            " detail=" + log_value(result.detail));
        break;
      case DeliveryStatus::kPermanent:
        // XXX: DSN — the queue issue generates the bounce (RFC 3461, RFC 3464) to the
        // reverse-path here, unless it is null; until then the failure is only logged.
        recipients[i] = RecipientState::kDone;
        log("event=failed" + prefix + " detail=" + log_value(result.detail));
        break;
      case DeliveryStatus::kTransient:
        log("event=deferred" + prefix + " retry_in=" + format_delay(retry_delay) +
            " detail=" + log_value(result.detail));
        break;
      case DeliveryStatus::kNotLocal:
        // XXX: relay — the queue issue adds delivery to remote domains; until then the
        // message stays in the spool and this is logged once per recipient and process.
        recipients[i] = RecipientState::kNotLocal;
        log("event=deferred" + prefix +
            " reason=no_route detail=\"no route for remote recipients yet\"");
        break;
    }
  }

  const bool all_done = std::all_of(recipients.begin(), recipients.end(),
                                    [](RecipientState s) { return s == RecipientState::kDone; });
  if (all_done) {
    auto removed = spool_.remove(id);
    if (removed) {
      log("event=removed id=" + log_value(id));
      forget(id);
      return;
    }
    // Every recipient is done; the next attempt only retries the removal.
    log("event=error id=" + log_value(id) +
        " action=retry detail=" + log_value(removed.error().message));
  }
  const bool any_pending = std::any_of(recipients.begin(), recipients.end(), [](RecipientState s) {
    return s == RecipientState::kPending;
  });
  std::lock_guard lock(mutex_);
  MessageState& state = messages_[id];
  state.recipients = std::move(recipients);
  if (all_done || any_pending) {
    if (!stopping_) retry_later(id, state);
  } else {
    state.parked = true;  // only non-local recipients left
  }
}

void Scheduler::retry_later(const std::string& id, MessageState& state) {
  std::size_t index = std::min(state.failed_attempts, options_.retry_schedule.size() - 1);
  ++state.failed_attempts;
  // XXX: expiry — the queue issue gives up (and bounces) after the queue lifetime; RFC 5321
  // §4.5.4.1 says at least 4-5 days. Until then the last interval repeats.
  timers_.push(Timer{Clock::now() + options_.retry_schedule[index], id});
  wake_.notify_one();
}

void Scheduler::forget(const std::string& id) {
  std::lock_guard lock(mutex_);
  messages_.erase(id);
}

void Scheduler::log(const std::string& line) const {
  if (log_) log_(line);
}

}  // namespace queue
