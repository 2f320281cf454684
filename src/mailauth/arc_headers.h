// arc_headers.h — the three header fields of an ARC set (RFC 8617 §4.1): ARC-Seal (AS),
// ARC-Message-Signature (AMS) and ARC-Authentication-Results (AAR), parsed from the field
// value (after the colon, folding included, as received). Pure and strict, built on DKIM's
// tag-list grammar (dkim_signature.h, RFC 6376 §3.2):
// - AS (§4.1.3): tags i, a, b, cv, d, s, t; cv in none | pass | fail; no h= (the seal covers
//   the ARC fields only, §5.1.1); other tags are ignored.
// - AMS (§4.1.2): a DKIM-Signature without v= and with i= the instance.
// - AAR (§4.1.1): "i=" instance ";" then an Authentication-Results payload, not parsed.
// An instance is a decimal 1..kMaxArcInstances (§4.2.1: "at most 50"). A value over
// kMaxSignatureValue octets is refused before any work. Errors are words for the logs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/expected.h"
#include "mailauth/dkim_signature.h"
#include "mailauth/results.h"

namespace mailauth {

inline constexpr unsigned kMaxArcInstances = 50;

struct ArcSeal {
  unsigned instance = 0;
  std::string algorithm;  // "rsa-sha256" | "ed25519-sha256"
  std::string domain, selector;
  ArcResult chain_validation = ArcResult::kNone;  // cv=
  std::optional<std::int64_t> timestamp;          // t=
  std::string signature;                          // b= decoded
  // The b= value and its white space, as offsets into the parsed value (emptied when the
  // seal is hashed, RFC 8617 §5.1.1 with RFC 6376 §3.7).
  std::size_t b_region_start = 0, b_region_size = 0;
};
base::Expected<ArcSeal, std::string> parse_arc_seal(std::string_view value);

struct ArcMessageSignature {
  unsigned instance = 0;
  DkimSignature signature;                            // identity is "@" + d= (i= is the instance)
  std::size_t b_region_start = 0, b_region_size = 0;  // as for ArcSeal
};
base::Expected<ArcMessageSignature, std::string> parse_arc_message_signature(
    std::string_view value);

// The instance of an ARC-Authentication-Results value.
base::Expected<unsigned, std::string> parse_arc_results_instance(std::string_view value);

}  // namespace mailauth
