// terminal.cpp — see terminal.h.
#include "app/smtpsctl/terminal.h"

#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace app {
namespace {

constexpr int kSignals[4] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// For the signal handler: the terminal changed and its settings before (one at a time).
int changed_fd = -1;
termios saved;
volatile sig_atomic_t changed = 0;

void restore_and_reraise(int signal_number) {
  if (changed) ::tcsetattr(changed_fd, TCSAFLUSH, &saved);
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

}  // namespace

EchoOff::EchoOff(int fd) {
  if (::tcgetattr(fd, &saved) != 0) return;
  struct sigaction action {};
  action.sa_handler = restore_and_reraise;
  sigemptyset(&action.sa_mask);
  for (int i = 0; i < 4; ++i)
    ::sigaction(kSignals[i], &action, &previous_[i]);
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  changed_fd = fd;
  changed = 1;
  // TCSANOW, not TCSAFLUSH: a password typed ahead (or written by a script as soon as the
  // prompt appears) must not be thrown away, or the read would wait forever.
  ::tcsetattr(fd, TCSANOW, &quiet);
  active_ = true;
}

EchoOff::~EchoOff() {
  if (!active_) return;
  ::tcsetattr(changed_fd, TCSAFLUSH, &saved);
  changed = 0;
  for (int i = 0; i < 4; ++i)
    ::sigaction(kSignals[i], &previous_[i], nullptr);
}

base::Expected<std::string, std::string> read_secret_line(int fd, std::size_t max) {
  std::string line;
  char c = 0;
  auto wiped = [&line](std::string error) {
    if (!line.empty()) sodium_memzero(line.data(), line.size());
    return base::Expected<std::string, std::string>(base::unexpected(std::move(error)));
  };
  for (;;) {
    ssize_t got = ::read(fd, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return wiped(std::string("cannot read the password: ") + std::strerror(errno));
    if (got == 0 || c == '\n') break;
    line += c;
    if (line.size() > max + 1) {  // + 1: a '\r' before the '\n'
      return wiped("the password is longer than " + std::to_string(max) + " bytes");
    }
  }
  c = 0;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace app
