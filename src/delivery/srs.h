// srs.h — the Sender Rewriting Scheme (draft-mehnle-spf-srs / the "SRS" paper of Shevek, as
// libsrs2 and postsrsd write it), so that mail this server forwards passes SPF at the
// destination: the envelope sender of a forwarded message is rewritten into an address of
// our SRS domain that only we can turn back into the original.
//
//   SRS0=HHHH=TT=orig-domain=orig-local@srs-domain      a sender we forward
//   SRS1=HHHH=first-forwarder==HHHH=TT=d=l@srs-domain    an SRS0 address we forward again
//
// HHHH: HMAC-SHA1 keyed with the secret over the fields after it, lower-cased and joined
// without separators, in base64 (RFC 4648 §4), the first hash_length characters. TT: the day
// (unix time / 86400) modulo 1024 in two base32 characters (A-Z, 2-7); an SRS0 address is
// valid for max_age_days after that day. SRS1 has no stamp: the first forwarder's SRS0 part,
// kept whole, carries it.
//
// Invariants:
// - Pure: no clock (now is a parameter), no files, no I/O; safe from any thread.
// - The first secret signs; every secret verifies (rotation: add the new one first, drop the
//   old one after max_age_days).
// - Hashes and stamps compare without regard to case (a relay may have folded the local
//   part); the hash is computed over lower-cased data for the same reason.
// - A reverse that fails says why (not SRS, malformed, bad hash, expired); nothing is
//   ever turned back without a valid hash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace delivery {

struct SrsOptions {
  std::string domain;                // lower-case: where the rewritten addresses live
  std::vector<std::string> secrets;  // at least one; the first signs
  unsigned max_age_days = 21;        // an SRS0 address older than this is refused
  unsigned hash_length = 4;          // characters of base64 kept (libsrs2's default)
};

enum class SrsError {
  kNotSrs,     // not an SRS0/SRS1 address of our SRS domain
  kMalformed,  // SRS0/SRS1 at our domain, but the fields do not parse
  kBadHash,    // no secret gives this hash
  kExpired,    // the day stamp is older than max_age_days (or in the future)
};
std::string_view to_string(SrsError error);

class Srs {
 public:
  explicit Srs(SrsOptions options) : options_(std::move(options)) {}

  // The address to use as envelope sender when forwarding mail from sender: SRS0 for an
  // ordinary address, SRS1 for an SRS0/SRS1 address of another forwarder. The null sender
  // and an address without a domain are returned unchanged, and so is one of our SRS domain.
  std::string forward(std::string_view sender, std::int64_t unix_now) const;

  // The address an SRS0/SRS1 address of our domain stands for (SRS0 → the original sender;
  // SRS1 → the first forwarder's SRS0 address), or why not.
  base::Expected<std::string, SrsError> reverse(std::string_view address,
                                                std::int64_t unix_now) const;

  const SrsOptions& options() const { return options_; }

 private:
  // Base64 of HMAC-SHA1(secret, lower-case(concatenation of parts)), hash_length characters.
  std::string hash(std::string_view secret, std::initializer_list<std::string_view> parts) const;
  bool hash_matches(std::string_view given, std::initializer_list<std::string_view> parts) const;

  SrsOptions options_;
};

// The two-character day stamp for unix time now (exposed for tests).
std::string srs_timestamp(std::int64_t unix_now);

}  // namespace delivery
