// dmarc_record_fuzz.cpp — libFuzzer target for the DMARC record parser
// (src/mailauth/dmarc.h) and the From: field parser (src/mailauth/from_header.h).
//
// Invariants checked (a violation traps):
// - a record that parses starts with v=DMARC1, its pct is in 0..100, its fo is non-empty;
// - the From domains are lower case, non-empty, and present only without a problem;
// - the organizational domain of a name is a suffix of its lower-case form.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/ascii.h"
#include "mailauth/dmarc.h"
#include "mailauth/from_header.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto record = mailauth::parse_dmarc_record(text);
  if (record) {
    check(mailauth::is_dmarc_record(text));
    check(record->percent <= 100);
    check(!record->failure_options.empty());
  }
  auto from = mailauth::from_domains(text);
  check(from.domains.empty() || from.problem.empty());
  for (const auto& domain : from.domains) {
    check(!domain.empty());
    check(base::ascii_lowercase(domain) == domain);
  }
  std::string name(text.substr(0, text.find('\0')).substr(0, 300));
  auto organizational = mailauth::organizational_domain(name);
  std::string lower = base::ascii_lowercase(name);
  if (!lower.empty() && lower.back() == '.') lower.pop_back();
  check(lower.ends_with(organizational));
  return 0;
}
