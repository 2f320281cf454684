// init_command.cpp — see init_command.h.
#include "app/smtpsd/init_command.h"

#include <grp.h>
#include <pwd.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <vector>

#include "auth/user_store.h"
#include "base/clock.h"
#include "base/file_write.h"
#include "delivery/mta_sts_policy.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/dkim_zone.h"
#include "tls/dev_pki.h"
#include "tls/spki_digest.h"

namespace app {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kStsMaxAge = 604800;  // a week (RFC 8461 §3.2 suggests weeks)

// A TOML basic string (the values here are host names and paths we checked).
std::string quoted(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

struct Account {
  bool exists = false;
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string group;
};

Account account_of(const std::string& user) {
  Account account;
  if (user.empty()) return account;
  if (const passwd* entry = ::getpwnam(user.c_str())) {
    account.exists = true;
    account.name = user;
    account.uid = entry->pw_uid;
    account.gid = entry->pw_gid;
    if (const group* g = ::getgrgid(entry->pw_gid)) account.group = g->gr_name;
  }
  return account;
}

// A secret the server reads again as its account after start-up (a reload): readable by
// that group (mode 0640), or, with `own`, that account's alone (0600: DKIM keys).
base::Expected<base::Ok, std::string> share_with(const std::string& path, const Account& account,
                                                 bool own = false) {
  if (!account.exists) return base::Ok{};
  if (::chown(path.c_str(), own ? account.uid : static_cast<uid_t>(-1), account.gid) != 0 ||
      ::chmod(path.c_str(), own ? 0600 : 0640) != 0)
    return base::unexpected("cannot give " + path + " to " + account.name);
  return base::Ok{};
}

std::string configuration(const InitOptions& o, const std::string& rsa_selector,
                          const std::string& ed25519_selector) {
  const std::string& d = o.domain;
  std::string text =
      "# smtpsd configuration for " + d +
      ", written by `smtpsd init`.\n"
      "# Every key is documented in README.md (\"Configuration\"); `smtpsd check` validates\n"
      "# this file. Relative paths are relative to this file.\n\n"
      "[server]\n"
      "hostname = " +
      quoted(o.hostname) +
      "         # the HELO name, and the MX host the DNS records name\n"
      "data_dir = " +
      quoted(o.data_dir) + "         # spool, Maildirs, reports; owned by the account\n";
  text += o.user.empty()
              ? "# user = \"smtpsd\"    # started as root, name an unprivileged account\n"
              : "user = " + quoted(o.user) +
                    "              # started as root: binds, reads keys, then runs "
                    "as this account\n";
  text +=
      "\n[tls]\n"
      "min_version = \"TLSv1.2\"\n\n"
      "# Certificates for " +
      o.hostname +
      " from a CA of their own (tls/ca.pem), made by `smtpsd init`:\n"
      "# replace them by a public CA's (MTA-STS senders and most mail clients need one). Keep\n"
      "# the keys across renewals and the TLSA records stay valid (README \"Certificates and\n"
      "# reloading\"); `kill -HUP` or a changed file reloads them without dropping a session.\n"
      "[[tls.certificates]]\n"
      "certificate = \"tls/server-ecdsa.pem\"\n"
      "key = \"tls/server-ecdsa.key\"\n\n"
      "[[tls.certificates]]\n"
      "certificate = \"tls/server-rsa.pem\"\n"
      "key = \"tls/server-rsa.key\"\n\n"
      "[[domains]]\n"
      "name = " +
      quoted(d) +
      "\n"
      "# What its users submit is signed (RSA-2048 and Ed25519; `smtpsctl dkim check " +
      d +
      "`).\n"
      "dkim = [{ selector = " +
      quoted(rsa_selector) + ", key = " + quoted("dkim/" + d + "/" + rsa_selector + ".rsa.key") +
      " },\n"
      "        { selector = " +
      quoted(ed25519_selector) +
      ", key = " + quoted("dkim/" + d + "/" + ed25519_selector + ".ed25519.key") +
      " }]\n\n"
      "[auth]\n"
      "# Mailboxes and logins: `smtpsctl user add --users " +
      o.dir + "/users you@" + d +
      "`\n"
      "users_file = \"users\"\n\n"
      "[addressing]\n"
      "aliases_file = \"aliases\"   # `smtpsctl alias --aliases " +
      o.dir +
      "/aliases ...`\n"
      "# administrator = \"you@" +
      d +
      "\"   # postmaster@ and abuse@ of every domain reach this mailbox\n\n"
      "# Mail from other servers (STARTTLS offered; SPF, DKIM and DMARC checked, DMARC enforced).\n"
      "[[listeners]]\n"
      "role = \"smtp\"\n"
      "address = \"0.0.0.0\"\n"
      "port = 25\n\n"
      "# Your users' mail clients: implicit TLS (RFC 8314) and STARTTLS, AUTH required.\n"
      "[[listeners]]\n"
      "role = \"submissions\"\n"
      "address = \"0.0.0.0\"\n"
      "port = 465\n\n"
      "[[listeners]]\n"
      "role = \"submission\"\n"
      "address = \"0.0.0.0\"\n"
      "port = 587\n\n"
      "# IPv6: the same three listeners with address = \"::\".\n\n"
      "# `sendmail` on this host (cron, scripts) without a password. The socket's directory\n"
      "# must let every local user in (the data directory does not): the systemd unit makes\n"
      "# it (RuntimeDirectory=, 0755), the Debian package too; read by sendmail, this file\n"
      "# stays readable by all (it holds no secret).\n"
      "[local_submission]\n"
      "socket = " +
      quoted(o.run_dir + "/submit.sock") +
      "\n\n"
      "# DNS: the system's resolvers (/etc/resolv.conf), DNSSEC validated when they pass it\n"
      "# through (README \"DNS\"); a local validating resolver (unbound) makes DANE work.\n\n"
      "# Reports to the domains you exchange mail with; on once named:\n"
      "# [dmarc_reports]\n"
      "# org_name = " +
      quoted(d) +
      "\n"
      "# from = " +
      quoted("dmarc-reports@" + d) +
      "\n"
      "# [tls_reports]\n"
      "# org_name = " +
      quoted(d) +
      "\n"
      "# from = " +
      quoted("tlsrpt@" + d) + "\n";
  return text;
}

// Whether a configuration file holds any setting: a line that is neither blank nor a comment.
// One that does not (the placeholder the Debian package installs as /etc/smtpsd/smtpsd.toml)
// has nothing to lose, so init may write over it. An unreadable file counts as taken.
bool holds_a_setting(const std::string& path) {
  std::ifstream in(path);
  if (!in) return true;
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first != std::string::npos && line[first] != '#') return true;
  }
  return false;
}

