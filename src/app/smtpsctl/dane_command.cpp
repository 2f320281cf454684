// dane_command.cpp — see dane_command.h.
#include "app/smtpsctl/dane_command.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "app/common/config_path.h"
#include "app/smtpsctl/command_line.h"
#include "base/ascii.h"
#include "base/expected.h"
#include "base/terminal_text.h"
#include "config/config.h"

namespace app {
namespace {

int dane_fail(std::ostream& err, const std::string& message) {
  err << "smtpsctl dane: " << base::terminal_safe(message) << "\n";
  return 1;
}

// SHA2-256 of the DER SubjectPublicKeyInfo of the first certificate in a PEM file, in hex.
base::Expected<std::string, std::string> spki_sha256(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "r"), &std::fclose);
  if (!file) return base::unexpected(path + ": cannot open");
  std::unique_ptr<X509, void (*)(X509*)> certificate(
      PEM_read_X509(file.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!certificate) return base::unexpected(path + ": no PEM certificate");
  unsigned char* der = nullptr;
  const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(certificate.get()), &der);
  if (length <= 0) return base::unexpected(path + ": cannot encode its public key");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  const bool hashed = EVP_Digest(der, static_cast<std::size_t>(length), digest, &digest_length,
                                 EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!hashed) return base::unexpected(path + ": cannot hash its public key");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < digest_length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0x0F];
  }
  return hex;
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
  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;

  auto path = existing_config_path(choose_config_path(config_file, std::getenv("SMTPSD_CONFIG")));
  if (!path) return dane_fail(err, path.error());
  auto config = config::load_file(path.value());
  if (!config) return dane_fail(err, config.error().to_string());
  if (host.empty()) host = config.value().hostname;
  host = base::ascii_lowercase(host);
  if (!host.empty() && host.back() == '.') host.pop_back();
  const std::string name = "_" + std::to_string(port) + "._tcp." + host + ".";
  out << "; DANE-EE(3) SPKI(1) SHA2-256(1): publish in a DNSSEC-signed zone (RFC 7672)\n";
  std::vector<std::string> seen;
  for (const tls::CertificatePair& pair : config.value().certificates) {
    auto digest = spki_sha256(pair.certificate_file);
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
