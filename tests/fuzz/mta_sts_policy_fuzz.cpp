// mta_sts_policy_fuzz.cpp — libFuzzer target for the MTA-STS parsers a remote domain feeds us
// (delivery/mta_sts_policy.h): the policy file from its HTTPS server and the `_mta-sts` TXT
// record from its DNS. Input: the policy file; its first line also serves as a TXT record.
//
// Invariants checked (a violation traps):
// - neither parser crashes, whatever the bytes;
// - an accepted policy is complete (mode, max_age within 0..31557600, mx unless mode none),
//   its patterns are normalized host names (or "*." and one), and it survives
//   format_sts_policy → parse_sts_policy unchanged;
// - an accepted TXT id is 1 to 32 letters and digits;
// - every pattern of an accepted policy matches itself (a wildcard: itself with one label).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "delivery/mta_sts_policy.h"
#include "fuzz_support.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto policy = delivery::parse_sts_policy(input);
  if (policy) {
    check(policy->max_age >= 0 && policy->max_age <= delivery::kMaxStsAge);
    check(policy->mode == delivery::StsMode::kNone || !policy->mx.empty());
    for (const std::string& pattern : policy->mx) {
      const bool wildcard = pattern.starts_with("*.");
      const std::string host = wildcard ? pattern.substr(2) : pattern;
      check(delivery::normalized_host(host) == host);
      check(delivery::matches(*policy, wildcard ? "x." + host : host));
    }
    auto again = delivery::parse_sts_policy(delivery::format_sts_policy(*policy));
    check(again && *again == *policy);
  } else {
    check(!policy.error().empty());
  }
  auto id = delivery::parse_sts_record(input.substr(0, input.find('\n')));
  if (id) {
    check(!id->empty() && id->size() <= 32);
    for (char c : *id) {
      check((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
    }
  }
  return 0;
}
