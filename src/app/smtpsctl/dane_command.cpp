// dane_command.cpp — see dane_command.h.
#include "app/smtpsctl/dane_command.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "acme/certificate_files.h"
#include "app/common/config_path.h"
#include "app/smtpsctl/command_line.h"
#include "base/ascii.h"
#include "base/expected.h"
#include "base/terminal_text.h"
#include "config/config.h"
#include "tls/spki_digest.h"

namespace app {
namespace {

int dane_fail(std::ostream& err, const std::string& message) {
  err << "smtpsctl dane: " << base::terminal_safe(message) << "\n";
  return 1;
}

}  // namespace

int run_dane_command(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  CLI::App cli{"DANE TLSA records for this server", "smtpsctl dane"};
  cli.require_subcommand(1);
  std::string config_file, host;
  unsigned port = 25;
  auto* tlsa = cli.add_subcommand(
      "tlsa", "Print the TLSA record (3 1 1) of each certificate the server serves");
  tlsa->add_option("--config", config_file,
                   "The server's configuration (default $SMTPSD_CONFIG, then " +
                       std::string(kDefaultConfigPath) + ")");
  tlsa->add_option("--host", host, "The MX host name the records are for (default hostname)");
  tlsa->add_option("--port", port, "The port (default 25)")->check(CLI::Range(1, 65535));
  bool next = false;
  tlsa->add_flag("--next", next,
                 "The records of the next keys a key rollover staged (smtpsctl cert rollover), "
                 "to publish beside the current ones");
  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;

  auto path = existing_config_path(choose_config_path(config_file, std::getenv("SMTPSD_CONFIG")));
  if (!path) return dane_fail(err, path.error());
  auto config = config::load_file(path.value());
  if (!config) return dane_fail(err, config.error().to_string());
  const bool host_given = !host.empty();
  if (host.empty()) host = config.value().hostname;
  host = base::ascii_lowercase(host);
  if (!host.empty() && host.back() == '.') host.pop_back();
  const std::string name = "_" + std::to_string(port) + "._tcp." + host + ".";
  if (next) {
    if (!config.value().acme)
      return dane_fail(err, path.value() + ": [acme] is off: only ACME keys roll over");
    // The names the rollover checks (acme/dane_rollover.h), unless --host says otherwise.
    std::vector<std::string> owners;
    if (host_given) {
      owners.push_back(name);
    } else {
      for (std::string acme_name : config.value().acme->names) {
        acme_name = base::ascii_lowercase(acme_name);
        if (!acme_name.empty() && acme_name.back() == '.') acme_name.pop_back();
        owners.push_back("_" + std::to_string(port) + "._tcp." + acme_name + ".");
      }
    }
    bool any = false;
    for (const acme::CertificatePaths& paths :
         acme::certificate_paths(config.value().acme->directory_on_disk)) {
      struct stat info {};
      if (::stat(paths.next_key.c_str(), &info) != 0) continue;
      auto key = acme::load_key(paths.next_key, paths.type);
      if (!key) return dane_fail(err, key.error());
      if (!any)
        out << "; the NEXT keys: publish beside the current records; the key changes once the "
               "DNS shows them (RFC 7671 section 8.1)\n";
      any = true;
      for (const std::string& owner : owners)
        out << owner << " IN TLSA 3 1 1 " << tls::spki_sha256_hex(key->get()) << "  ; "
            << paths.next_key << "\n";
    }
    if (!any) return dane_fail(err, "no next key is staged: smtpsctl cert rollover stages one");
    return 0;
  }
  out << "; DANE-EE(3) SPKI(1) SHA2-256(1): publish in a DNSSEC-signed zone (RFC 7672)\n";
  std::vector<std::string> seen;
  for (const tls::CertificatePair& pair : config.value().certificates) {
    auto digest = tls::spki_sha256_hex(pair.certificate_file);
    if (!digest) return dane_fail(err, digest.error());
    bool repeated = false;
    for (const std::string& other : seen)
      repeated = repeated || other == digest.value();
    if (repeated) continue;  // two certificates of one key: one record
    seen.push_back(digest.value());
    out << name << " IN TLSA 3 1 1 " << digest.value() << "  ; " << pair.certificate_file << "\n";
  }
  return 0;
}

}  // namespace app
