// require_tls.h — the decisions of RFC 8689 §4.2.1 for a message sent with REQUIRETLS: may it
// go to this destination, over this connection? Pure functions (no I/O, no clock); the log
// line of a refusal is the one exception (log_refusal). delivery/outbound.cpp calls them at
// each step of an attempt (docs/architecture.md "REQUIRETLS").
//
// RFC 8689 §4.2.1, for a message whose reverse path is not empty:
//  - the next hop found through MX must be named by a DNSSEC-secure MX answer or by an
//    MTA-STS policy in enforce mode (outbound.cpp checks each host against it);
//    a configured relay is the administrator's choice of next hop, so its TLS level must be
//    verify instead;
//  - the session must be TLS with a certificate that verifies (trust chain and name, or DANE);
//  - the server's EHLO inside TLS must advertise REQUIRETLS;
//  - when a host fails, the other MX hosts are tried; when none is left, the message is not
//    sent and a non-delivery notice goes back: 5.7.10 "Encryption needed" for a session without
//    verified TLS, 5.7.30 "REQUIRETLS support required" when the server does not offer it.
// Invariants: never a refusal for a message without REQUIRETLS; a REQUIRETLS message is never
// sent in plain text (no fallback: the caller asks here before it would).
// RFC 8689 §5: a bounce of a REQUIRETLS message (null reverse path) is not held back by a hop
// without REQUIRETLS; it carries the option where the hop offers it (smtp/client_session.cpp).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "delivery/smtp_transport.h"
#include "queue/scheduler.h"
#include "smtp/client_session.h"
#include "smtp/envelope.h"
#include "tls/policy.h"

namespace delivery {

struct RequireTlsRefusal {
  std::string enhanced;  // "5.7.10" (no verified TLS) or "5.7.30" (REQUIRETLS not offered)
  std::string detail;    // for the log and the DSN
};

// Whether the message is to be delivered under RFC 8689 §4.2.1: REQUIRETLS, not a bounce.
bool must_require_tls(const smtp::Envelope& envelope);

// Before any connection: can this route carry the message at all? relay: a configured next
// hop, at TLS level hop_level; otherwise MX delivery, whose answer was DNSSEC-secure or not.
// destination names it in the detail ("relay.example.net", or the recipient domain).
std::optional<RequireTlsRefusal> route_refusal(bool relay, tls::OutboundLevel hop_level,
                                               bool mx_secure, std::string_view destination);

// A connection that could not be opened: a failure of TLS itself (no STARTTLS, a failed
// handshake, a certificate refused by the level) is a 5.7.10 refusal of this host; any other
// (connection refused, time-out) is not, and stays a transient failure.
std::optional<RequireTlsRefusal> open_refusal(const TransportFailure& failure,
                                              std::string_view where);

// An open connection (after EHLO inside TLS): verified TLS, and REQUIRETLS advertised.
std::optional<RequireTlsRefusal> connection_refusal(const TlsOutcome& tls,
                                                    const smtp::ServerCapabilities& capabilities,
                                                    std::string_view where);

// count results for recipients the message cannot go to: permanent, with the refusal's status.
std::vector<queue::DeliveryResult> refused(const RequireTlsRefusal& refusal, std::size_t count,
                                           const std::string& transport);

// One "requiretls_refused" log line (domain, host unless empty, status, detail).
void log_refusal(std::string_view domain, std::string_view host, const RequireTlsRefusal& refusal);

}  // namespace delivery
