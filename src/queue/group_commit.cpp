// group_commit.cpp — the committer threads of GroupCommitter (see group_commit.h).
//
// Order per batch, which is what makes a batch as safe as one commit() each:
//   1. every file: write the rest, fsync, close (a failure removes tmp/<id>);
//   2. every file that got through: rename tmp/<id> → queue/<id>;
//   3. each spool touched: ONE fsync of queue/ — if it fails, every message of that spool
//      in the batch is removed again and fails (Postfix mail_stream.c: a failed fsync is a
//      failed message);
//   4. every done callback, success only for messages whose rename is now durable.
// Before 1, with a deliverer: each message that is not held is finished and delivered; the
// ones delivered to every recipient are done (step 4 only), the others go on through 1-4
// with the state lines of what was delivered, written before their rename into queue/.
// With the reply after the log, the delivery comes after step 4 instead, on the delivery
// thread (run_delivery), and the messages it takes skip step 2 when they have no file.
#include "queue/group_commit.h"

#include <algorithm>
#include <cassert>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

#include "obs/log.h"

namespace queue {
namespace {

// A message finished from its writer's memory: no file anywhere, its image in the message.
bool in_memory(const StoredMessage& message) {
  return message.file != nullptr && message.file->fd < 0;
}

// The "delivered N" lines of what was delivered, before the message reaches queue/ (the
// scheduler reads them). One that cannot be written makes the queue try that recipient again,
// and Maildir finds its copy in new/ by its name and writes none, unless a mail reader moved
// it to cur/ in the meantime: said in the log.
void append_state_lines(Spool& spool, const std::string& id,
                        const std::vector<std::string>& lines) {
  for (const std::string& line : lines) {
    if (auto appended = spool.append_state(id, line); !appended) {
      obs::Log("state_not_written", obs::Level::kError)
          .kv("id", id)
          .kv("state", line)
          .kv("detail", appended.error().message)
          .kv("note",
              "the queue delivers this recipient again; a copy moved to cur/ since "
              "would be doubled");
    }
  }
}

}  // namespace

GroupCommitter::GroupCommitter(unsigned threads, std::chrono::milliseconds log_idle_close,
                               std::chrono::microseconds second_committer_after)
    : log_idle_close_(log_idle_close), second_committer_after_(second_committer_after) {
  if (threads == 0) threads = 1;
  running_.resize(threads);
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i)
    threads_.emplace_back([this, i] { run(i); });
}

GroupCommitter::~GroupCommitter() {
  stop();
}

void GroupCommitter::commit_async(SpoolWriter& writer, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back(Pending{&writer, std::move(done)});
      if (wake_needed()) wake_.notify_one();
      return;
    }
  }
  done(base::unexpected(SpoolError{"commit of " + writer.id() + ": the committer is stopped",
                                   /*transient=*/true, 0}));
}

void GroupCommitter::set_reply_after_log(Queued queued, Takes takes) {
  // Without a deliverer nothing could be delivered; twice would start a second thread.
  assert(deliverer_ && queued && takes && !delivery_thread_.joinable());
  queued_ = std::move(queued);
  takes_ = std::move(takes);
  delivery_thread_ = std::thread([this] { run_delivery(); });
}

std::uint64_t GroupCommitter::bytes_of(const StoredMessage& message) {
  return in_memory(message) ? message.file->bytes.size() : 0;
}

void GroupCommitter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
  // Then what the committers handed over is delivered (or queued), and the thread ends.
  {
    std::lock_guard lock(taken_mutex_);
    taken_stopping_ = true;
  }
  taken_wake_.notify_all();
  if (delivery_thread_.joinable()) delivery_thread_.join();
}

GroupCommitter::Stats GroupCommitter::stats() const {
  return Stats{messages_.load(std::memory_order_relaxed), syncs_.load(std::memory_order_relaxed),
               delivered_.load(std::memory_order_relaxed), wakeups_.load(std::memory_order_relaxed),
               watching_.load(std::memory_order_relaxed)};
}

