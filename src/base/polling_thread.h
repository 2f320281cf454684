// polling_thread.h — a thread that calls one function at a fixed interval until its owner
// goes away (the users and aliases files are watched this way).
//
// Invariants: the function never runs on the caller's thread, nor after the destructor has
// returned (the destructor wakes the thread and joins it, so a poll under way finishes
// first); start() runs at most one thread. Declare it as the owner's last member, so that
// it stops before anything the function uses is destroyed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace base {

class PollingThread {
 public:
  PollingThread() = default;
  ~PollingThread();
  PollingThread(const PollingThread&) = delete;
  PollingThread& operator=(const PollingThread&) = delete;

  // Calls poll every interval (the first call one interval from now); a second start()
  // does nothing.
  void start(std::chrono::milliseconds interval, std::function<void()> poll);

 private:
  std::mutex mutex_;  // guards stopping_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace base
