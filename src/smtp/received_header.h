// received_header.h — the trace field a receiving server prepends (RFC 5321 §4.4), with
// the protocol keywords of RFC 3848 ("ESMTPS" and friends) and the TLS parameters in a
// comment, as Postfix and others do, so a reader sees how each hop was protected.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace smtp {

struct ReceivedFields {
  std::string_view helo;            // what the client called itself
  std::string_view client_address;  // IP literal of the peer, without brackets
  std::string_view by_hostname;     // our host name
  std::string_view with_protocol;   // "ESMTPS" etc. (RFC 3848)
  std::string_view queue_id;
  std::string_view tls_version;  // empty without TLS
  std::string_view tls_cipher;
  std::string_view for_recipient;       // only when the message has exactly one recipient
  std::string_view authenticated_user;  // named only when the operator asks for it
  // A local submission (unix socket): the host user the kernel named, and its uid. Then
  // there is no "from" clause, only "by HOST (smtpsd, from local user NAME, uid N)", as
  // Postfix writes for its pickup: the peer has no address to put in an address literal.
  std::string_view local_user;
  std::uint32_t local_uid = 0;
  std::int64_t unix_time = 0;  // the date-time of the trace (RFC 5322 §3.3)
};

// "Received: from …\r\n\t…\r\n" — folded lines, each under 78 octets where possible,
// every line ending in CRLF. Any byte of helo that is not printable ASCII is replaced so
// a client cannot inject header lines.
std::string received_header(const ReceivedFields& fields);

// RFC 5322 §3.3 date-time in UTC, e.g. "Tue, 24 Nov 2026 03:43:30 +0000".
std::string rfc5322_date(std::int64_t unix_time);

}  // namespace smtp