void GroupCommitter::run(std::size_t index) {
  std::vector<Pending> batch;
  std::vector<Spool*> written;  // spools whose commit log this thread wrote to since it idled
  // Nothing to commit for a while, or nothing more at all: no segment stays open for writing
  // (an idle server must let its spool's file system be remounted read-only).
  auto close_written = [&written] {
    for (Spool* spool : written)
      spool->close_idle_log();
    written.clear();
  };
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      const auto ready = [this] { return stopping_ || !pending_.empty(); };
      if (!ready()) {
        if (written.empty()) {
          wake_.wait(lock, ready);
        } else if (!wake_.wait_for(lock, log_idle_close_, ready)) {
          lock.unlock();
          close_written();
          continue;
        }
        wakeups_.fetch_add(1, std::memory_order_relaxed);
      }
      wait_for_turn(lock);
      if (pending_.empty()) {
        if (!stopping_) continue;  // another committer took them
        lock.unlock();             // stopping, and nothing left to commit
        close_written();
        return;
      }
      batch.swap(pending_);
      std::uint64_t octets = 0;
      for (const Pending& pending : batch)
        octets += pending.writer->content_size();
      running_[index] = Running{std::chrono::steady_clock::now(), octets >= kLargeBatch};
    }
    for (const Pending& pending : batch) {
      Spool* spool = &pending.writer->spool();
      if (std::find(written.begin(), written.end(), spool) == written.end())
        written.push_back(spool);
    }
    commit_batch(batch);
    batch.clear();
    std::lock_guard lock(mutex_);
    running_[index] = Running{};
  }
}

