// dkim_command.cpp — `smtpsctl dkim keygen` (usage in dkim_command.h).
//
// Invariants: every key is generated and checked (loadable for DOMAIN and its selector) and
// no target file exists before the first file is written; each file is created with
// O_EXCL (never overwriting, even in a race) mode 0600, written and fsynced; a file that
// cannot be completed is removed.
#include "app/smtpsctl/dkim_command.h"
#include "app/smtpsctl/command_line.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "app/common/config_path.h"
#include "app/common/dns_options.h"
#include "base/ascii.h"
#include "base/clock.h"
#include "base/terminal_text.h"
#include "config/config.h"
#include "dns/resolver.h"
#include "mailauth/dkim_signature.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/dkim_zone.h"

namespace app {
namespace {

constexpr const char* kDefaultDirectory = "/etc/smtpsd/dkim";

int dkim_fail(std::ostream& err, const std::string& message) {
  err << "smtpsctl dkim: " << base::terminal_safe(message) << "\n";
  return 1;
}

bool exists(const std::string& path) {
  struct stat status {};
  return ::lstat(path.c_str(), &status) == 0 || errno != ENOENT;
}

base::Expected<base::Ok, std::string> make_directory(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return base::Ok{};
  return base::unexpected(path + ": " + std::strerror(errno));
}

base::Expected<base::Ok, std::string> write_new_file(const std::string& path,
                                                     const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return base::unexpected(path + ": " + std::strerror(errno));
  std::size_t written = 0;
  bool ok = true;
  while (ok && written < content.size()) {
    ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) written += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(path.c_str());
    return base::unexpected(path + ": " + std::strerror(saved));
  }
  return base::Ok{};
}

struct PlannedKey {
  std::string algorithm;  // "rsa" | "ed25519"
  std::string selector;
  std::string path;
  mailauth::GeneratedKey generated;
};

}  // namespace

int check_dkim_records(const config::Domain& entry, const std::string& domain,
                       dns::Resolver& resolver, std::ostream& out) {
  const bool validating = resolver.validates();
  int problems = 0;
  for (const config::DkimKeyFile& file : entry.dkim) {
    const std::string name = file.selector + "._domainkey." + domain;
    auto key = mailauth::DkimSigningKey::load(file.pem, domain, file.selector);
    if (!key) {
      ++problems;
      out << name << ": BROKEN KEY " << file.key_file << ": " << key.error() << "\n";
      continue;
    }
    const std::string ours = key.value()->dns_record();
    auto expected = mailauth::parse_dkim_key_record(ours);
    dns::AnswerPtr answer =
        resolver.lookup_and_wait(name, dns::Type::kTxt, std::chrono::seconds(15));
    if (answer->status == dns::Status::kTemporary || answer->status == dns::Status::kBogus) {
      ++problems;
      out << name << ": NOT CHECKED: " << base::terminal_safe(answer->detail) << "\n";
      continue;
    }
    bool published = false, other = false;
    for (const std::string& text : answer->texts) {
      auto record = mailauth::parse_dkim_key_record(text);
      if (!record) continue;
      if (expected && record.value().public_key == expected.value().public_key &&
          record.value().key_type == expected.value().key_type)
        published = true;
      else
        other = true;
    }
    // What a DANE-minded operator wants to know too: whether the record is signed.
    const char* dnssec = !validating      ? ""
                         : answer->secure ? ", DNSSEC: secure"
                                          : ", DNSSEC: not signed";
    if (published) {
      out << name << ": OK (" << key.value()->algorithm() << ", " << key.value()->bits() << " bits"
          << dnssec << ")\n";
      continue;
    }
    ++problems;
    out << name << ": "
        << (other ? "DIFFERENT: the published key is not the one in " + file.key_file
                  : std::string("MISSING"))
        << "; publish:\n  " << mailauth::dkim_zone_line(name, ours) << "\n";
  }
  return problems;
}