int fail(std::ostream& err, const std::string& message) {
  err << "smtpsd init: " << message << "\n";
  return 1;
}

}  // namespace

int run_init(const InitOptions& given, std::ostream& out, std::ostream& err, std::int64_t now) {
  if (sodium_init() < 0) return fail(err, "libsodium failed to initialise");
  InitOptions o = given;
  o.domain = delivery::normalized_host(o.domain);
  o.hostname = delivery::normalized_host(o.hostname);
  if (o.domain.empty() || o.domain.find('.') == std::string::npos)
    return fail(err, "--domain \"" + given.domain + "\" is not a domain name (example.org)");
  if (o.hostname.empty() || o.hostname.find('.') == std::string::npos)
    return fail(err, "--hostname \"" + given.hostname + "\" is not a host name (mx.example.org)");
  if (o.data_dir.empty() || o.data_dir.front() != '/')
    return fail(err, "--data-dir must be an absolute path");
  // sun_path holds 108 octets with its NUL (unix(7)); "/submit.sock" is 12 of them.
  if (o.run_dir.empty() || o.run_dir.front() != '/' || o.run_dir.size() > 95)
    return fail(err, "--run-dir must be an absolute path of at most 95 octets");
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (ec) return fail(err, "cannot create " + o.dir + ": " + ec.message());
  o.dir = fs::absolute(o.dir).lexically_normal().string();
  if (o.dir.size() > 1 && o.dir.back() == '/') o.dir.pop_back();
  const std::string config_file = o.dir + "/smtpsd.toml";
  const std::string rsa_selector = base::utc_text(now, "%Y%m") + "r";
  const std::string ed25519_selector = base::utc_text(now, "%Y%m") + "e";
  const std::string dkim_dir = o.dir + "/dkim/" + o.domain;
  const std::vector<std::string> planned = {config_file,
                                            o.dir + "/users",
                                            o.dir + "/aliases",
                                            o.dir + "/tls/server-ecdsa.pem",
                                            o.dir + "/tls/server-rsa.pem",
                                            dkim_dir + "/" + rsa_selector + ".rsa.key",
                                            dkim_dir + "/" + ed25519_selector + ".ed25519.key"};
  for (const std::string& path : planned) {
    if (fs::exists(path) && (path != config_file || holds_a_setting(path)))
      return fail(err, path + " exists; nothing written");
  }
  const Account account = account_of(o.user);

  // Certificates for the host name, then the DKIM keys, then the files naming them.
  auto pki = tls::ensure_dev_pki(o.dir + "/tls", {o.hostname});
  if (!pki) return fail(err, pki.error());
  // Nothing else is ever signed with that CA: its key goes (clients that pin tls/ca.pem
  // keep working until the certificates are replaced).
  fs::remove(pki.value().ca_key, ec);
  for (const std::string& key : {pki.value().ecdsa_key, pki.value().rsa_key}) {
    if (auto shared = share_with(key, account); !shared) return fail(err, shared.error());
  }
  fs::create_directories(dkim_dir, ec);
  if (ec) return fail(err, "cannot create " + dkim_dir + ": " + ec.message());
  ::chmod((o.dir + "/dkim").c_str(), 0750);
  ::chmod(dkim_dir.c_str(), 0750);
  if (account.exists) {
    if (::chown((o.dir + "/dkim").c_str(), static_cast<uid_t>(-1), account.gid) != 0 ||
        ::chown(dkim_dir.c_str(), static_cast<uid_t>(-1), account.gid) != 0)
      return fail(err, "cannot give " + dkim_dir + " to " + account.name);
  }
  std::vector<std::string> dkim_records;
  for (const auto& [algorithm, selector] :
       {std::pair<std::string, std::string>{"rsa", rsa_selector}, {"ed25519", ed25519_selector}}) {
    auto generated = mailauth::generate_dkim_key(algorithm);
    if (!generated) return fail(err, generated.error());
    const std::string path = dkim_dir + "/" + selector + "." + algorithm + ".key";
    if (auto written = base::write_file_atomically(path, generated.value().private_pem, 0600);
        !written)
      return fail(err, written.error());
    if (auto shared = share_with(path, account, /*own=*/true); !shared)
      return fail(err, shared.error());
    dkim_records.push_back(mailauth::dkim_zone_line(selector + "._domainkey." + o.domain,
                                                    generated.value().dns_record));
  }
  // An empty users file in its format (auth/user_store.h), as `smtpsctl user` keeps it.
  auto users = auth::UserStore::parse("", o.dir + "/users");
  if (!users) return fail(err, users.error());
  if (auto saved = users.value().save(o.dir + "/users"); !saved) return fail(err, saved.error());
  if (auto shared = share_with(o.dir + "/users", account); !shared)
    return fail(err, shared.error());
  const std::string aliases =
      "# address: target[, target...]   (README \"Mailboxes and aliases\")\n";
  if (auto written = base::write_file_atomically(o.dir + "/aliases", aliases, 0644); !written)
    return fail(err, written.error());
  if (auto written = base::write_file_atomically(
          config_file, configuration(o, rsa_selector, ed25519_selector), 0644);
      !written)
    return fail(err, written.error());
  // Configured now: the package's marker no longer holds the unit back.
  const std::string marker = o.dir + "/" + kNotConfiguredMarker;
  const bool had_marker = fs::remove(marker, ec);
  if (ec) return fail(err, "cannot remove " + marker + ": " + ec.message());

  // What to publish.
  delivery::StsPolicy policy;
  policy.mode = delivery::StsMode::kTesting;
  policy.mx = {o.hostname};
  policy.max_age = kStsMaxAge;
  std::string policy_text = delivery::format_sts_policy(policy);
  std::erase(policy_text, '\r');
  const std::string& d = o.domain;
  const std::string& h = o.hostname;
  out << "Wrote " << config_file << ", " << o.dir << "/users, " << o.dir << "/aliases, " << o.dir
      << "/tls/ (keys and certificates for " << h << ") and " << dkim_dir << "/ (DKIM keys).\n";
  if (had_marker)
    out << "Removed " << marker << ": the systemd unit may start now (systemctl enable --now "
        << "smtpsd).\n";
  if (!o.user.empty() && !account.exists) {
    out << "\nThe account " << o.user << " does not exist yet; make it before starting:\n"
        << "  useradd --system --home-dir " << o.data_dir << " --shell /usr/sbin/nologin " << o.user
        << "\n  chgrp " << o.user << " " << o.dir << "/users " << o.dir << "/tls/*.key " << dkim_dir
        << "/*.key " << o.dir << "/dkim " << dkim_dir << "; chmod 640 " << o.dir << "/users "
        << o.dir << "/tls/*.key " << dkim_dir << "/*.key\n";
  }
  out << "\n; DNS records for " << d << " (zone-file lines). Publish them, then check with:\n"
      << ";   smtpsctl dns check " << d << " --config " << config_file << "\n"
      << d << ". IN MX 10 " << h << ".\n"
      << h << ". IN A <this server's IPv4 address>\n"
      << h << ". IN AAAA <this server's IPv6 address, if it has one>\n"
      << "; SPF (RFC 7208): the MX hosts send the domain's mail\n"
      << d << ". IN TXT \"v=spf1 mx -all\"\n"
      << "; DKIM (RFC 6376): the keys in " << dkim_dir << "\n";
  for (const std::string& record : dkim_records)
    out << record << "\n";
  out << "; DMARC (RFC 7489): start with quarantine; reject once the reports show only your "
         "servers\n"
      << "_dmarc." << d << ". IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@" << d
      << "\"\n"
      << "; MTA-STS (RFC 8461): serve this file as https://mta-sts." << d
      << "/.well-known/mta-sts.txt\n"
      << "; (text/plain, a public CA's certificate for mta-sts." << d
      << "), then publish the TXT record;\n"
      << "; mode testing first, enforce once the TLS reports are clean (and a new id):\n";
  std::string_view lines = policy_text;
  while (!lines.empty()) {
    const std::size_t end = lines.find('\n');
    out << ";   " << lines.substr(0, end) << "\n";
    lines.remove_prefix(end == std::string_view::npos ? lines.size() : end + 1);
  }
  out << "_mta-sts." << d << ". IN TXT \"v=STSv1; id=" << base::utc_text(now, "%Y%m%dT%H%M%SZ")
      << "\"\n"
      << "; TLS-RPT (RFC 8460): where other servers send reports of their TLS to you\n"
      << "_smtp._tls." << d << ". IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@" << d << "\"\n"
      << "; DANE (RFC 7672), only in a DNSSEC-signed zone: the keys in " << o.dir << "/tls\n";
  for (const std::string& certificate : {pki.value().ecdsa_chain, pki.value().rsa_chain}) {
    auto digest = tls::spki_sha256_hex(certificate);
    if (!digest) return fail(err, digest.error());
    out << "_25._tcp." << h << ". IN TLSA 3 1 1 " << digest.value() << "\n";
  }
  out << "; PTR: ask whoever holds the server's addresses (the hosting provider) to set their\n"
      << "; PTR records to " << h << ": many receivers refuse mail from an address without one.\n"
      << "\nNext:\n"
      << "  smtpsctl user add --users " << o.dir << "/users you@" << d << "\n"
      << "  smtpsd check --config " << config_file << "\n"
      << "  smtpsd serve --config " << config_file << "   (or the systemd unit)\n";
  return 0;
}

}  // namespace app
