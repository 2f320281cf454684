// mta_sts_policy.h — MTA-STS (RFC 8461), the pure part: the policy file (§3.2), the
// `_mta-sts` TXT record (§3.1) and MX host matching (§4.1). No I/O, no clock; the fetching,
// caching driver is delivery/mta_sts.h (docs/architecture.md "MTA-STS").
//
// Invariants:
// - A parsed Policy is complete: version STSv1, a mode, a max_age (at most 31557600 s, larger
//   values are cut to it), and at least one mx pattern unless the mode is "none".
// - Patterns are stored lower-case without a trailing dot; a wildcard is "*." followed by a
//   name of at least two labels.
// - Input is bounded (kMaxPolicyBytes); every refusal says which line and why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace delivery {

enum class StsMode { kEnforce, kTesting, kNone };
std::string_view to_string(StsMode mode);  // "enforce", "testing", "none"

// RFC 8461 §3.2: "max_age ... maximum value of 31557600".
inline constexpr std::int64_t kMaxStsAge = 31557600;
// The largest policy body accepted; RFC 8461 §3.3 asks for a bound, 64 KiB is common practice.
inline constexpr std::size_t kMaxPolicyBytes = 64 * 1024;

struct StsPolicy {
  StsMode mode = StsMode::kNone;
  std::vector<std::string> mx;  // "mail.example.com", "*.example.net"
  std::int64_t max_age = 0;     // seconds
  bool operator==(const StsPolicy&) const = default;
};

// The policy file (RFC 8461 §3.2): "key: value" lines ending in LF or CRLF; unknown keys are
// ignored; blank lines are skipped. Errors: "line 3: mode must be enforce, testing or none".
base::Expected<StsPolicy, std::string> parse_sts_policy(std::string_view text);

// The policy file as we publish it (CRLF lines, version first): parse_sts_policy reads it back.
std::string format_sts_policy(const StsPolicy& policy);

// One `_mta-sts` TXT record (RFC 8461 §3.1): "v=STSv1; id=20160831085700Z;". Returns the id.
base::Expected<std::string, std::string> parse_sts_record(std::string_view text);

// Of all TXT records at `_mta-sts.<domain>`: those not starting with "v=STSv1" are dropped;
// exactly one must remain and be valid (§3.1), else there is no policy (the error says why).
base::Expected<std::string, std::string> select_sts_record(const std::vector<std::string>& texts);

// Whether an MX host name matches one of the policy's patterns (RFC 8461 §4.1): exact, or
// "*.example.com" matching exactly one more leftmost label; ASCII case-insensitive; a
// trailing dot on the host is ignored.
bool matches(const StsPolicy& policy, std::string_view mx_host);
bool matches_pattern(std::string_view pattern, std::string_view mx_host);

// A DNS host name as MTA-STS takes it: LDH labels of 1-63 octets, at most 253 octets, at
// least two labels; lower-cased, without the trailing dot. Empty on anything else.
std::string normalized_host(std::string_view name);

}  // namespace delivery
