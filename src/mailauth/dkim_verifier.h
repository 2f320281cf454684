// dkim_verifier.h — DKIM verification of one message (RFC 6376 §6.1, RFC 8463, RFC 8301),
// streaming: the header section once, then the body in chunks as it arrives.
//
// Invariants:
// - The body is read once: one hasher per distinct (body canonicalization, l=) among the
//   signatures computes every body hash while the chunks stream by; nothing is kept.
// - Only the first `max_signatures` DKIM-Signature fields from the top are considered; the
//   others are ignored (not verified, no outcome: RFC 6376 §6.1 lets a verifier limit the
//   signatures it checks), and ignored_signatures() counts them for the logs.
// - verify() is const and does the CPU work (RSA, Ed25519): the caller runs it off the I/O
//   threads, once the TXT answer for key_name(index) is there. Outcomes that need no key
//   (a malformed signature, rsa-sha1, x= passed, a body hash mismatch) come from
//   outcome_without_key(), and verify() returns them too without looking at the key.
//
// Decisions (RFC 6376 leaves them to the verifier):
// - rsa-sha1 → fail (RFC 8301 §3.1: "MUST NOT consider signatures using rsa-sha1 valid").
// - An RSA key under 1024 bits whose signature verifies → policy (RFC 8301 §3.2 "MUST NOT
//   consider valid"; RFC 8601 §2.7.1 "policy"); over 8192 bits → permerror (a bound).
// - x= in the past → fail; t= more than kFutureTolerance in the future → fail.
// - Key answer: temporary or DNSSEC-bogus → temperror; NXDOMAIN or no TXT → permerror
//   "no key"; several TXT records (RFC 6376 §3.6.2.2 leaves the result undefined) → the first
//   that parses as a DKIM key record; none parses → permerror.
// - Empty p= (revoked, §3.6.1) → fail; a t=s key and an i= in a subdomain of d= → fail;
//   k= / h= / s= of the record that exclude this signature → permerror.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "dns/resolver.h"
#include "mailauth/dkim_canonicalization.h"
#include "mailauth/dkim_signature.h"
#include "mailauth/results.h"

namespace mailauth {

class DkimBodyHash;

inline constexpr std::int64_t kFutureTolerance = 900;  // seconds of clock skew for t=

struct DkimOutcome {
  DkimResult result = DkimResult::kNone;
  std::string domain, selector, algorithm, identity;
  std::string problem;   // in words, for logs and the result comment; empty on pass
  std::string b_prefix;  // the first 12 characters of b= (RFC 6008 header.b, at least 8)
  unsigned key_bits = 0;
  // The key says t=y (RFC 6376 §3.6.1: the domain is testing DKIM): a pass is reported but
  // must not count for DMARC, the message is treated as unsigned.
  bool testing = false;
};

class DkimVerifier {
 public:
  explicit DkimVerifier(std::size_t max_signatures = 8);
  ~DkimVerifier();
  DkimVerifier(const DkimVerifier&) = delete;
  DkimVerifier& operator=(const DkimVerifier&) = delete;

  // The header fields with their CRLFs, then the empty line, as received. Once.
  void header_section(std::string_view section);
  void body(std::string_view chunk);
  void end_of_body();

  std::size_t signature_count() const;     // those considered (at most max_signatures)
  std::size_t ignored_signatures() const;  // DKIM-Signature fields past max_signatures
  // "sel._domainkey.example.com", or "" when that signature did not parse.
  std::string key_name(std::size_t index) const;
  // The outcome when it is decided without the key, else nullopt.
  std::optional<DkimOutcome> outcome_without_key(std::size_t index, std::int64_t now) const;
  // `key` is the TXT answer for key_name(index); `now` in seconds since the epoch.
  DkimOutcome verify(std::size_t index, const dns::Answer& key, std::int64_t now) const;

 private:
  struct Entry {
    base::Expected<DkimSignature, std::string> parsed;
    std::size_t field = 0;           // index into fields_
    std::size_t b_region_start = 0;  // the b= value and its white space, within the field
    std::size_t b_region_size = 0;
    std::size_t hasher = 0;  // index into hashers_ (when parsed)
  };
  DkimOutcome describe(const Entry& entry) const;

  std::size_t max_signatures_;
  std::size_t ignored_ = 0;
  std::string header_section_;
  std::vector<HeaderField> fields_;
  std::vector<Entry> entries_;
  std::vector<std::unique_ptr<DkimBodyHash>> hashers_;
  bool ended_ = false;
};

}  // namespace mailauth
