// dkim_command.h — `smtpsctl dkim keygen`: makes DKIM signing keys and prints the DNS
// records to publish (RFC 6376 §3.6.1, RFC 8463 §4.2).
//
//   smtpsctl dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519|both]
//                               [--directory DIR]
//
// Writes DIR/DOMAIN/SELECTOR.rsa.key (RSA-2048) and/or DIR/DOMAIN/SELECTOR.ed25519.key as
// PEM PKCS#8, mode 0600 (missing directories are made 0700); DIR defaults to
// /etc/smtpsd/dkim. Default selectors are dated, so that the next rotation gets new names and
// both generations can be published at once: <yyyymm>r for RSA and <yyyymm>e for Ed25519
// (UTC). With --selector S: S for one algorithm; Sr and Se for both (one DNS name per key).
// Nothing is overwritten: if any key file exists, nothing is written. Prints, for each key,
// the zone-file line, its TXT rdata split into strings of at most 255 octets:
//   202612r._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=..." "..." )
// Exit codes: 0 done, 1 error, 2 usage.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "dns/resolver.h"

namespace app {

// Each DKIM key of entry (a [[domains]] entry for domain) against the TXT record DNS
// publishes at its selector: one line per key, "OK", "MISSING" or "DIFFERENT" with the
// record to publish, "BROKEN KEY" or "NOT CHECKED". Returns the number of keys not OK. Used
// by `dkim check` and `dns check`.
int check_dkim_records(const config::Domain& entry, const std::string& domain,
                       dns::Resolver& resolver, std::ostream& out);

int run_dkim_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                     std::int64_t now);

}  // namespace app
