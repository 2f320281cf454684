// socket_file.h — the file of a unix socket this process serves: giving it a wider mode
// after bind(2) without ever following a symbolic link, and refusing a directory others may
// write to (where the file could be swapped between bind and chmod). Used by the local
// submission socket and the read-only listing socket (docs/architecture.md "Privileges").
#pragma once

#include <sys/types.h>

#include <string>

#include "base/expected.h"

namespace base {

// chmod of path, only if it is a socket owned by this process's effective user: never
// through a symbolic link (fchmodat with AT_SYMLINK_NOFOLLOW), and checked with lstat(2)
// after the change. The error names the path and why.
Expected<Ok, std::string> set_socket_mode(const std::string& path, mode_t mode);

// An error when directory is writable by users other than its owner (without the sticky
// bit) or owned by someone other than root or this process's effective user.
Expected<Ok, std::string> check_socket_directory(const std::string& directory);

}  // namespace base
