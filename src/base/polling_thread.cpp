// polling_thread.cpp — see polling_thread.h.
#include "base/polling_thread.h"

namespace base {

PollingThread::~PollingThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PollingThread::start(std::chrono::milliseconds interval, std::function<void()> poll) {
  if (thread_.joinable()) return;
  thread_ = std::thread([this, interval, poll = std::move(poll)] {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      poll();
      lock.lock();
    }
  });
}

}  // namespace base