void GroupCommitter::wait_for_turn(std::unique_lock<std::mutex>& lock) {
  // The committer in a batch takes what gathered when it ends (its next batch): taking it
  // here would split that batch in two, each with its own syncs. Only a batch that runs long
  // (a large message, a slow disk) lets the others go ahead.
  while (second_committer_after_.count() > 0 && !stopping_ && !pending_.empty()) {
    const auto at = turn();
    if (std::chrono::steady_clock::now() >= at) return;
    ++watching_;
    wake_.wait_until(lock, at);
    --watching_;
    wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
}

std::chrono::steady_clock::time_point GroupCommitter::turn() const {
  using Clock = std::chrono::steady_clock;
  Clock::time_point oldest = Clock::time_point::max();
  for (const Running& batch : running_) {
    if (batch.started == Clock::time_point{}) continue;  // that thread is in none
    if (batch.large) return Clock::time_point::min();
    oldest = std::min(oldest, batch.started);
  }
  if (oldest == Clock::time_point::max()) return Clock::time_point::min();  // none under way
  return oldest + second_committer_after_;
}

bool GroupCommitter::wake_needed() const {
  // With no turn to wait for (second_committer_after_ 0), no committer ever watches.
  return watching_ == 0 || turn() == std::chrono::steady_clock::time_point::min();
}

void GroupCommitter::run_delivery() {
  std::vector<Taken> taken;
  std::vector<Taken> unpublished;  // queue files that could not be written yet
  Spool* unsynced = nullptr;       // whose log has D records of ours not known durable
  for (;;) {
    {
      std::unique_lock lock(taken_mutex_);
      const auto ready = [this] { return taken_stopping_ || !taken_.empty(); };
      if (unsynced != nullptr) {
        // Under load the next commit's fdatasync covers the D records within a moment
        // (SpoolLog::sync_all then has nothing to do); idle, this thread syncs them.
        taken_wake_.wait_for(lock, kRemovalsSyncedAfter, ready);
      } else if (unpublished.empty()) {
        taken_wake_.wait(lock, ready);
      } else {
        taken_wake_.wait_for(lock, std::chrono::seconds(1), ready);
      }
      if (taken_.empty() && taken_stopping_) break;
      // At most a Maildir batch's worth of copies at once (at least one message): later
      // ones would be delivered one by one.
      std::size_t count = 0;
      std::size_t copies = 0;
      while (count < taken_.size() &&
             (count == 0 ||
              copies + taken_[count].message.envelope.recipients.size() <= kDeliveryCopies)) {
        copies += taken_[count].message.envelope.recipients.size();
        taken_bytes_ -= bytes_of(taken_[count].message);
        ++count;
      }
      std::move(taken_.begin(), taken_.begin() + static_cast<std::ptrdiff_t>(count),
                std::back_inserter(taken));
      taken_.erase(taken_.begin(), taken_.begin() + static_cast<std::ptrdiff_t>(count));
    }
    taken_space_.notify_all();
    if (taken.empty() && unsynced != nullptr) {
      (void)unsynced->sync_removals();  // failed: the messages come back (at least once)
      unsynced = nullptr;
    }
    publish_waiting(unpublished);
    if (taken.empty()) continue;
    if (Spool* removed = deliver_taken(taken)) unsynced = removed;
    for (Taken& one : taken) {
      if (one.spool != nullptr) unpublished.push_back(std::move(one));
    }
    taken.clear();
  }
  if (unsynced != nullptr) (void)unsynced->sync_removals();
  publish_waiting(unpublished);  // a last try; what is left the next start queues from the log
}

void GroupCommitter::publish_waiting(std::vector<Taken>& unpublished) {
  std::vector<Taken> still;
  for (Taken& one : unpublished) {
    if (auto published = one.spool->publish_image(one.message); !published) {
      still.push_back(std::move(one));
      continue;
    }
    obs::Log("queue_file_written").kv("id", one.message.id);
    queued_(one.message.id);
  }
  unpublished.swap(still);
}

// Each message of taken is delivered, or queued, or left in taken with its spool set (a
// queue file to write again later); the others get spool null. Returns the spool whose log
// got D records (not synced here), or null.
Spool* GroupCommitter::deliver_taken(std::vector<Taken>& taken) {
  std::vector<StoredMessage> messages;
  messages.reserve(taken.size());
  for (Taken& one : taken)
    messages.push_back(std::move(one.message));
  std::vector<std::optional<std::vector<bool>>> results = deliverer_(messages);
  Spool* removed_any = nullptr;  // the spool whose log has the batch's D records
  for (std::size_t k = 0; k < messages.size(); ++k) {
    const StoredMessage& message = messages[k];
    Spool& spool = *taken[k].spool;
    std::vector<std::string> lines;
    if (k < results.size() && results[k]) {
      const std::vector<bool>& delivered_now = *results[k];
      const std::size_t count = std::min(delivered_now.size(), message.envelope.recipients.size());
      for (std::size_t r = 0; r < count; ++r) {
        if (delivered_now[r]) lines.push_back("delivered " + std::to_string(r));
      }
    }
    if (!lines.empty() && lines.size() == message.envelope.recipients.size()) {
      // The D record (and a file, if any, to spare/); synced by run_delivery.
      delivered_.fetch_add(1, std::memory_order_relaxed);
      if (in_memory(message)) {
        spool.remove_logged(message.id);
        removed_any = &spool;
        taken[k].spool = nullptr;
        continue;
      }
      if (auto removed = spool.remove(message.id); removed) {
        removed_any = &spool;
        taken[k].spool = nullptr;
        continue;
      }
      // Its queue file stays: the queue finds every copy in new/ and removes it.
    }
    // The rest waits in the queue: the state lines first, then queue/<id> when the message
    // had no file.
    append_state_lines(spool, message.id, lines);
    if (in_memory(message)) {
      if (auto published = spool.publish_image(message); !published) {
        // In the log all the same: tried again each second (run_delivery), and the next
        // start puts it in queue/ from the log.
        obs::Log("queue_file_not_written", obs::Level::kError)
            .kv("id", message.id)
            .kv("detail", published.error().message)
            .kv("note", "the message is safe in the commit log; tried again each second");
        continue;  // spool stays set: publish_waiting()
      }
    }
    taken[k].spool = nullptr;
    queued_(message.id);
  }
  for (std::size_t k = 0; k < taken.size(); ++k) {
    if (taken[k].spool != nullptr) taken[k].message = std::move(messages[k]);
  }
  return removed_any;
}

void GroupCommitter::take(std::vector<Pending>& batch,
                          std::vector<std::optional<SpoolError>>& errors, std::vector<bool>& done,
                          std::vector<std::optional<StoredMessage>>& taken) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    SpoolWriter& writer = *batch[i].writer;
    if (writer.held()) continue;
    auto message = writer.finish();
    if (!message) {
      errors[i] = message.error();
      done[i] = true;
      continue;
    }
    if (!takes_(*message)) continue;  // the usual way: flush_to_log() from kFinished
    auto logged = in_memory(*message) ? writer.log_without_file() : writer.flush_to_log();
    if (!logged) {
      errors[i] = logged.error();
      done[i] = true;
      continue;
    }
    taken[i] = std::move(*message);
  }
}

