// data_dir_owner.h — gives the data directory to the server's account when smtpsd starts as
// root and switches account (docs/architecture.md "Privileges"), without ever walking the
// mailboxes.
//
// Invariants:
// - Nothing is done when the top of data_dir already belongs to the account: a restart of a
//   running installation costs one lstat.
// - The mailboxes (<data_dir>/mail/<domain>/<local>) are never listed, entered or changed:
//   they can hold millions of files that a mail reader (Dovecot) moves while we would walk,
//   and their ownership is the delivery's business. The account gets mail/ and each
//   mail/<domain>/ (so that it can create new mailboxes), everything else it owns whole.
// - Symbolic links are changed, never followed.
// - An entry that disappears during a walk is skipped, not an error: a walk reads a tree
//   that other processes may change.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>

#include "base/expected.h"

namespace app {

struct WalkCounts {
  std::size_t visited = 0;   // entries whose visit succeeded (the top included)
  std::size_t vanished = 0;  // entries that disappeared between listing and visit or opening
};

// Calls `visit` for `top` and then for every entry under it, without following symbolic
// links; a directory is listed only when `enter(path)` is true (the top always is).
// `visit` returns 0 or an errno value: ENOENT (and ENOTDIR, a parent replaced meanwhile)
// counts the entry as vanished; any other value stops the walk with an error naming the
// path. A directory that cannot be opened or read because it is gone counts as vanished too.
base::Expected<WalkCounts, std::string> walk_tree(
    const std::string& top, const std::function<bool(const std::string& path)>& enter,
    const std::function<int(const std::string& path)>& visit);

// The walk smtpsd does as root before switching to uid:gid (see the invariants above).
// Returns how many entries were changed (0 when the top was already the account's).
base::Expected<WalkCounts, std::string> give_data_dir_to(const std::string& data_dir, uid_t uid,
                                                         gid_t gid);

}  // namespace app
