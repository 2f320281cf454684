// privileges.h — least privilege after start-up (docs/architecture.md "Security rules"): started as
// root, smtpsd binds its ports and reads its keys, then becomes an unprivileged account for good.
//
//   [server]
//   user = "smtpsd"       # switch to this account (and its primary group, or `group`)
//   run_as_root = true    # the only way to keep root; refused together with `user`
//
// Started as root with neither: the start is refused with a message that says what to set.
// Started as another user: nothing to drop; `user` naming a different account is a warning.
// The shipped systemd unit starts smtpsd as its account with CAP_NET_BIND_SERVICE alone, so
// this file has nothing to do there (docs/architecture.md "Privileges").
#pragma once

#include <sys/types.h>
#include <functional>
#include <string>
#include <vector>

#include "base/expected.h"

namespace app {

struct PrivilegeSettings {
  std::string user;
  std::string group;
  bool run_as_root = false;
  // Made owned by the account before the switch, so that it can write there: the data
  // directory (when its top is owned by someone else, and never inside the mailboxes:
  // data_dir_owner.h) and the control socket.
  std::string data_dir;
  std::string control_socket;
};

struct PrivilegeOutcome {
  bool dropped = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string note;  // for the log: what was done and why
};

// Checks the settings against the process's identity and switches for good (setgroups,
// setgid, setuid, then a check that root cannot be regained). Call once, after the
// listeners are bound and the keys are read, before the server runs.
base::Expected<PrivilegeOutcome, std::string> drop_privileges(const PrivilegeSettings& settings);

// The checks alone, without switching (for `smtpsd check` and for the start-up refusal
// before anything is opened).
base::Expected<PrivilegeOutcome, std::string> plan_privileges(const PrivilegeSettings& settings);

// Runs `work`, which writes into data_dir before the switch, with an identity that cannot be
// tricked into writing elsewhere. The rule: root never writes into a directory the account can
// change. Started as root to become an account whose data_dir top is already its own (any
// start after the first), `work` runs with the account's identity (setgroups, setegid,
// seteuid; glibc applies them to every thread) and root is taken back afterwards; a failure
// to take it back is an error (the start stops). Otherwise (first start: data_dir is not yet
// the account's, so the account cannot have planted a link in it; or not root) `work` runs
// as the process is, and drop_privileges's walk gives what it made.
base::Expected<base::Ok, std::string> write_as_data_dir_owner(
    const PrivilegeSettings& settings,
    const std::function<base::Expected<base::Ok, std::string>()>& work);

}  // namespace app
