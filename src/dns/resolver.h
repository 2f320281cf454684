// resolver.h — the one DNS layer: every lookup of the server (SPF, DKIM, DMARC, MX, and the
// TLSA, MTA-STS and DNSBL lookups of later checks) goes through a dns::Resolver.
//
// Contract (what every implementation keeps):
// - lookup() never blocks the calling thread: it is safe on an I/O thread. The callback runs
//   exactly once: at once on the calling thread when the answer is cached, else later on the
//   resolver's own thread. A callback must not block (it may call lookup() again).
// - Every lookup ends: by an answer or, at the latest after options.timeout, with kTemporary.
// - Answers are decoded here (TXT strings joined, addresses as IP literals, names without the
//   trailing dot): no consumer parses wire format.
// - `secure` is true only when the answer was DNSSEC-validated (RFC 4035 §4.3 "secure");
//   a resolver that does not validate never says secure. A validation failure is kBogus,
//   never an answer.
// - Only DNS is asked (no /etc/hosts, no search list); names are absolute A-labels.
// See docs/architecture.md "DNS".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dns {

// RFC 1035 §3.2.2, RFC 3596, RFC 6698.
enum class Type : std::uint16_t {
  kA = 1,
  kNs = 2,
  kCname = 5,
  kPtr = 12,
  kMx = 15,
  kTxt = 16,
  kAaaa = 28,
  kTlsa = 52,
};
std::string_view to_string(Type type);  // "A", "TXT", ...

enum class Status {
  kOk,         // NOERROR with at least one record of the type asked
  kNoData,     // NOERROR, the name exists without records of that type (RFC 2308 §2.2)
  kNxDomain,   // the name does not exist (RFC 2308 §2.1)
  kTemporary,  // SERVFAIL, REFUSED, timeout, no server reachable: ask again later
  kBogus,      // DNSSEC validation failed (RFC 4035 §5.5): treat as an attack, never as data
};
std::string_view to_string(Status status);  // "ok", "nodata", "nxdomain", "temporary", "bogus"

struct MxRecord {
  std::uint16_t preference = 0;
  std::string exchange;  // "mx1.example.com", "" for the null MX "." (RFC 7505)
};

struct TlsaRecord {  // RFC 6698 §2.1
  std::uint8_t usage = 0;
  std::uint8_t selector = 0;
  std::uint8_t matching_type = 0;
  std::string data;  // the certificate association data, raw octets
};

struct Answer {
  Status status = Status::kTemporary;
  bool secure = false;
  std::chrono::seconds ttl{0};         // how long it may be cached (negative answers: RFC 2308 §5)
  std::vector<std::string> texts;      // TXT: one string per record, its character-strings joined
  std::vector<std::string> addresses;  // A / AAAA: IP literals ("192.0.2.1", "2001:db8::1")
  std::vector<std::string> names;      // PTR, NS, CNAME targets, without the trailing dot
  std::vector<MxRecord> mx;
  std::vector<TlsaRecord> tlsa;
  // The name the records are at when a CNAME chain led there from the name asked (lower
  // case, no trailing dot); empty when there was none. Covered by `secure` like the data.
  std::string canonical_name;
  std::string detail;  // kTemporary / kBogus in words, for logs: "timed out", "SERVFAIL"
};
using AnswerPtr = std::shared_ptr<const Answer>;

// The PTR name of an IP literal (RFC 1035 §3.5, RFC 3596 §2.5): "1.2.0.192.in-addr.arpa",
// nibbles under "ip6.arpa"; "" when ip is not an IP literal.
std::string reverse_name(std::string_view ip);
// The labels of reverse_name before "in-addr.arpa" / "ip6.arpa", each with its dot:
// "1.2.0.192."; "" when ip is not an IP literal. DNS lists are asked the same labels under
// their zone (RFC 5782 §2.1, §2.4).
std::string reverse_labels(std::string_view ip);

class Resolver {
 public:
  using Callback = std::function<void(AnswerPtr)>;
  virtual ~Resolver() = default;

  // Asynchronous lookup of (name, type); see the contract above. A trailing dot is accepted.
  virtual void lookup(std::string_view name, Type type, Callback callback) = 0;

  // Blocking, for worker threads that may wait (delivery): lookup() and a wait for its
  // callback, at most `deadline` (then kTemporary, "timed out"). Never on an I/O thread.
  AnswerPtr lookup_and_wait(std::string_view name, Type type, std::chrono::milliseconds deadline);

  // For an orderly shutdown while others still hold the resolver: every lookup in flight
  // ends now (its callback gets kTemporary "resolver stopped"), later lookups end the same
  // way at once, and the resolver's thread is gone when this returns. Idempotent.
  virtual void stop() {}

  // Whether answers can be `secure`: the server validates DNSSEC itself, or not at all.
  virtual bool validates() const = 0;
  // The mode in words for the start-up log line: "recursive, validating (root trust anchor
  // /usr/share/dns/root.key)", "forward to 127.0.0.1:5353, not validating".
  virtual std::string describe() const = 0;
};

}  // namespace dns
