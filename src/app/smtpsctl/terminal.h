// terminal.h — asking for a password on a terminal (smtpsctl send, smtpsctl user).
#pragma once

#include <signal.h>

#include <cstddef>
#include <string>

#include "base/expected.h"

namespace app {

// Turns echo off on the terminal fd for its scope (the newline still echoes, so the
// cursor moves on) and puts the settings back when it ends, also when SIGINT, SIGTERM,
// SIGHUP or SIGQUIT arrive meanwhile: they restore the terminal, then take their default
// course. Input typed ahead of the prompt is kept (a script may answer at once). One at a
// time in a process.
class EchoOff {
 public:
  explicit EchoOff(int fd);
  ~EchoOff();
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

  // False when fd is not a terminal: nothing was changed.
  bool active() const { return active_; }

 private:
  bool active_ = false;
  struct sigaction previous_[4] = {};
};

// Reads one line from fd, without the '\n' (and a '\r' before it); fails past max bytes,
// so that a huge input is not read whole. The caller wipes what it gets.
base::Expected<std::string, std::string> read_secret_line(int fd, std::size_t max);

}  // namespace app
