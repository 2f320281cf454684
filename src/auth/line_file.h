// line_file.h — reading the versioned line files of auth/ (the users file, the aliases
// file): a "<magic> <version>" line, then one entry per line, fields separated by runs of
// spaces or tabs, '#' comments and blank lines skipped.
//
// Invariants: a control character other than tab refuses the whole file; every refusal
// reads "<path>:<line>: <why>" with the 1-based line number; the version line must be the
// first line that is neither blank nor a comment. A file is read whole, never beyond the
// bound the caller gives.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace auth {

// What a line file says about itself, and the words its errors use.
struct LineFileFormat {
  std::string_view magic;       // "smtpsd-users"
  std::string_view version;     // "1"
  std::string_view file_kind;   // "users file": "unsupported users file version 2"
  std::string_view entry_kind;  // "user": "expected \"smtpsd-users 1\" before the first user"
};

// Called for each entry line with its number and fields; an error is the "why" of
// "<path>:<line>: <why>".
using LineFileEntry = std::function<base::Expected<base::Ok, std::string>(
    std::size_t line_number, const std::vector<std::string_view>& fields)>;

// Walks `text` (the file's bytes) and hands each entry to on_entry, stopping at the first
// refusal.
base::Expected<base::Ok, std::string> read_line_file(std::string_view text,
                                                     const std::string& path_for_errors,
                                                     const LineFileFormat& format,
                                                     const LineFileEntry& on_entry);

// The file's bytes, or "<path>: <errno text>", or "<path>: file is larger than <N> MiB"
// once more than max_size bytes (a whole number of MiB) have been read.
base::Expected<std::string, std::string> read_bounded_file(const std::string& path,
                                                           std::size_t max_size);

}  // namespace auth
