// log_line.cpp — see log_line.h.
#include "obs/log_line.h"

#include <array>
#include <cctype>

namespace obs {
namespace {

bool digits(std::string_view text, std::size_t at, std::size_t count) {
  if (at + count > text.size()) return false;
  for (std::size_t i = at; i < at + count; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

int number(std::string_view text, std::size_t at, std::size_t count) {
  int value = 0;
  for (std::size_t i = at; i < at + count; ++i)
    value = value * 10 + (text[i] - '0');
  return value;
}

// Days from 1970-01-01 of a civil date (proleptic Gregorian).
std::int64_t days_from_civil(int year, unsigned month, unsigned day) {
  year -= month <= 2;
  const int era = (year >= 0 ? year : year - 399) / 400;
  const unsigned year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

// "2026-12-05T18:00:00[.123](Z|+hh:mm)": milliseconds since the epoch; the length read.
std::optional<std::int64_t> iso_time(std::string_view text, std::size_t& length) {
  if (!digits(text, 0, 4) || text.size() < 19 || text[4] != '-' || !digits(text, 5, 2) ||
      text[7] != '-' || !digits(text, 8, 2) || text[10] != 'T' || !digits(text, 11, 2) ||
      text[13] != ':' || !digits(text, 14, 2) || text[16] != ':' || !digits(text, 17, 2))
    return std::nullopt;
  std::int64_t ms = (days_from_civil(number(text, 0, 4), static_cast<unsigned>(number(text, 5, 2)),
                                     static_cast<unsigned>(number(text, 8, 2))) *
                         86400 +
                     number(text, 11, 2) * 3600 + number(text, 14, 2) * 60 + number(text, 17, 2)) *
                    1000;
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    std::size_t end = at + 1;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])))
      ++end;
    if (end - at - 1 >= 3) ms += number(text, at + 1, 3);
    at = end;
  }
  if (at < text.size() && text[at] == 'Z') {
    ++at;
  } else if (at + 6 <= text.size() && (text[at] == '+' || text[at] == '-') &&
             digits(text, at + 1, 2) && text[at + 3] == ':' && digits(text, at + 4, 2)) {
    const std::int64_t offset = (number(text, at + 1, 2) * 60 + number(text, at + 4, 2)) * 60000;
    ms += text[at] == '+' ? -offset : offset;
    at += 6;
  } else {
    return std::nullopt;
  }
  length = at;
  return ms;
}

// "Dec  5 06:00:01": the local time of the year of now (the year before, when later).
std::optional<std::int64_t> syslog_time(std::string_view text, std::time_t now) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (text.size() < 15 || text[3] != ' ' || text[6] != ' ' || text[9] != ':' || text[12] != ':')
    return std::nullopt;
  int month = -1;
  for (std::size_t i = 0; i < kMonths.size(); ++i) {
    if (text.substr(0, 3) == kMonths[i]) month = static_cast<int>(i);
  }
  const int day = text[4] == ' ' ? (digits(text, 5, 1) ? number(text, 5, 1) : -1)
                                 : (digits(text, 4, 2) ? number(text, 4, 2) : -1);
  if (month < 0 || day < 1 || !digits(text, 7, 2) || !digits(text, 10, 2) || !digits(text, 13, 2))
    return std::nullopt;
  std::tm today{};
  ::localtime_r(&now, &today);
  for (int back = 0; back < 2; ++back) {
    std::tm when{};
    when.tm_year = today.tm_year - back;
    when.tm_mon = month;
    when.tm_mday = day;
    when.tm_hour = number(text, 7, 2);
    when.tm_min = number(text, 10, 2);
    when.tm_sec = number(text, 13, 2);
    when.tm_isdst = -1;
    const std::time_t at = ::mktime(&when);
    if (at != -1 && at <= now + 86400) return static_cast<std::int64_t>(at) * 1000;
  }
  return std::nullopt;
}

// One value at the start of text (bare or quoted); the length read, or nullopt.
std::optional<std::string> value(std::string_view text, std::size_t& length) {
  if (text.empty() || text.front() != '"') {
    const std::size_t end = std::min(text.find(' '), text.size());
    length = end;
    return std::string(text.substr(0, end));
  }
  std::string out;
  for (std::size_t i = 1; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      length = i + 1;
      return out;
    }
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= text.size()) return std::nullopt;
    const char escaped = text[++i];
    if (escaped == '"' || escaped == '\\') {
      out.push_back(escaped);
    } else if (escaped == 'x' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      auto hex = [](char h) {
        return std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10;
      };
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;  // no closing quote
}

}  // namespace

std::optional<std::int64_t> parse_utc_time(std::string_view text) {
  std::size_t length = 0;
  auto ms = iso_time(text, length);
  if (!ms || length != text.size()) return std::nullopt;
  return ms;
}

std::string_view LogRecord::get(std::string_view key) const {
  for (const auto& [name, text] : fields) {
    if (name == key) return text;
  }
  return {};
}

std::optional<LogRecord> parse_log_line(std::string_view line, std::time_t now) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  LogRecord record;
  // "<N>" of the journal's stderr, "<PRI>" (up to 3 digits) of a syslog datagram.
  if (!line.empty() && line.front() == '<') {
    const std::size_t close = line.find('>');
    if (close >= 2 && close <= 4 && digits(line, 1, close - 1)) line.remove_prefix(close + 1);
  }
  std::size_t length = 0;
  if (auto stamp = iso_time(line, length)) {
    record.time_ms = stamp;
    line.remove_prefix(length);
  } else if (auto date = syslog_time(line, now)) {
    record.time_ms = date;
    line.remove_prefix(15);
  }
  // A syslog daemon's "HOST TAG[PID]: " (or our own line, which starts with level= here).
  const std::size_t level = line.find("level=");
  if (level == std::string_view::npos) return std::nullopt;
  if (level != 0 && line[level - 1] != ' ') return std::nullopt;
  line.remove_prefix(level);
  bool first = true;
  while (!line.empty()) {
    const std::size_t equals = line.find('=');
    if (equals == std::string_view::npos || equals == 0) break;
    std::string key(line.substr(0, equals));
    if (key.find(' ') != std::string::npos) break;
    line.remove_prefix(equals + 1);
    auto text = value(line, length);
    if (!text) break;
    line.remove_prefix(length);
    if (first) {
      record.level = std::move(*text);
      first = false;
    } else if (record.event.empty() && key == "event") {
      record.event = std::move(*text);
    } else if (!record.event.empty()) {
      record.fields.emplace_back(std::move(key), std::move(*text));
    }
    while (!line.empty() && line.front() == ' ')
      line.remove_prefix(1);
  }
  if (record.event.empty()) return std::nullopt;
  return record;
}

}  // namespace obs
