// startup_check.h — what would stop the server from starting (or from reloading later) that
// the configuration file alone does not show, for `smtpsd check` (and so for the systemd
// unit's pre-start step):
// - files the server reads as its account that the account cannot read: the file, and
//   search rights on every directory above it, from its owner, group (the account's groups)
//   and mode bits (ACLs are not read). Started as root, the server reads them first as root,
//   so it starts, but a reload after one changes (a renewed certificate, an edited users
//   file) is refused: a warning. Checked as the account itself (the systemd unit starts it
//   as User=): an error, the start would fail;
// - a relay password file or SRS secrets file that does not exist;
// - a data directory the account cannot enter and write (the server makes it the account's
//   own at start when started as root, so then only the directories above it count);
// - listening ports already in use, or not bindable (below 1024 without root or
//   CAP_NET_BIND_SERVICE). A port held by this configuration's running server (its control
//   socket answers) is a note, not an error: a restart stops that server first;
// - with [local_submission]: a socket directory, or a configuration, that other local users
//   cannot reach or read (a warning: sendmail works for root and the account only);
// - the Debian package's "not-configured" marker beside the configuration (a warning: the
//   enabled unit skips its start while it exists, see init_command.h).
// Each problem is one line "FILE: what is wrong; the fix" on stderr.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace app {

struct StartupProblem {
  enum class Severity { kError, kWarning, kNote };  // only errors fail the check
  std::string text;
  Severity severity = Severity::kError;
};

// The account is config.user (and config.group) when the check runs as root, else the
// caller itself.
std::vector<StartupProblem> check_startup(const config::Config& config);

}  // namespace app
