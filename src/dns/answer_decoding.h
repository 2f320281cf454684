// answer_decoding.h — a resolver's raw result (rcode, flags, uncompressed wire rdata) turned
// into a dns::Answer, so that no consumer parses wire format (resolver.h).
//
// Pure: no I/O, no library types, so that every rule below is unit-tested byte by byte.
// - Status: a DNSSEC failure is kBogus whatever else the result says (RFC 4035 §5.5);
//   NXDOMAIN is kNxDomain (RFC 2308 §2.1); NOERROR with records is kOk, without is kNoData
//   (RFC 2308 §2.2); every other rcode (SERVFAIL, REFUSED, ...) is kTemporary.
// - TXT (RFC 1035 §3.3.14): the character-strings of one record are joined with nothing
//   between them (RFC 7208 §3.3, RFC 6376 §3.6.2.2); one string per record.
// - A / AAAA: the address as an IP literal. MX, PTR, NS, CNAME (RFC 1035 §3.3): the name in
//   presentation form, lower-cased (names compare without case, RFC 4343 §3; a reply may
//   echo the case of the question), without the trailing dot, "" for the root ("." of a
//   null MX, RFC 7505);
//   a byte outside letters, digits, '-' and '_' is escaped as \DDD and a dot inside a label
//   as "\." (RFC 4343 §2.1), so that such a name never passes for a host name.
// - TLSA (RFC 6698 §2.1): usage, selector, matching type, then the association data.
// - A record whose rdata is malformed is dropped (and said in detail); if none is left the
//   answer is kNoData, never kOk with nothing in it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"

namespace dns {

struct RawResult {
  Type type = Type::kA;
  int rcode = 0;                // RFC 1035 §4.1.1 (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED)
  bool secure = false;          // validated (RFC 4035 §4.3)
  bool bogus = false;           // validation failed
  std::string why_bogus;        // the validator's reason, when bogus
  std::chrono::seconds ttl{0};  // of the data, or of the negative answer
  std::vector<std::string> rdata;  // uncompressed wire rdata of each record of `type`
  std::string query_name;          // the name asked, and the name the data is at after any
  std::string canonical_name;      // CNAME chain (both without the trailing dot)
};

Answer decode_answer(const RawResult& raw);

// The rcode in words: "SERVFAIL", "REFUSED", "rcode 9".
std::string rcode_name(int rcode);

// A wire-format name (RFC 1035 §3.1) at the start of data, without compression pointers
// (rdata handed out by a resolver is uncompressed). Presentation form, no trailing dot;
// *consumed is set to the octets read. nullopt when malformed.
std::optional<std::string> decode_name(std::string_view data, std::size_t* consumed);

}  // namespace dns
