// init_command.h — `smtpsd init --domain D --hostname H [--dir DIR] [--data-dir PATH]
// [--run-dir PATH] [--user NAME]`: a production setup for one mail domain, ready for
// `smtpsd check`, and every DNS record to publish for it.
//
// Writes into DIR (default /etc/smtpsd; made if missing):
//   smtpsd.toml      the configuration: listeners on 25 (smtp), 465 (submissions) and 587
//                    (submission), the domain with Maildir delivery under the data
//                    directory, DKIM signing, the account to run as, local submission on
//                    RUN_DIR/submit.sock (default /run/smtpsd: the unit's RuntimeDirectory=,
//                    open to every local user, unlike the 0750 data directory; mode 0644,
//                    since sendmail run by any user reads it), comments on every choice
//   users, aliases   empty (add mailboxes with `smtpsctl user add --users DIR/users ...`)
//   tls/             an ECDSA and an RSA key with certificates for H from a CA of its own
//                    (replace them by a public CA's: MTA-STS senders and most clients need
//                    one; keeping the keys keeps the TLSA records valid)
//   dkim/D/          an RSA-2048 and an Ed25519 key, selectors <yyyymm>r and <yyyymm>e
// Keys are mode 0640 with the account's group when the account exists (the server re-reads
// them as that account on a reload), else 0600. Nothing existing is ever overwritten: if the
// configuration exists, nothing is written — unless it holds no setting, only comments and
// blank lines (the placeholder the Debian package installs), which init replaces.
// Once the configuration is written, init removes DIR/not-configured, the marker the Debian
// package's postinst leaves beside the placeholder: the (enabled) systemd unit does not
// start while it exists (ConditionPathExists=!/etc/smtpsd/not-configured).
// Prints the records: MX, A/AAAA, SPF, DKIM, DMARC, MTA-STS (TXT and the policy file),
// TLS-RPT, TLSA, and the PTR to ask for; then the next steps.
// Exit codes: 0 done, 1 error (said on stderr); a usage error exits non-zero with its message.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace app {

// The marker file's name, beside the configuration (kept in step with the unit's condition
// and contrib/debian/postinst); `smtpsd check` warns while it exists.
inline constexpr const char* kNotConfiguredMarker = "not-configured";

struct InitOptions {
  std::string domain;
  std::string hostname;
  std::string dir = "/etc/smtpsd";
  std::string data_dir = "/var/lib/smtpsd";
  std::string run_dir = "/run/smtpsd";  // the local submission socket's directory
  std::string user = "smtpsd";
};

int run_init(const InitOptions& options, std::ostream& out, std::ostream& err, std::int64_t now);

}  // namespace app
