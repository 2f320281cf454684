// acme_json_fuzz.cpp — libFuzzer target for the JSON reader of ACME answers
// (src/acme/json.h): directory, orders, authorizations and problem documents come from the
// network.
//
// Invariants checked (a violation traps):
// - a parse never reads past its input and either gives a tree or a reason with a position;
// - what parses as an object answers get()/string_at() for any key without failing;
// - text that parses still parses with white space around it (RFC 8259 §2).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "acme/json.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = acme::parse_json(text);
  if (!parsed) {
    check(parsed.error().find(" at byte ") != std::string::npos ||
          parsed.error().find("too large") != std::string::npos);
    return 0;
  }
  for (std::string_view key : {"status", "type", "detail", "authorizations", ""}) {
    (void)parsed->get(key);
    (void)parsed->string_at(key);
  }
  if (size + 2 <= acme::kMaxJsonBytes) {
    check(acme::parse_json(" " + std::string(text) + "\n").has_value());
  }
  return 0;
}
