// dns_lists.h — DNS block and allow lists (RFC 5782), the pure parts: the query name of a
// client address, what one list's answer says, the weighted score of all lists (after
// Postfix's postscreen_dnsbl_sites), and the list's TXT text made safe for a reply.
//
// - Query names (RFC 5782 §2.1, §2.4): IPv4 as its four octets reversed under the zone
//   ("2.0.0.127.bl.example"); IPv6 as 32 nibbles reversed ("1.0.0. … .0.bl.example"). An
//   IPv4-mapped IPv6 address (::ffff:192.0.2.1, a dual-stack socket's view of an IPv4
//   client) is asked as the IPv4 address it is: lists of IPv4 addresses know it by that name.
// - An answer is a list of A records in 127.0.0.0/8 (RFC 5782 §2.3). Providers answer
//   127.255.255.0/24 to say something is wrong with the query, not with the client
//   (Spamhaus: .252 typing error in the zone name, .254 query through a public resolver,
//   .255 too many queries): such an answer, and any answer outside 127.0.0.0/8 (a wildcard
//   of an expired zone, a resolver that rewrites NXDOMAIN), counts as not listed and is
//   reported as an error so that the administrator hears of it.
// - A list may name the answers that count (each an address or a network, each with its
//   own weight or the list's); without any, every 127.0.0.0/8 answer but the error codes
//   counts with the list's weight. A list counts once: with the largest weight among the
//   answers that count (the smallest for an allowlist, whose weights are negative).
// - The score is the sum of the weights of the lists that count; the client is listed
//   when it reaches the threshold. A list whose lookup failed (timeout, SERVFAIL) counts as
//   not listed: a block list is advice, and a broken one must not stop mail.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/network.h"

namespace filter {

struct ListedAnswer {
  base::Network network;      // the answers (an address is a /32) that count
  std::optional<int> weight;  // else the list's
  bool operator==(const ListedAnswer&) const = default;
};

struct DnsList {
  std::string zone;                   // "zen.spamhaus.org", lower case, no trailing dot
  int weight = 1;                     // negative: an allowlist
  std::vector<ListedAnswer> answers;  // empty: any 127.0.0.0/8 answer but error codes
  bool operator==(const DnsList&) const = default;
};

// The name to ask (A, and TXT for the reason) for a client address under zone: "" when the
// address is not an IP literal.
std::string query_name(std::string_view client_address, std::string_view zone);

// What one list's A answer says of the client.
struct ListResult {
  enum class Kind {
    kNotListed,  // NXDOMAIN, NODATA, or no answer that counts
    kListed,     // weight applies
    kError,      // provider error code or an answer outside 127.0.0.0/8: not listed
    kFailed,     // no answer (timeout, SERVFAIL, bogus): not listed
  };
  Kind kind = Kind::kNotListed;
  int weight = 0;
  std::string answer;  // the address that counted (kListed) or the odd one (kError)
};
// addresses: the A records of a kOk answer (empty for NXDOMAIN/NODATA).
ListResult evaluate_answer(const DnsList& list, const std::vector<std::string>& addresses);

// The provider error codes of RFC 5782's practice: 127.255.255.0/24.
bool is_provider_error_code(const base::IpBytes& address);

// The score of the results (one per list, same order): the sum of the listed weights.
int score_of(const std::vector<ListResult>& results);

// A list's TXT text for a reply line: printable ASCII only (anything else, CR and LF
// included, becomes '?'), runs of spaces kept single, at most max_length octets (then
// "..."), trimmed. Text from a DNS answer must never split or forge a reply line.
std::string reply_safe_text(std::string_view text, std::size_t max_length = 200);

// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its CRLF.
constexpr std::size_t kMaxReplyLine = 512;
// The room for the text of a refusal at RCPT, after "550 5.7.1 " and before CRLF.
constexpr std::size_t kRcptRefusalRoom = kMaxReplyLine - 2 - 10;
// The room for the text of a refusal at connect, which replaces the greeting: "554 <host> "
// before it (no enhanced code before EHLO, RFC 2034 §3), CRLF after.
constexpr std::size_t connect_refusal_room(std::size_t hostname_length) {
  const std::size_t used = 4 + hostname_length + 1 + 2;
  return used < kMaxReplyLine ? kMaxReplyLine - used : 0;
}

// The text of the refusal reply: "Service unavailable; client [<client>] blocked using
// <zone>; <reason>", where reason is txt (a list's TXT record, "" for none) made reply-safe
// and cut to the room left within room octets (kRcptRefusalRoom, connect_refusal_room), so
// that the whole reply line stays within 512 octets. No room for a reason: none; no room for
// the rest (a zone and a hostname near 255 octets each): cut at room.
std::string refusal_text(std::string_view client, std::string_view zone, std::string_view txt,
                         std::size_t room = kRcptRefusalRoom);

}  // namespace filter
