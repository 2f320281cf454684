// mta_sts_command.h — `smtpsctl mta-sts`: publish our MTA-STS policy (RFC 8461) and look up
// another domain's as delivery would.
//
//   smtpsctl mta-sts policy DOMAIN --mode enforce|testing|none [--mx HOST ...]
//                                  [--max-age SECONDS] [--rua URI[,URI]] [--output FILE]
//                                  [--config FILE]
//     Prints the policy file to serve at https://mta-sts.DOMAIN/.well-known/mta-sts.txt, the
//     `_mta-sts.DOMAIN` TXT record with a new id (the UTC time, so each run gives a new one),
//     and with --rua the `_smtp._tls.DOMAIN` TLS-RPT record (RFC 8460 §3). Without --mx the
//     server's hostname from the configuration is the one MX. --output writes the policy file
//     (CRLF lines) there instead of printing it. Nothing is printed unless the policy parses
//     back (delivery/mta_sts_policy.h).
//   smtpsctl mta-sts check DOMAIN [--config FILE] [--cache DIR] [--timeout SECONDS]
//     Looks the policy up with the configuration's [dns], [delivery] ca_file and
//     mta_sts_port, as delivery does (delivery/mta_sts.h), and prints it, where it came from
//     and when it expires. The cache is DIR (default: a temporary one, removed at exit: the
//     server's own cache is never touched).
// Exit codes: 0 done (check: a policy was found), 1 error (check: no policy), 2 usage.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace app {

int run_mta_sts_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                        std::int64_t now);

}  // namespace app
