// probe_command.h — `smtpsctl probe HOST[:PORT]`: an SMTP-aware TLS report for any server,
// for administrators and for monitoring.
//
//   smtpsctl probe HOST[:PORT] [--port PORT]... [--name NAME] [--cafile FILE]
//                  [--timeout SECONDS] [--max-connections N] [--parallel N] [--json]
//   smtpsctl probe --domain DOMAIN [--port PORT]... [--dns-server IP[:PORT]]...
//                  [--trust-anchor FILE] [--mta-sts-port PORT] [--cafile FILE] ...
//
// For the ports given (HOST:PORT and each --port), or each of 25, 465 and 587: whether it
// answers; implicit TLS or STARTTLS (a 220 greeting in clear means STARTTLS, else a TLS
// handshake is tried); ESMTP
// extensions and AUTH mechanisms before and after TLS; the STARTTLS command injection test
// (CVE-2011-0411); each protocol version from TLS 1.0 to 1.3 on its own; the ciphers each
// accepted version takes; the certificate chain, key, signature algorithm, expiry, host
// name match (RFC 6125) and chain verification (system store or --cafile); session
// resumption; the named groups and the DHE prime's size; SSL 2.0 (DROWN), Heartbleed, CCS
// injection and client-initiated renegotiation, each with hand-built handshakes
// (tls/client_hello.h) where OpenSSL cannot. Every finding is one line: PASS, WARN, FAIL
// (or INFO) and why; a check that could not run is INFO "not tested", never PASS.
//
// Invariants:
// - The probe only observes: it never sends MAIL, AUTH or a password, and ends each
//   connection with QUIT when it can.
// - Every wait (connect, read, handshake) is bounded by --timeout (default 10 seconds).
//
// - At most --max-connections connections in all (default kDefaultMaxConnections); the
//   checks past the budget are "not tested (connection budget ...)".
// - At most --parallel connections open at once (default kDefaultParallel): the checks
//   that do not depend on each other run in parallel; the report's order is fixed.
//
// Domain mode (--domain): DOMAIN's MX hosts, looked up through our DNS layer (dns::Resolver:
// --dns-server forwards to those servers, else /etc/resolv.conf's; --trust-anchor validates
// DNSSEC with that key file), each probed as above on port 25 (or each --port) at its first
// address that answers, with the MX name as certificate name; then what DOMAIN publishes
// (delivery/posture.h): per MX host the TLSA records at _<port>._tcp.<host> against the
// certificates it served, with their DNSSEC status; the MTA-STS record and policy (fetched
// over HTTPS as delivery does, --cafile and --mta-sts-port for a private server) against
// the MX names and their certificates; the TLS-RPT record. A domain without MX records
// (none, or a null MX) is an error (exit 3); an MX host that cannot be probed makes the
// scan inconclusive (exit 4).
//
// Exit codes: 0 every finding passes, 1 a warning, 2 a failure, 3 usage error or no port
// answered, 4 inconclusive: no HIGH or CRITICAL finding, but checks could not run because
// the scan was cut (the connection budget, a 421 reply, a connection refused or timed out
// after the port had answered, or on an implicit TLS port new connections closed at once or
// answered with a 421 in clear).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace app {

// Covers a full scan of the three default ports of one server.
inline constexpr int kDefaultMaxConnections = 300;
// Connections open at once: well below the usual per-client limits (smtpsd's and Postfix's
// default is 50).
inline constexpr int kDefaultParallel = 4;

struct ProbeOptions {
  std::string host;
  std::vector<std::uint16_t> ports;  // HOST:PORT's, then each --port; none: 25, 465 and 587
  std::string name;                  // checked against the certificate; default host
  std::string cafile;                // else the system trust store
  int timeout_seconds = 10;
  int max_connections = kDefaultMaxConnections;
  int parallel = kDefaultParallel;  // connections open at once (checks run in parallel)
  bool json = false;
  bool help = false;
  // Domain mode: host is empty, domain is the mail domain (lower case, no final dot).
  std::string domain;
  std::vector<std::string> dns_servers;  // IP or IP:PORT (53) literals; none: resolv.conf
  std::string trust_anchor;              // DNSSEC validation with this key file
  std::uint16_t mta_sts_port = 443;      // the HTTPS port of mta-sts.<domain>
};

// HOST, HOST:PORT, [IPv6] or [IPv6]:PORT, and the options above.
base::Expected<ProbeOptions, std::string> parse_probe_arguments(
    const std::vector<std::string>& args);

enum class ProbeVerdict { kPass, kWarn, kFail, kInconclusive };

// The verdict from the worst finding and whether the scan was cut: a HIGH or CRITICAL
// finding fails whatever did not run; otherwise a cut scan is inconclusive, never a pass.
ProbeVerdict probe_verdict(bool high_or_critical, bool low_or_medium, bool incomplete);
int probe_exit_code(ProbeVerdict verdict);  // 0 pass, 1 warn, 2 fail, 4 inconclusive
const char* to_string(ProbeVerdict verdict);

// args: what follows "probe".
int run_probe_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace app
