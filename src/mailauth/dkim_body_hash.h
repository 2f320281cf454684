// dkim_body_hash.h — one DKIM body hash computed while the body streams by (RFC 6376 §3.7
// bh=): the body canonicalizer (§3.4.3, §3.4.4) writes into a SHA-256 that takes the first
// l= octets (all without l=, §3.5) and counts the canonical length. Shared by the DKIM
// verifier and the ARC verifier (ARC-Message-Signature bh=, RFC 8617 §4.1.2).
//
// Invariant: nothing of the body is kept; feed() any chunk sizes, then finish() once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mailauth/dkim_canonicalization.h"
#include "mailauth/dkim_crypto.h"

namespace mailauth {

class DkimBodyHash final : public BodySink {
 public:
  DkimBodyHash(Canonicalization canon, std::optional<std::uint64_t> limit);
  DkimBodyHash(const DkimBodyHash&) = delete;
  DkimBodyHash& operator=(const DkimBodyHash&) = delete;

  void feed(std::string_view chunk) { canonicalizer_.feed(chunk); }
  void finish();

  Canonicalization canon() const { return canon_; }
  const std::optional<std::uint64_t>& limit() const { return limit_; }
  std::uint64_t length() const { return length_; }       // canonical octets seen (beyond l= too)
  const std::string& digest() const { return digest_; }  // after finish()

  void write(std::string_view octets) override;

 private:
  Canonicalization canon_;
  std::optional<std::uint64_t> limit_;
  std::uint64_t length_ = 0;
  Sha256 hash_;
  BodyCanonicalizer canonicalizer_;
  std::string digest_;
};

}  // namespace mailauth
