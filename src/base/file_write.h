// file_write.h — a whole file written so that a crash leaves either the old file or the new
// one, never a part: a temporary file beside it (".tmp"), written, given its mode, fsynced,
// then renamed over the path. Small files of configuration and keys; not the spool.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/expected.h"

namespace base {

// Errors name the path and the system's reason.
Expected<Ok, std::string> write_file_atomically(const std::string& path, std::string_view content,
                                                mode_t mode);

}  // namespace base
