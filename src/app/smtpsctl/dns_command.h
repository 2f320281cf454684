// dns_command.h — `smtpsctl dns check DOMAIN [--config FILE] [--host NAME] [--timeout S]`:
// what DOMAIN publishes for receiving and sending mail with this server, record by record,
// each OK or what is missing or wrong and the exact record (or step) that fixes it.
//
// Records checked, as our resolver ([dns]) and delivery see them (delivery/posture.h):
// - MX: names this server's host (--host, default [server] hostname); DNSSEC status.
// - The host's A/AAAA records, and the PTR of each address naming the host back (FCrDNS).
// - SPF (RFC 7208): one record, which passes each of the host's addresses for DOMAIN.
// - DKIM (RFC 6376): each key of DOMAIN's [[domains]] entry published at its selector.
// - DMARC (RFC 7489): one valid record at _dmarc.DOMAIN.
// - MTA-STS (RFC 8461): the TXT record and the policy, fetched over HTTPS as delivery does
//   (a temporary cache: the server's is never touched), whose mx patterns name every MX host.
// - TLS-RPT (RFC 8460): one valid record at _smtp._tls.DOMAIN.
// - TLSA (RFC 7672): at _25._tcp.<host>, DNSSEC-secure, a "3 1 1" record for every
//   certificate the configuration serves.
// Text from DNS and the network is printed only through base::terminal_safe.
// Exit codes: 0 every record is right, 1 something is missing or wrong (or could not be
// checked), 2 usage.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace app {

int run_dns_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace app
