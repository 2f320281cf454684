// arc_fuzz.cpp — libFuzzer target for what a sender controls in ARC (RFC 8617): the three
// ARC field values (mailauth/arc_headers.h), each parser given the whole input, and a whole
// header section given to the chain validator (mailauth/arc_verifier.h), the input split at
// its first empty line into header section and body.
//
// Invariants checked (a violation traps):
// - no parser or the validator crashes, whatever the bytes;
// - an accepted ARC-Seal or ARC-Message-Signature came from at most 8192 octets, has an
//   instance in 1..50, a known algorithm, a non-empty signature, d= and s=, and a b= region
//   inside the value; an accepted AAR instance is in 1..50;
// - the validator never asks for more than 51 keys, and without any key it never passes
//   (a chain cannot validate without its signatures).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "mailauth/arc_headers.h"
#include "mailauth/arc_verifier.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto seal = mailauth::parse_arc_seal(input)) {
    check(input.size() <= mailauth::kMaxSignatureValue);
    check(seal->instance >= 1 && seal->instance <= mailauth::kMaxArcInstances);
    check(seal->algorithm == "rsa-sha256" || seal->algorithm == "ed25519-sha256");
    check(!seal->signature.empty() && !seal->domain.empty() && !seal->selector.empty());
    check(seal->b_region_start + seal->b_region_size <= input.size());
  }
  if (auto ams = mailauth::parse_arc_message_signature(input)) {
    check(input.size() <= mailauth::kMaxSignatureValue);
    check(ams->instance >= 1 && ams->instance <= mailauth::kMaxArcInstances);
    check(ams->signature.algorithm == "rsa-sha256" || ams->signature.algorithm == "ed25519-sha256");
    check(!ams->signature.signature.empty() && !ams->signature.body_hash.empty());
    check(ams->b_region_start + ams->b_region_size <= input.size());
  }
  if (auto instance = mailauth::parse_arc_results_instance(input))
    check(*instance >= 1 && *instance <= mailauth::kMaxArcInstances);

  const std::size_t end = input.find("\r\n\r\n");
  const std::string_view header = end == std::string_view::npos ? input : input.substr(0, end + 4);
  const std::string_view body =
      end == std::string_view::npos ? std::string_view() : input.substr(end + 4);
  mailauth::ArcVerifier verifier;
  verifier.header_section(header);
  verifier.body(body);
  verifier.end_of_body();
  check(verifier.key_names().size() <= mailauth::kMaxArcInstances + 1);
  check(verifier.verify({}).result != mailauth::ArcResult::kPass);
  return 0;
}
