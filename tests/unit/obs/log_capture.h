// log_capture.h — what obs::Log writes, captured for a test: while a LogCapture lives, the
// log output is a datagram socket of its own (obs::set_output, as for syslog), drained by a
// thread so that writers never wait. Lines are kept without the syslog header:
// "level=info event=delivered id=… rcpt=…". Every line written before a call to count() or
// all() is seen by it. One LogCapture at a time (the output is process-wide).
#pragma once

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "obs/log.h"

namespace obs_test {

class LogCapture {
 public:
  LogCapture() {
    char pattern[] = "/tmp/smtpsd-log-capture-XXXXXX";
    if (::mkdtemp(pattern) != nullptr) directory_ = pattern;
    path_ = directory_ + "/log.sock";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, sizeof address.sun_path - 1);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
    int size = 1 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    obs::set_output(obs::make_syslog_sink(path_, LOG_MAIL));
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd wait{fd_, POLLIN, 0};
        ::poll(&wait, 1, 5);
        std::lock_guard lock(mutex_);
        drain();
      }
    });
  }
  ~LogCapture() {
    obs::set_output(nullptr);
    stop_ = true;
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(directory_.c_str());
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Lines that contain needle.
  std::size_t count(std::string_view needle) {
    std::lock_guard lock(mutex_);
    drain();
    return static_cast<std::size_t>(std::count_if(lines_.begin(), lines_.end(), [&](auto& l) {
      return l.find(needle) != std::string::npos;
    }));
  }
  std::string all() {
    std::lock_guard lock(mutex_);
    drain();
    std::string out;
    for (const std::string& line : lines_)
      out += line + "\n";
    return out;
  }

 private:
  // With mutex_ held: every datagram waiting, header ("<PRI>Mmm dd hh:mm:ss smtpsd[pid]: ")
  // cut off.
  void drain() {
    char buffer[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) return;
      std::string_view line(buffer, static_cast<std::size_t>(n));
      std::size_t start = line.find("]: ");
      if (start != std::string_view::npos) line.remove_prefix(start + 3);
      lines_.emplace_back(line);
    }
  }

  std::string directory_ = "/tmp";
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> lines_;  // mutex_
  std::thread thread_;
};

}  // namespace obs_test
