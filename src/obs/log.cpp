// log.cpp — see log.h. Timestamps are UTC with milliseconds (RFC 3339).
#include "obs/log.h"

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <ctime>

namespace obs {
namespace {

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};

std::string_view level_name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

void set_min_level(Level level) {
  min_level.store(static_cast<int>(level));
}

void append_value(std::string& out, std::string_view value) {
  if (!needs_quotes(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < ' ' || c == 0x7f) {
      out.append("\\x");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

Log::Log(std::string_view event, Level level)
    : enabled_(static_cast<int>(level) >= min_level.load(std::memory_order_relaxed)) {
  if (!enabled_) return;
  line_.reserve(256);
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char stamp[40];
  std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  line_.append(stamp, n);
  char ms[8] = {'.',
                static_cast<char>('0' + millis / 100),
                static_cast<char>('0' + millis / 10 % 10),
                static_cast<char>('0' + millis % 10),
                'Z',
                0,
                0,
                0};
  line_.append(ms, 5);
  line_.append(" level=");
  line_.append(level_name(level));
  line_.append(" event=");
  append_value(line_, event);
}

Log::~Log() {
  if (!enabled_) return;
  line_.push_back('\n');
  const char* data = line_.data();
  std::size_t left = line_.size();
  while (left > 0) {
    ssize_t written = ::write(STDERR_FILENO, data, left);
    if (written <= 0) return;  // nowhere to report a failing log
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

void write_preformatted(Level level, std::string_view key_values) {
  Log line("", level);
  line.replace_event(key_values);
}

Level parse_level(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "warning") return Level::kWarning;
  if (name == "error") return Level::kError;
  return Level::kInfo;
}

void Log::replace_event(std::string_view key_values) {
  if (!enabled_) return;
  std::size_t at = line_.rfind(" event=");
  if (at != std::string::npos) line_.resize(at + 1);
  line_.append(key_values);
}

Log& Log::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  line_.push_back(' ');
  line_.append(key);
  line_.push_back('=');
  append_value(line_, value);
  return *this;
}

Log& Log::kv(std::string_view key, std::int64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  return kv(key, std::string_view(buffer, static_cast<std::size_t>(end - buffer)));
}

Log& Log::kv(std::string_view key, std::uint64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  return kv(key, std::string_view(buffer, static_cast<std::size_t>(end - buffer)));
}

}  // namespace obs
