// dkim_signature.h — the two tag lists of DKIM: the DKIM-Signature header field (RFC 6376
// §3.5) and the key record published at <selector>._domainkey.<domain> (RFC 6376 §3.6.1,
// RFC 8463 §4.2 for k=ed25519).
//
// Both parsers are pure and strict (RFC 6376 §3.2 tag-list): a duplicate tag, a tag-spec
// without "=", a character outside VALCHAR in a value, or a missing required tag is an error
// (the caller turns it into permerror). Inputs are bounded before any work: a signature
// value over kMaxSignatureValue octets and an h= of more than kMaxSignedHeaders names are
// refused. Base64 values may hold folding white space (RFC 6376 §2.4); it is removed before
// decoding. rsa-sha1 parses (RFC 8301 §3.1: the verifier then says fail, never pass).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace mailauth {

inline constexpr std::size_t kMaxSignatureValue = 8192;
inline constexpr std::size_t kMaxSignedHeaders = 64;
inline constexpr std::size_t kMaxKeyRecord = 8192;

struct DkimSignature {
  std::string algorithm;  // "rsa-sha256" | "ed25519-sha256" | "rsa-sha1" (verifies as fail)
  std::string domain, selector;
  std::string identity;                     // i=, or "@" + d= when absent (RFC 6376 §3.5)
  std::vector<std::string> signed_headers;  // h=, as written (compare case-insensitively)
  std::string header_canon, body_canon;     // "simple" | "relaxed"
  std::optional<std::uint64_t> length;      // l=
  std::optional<std::int64_t> timestamp, expiration;  // t=, x=
  std::string signature;                              // b= decoded
  std::string body_hash;                              // bh= decoded
  std::string b_text;  // b= as text without white space, for RFC 6008 header.b
};

// Which field a signature comes from. An ARC-Message-Signature (RFC 8617 §4.1.2) has the
// tags of a DKIM-Signature but for three differences: no v= (ignored if present), i= is the
// ARC instance (read by arc_chain.h, not an identity here: `identity` is "@" + d=), and h=
// need not hold From (RFC 6376 §6.1.1's rule is DKIM's).
enum class SignatureField { kDkim, kArcMessage };

// `value` is the field body after "DKIM-Signature:" (folding included, as received).
base::Expected<DkimSignature, std::string> parse_dkim_signature(
    std::string_view value, SignatureField field = SignatureField::kDkim);

struct DkimKeyRecord {
  std::string key_type = "rsa";       // k=: "rsa" | "ed25519" (others kept, never match)
  std::string public_key;             // p= decoded; empty = revoked (RFC 6376 §3.6.1)
  std::vector<std::string> hashes;    // h=; empty = every hash algorithm
  std::vector<std::string> services;  // s=; empty = "*"
  bool testing = false;               // t=y
  bool strict_identity = false;       // t=s: i= must be d= itself, no subdomain
};

// `txt` is one TXT record, its character-strings joined (dns::Answer::texts).
base::Expected<DkimKeyRecord, std::string> parse_dkim_key_record(std::string_view txt);

// One tag of a tag-list, as views into the parsed text. `region` is everything between the
// "=" and the ";" (or the end), white space included: RFC 6376 §3.7 empties exactly that for
// b= when hashing the signature field.
struct DkimTag {
  std::string_view name, value, region;
};
// RFC 6376 §3.2: an error for a malformed list or a duplicate tag name.
base::Expected<std::vector<DkimTag>, std::string> parse_dkim_tag_list(std::string_view text);
// The tag named `name`, or null.
const DkimTag* find_dkim_tag(const std::vector<DkimTag>& tags, std::string_view name);
// A base64 value with folding white space (RFC 6376 §2.4 base64string); false if not base64.
bool decode_dkim_base64(std::string_view text, std::string& out);
// d= / s=: letters, digits, '-', '_' in dot-separated labels (A-labels only).
bool is_dkim_domain_name(std::string_view name);

}  // namespace mailauth