void GroupCommitter::deliver_now(std::vector<Pending>& batch,
                                 std::vector<std::optional<SpoolError>>& errors,
                                 std::vector<bool>& done,
                                 std::vector<std::vector<std::string>>& state_lines) {
  if (!deliverer_) return;
  std::vector<StoredMessage> messages;
  std::vector<std::size_t> positions;  // of each message in batch
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].writer->held()) continue;
    auto message = batch[i].writer->finish();
    if (!message) {
      errors[i] = message.error();
      done[i] = true;
      continue;
    }
    messages.push_back(std::move(*message));
    positions.push_back(i);
  }
  if (messages.empty()) return;
  std::vector<std::optional<std::vector<bool>>> results = deliverer_(messages);
  for (std::size_t k = 0; k < messages.size() && k < results.size(); ++k) {
    if (!results[k]) continue;
    const std::vector<bool>& delivered_now = *results[k];
    const std::size_t count =
        std::min(delivered_now.size(), messages[k].envelope.recipients.size());
    std::vector<std::string>& lines = state_lines[positions[k]];
    for (std::size_t r = 0; r < count; ++r) {
      if (delivered_now[r]) lines.push_back("delivered " + std::to_string(r));
    }
    if (!lines.empty() && lines.size() == messages[k].envelope.recipients.size()) {
      batch[positions[k]].writer->mark_delivered();
      delivered_.fetch_add(1, std::memory_order_relaxed);
      done[positions[k]] = true;
    }
  }
}

void GroupCommitter::commit_batch(std::vector<Pending>& batch) {
  std::vector<std::optional<SpoolError>> errors(batch.size());
  std::vector<bool> done(batch.size(), false);
  std::vector<std::vector<std::string>> state_lines(batch.size());
  std::vector<std::optional<StoredMessage>> taken(batch.size());
  if (queued_) {
    take(batch, errors, done, taken);
  } else {
    deliver_now(batch, errors, done, state_lines);
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (done[i] || taken[i]) continue;
    if (auto logged = batch[i].writer->flush_to_log(); !logged) errors[i] = logged.error();
  }
  // The first writer's sync_log() fdatasyncs the log and covers every append before it;
  // the others find theirs covered (SpoolLog::sync). Then the renames.
  bool synced_once = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (errors[i] || done[i]) continue;
    if (!synced_once) syncs_.fetch_add(1, std::memory_order_relaxed);
    synced_once = true;
    SpoolWriter& writer = *batch[i].writer;
    if (auto synced = writer.sync_log(); !synced) {
      errors[i] = synced.error();
      taken[i].reset();
      continue;
    }
    if (taken[i]) {
      // A message with a file goes to queue/ now (its descriptor stays valid for the
      // deliverer), one in memory only if it must wait there.
      if (!in_memory(*taken[i])) {
        if (auto published = writer.publish(); !published) {
          errors[i] = published.error();
          taken[i].reset();
          continue;
        }
      }
      writer.mark_taken();
      messages_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    append_state_lines(writer.spool(), writer.id(), state_lines[i]);
    if (auto published = writer.publish(); !published) {
      errors[i] = published.error();
    } else {
      batch[i].writer->mark_committed();
      messages_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // The messages taken wait for the delivery thread, which the writers no longer concern.
  std::vector<Taken> handed;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (taken[i] && !errors[i])
      handed.push_back(Taken{std::move(*taken[i]), &batch[i].writer->spool()});
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (errors[i]) {
      batch[i].done(base::unexpected(std::move(*errors[i])));
    } else {
      batch[i].done(base::Ok{});
    }
  }
  if (handed.empty()) return;
  {
    std::unique_lock lock(taken_mutex_);
    taken_space_.wait(lock, [this] {
      return (taken_.size() < kTakenMax && taken_bytes_ < kTakenMaxBytes) || taken_stopping_;
    });
    for (Taken& one : handed) {
      taken_bytes_ += bytes_of(one.message);
      taken_.push_back(std::move(one));
    }
  }
  taken_wake_.notify_one();
}

}  // namespace queue
