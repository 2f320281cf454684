#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

namespace base {

// A value one thread publishes and many read: store() puts a new one in service, load()
// returns the one in service; holders of an older one keep it unchanged.
//
// std::atomic<std::shared_ptr> alone is not lock-free in libstdc++: every load() takes a
// spin lock (a bit of the pointer), and the I/O threads, which read the users and aliases
// once per MAIL and RCPT, contended for it (1.8 % of the server's CPU at 100 messages per
// connection, bench/README.md). Here load() reads one atomic counter and returns the calling
// thread's own copy while nothing new was published; the shared one is read only after a
// store(). A thread keeps the last value it loaded (of each T) alive until its next load()
// or its end. Stores must not race one another (the users and aliases directories make
// theirs under their reload mutex): a reader could keep the loser's value under the
// winner's version until the next store.
template <typename T>
class Published {
 public:
  explicit Published(std::shared_ptr<const T> value) { store(std::move(value)); }
  Published(const Published&) = delete;
  Published& operator=(const Published&) = delete;

  std::shared_ptr<const T> load() const {
    thread_local Copy copy;  // one per thread for each T
    const std::uint64_t version = version_.load(std::memory_order_acquire);
    if (copy.version != version) {
      // Read after the version: the value is that version's or a later one. A later one is
      // kept under the older number and read again at the next call, never the reverse.
      copy.value = value_.load(std::memory_order_acquire);
      copy.version = version;
    }
    return copy.value;
  }

  void store(std::shared_ptr<const T> value) {
    value_.store(std::move(value), std::memory_order_release);
    version_.store(next_version(), std::memory_order_release);
  }

 private:
  struct Copy {
    std::uint64_t version = 0;  // never a published one
    std::shared_ptr<const T> value;
  };
  // Unique across every Published<T> of the process: a thread's copy is that of exactly one
  // store(), whichever object made it.
  static std::uint64_t next_version() {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  std::atomic<std::shared_ptr<const T>> value_;
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace base
