// workers.cpp — see workers.h.
#include "milter/workers.h"

#include <atomic>
#include <utility>

namespace milter {

struct Workers::Strand::Shared {
  std::size_t thread_count = 0;
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::shared_ptr<Strand>> strands;  // scheduled strands with jobs
  std::vector<std::thread> threads;             // started at the first job
  // Set under `mutex` (so that a waiting thread cannot miss it), read without it after each job.
  std::atomic<bool> stopping{false};

  void schedule(std::shared_ptr<Strand> strand) {
    std::lock_guard lock(mutex);
    if (stopping) return;
    if (threads.empty()) {
      for (std::size_t i = 0; i < thread_count; ++i)
        threads.emplace_back([this] { work(); });
    }
    strands.push_back(std::move(strand));
    ready.notify_one();
  }

  void work() {
    for (;;) {
      std::shared_ptr<Strand> strand;
      {
        std::unique_lock lock(mutex);
        ready.wait(lock, [&] { return stopping || !strands.empty(); });
        if (stopping) return;
        strand = std::move(strands.front());
        strands.pop_front();
      }
      // The strand's jobs, one after the other, until it has none.
      for (;;) {
        std::function<void()> job;
        {
          std::lock_guard lock(strand->mutex_);
          if (strand->jobs_.empty()) {
            strand->scheduled_ = false;
            break;
          }
          job = std::move(strand->jobs_.front());
          strand->jobs_.pop_front();
        }
        job();
        if (stopping) return;
      }
    }
  }
};

Workers::Workers(std::size_t threads) : shared_(std::make_shared<Strand::Shared>()) {
  shared_->thread_count = threads == 0 ? 1 : threads;
}

Workers::~Workers() {
  stop();
}

std::shared_ptr<Workers::Strand> Workers::strand() {
  std::shared_ptr<Strand> strand(new Strand(shared_));
  strand->self_ = strand;
  return strand;
}

void Workers::Strand::post(std::function<void()> job) {
  bool schedule = false;
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
    if (!scheduled_) schedule = scheduled_ = true;
  }
  // The queue holds the strand while it has jobs (Workers hands out shared_ptrs only).
  if (schedule) {
    if (auto self = self_.lock()) shared_->schedule(std::move(self));
  }
}

void Workers::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
    shared_->strands.clear();
    threads = std::move(shared_->threads);
  }
  shared_->ready.notify_all();
  for (std::thread& thread : threads)
    if (thread.joinable()) thread.join();
}

}  // namespace milter
