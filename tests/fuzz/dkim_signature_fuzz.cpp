// dkim_signature_fuzz.cpp — libFuzzer target for the two DKIM tag lists a remote party
// controls: the DKIM-Signature field value of any incoming message and the TXT record at
// <selector>._domainkey.<domain> (mailauth/dkim_signature.h). The whole input is given to
// both parsers.
//
// Invariants checked (a violation traps):
// - neither parser crashes, whatever the bytes;
// - an accepted signature respects the bounds (value of at most 8192 octets, h= of at most
//   64 names that include From), has the required tags decoded (b=, bh=, d=, s= not empty),
//   a known algorithm and canonicalizations, an identity in d=, and x= after t=;
// - an accepted key record came from at most 8192 octets.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/ascii.h"
#include "fuzz_support.h"
#include "mailauth/dkim_signature.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto signature = mailauth::parse_dkim_signature(input);
  if (signature) {
    check(input.size() <= mailauth::kMaxSignatureValue);
    check(signature->signed_headers.size() <= mailauth::kMaxSignedHeaders);
    bool from = false;
    for (const auto& name : signature->signed_headers)
      from = from || base::equals_ignoring_case(name, "from");
    check(from);
    check(!signature->signature.empty() && !signature->body_hash.empty());
    check(!signature->domain.empty() && !signature->selector.empty());
    check(signature->algorithm == "rsa-sha256" || signature->algorithm == "ed25519-sha256" ||
          signature->algorithm == "rsa-sha1");
    for (const auto& canon : {signature->header_canon, signature->body_canon})
      check(canon == "simple" || canon == "relaxed");
    check(signature->identity.find('@') != std::string::npos);
    check(base::ascii_lowercase(signature->identity).ends_with(signature->domain));
    if (signature->timestamp && signature->expiration)
      check(*signature->expiration > *signature->timestamp);
  }
  auto record = mailauth::parse_dkim_key_record(input);
  if (record) check(input.size() <= mailauth::kMaxKeyRecord);
  return 0;
}
