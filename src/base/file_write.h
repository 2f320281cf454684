// file_write.h — a whole file written so that a crash leaves either the old file or the new
// one, never a part: a temporary file beside it (".tmp"), written, given its mode, fsynced,
// renamed over the path, then the directory fsynced. Small files of configuration and keys
// that a command writes (smtpsd init, dev); the users and aliases files keep their owner and
// mode through auth::replace_file_atomically; the spool has its own.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/expected.h"

namespace base {

// Errors name the path and the system's reason.
Expected<Ok, std::string> write_file_atomically(const std::string& path, std::string_view content,
                                                mode_t mode);

// from_dir/from -> to_dir/to (directory descriptors), never replacing a file there:
// renameat2(RENAME_NOREPLACE), or, on a file system without it, a check then a rename (for a
// caller that alone makes names in to_dir). 0, or -1 with errno (EEXIST: the name is taken).
int rename_no_replace(int from_dir_fd, const char* from, int to_dir_fd, const char* to);

}  // namespace base
