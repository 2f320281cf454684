// posture.h — what a mail domain publishes about receiving mail over TLS (its "posture"),
// and the one TLS decision per MX host that delivery, `smtpsctl tls policy` and the tools
// that check a domain's records all take from here.
//
// The decision for one MX host (decide_host), strongest first:
// - DANE (RFC 7672): usable TLSA records authenticate the host; a failed TLSA lookup
//   (bogus, unanswered) means the host is not used; secure TLSA records none of which is
//   usable make STARTTLS mandatory. A host DANE decides is never rescued by MTA-STS
//   (RFC 8461 §2).
// - MTA-STS (RFC 8461 §4, §5): enforce uses only hosts the policy names, with a certificate
//   that verifies for the host's name; testing delivers and reports; none is no policy.
// - The static level of [[delivery.tls_policy]] (or default_tls), then the learned memory
//   (tls_memory.h), then opportunistic TLS.
// - The operator's exception and `TLS-Required: No` (RFC 8689 §5) set DANE, MTA-STS, the
//   table and the memory aside: opportunistic TLS.
// The level a host ends with is never below the static level.
//
// The posture (look_up_posture): the MX answer and its DNSSEC status, each host's DANE
// lookup, the MTA-STS policy (through the cache when delivery has one), and the TLS-RPT
// record (RFC 8460 §3). Blocking, bounded by the given deadline per lookup; never on an
// I/O thread. See docs/architecture.md "Outbound TLS policy".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/dane.h"
#include "delivery/mta_sts.h"
#include "delivery/mx_resolver.h"
#include "delivery/tls_memory.h"
#include "dns/resolver.h"
#include "tls/policy.h"

namespace delivery {

// What sets a domain's published policies aside for this delivery.
enum class Relaxation {
  kNone,
  kException,       // the operator's exception (smtpsctl tls except)
  kSenderOptional,  // TLS-Required: No from an authenticated sender
};

// What applies to every MX host of a destination, decided before any host is tried.
struct DomainTls {
  std::string name;  // the recipient domain (or the relay's host)
  tls::OutboundLevel level = tls::OutboundLevel::kMay;  // the table's, or default_tls
  bool static_policy = false;  // level came from [[delivery.tls_policy]] (or a relay's)
  SeenTls remembered = SeenTls::kNone;
  Relaxation relaxation = Relaxation::kNone;
  const PolicyLookup* sts = nullptr;  // the MTA-STS policy, when one was looked up

  bool relaxed() const { return relaxation != Relaxation::kNone; }
  bool sts_applies() const;  // a policy in enforce or testing mode
  bool sts_enforced() const;
  // The name of the policy that decides a host DANE and MTA-STS leave alone:
  // "tls-required-no", "exception", "static", "learned" or "opportunistic".
  std::string_view fallback_policy() const;
};

// The decision for one MX host.
struct HostTls {
  std::string_view policy;  // "dane", "mta-sts" or DomainTls::fallback_policy()
  bool used = true;         // false: the host is not tried (why_not says why)
  std::string why_not;
  tls::OutboundLevel level = tls::OutboundLevel::kMay;  // at least DomainTls::level
  bool dane_authenticates = false;  // the peer must match one of the DANE lookup's records
  bool sts_host = false;            // MTA-STS decides this host (DANE does not)
  bool sts_unnamed = false;         // ... and its policy does not name it
  // RFC 8460 §4.4's policy type of this host's sessions: "tlsa", "sts" or "no-policy-found".
  std::string_view report_type = "no-policy-found";
};

HostTls decide_host(const DomainTls& domain, const DaneLookup& dane, std::string_view host);

// `_smtp._tls.<domain>` TXT (RFC 8460 §3): exactly one "v=TLSRPTv1" record, else none.
struct TlsrptRecord {
  enum class Status { kNone, kFound, kInvalid, kUnknown };  // kUnknown: DNS failed (retry)
  Status status = Status::kNone;
  std::vector<std::string> rua;  // kFound: the URIs, as published
  bool secure = false;           // DNSSEC-secure answer
  std::string detail;            // in words
};
TlsrptRecord lookup_tlsrpt(dns::Resolver& resolver, std::string_view domain,
                           std::chrono::milliseconds deadline);

struct Posture {
  std::string domain;
  bool validating = false;  // the resolver validates DNSSEC (else no DANE)
  MxAnswer mx;
  std::vector<DaneLookup> dane;  // one per mx.targets; kNotApplicable when not asked
  bool sts_asked = false;        // MTA-STS was looked up (sts is meaningful)
  PolicyLookup sts;
  TlsrptRecord tlsrpt;
};

struct PostureOptions {
  std::uint16_t port = 25;                    // the MX port: `_<port>._tcp.<host>` TLSA
  std::chrono::milliseconds deadline{10000};  // per lookup (the MX round counts as one)
  bool dane = true;  // look up TLSA records (not when an exception sets DANE aside)
};

// Everything domain publishes. mta_sts: delivery's cache-backed policies (nullptr: MTA-STS
// is not looked up).
Posture look_up_posture(dns::Resolver& resolver, MxResolver& mx, MtaSts* mta_sts,
                        std::string_view domain, const PostureOptions& options);

// In words, a few lines per host, as `smtpsctl tls policy` prints it: the records seen,
// their DNSSEC status, the cached STS policy and its expiry, and each host's decision.
std::string describe_posture(const Posture& posture, const DomainTls& domain);

}  // namespace delivery
