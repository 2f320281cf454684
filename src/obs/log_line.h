// log_line.h — reading back the lines obs::Log writes in the key=value format, for tools
// (`smtpsctl log summary`). The inverse of log.cpp's writer:
//   [<N>] [2026-12-05T18:00:00.123Z ] level=info event=accepted session=… from=a@b size=12
// ("<N>": the journal's priority on stderr, or a syslog datagram's "<PRI>")
// and the same message as a syslog daemon files it ("Dec  5 06:00:01 HOST smtpsd[PID]: " or
// an RFC 3339 time, then "HOST smtpsd[PID]: "). Values are bare or quoted; quoted ones have
// \" \\ and \xHH escapes. JSON lines ({"time":…}) are not read (the kv format is the default).
// Invariants: pure; a line that is not ours (no level= then event=) gives nothing; a
// malformed value ends the line's fields there (what was read stays).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace obs {

struct LogRecord {
  // Unix time in milliseconds, when the line says it (our stamp, or the syslog date read in
  // local time with the year of `now`, the year before when that lands in the future).
  std::optional<std::int64_t> time_ms;
  std::string level;
  std::string event;
  std::vector<std::pair<std::string, std::string>> fields;  // in order, after event

  // The value of key, or "" when the line has none.
  std::string_view get(std::string_view key) const;
};

std::optional<LogRecord> parse_log_line(std::string_view line, std::time_t now);

// "2026-12-05T18:00:00[.123](Z|+hh:mm)" (our stamps, RFC 3339), the whole text: Unix time
// in milliseconds; nothing for anything else.
std::optional<std::int64_t> parse_utc_time(std::string_view text);

}  // namespace obs
