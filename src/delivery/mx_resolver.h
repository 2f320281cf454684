// mx_resolver.h — where to deliver a domain's mail: MX lookup for direct delivery, through the
// server's one dns::Resolver (docs/architecture.md "DNS").
//
// RFC 5321 §5.1: look up the domain's MX records and try their hosts in order of preference,
// hosts of equal preference in random order; with no MX record at all, the domain itself is
// the one implicit MX (its A/AAAA). RFC 7505: a single MX "." with preference 0 (null MX)
// says the domain accepts no mail, which is permanent (5.1.10). RFC 5321 §4.1.3: a domain
// literal "[192.0.2.1]" / "[IPv6:2001:db8::1]" names its host directly, without DNS.
// Invariants: only DNS is asked (not /etc/hosts, no search domains, no HOSTALIASES), every
// call ends by its deadline, and the answer says whether to retry (kTemporary) or bounce
// (kNullMx, kNoDomain). An MX exchange must be a host name: an IP address there is refused
// (§5.1 "MUST NOT be an IP literal"). Targets and addresses are bounded (kMaxMxTargets,
// kMaxAddressesPerTarget) so that a hostile zone cannot make one delivery try a thousand
// hosts. Names must already be A-labels (IDNA conversion is the caller's).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/endpoint.h"
#include "dns/resolver.h"

namespace delivery {

struct MxTarget {
  std::string host;  // MX exchange name (or the domain itself for the implicit MX)
  unsigned preference = 0;
  std::vector<std::string> addresses;  // IP literals ("192.0.2.1", "::1"), IPv6 first; empty if
                                       // the host has none
  bool implicit = false;               // no MX record: the domain's own A/AAAA (RFC 5321 §5.1)
  // Both address lookups (AAAA and A) were DNSSEC-secure (an address or a proven absence):
  // with a secure MX answer, what DANE needs before it asks for TLSA (RFC 7672 §2.2.1).
  bool secure = false;
  // The name a secure CNAME chain of host leads to (RFC 7672 §2.2.2: TLSA records are asked
  // there first); empty without one or when the chain is not secure.
  std::string canonical;
};

enum class MxStatus {
  kOk,         // targets sorted by preference (equal preferences shuffled, §5.1)
  kNullMx,     // a single MX "." (RFC 7505): the domain accepts no mail -> permanent 5.1.10
  kNoDomain,   // NXDOMAIN, or no MX and no A/AAAA, or no usable MX: permanent
  kTemporary,  // SERVFAIL, timeout, refused, resolver error: retry later
};

// "ok", "null-mx", "no-domain", "temporary" (for log lines).
std::string_view to_string(MxStatus status);

struct MxAnswer {
  MxStatus status = MxStatus::kTemporary;
  std::vector<MxTarget> targets;
  std::string detail;  // in words for logs and DSNs: "no MX or A/AAAA record for example.net"
  // The MX answer (or, for the implicit MX, the proven absence of MX records) was
  // DNSSEC-secure: the targets are the domain owner's (RFC 7672 §2.2.1, RFC 8689 §4.2.1).
  // Never true for an address literal or when the resolver does not validate.
  bool secure = false;
};

// At most this many MX targets (the best preferences) and addresses per target.
inline constexpr std::size_t kMaxMxTargets = 10;
inline constexpr std::size_t kMaxAddressesPerTarget = 8;

class MxResolver {
 public:
  // Asks resolver (shared with the other users of DNS); one resolve() takes at most
  // deadline, both rounds of lookups together.
  MxResolver(std::shared_ptr<dns::Resolver> resolver, std::chrono::milliseconds deadline);
  MxResolver(const MxResolver&) = delete;
  MxResolver& operator=(const MxResolver&) = delete;

  // Blocking (waits for the resolver's answers on the calling worker thread; never call it
  // on an I/O thread); safe to call from several delivery worker threads at once. The
  // whole call, MX and then address lookups, ends within deadline() even if the server
  // never answers. A domain literal "[192.0.2.1]" / "[IPv6:::1]" (RFC 5321 §4.1.3) gives
  // one target with that address and no DNS query. A trailing dot is accepted.
  // Only MX delivery asks here; names the administrator configured (relay, LMTP) are
  // looked up as the system does (system_resolver.h).
  MxAnswer resolve(std::string_view domain);

  std::chrono::milliseconds deadline() const { return deadline_; }

 private:
  std::shared_ptr<dns::Resolver> resolver_;
  std::chrono::milliseconds deadline_;
};

}  // namespace delivery