namespace {

// `dkim check`: each key of the domain against what DNS publishes at its selector. Reads the
// private keys (the server's account or root), asks DNS as the server does ([dns]).
int check_published(const std::string& domain, const std::string& config_file, std::ostream& out,
                    std::ostream& err) {
  auto path = existing_config_path(choose_config_path(config_file, std::getenv("SMTPSD_CONFIG")));
  if (!path) return dkim_fail(err, path.error());
  auto config = config::load_file(path.value());
  if (!config) return dkim_fail(err, config.error().to_string());
  const config::Domain* entry = config.value().find_domain(domain);
  if (entry == nullptr || entry->dkim.empty()) {
    return dkim_fail(err, domain + " has no dkim keys in " + path.value() +
                              " ([[domains]] dkim = [{ selector, key }])");
  }
  auto resolver = dns::create_resolver(dns_options(config.value().dns));
  if (!resolver) return dkim_fail(err, "[dns]: " + resolver.error());
  out << "DNS: " << resolver.value()->describe() << "\n";
  const int problems = check_dkim_records(*entry, domain, *resolver.value(), out);
  return problems == 0 ? 0 : 1;
}

}  // namespace

int run_dkim_command(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err,
                     std::int64_t now) {
  CLI::App cli{"DKIM signing keys", "smtpsctl dkim"};
  cli.require_subcommand(1);
  std::string domain, selector, algorithm = "both", directory = kDefaultDirectory;
  auto* keygen = cli.add_subcommand(
      "keygen", "Make signing keys for DOMAIN and print the DNS records to publish");
  keygen->add_option("domain", domain, "The signing domain (d=)")->required();
  keygen->add_option("--selector", selector,
                     "The selector (s=); default <yyyymm>r / <yyyymm>e; with both: Sr and Se");
  keygen->add_option("--algorithm", algorithm, "rsa (2048 bits), ed25519, or both (default)")
      ->check(CLI::IsMember({"rsa", "ed25519", "both"}));
  keygen->add_option("--directory", directory,
                     "Where keys go, as DIR/DOMAIN/SELECTOR.ALGORITHM.key (default " +
                         std::string(kDefaultDirectory) + ")");
  std::string config_file;
  auto* check = cli.add_subcommand(
      "check", "Look up DOMAIN's published DKIM records and compare them with its keys");
  check->add_option("domain", domain, "A [[domains]] entry with dkim keys")->required();
  check->add_option("--config", config_file,
                    "The server's configuration (default $SMTPSD_CONFIG, then " +
                        std::string(kDefaultConfigPath) + ")");
  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;

  domain = base::ascii_lowercase(domain);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (*check) return check_published(domain, config_file, out, err);
  std::vector<PlannedKey> keys;
  for (std::string name : {"rsa", "ed25519"}) {
    if (algorithm != "both" && algorithm != name) continue;
    const char suffix = name == "rsa" ? 'r' : 'e';
    std::string key_selector = selector.empty()      ? base::utc_text(now, "%Y%m") + suffix
                               : algorithm == "both" ? selector + suffix
                                                     : selector;
    key_selector = base::ascii_lowercase(key_selector);
    keys.push_back(PlannedKey{name,
                              key_selector,
                              directory + "/" + domain + "/" + key_selector + "." + name + ".key",
                              {}});
  }
  for (auto& key : keys) {
    if (exists(key.path)) return dkim_fail(err, key.path + " exists; nothing written");
  }
  for (auto& key : keys) {
    auto generated = mailauth::generate_dkim_key(key.algorithm);
    if (!generated) return dkim_fail(err, generated.error());
    auto loaded = mailauth::DkimSigningKey::load(generated->private_pem, domain, key.selector);
    if (!loaded) return dkim_fail(err, loaded.error());
    key.generated = std::move(*generated);
  }
  for (const std::string& path : {directory, directory + "/" + domain}) {
    if (auto made = make_directory(path); !made) return dkim_fail(err, made.error());
  }
  for (const auto& key : keys) {
    if (auto written = write_new_file(key.path, key.generated.private_pem); !written)
      return dkim_fail(err, written.error());
  }
  for (const auto& key : keys) {
    out << "; " << key.path << "\n"
        << mailauth::dkim_zone_line(key.selector + "._domainkey." + domain,
                                    key.generated.dns_record)
        << "\n";
  }
  return 0;
}

}  // namespace app
