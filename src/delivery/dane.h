// dane.h — DANE for SMTP (RFC 7672, RFC 7671): whether an MX host publishes TLSA records
// we must authenticate it with, decided from DNSSEC-validated answers only.
//
// The decision per MX host (RFC 7672 §2.1, §2.2):
// - The MX answer and the host's address answers must be DNSSEC-secure, and the resolver
//   must validate; otherwise DANE does not apply (kNotApplicable) and the other policies do.
// - `_<port>._tcp.<host>` TLSA: a secure NXDOMAIN/NODATA or an insecure answer means no DANE
//   for this host (kNone); a bogus or unanswered lookup makes the host unusable (kFailed:
//   try the next MX host, defer when none is left; never plain text, never an
//   unauthenticated fallback).
// - Secure records: only DANE-TA(2) and DANE-EE(3) with selector Cert(0)/SPKI(1) and
//   matching type Full(0)/SHA2-256(1)/SHA2-512(2) of the right length are usable; PKIX-TA(0)
//   and PKIX-EE(1) are not (§3.1.3). Usable records: the peer must match one (kUsable);
//   secure records none of which is usable: TLS is mandatory but unauthenticated (kUnusable,
//   §2.2).
// See docs/architecture.md "Outbound TLS policy".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"

namespace delivery {

struct DaneLookup {
  enum class Kind { kNotApplicable, kNone, kUsable, kUnusable, kFailed };
  Kind kind = Kind::kNotApplicable;
  std::vector<dns::TlsaRecord> usable;  // kUsable: the records the peer must match
  std::string detail;                   // in words, for logs and deferral reasons
  // The TLSA base domain (§2.2.3): the MX host, or the target of its secure CNAME chain
  // when that has TLSA records; the reference name and SNI of a DANE handshake.
  std::string base;
  bool bogus = false;  // kFailed because validation failed (RFC 8460 "dnssec-invalid")
};

// RFC 7672 §3.1.3 and the lengths of RFC 6698 §2.1.3.
bool usable_tlsa(const dns::TlsaRecord& record);

// "3 1 1 <hex data>", as in a zone file (RFC 6698 §2.2).
std::string to_string(const dns::TlsaRecord& record);
// "3 1 1": the parameters only, for log lines.
std::string parameters_of(const dns::TlsaRecord& record);

// Blocking (delivery worker threads): the TLSA lookup of host's port and its decision.
// mx_secure / host_secure / canonical: MxAnswer::secure, MxTarget::secure and
// MxTarget::canonical (asked first, RFC 7672 §2.2.2).
DaneLookup lookup_dane(dns::Resolver& resolver, std::string_view host, std::uint16_t port,
                       bool mx_secure, bool host_secure, std::chrono::milliseconds deadline,
                       std::string_view canonical = {});

// Without a validating resolver DANE cannot apply; this says whether it would have been
// asked for: the name of host's `_<port>._tcp` TLSA RRset when host publishes one, as a
// lookup that nothing validated answers; "" when it does not, or the lookup failed. For a
// warning only (outbound.cpp, once per domain), never for a decision: an unvalidated
// answer proves nothing (RFC 7672 §2.1).
std::string tlsa_published_unvalidated(dns::Resolver& resolver, std::string_view host,
                                       std::uint16_t port, std::chrono::milliseconds deadline);

}  // namespace delivery
