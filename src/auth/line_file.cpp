// line_file.cpp — the shared reader of auth/'s versioned line files (format: line_file.h).
//
// Invariants: line_file.h's; nothing here knows what an entry means.
#include "auth/line_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace auth {
namespace {

std::string errno_text(int error_number) {
  char buffer[256];
  return strerror_r(error_number, buffer, sizeof buffer);  // GNU variant: thread-safe
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i]))
      ++i;
    std::size_t start = i;
    while (i < line.size() && !is_blank(line[i]))
      ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

}  // namespace

base::Expected<base::Ok, std::string> read_line_file(std::string_view text,
                                                     const std::string& path_for_errors,
                                                     const LineFileFormat& format,
                                                     const LineFileEntry& on_entry) {
  bool have_version = false;
  std::size_t line_number = 0;
  std::size_t position = 0;
  while (position < text.size()) {
    ++line_number;
    std::size_t end = text.find('\n', position);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(position, end - position);
    position = end + 1;
    auto fail = [&](std::string_view why) {
      return base::unexpected(path_for_errors + ":" + std::to_string(line_number) + ": " +
                              std::string(why));
    };
    for (char c : line) {
      auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7F) return fail("control character in line");
    }
    auto fields = split_fields(line);
    if (fields.empty() || fields[0].starts_with('#')) continue;
    if (!have_version) {
      if (fields.size() != 2 || fields[0] != format.magic) {
        return fail("expected \"" + std::string(format.magic) + " " + std::string(format.version) +
                    "\" before the first " + std::string(format.entry_kind));
      }
      if (fields[1] != format.version) {
        return fail("unsupported " + std::string(format.file_kind) + " version " +
                    std::string(fields[1]));
      }
      have_version = true;
      continue;
    }
    if (auto accepted = on_entry(line_number, fields); !accepted) return fail(accepted.error());
  }
  return base::Ok{};
}

base::Expected<std::string, std::string> read_bounded_file(const std::string& path,
                                                           std::size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return base::unexpected(path + ": " + errno_text(errno));
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      return base::unexpected(path + ": " + errno_text(saved));
    }
    if (got == 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
    if (text.size() > max_size) {
      ::close(fd);
      return base::unexpected(path + ": file is larger than " +
                              std::to_string(max_size / (1024 * 1024)) + " MiB");
    }
  }
  ::close(fd);
  return text;
}

}  // namespace auth
