// tls_policy_fuzz.cpp — libFuzzer target for what a remote domain's DNS feeds the outbound
// TLS policy: TLSA rdata as the resolver hands it over (dns/answer_decoding.h) and the DANE
// decision on it (delivery/dane.h), the `_smtp._tls` TXT record of TLS reporting
// (delivery/tls_report.h), and the counts file a restart reads back.
//
// Invariants checked (a violation traps):
// - no parser crashes, whatever the bytes;
// - a decoded TLSA record carries the whole association data (rdata minus its 3 octets) and
//   prints as "U S M hex"; a usable one has a DANE usage and a known selector and matching
//   type of the right length;
// - an accepted TLSRPT record has at least one non-empty URI;
// - counts read from any text write back as lines that read back to the same lines.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "delivery/dane.h"
#include "delivery/tls_report.h"
#include "dns/answer_decoding.h"
#include "fuzz_support.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  // The input as the rdata of one TLSA record (a resolver hands over any bytes).
  dns::RawResult raw;
  raw.type = dns::Type::kTlsa;
  raw.secure = true;
  raw.rdata.emplace_back(input);
  dns::Answer answer = dns::decode_answer(raw);
  if (answer.status == dns::Status::kOk) {
    check(answer.tlsa.size() == 1 && input.size() >= 3);
    const dns::TlsaRecord& record = answer.tlsa.front();
    check(record.data.size() == input.size() - 3);
    const std::string text = delivery::to_string(record);
    const std::string parameters = delivery::parameters_of(record);
    check(text.size() == parameters.size() + 1 + 2 * record.data.size());
    check(text.compare(0, parameters.size(), parameters) == 0);
    if (delivery::usable_tlsa(record)) {
      check(record.usage == 2 || record.usage == 3);
      check(record.selector <= 1 && record.matching_type <= 2);
    }
  }

  auto rua = delivery::parse_tlsrpt_record(input);
  if (rua) {
    check(!rua->empty());
    for (const std::string& uri : *rua)
      check(!uri.empty());
  }

  delivery::TlsReportCounts counts;
  counts.add_lines(input);
  const std::string lines = counts.lines();
  delivery::TlsReportCounts again;
  again.add_lines(lines);
  check(again.lines() == lines);
  return 0;
}
