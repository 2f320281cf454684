// spf_record_fuzz.cpp — libFuzzer target for the SPF record parser, the macro expander and
// the pure evaluator (src/mailauth/spf.h).
//
// Invariants checked (a violation traps):
// - a record that parses starts with v=spf1 and is at most kMaxRecordOctets long;
// - a macro expansion is at most kMaxExpansionOctets long (plus one value);
// - the evaluation of the input as the sender domain's TXT record, every other name answered
//   with the same record or NXDOMAIN, ends within 300 lookups, with at most 10 DNS terms
//   and at most 2 void lookups counted past which it stops.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mailauth/spf.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto record = mailauth::parse_spf_record(text);
  if (record) {
    check(mailauth::is_spf_record(text));
    check(text.size() <= mailauth::kMaxRecordOctets);
  }
  mailauth::SpfMacroContext context;
  context.sender = "user@example.com";
  context.local_part = "user";
  context.sender_domain = context.domain = "example.com";
  context.client_ip = size % 2 ? "192.0.2.1" : "2001:db8::1";
  context.helo = "mail.example.org";
  for (auto use : {mailauth::SpfMacroUse::kDomainSpec, mailauth::SpfMacroUse::kExplanation}) {
    auto expanded = mailauth::expand_spf_macros(text, context, use);
    if (expanded) check(expanded->size() <= mailauth::kMaxExpansionOctets + 1024);
  }

  mailauth::SpfRequest request{context.client_ip, "user@example.com", "mail.example.org", "mx.test",
                               0};
  auto spf = std::make_shared<dns::Answer>();
  spf->status = dns::Status::kOk;
  spf->texts.emplace_back(text);
  auto nothing = std::make_shared<dns::Answer>();
  nothing->status = dns::Status::kNxDomain;
  mailauth::SpfAnswers answers;
  for (int lookups = 0;; ++lookups) {
    check(lookups <= 300);
    auto step = mailauth::evaluate_spf(request, answers);
    if (step.outcome) {
      check(step.outcome->dns_lookups <= mailauth::kMaxDnsTerms + 1);
      check(step.outcome->void_lookups <= mailauth::kMaxVoidLookups + 1);
      break;
    }
    check(!answers.count({step.next.name, step.next.type}));
    bool record_name = step.next.type == dns::Type::kTxt && step.next.name.size() % 3 == 0;
    answers[{step.next.name, step.next.type}] =
        step.next.name == "example.com" || record_name ? spf : nothing;
  }
  return 0;
}
