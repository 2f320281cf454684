// workers.h — the milter threads: a fixed number of threads (started at the first job) that
// run the conversations with milters (blocking, poll-bounded socket I/O, milter/client.h), so
// that no I/O thread ever waits on a milter. Work comes in strands: the jobs of one strand
// (one SMTP session's conversation with one milter) run one at a time, in the order posted;
// different strands run side by side. A job is bounded by its milter's timeout, so a slow
// milter holds a thread for at most that long.
//
// XXX: a thread per waiting conversation, not an event loop: with every thread waiting on a
// slow milter, other sessions' milter steps wait in the queue (and their checks' deadlines then
// apply the default action). kThreads bounds it; Postfix runs one process per session.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace milter {

class Workers {
 public:
  static constexpr std::size_t kThreads = 16;

  explicit Workers(std::size_t threads = kThreads);
  ~Workers();  // stop()
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  class Strand {
   public:
    // Runs `job` after the strand's earlier jobs, on a worker thread. After stop() the job is
    // dropped (its owner's deadline applies).
    void post(std::function<void()> job);

   private:
    friend class Workers;
    struct Shared;
    explicit Strand(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
    std::shared_ptr<Shared> shared_;
    std::weak_ptr<Strand> self_;
    std::mutex mutex_;
    std::deque<std::function<void()>> jobs_;
    bool scheduled_ = false;
  };
  std::shared_ptr<Strand> strand();

  // Runs no more jobs and joins the threads; jobs not started are dropped.
  void stop();

 private:
  std::shared_ptr<Strand::Shared> shared_;
};

}  // namespace milter
