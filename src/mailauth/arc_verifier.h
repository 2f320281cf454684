// arc_verifier.h — ARC chain validation of one message (RFC 8617 §5.2), streaming like the
// DKIM verifier: the header section once, then the body in chunks, then verify() with the
// keys' TXT answers, off the I/O thread (RSA/Ed25519 work).
//
// The steps of §5.2, in order; the first that fails decides "fail" with its reason:
//   1. collect the ARC sets: no ARC field at all → "none"; more than kMaxArcInstances sets'
//      worth of fields, a field that does not parse, or a second field of a kind for an
//      instance → fail;
//   2. the latest ARC-Seal says cv=fail → fail;
//   3. instances 1..N each with exactly one AAR, AMS and AS; cv=none at 1, cv=pass above;
//   4. the AMS of instance N verifies (DKIM rules with its own h= and c=, RFC 8617 §5.1.2;
//      its body hash computed while the body streams, by dkim_body_hash.h);
//   5. every AS from N down to 1 verifies (relaxed canonicalization of the AAR, AMS and AS of
//      instances 1..i in that order, the AS being verified with b= empty, §5.1.1).
// Keys come from <s>._domainkey.<d> like DKIM's (dkim_public_key.h); only rsa-sha256 of at
// least 1024 bits and ed25519-sha256 verify. Any key problem (none, temporary, revoked) is a
// fail: ARC only ever relaxes a policy, so an unverifiable chain must count for nothing.
// The oldest-pass of §5.2 step 6 is not computed (it needs a body hash per AMS).
//
// Invariants: the body is read once, by one hasher, and only when steps 1–3 passed; the
// work is bounded by kMaxArcInstances (one AMS and at most 50 seals, at most 51 key names).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"
#include "mailauth/arc_headers.h"
#include "mailauth/dkim_canonicalization.h"
#include "mailauth/results.h"

namespace mailauth {

class DkimBodyHash;

struct ArcOutcome {
  ArcResult result = ArcResult::kNone;
  std::string problem;     // why it failed, in words; empty on pass and none
  unsigned instances = 0;  // N, when the sets were collected
  std::string sealer;      // d= of the latest ARC-Seal (lower case), when it parsed
};

class ArcVerifier {
 public:
  ArcVerifier();
  ~ArcVerifier();
  ArcVerifier(const ArcVerifier&) = delete;
  ArcVerifier& operator=(const ArcVerifier&) = delete;

  // Whether a header section holds any ARC field: a scan of line starts, no parsing; a
  // message without ARC fields needs no verifier at all.
  static bool has_arc_fields(std::string_view section);

  // The header fields with their CRLFs, then the empty line, as received. Once.
  void header_section(std::string_view section);
  void body(std::string_view chunk);
  void end_of_body();

  // The outcome when steps 1–3 decide it (none, or fail), else nullopt.
  std::optional<ArcOutcome> outcome_without_keys() const;
  // The TXT names to look up ("sel._domainkey.example.org"), without duplicates; empty when
  // outcome_without_keys() decides.
  const std::vector<std::string>& key_names() const { return key_names_; }
  // keys[k] answers key_names()[k] (null: no answer). After end_of_body().
  ArcOutcome verify(std::span<const dns::AnswerPtr> keys) const;

 private:
  struct Set {
    std::optional<std::size_t> results, message, seal;  // indices into fields_
    std::optional<ArcMessageSignature> ams;
    std::optional<ArcSeal> as;
  };
  std::size_t key_index(const std::string& domain, const std::string& selector) const;
  std::size_t value_start(std::size_t field) const;  // offset of the value in the field text

  std::string header_section_;
  std::vector<HeaderField> fields_;
  std::vector<Set> sets_;  // sets_[i - 1] is instance i
  ArcOutcome early_;       // the outcome when decided by steps 1–3
  bool decided_ = true;    // early_ holds the outcome
  std::vector<std::string> key_names_;
  std::unique_ptr<DkimBodyHash> body_hash_;
  bool ended_ = false;
};

}  // namespace mailauth
