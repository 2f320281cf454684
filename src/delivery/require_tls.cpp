// require_tls.cpp — see require_tls.h (RFC 8689 §4.2.1, §5).
#include "delivery/require_tls.h"

#include "obs/log.h"

namespace delivery {

bool must_require_tls(const smtp::Envelope& envelope) {
  // RFC 8689 §4.2.1 applies to "a message tagged as requiring TLS for which the MAIL FROM
  // return-path is not empty"; §5: REQUIRETLS "SHOULD NOT cause a bounce message to be
  // discarded even if the next-hop relay does not advertise REQUIRETLS".
  return envelope.require_tls && !envelope.reverse_path.empty();
}

std::optional<RequireTlsRefusal> route_refusal(bool relay, tls::OutboundLevel hop_level,
                                               bool mx_secure, std::string_view destination) {
  if (relay) {
    if (hop_level == tls::OutboundLevel::kVerify) return std::nullopt;
    return RequireTlsRefusal{"5.7.10", "REQUIRETLS: the relay " + std::string(destination) +
                                           " is configured with TLS level " +
                                           std::string(tls::to_string(hop_level)) + ", not verify"};
  }
  // RFC 8689 §4.2.1 step 2: an MX answer without a valid DNSSEC signature needs MTA-STS to
  // vouch for the host names instead (the caller passes mx_secure true for a domain with an
  // MTA-STS policy in enforce mode, whose hosts it then checks one by one).
  if (mx_secure) return std::nullopt;
  return RequireTlsRefusal{"5.7.10", "REQUIRETLS: the MX answer for " + std::string(destination) +
                                         " is not DNSSEC-secure and no MTA-STS policy enforces"};
}

std::optional<RequireTlsRefusal> open_refusal(const TransportFailure& failure,
                                              std::string_view where) {
  // RFC 8689 §4.2.1 step 4: "Unable to establish TLS-protected SMTP session".
  if (failure.stage != "tls" && failure.stage != "tls-policy" && failure.stage != "starttls")
    return std::nullopt;
  return RequireTlsRefusal{
      "5.7.10", "REQUIRETLS: no verified TLS with " + std::string(where) + ": " + failure.detail};
}

std::optional<RequireTlsRefusal> connection_refusal(const TlsOutcome& tls,
                                                    const smtp::ServerCapabilities& capabilities,
                                                    std::string_view where) {
  if (!tls.encrypted) {
    return RequireTlsRefusal{"5.7.10",
                             "REQUIRETLS: " + std::string(where) + " did not negotiate TLS"};
  }
  // RFC 8689 §4.2.1 step 4: the certificate verifies by a trust chain (and names the MX host,
  // RFC 6125) or by DANE (RFC 7672), which sets verified too.
  if (!tls.verified) {
    return RequireTlsRefusal{"5.7.10", "REQUIRETLS: the certificate of " + std::string(where) +
                                           " does not verify: " + tls.verify_error};
  }
  // RFC 8689 §4.2.1 step 5: the EHLO after the TLS handshake advertises REQUIRETLS.
  if (!capabilities.requiretls) {
    return RequireTlsRefusal{"5.7.30",
                             "REQUIRETLS: " + std::string(where) + " does not offer REQUIRETLS"};
  }
  return std::nullopt;
}

std::vector<queue::DeliveryResult> refused(const RequireTlsRefusal& refusal, std::size_t count,
                                           const std::string& transport) {
  // RFC 8689 §4.2.1: "the client MUST NOT transmit the message to the domain" and sends a
  // non-delivery notification: permanent, not retried.
  queue::DeliveryResult result(queue::DeliveryStatus::kPermanent, refusal.detail, transport,
                               refusal.enhanced);
  // The notice says why in the form of a reply of ours (RFC 3464 §2.3.6 "smtp;" diagnostic).
  result.diagnostic = "550 " + refusal.enhanced + " " + refusal.detail;
  return std::vector<queue::DeliveryResult>(count, result);
}

void log_refusal(std::string_view domain, std::string_view host, const RequireTlsRefusal& refusal) {
  obs::Log line("requiretls_refused", obs::Level::kWarning);
  line.kv("domain", domain);
  if (!host.empty()) line.kv("host", host);  // empty: the route itself was refused
  line.kv("status", refusal.enhanced).kv("detail", refusal.detail);
}

}  // namespace delivery
