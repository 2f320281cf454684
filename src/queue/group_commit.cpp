// group_commit.cpp — the committer threads of GroupCommitter (see group_commit.h).
//
// Order per batch, which is what makes a batch as safe as one commit() each:
//   1. every file: write the rest, fsync, close (a failure removes tmp/<id>);
//   2. every file that got through: rename tmp/<id> → queue/<id>;
//   3. each spool touched: ONE fsync of queue/ — if it fails, every message of that spool
//      in the batch is removed again and fails (Postfix mail_stream.c: a failed fsync is a
//      failed message);
//   4. every done callback, success only for messages whose rename is now durable.
#include "queue/group_commit.h"

#include <optional>
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
  return Stats{messages_.load(std::memory_order_relaxed), syncs_.load(std::memory_order_relaxed)};
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

void GroupCommitter::commit_batch(std::vector<Pending>& batch) {
  std::vector<std::optional<SpoolError>> errors(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (auto logged = batch[i].writer->flush_to_log(); !logged) errors[i] = logged.error();
  }
  // The first writer's sync_log() fdatasyncs the log and covers every append before it;
  // the others find theirs covered (SpoolLog::sync). Then the renames.
  bool synced_once = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (errors[i]) continue;
    if (!synced_once) syncs_.fetch_add(1, std::memory_order_relaxed);
    synced_once = true;
    if (auto synced = batch[i].writer->sync_log(); !synced) {
      errors[i] = synced.error();
    } else if (auto published = batch[i].writer->publish(); !published) {
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
