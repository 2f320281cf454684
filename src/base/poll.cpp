// poll.cpp — see poll.h.
#include "base/poll.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>

namespace base {

bool poll_until(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    // Rounded up: never back before the deadline.
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const long long slice = std::clamp<long long>(left.count(), 0, 60'000);
    pollfd entry{fd, events, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(slice));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return true;
    if (ready == 0 && left.count() <= 60'000) return false;
  }
}

}  // namespace base
