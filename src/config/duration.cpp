// duration.cpp — see duration.h.
#include "config/duration.h"

#include "base/duration_text.h"

#include <fmt/format.h>

#include <cstdint>
#include <limits>

namespace config {
namespace {

struct Unit {
  std::string_view name;
  std::int64_t milliseconds;
};

constexpr Unit kUnits[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000},
};

constexpr std::string_view kSyntax =
    "a duration is whole seconds (900) or a number and a unit: \"250ms\", \"1.5s\", \"15m\", "
    "\"2h\", \"7d\"";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

base::Expected<std::chrono::milliseconds, std::string> parse_duration(std::string_view text) {
  auto refuse = [&](std::string_view why) {
    return base::unexpected(fmt::format("\"{}\": {} ({})", text, why, kSyntax));
  };
  std::size_t at = 0;
  std::int64_t whole = 0;
  std::size_t whole_digits = 0;
  for (; at < text.size() && is_digit(text[at]); ++at, ++whole_digits) {
    if (whole > (std::numeric_limits<std::int64_t>::max() - 9) / 10) return refuse("too large");
    whole = whole * 10 + (text[at] - '0');
  }
  std::int64_t fraction = 0;
  std::int64_t scale = 1;
  if (at < text.size() && text[at] == '.') {
    ++at;
    std::size_t fraction_digits = 0;
    for (; at < text.size() && is_digit(text[at]); ++at, ++fraction_digits) {
      if (fraction_digits == 9) return refuse("finer than a millisecond");
      fraction = fraction * 10 + (text[at] - '0');
      scale *= 10;
    }
    if (fraction_digits == 0) return refuse("no digit after the decimal point");
  }
  if (whole_digits == 0) {
    return refuse(text.starts_with('-') ? "must not be negative" : "must start with a number");
  }
  std::string_view unit_text = text.substr(at);
  if (unit_text.empty()) return refuse("no unit");
  const Unit* unit = nullptr;
  for (const Unit& candidate : kUnits) {
    if (candidate.name == unit_text) unit = &candidate;
  }
  if (unit == nullptr) return refuse(fmt::format("unknown unit \"{}\"", unit_text));
  if (whole > std::numeric_limits<std::int64_t>::max() / unit->milliseconds - 1) {
    return refuse("too large");
  }
  // fraction < 10^9 and a unit ≤ 8.64·10^7 ms: the product fits in 64 bits.
  std::int64_t fraction_ms = fraction * unit->milliseconds;
  if (fraction_ms % scale != 0) return refuse("finer than a millisecond");
  return std::chrono::milliseconds(whole * unit->milliseconds + fraction_ms / scale);
}

std::string format_duration(std::chrono::milliseconds duration) {
  return base::duration_text(duration);
}

}  // namespace config
