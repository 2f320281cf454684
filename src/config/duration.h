// duration.h — the one syntax of durations in the configuration file.
//
// A duration is whole seconds as an integer (`failure_window = 900`, the original syntax,
// still valid), or a string of a decimal number and a unit: "250ms", "1.5s", "15m", "2h",
// "7d". The result is whole milliseconds: a value finer than that ("0.5ms") is refused, as
// are a negative number, a missing or unknown unit, and anything that overflows. The
// reader in config.cpp turns an error into one that names file, line and key; the range of
// each key is checked there.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/expected.h"

namespace config {

// "250ms" → 250 ms; the error says what is wrong with the text (without the key).
base::Expected<std::chrono::milliseconds, std::string> parse_duration(std::string_view text);

// The shortest text parse_duration() reads back to the same value: "900s", "250ms", "1500ms".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace config
