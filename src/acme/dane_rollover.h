// dane_rollover.h — whether the DNS already shows the TLSA record of a staged next key, so
// that the key can change without breaking DANE (RFC 7671 §8.1, "current + next").
//
// For each name the certificate is for, the owner _25._tcp.<name> is asked:
// - through the server's validating resolver: no TLSA RRset (NXDOMAIN, NODATA) or one that is
//   not DNSSEC-secure (an unsigned zone: RFC 7672 §2.2 has clients ignore it) means DANE does
//   not bind this name to the key; a bogus or failed answer is no answer (ask again later);
//   a secure RRset must hold "3 1 1 <SHA-256 of the next key's SPKI>";
// - then at every authoritative nameserver of the owner's zone directly (the zone cut found
//   by NS lookups up the name, each server's addresses by A and AAAA), because our resolver
//   caches: each server must serve the record too. A server name none of whose addresses
//   answers (an IPv6 address on a host without IPv6 counts as one that does not) holds the
//   wait; one address that answers is enough for a server name.
// The answer: no name has DANE (the key may change now), the record is visible (with the
// largest TTL of the RRsets, which the caller waits out twice), or not yet (with why).
// Blocking (lookup_and_wait): for the renewal thread only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.h"

namespace acme {

struct TlsaVisibility {
  enum class State { kNoDane, kVisible, kNotYet };
  State state = State::kNotYet;
  std::chrono::seconds ttl{0};  // kVisible: the largest TTL of the TLSA RRsets
  std::string detail;           // kNotYet: why, naming the owner and the server
};

// A resolver that asks one authoritative server directly (its IP literal, port 53), with no
// cache shared with the server's resolver.
using AuthoritativeResolvers = std::function<std::shared_ptr<dns::Resolver>(const std::string& ip)>;

// The TLSA owner names checked: _25._tcp.<name> for each name.
std::vector<std::string> tlsa_owners(const std::vector<std::string>& names);

// spki_sha256: the raw 32 octets of the next key's "3 1 1" data.
TlsaVisibility check_tlsa_visible(dns::Resolver& resolver,
                                  const AuthoritativeResolvers& authoritative,
                                  const std::vector<std::string>& names,
                                  const std::string& spki_sha256,
                                  std::chrono::milliseconds per_lookup);

}  // namespace acme
