// json.h — the JSON that ACME servers send (RFC 8555 §7: directory, account, order,
// authorization, challenge, problem documents; RFC 8259 grammar), read into a small tree.
//
// Invariants: input is bounded (kMaxJsonBytes, kMaxJsonDepth, kMaxJsonNodes: values of any
// kind, so that a hostile answer cannot make a tree of hundreds of megabytes); anything that is not
// valid RFC 8259 JSON is refused with a reason; strings are UTF-8 with \u escapes decoded
// (surrogate pairs joined, a lone surrogate refused). Numbers are kept as doubles: ACME
// sends none we act on but Retry-After-like hints, which come as headers. Pure: fuzzed by
// tests/fuzz/acme_json_fuzz.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace acme {

inline constexpr std::size_t kMaxJsonBytes = 1 << 20;
inline constexpr int kMaxJsonDepth = 32;
inline constexpr std::size_t kMaxJsonNodes = 10'000;  // an ACME answer has a few dozen

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;         // kString
  std::vector<Json> items;  // kArray
  // kObject: member i is keys[i] → values[i], in the document's order (two vectors: a pair
  // of an incomplete type may not be instantiated here).
  std::vector<std::string> keys;
  std::vector<Json> values;

  // The member named key of an object (the first one), else null.
  const Json* get(std::string_view key) const;
  // The member's string, or "" when it is absent or not a string.
  std::string string_at(std::string_view key) const;
};

base::Expected<Json, std::string> parse_json(std::string_view text);

}  // namespace acme
