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
#include "queue/group_commit.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

namespace queue {

GroupCommitter::GroupCommitter(unsigned threads) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i)
    threads_.emplace_back([this] { run(); });
}

GroupCommitter::~GroupCommitter() {
  stop();
}

void GroupCommitter::commit_async(SpoolWriter& writer, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back(Pending{&writer, std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(base::unexpected(SpoolError{"commit of " + writer.id() + ": the committer is stopped",
                                   /*transient=*/true, 0}));
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
}

GroupCommitter::Stats GroupCommitter::stats() const {
  return Stats{messages_.load(std::memory_order_relaxed), syncs_.load(std::memory_order_relaxed),
               delivered_.load(std::memory_order_relaxed)};
}

void GroupCommitter::run() {
  std::vector<Pending> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopping, and nothing left to commit
      batch.swap(pending_);
    }
    commit_batch(batch);
    batch.clear();
  }
}

bool GroupCommitter::deliver_now(SpoolWriter& writer, std::optional<SpoolError>& error,
                                 std::vector<std::string>& delivered_lines) {
  if (!deliverer_ || writer.held()) return false;
  auto message = writer.finish();
  if (!message) {
    error = message.error();
    return true;
  }
  std::optional<std::vector<bool>> done = deliverer_(*message);
  if (!done) return false;
  const std::size_t count = std::min(done->size(), message->envelope.recipients.size());
  std::size_t delivered = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if ((*done)[i]) {
      ++delivered;
      delivered_lines.push_back("delivered " + std::to_string(i));
    }
  }
  if (delivered == 0 || delivered < message->envelope.recipients.size()) return false;
  writer.mark_delivered();
  delivered_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void GroupCommitter::commit_batch(std::vector<Pending>& batch) {
  std::vector<std::optional<SpoolError>> errors(batch.size());
  std::vector<bool> done(batch.size(), false);
  std::vector<std::vector<std::string>> state_lines(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    done[i] = deliver_now(*batch[i].writer, errors[i], state_lines[i]);
    if (done[i]) continue;
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
      continue;
    }
    for (const std::string& line : state_lines[i])
      writer.spool().append_state(writer.id(), line);  // before queue/: the scheduler reads it
    if (auto published = writer.publish(); !published) {
      errors[i] = published.error();
    } else {
      batch[i].writer->mark_committed();
      messages_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (errors[i]) {
      batch[i].done(base::unexpected(std::move(*errors[i])));
    } else {
      batch[i].done(base::Ok{});
    }
  }
}

}  // namespace queue
