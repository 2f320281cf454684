// dev_mode.cpp — see dev_mode.h.
#include "app/smtpsd/dev_mode.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "app/smtpsd/listener_policy.h"
#include "auth/user_store.h"
#include "base/endpoint.h"
#include "base/file_write.h"
#include "delivery/maildir.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/dkim_zone.h"
#include "tls/dev_pki.h"

namespace app {
namespace {

namespace fs = std::filesystem;

// The port `smtpsd dev --port-offset offset` writes for a role.
int default_port(config::Role role, int offset) {
  switch (role) {
    case config::Role::kSubmissions:
      return 2465 + offset;
    case config::Role::kSubmission:
      return 2587 + offset;
    case config::Role::kSmtp:
      return 2525 + offset;
  }
  return 0;
}

}  // namespace

std::string dev_password() {
  unsigned char bytes[18];
  char out[sodium_base64_ENCODED_LEN(sizeof bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  // Never a leading '-': the printed swaks command passes it as an argument, where it would be
  // read as an option (one password in 64; drawing again costs a negligible part of 144 bits).
  do {
    randombytes_buf(bytes, sizeof bytes);
    sodium_bin2base64(out, sizeof out, bytes, sizeof bytes,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  } while (out[0] == '-');
  return out;
}

namespace {

std::string dev_config(int offset) {
  return fmt::format(R"(# smtpsd development configuration, written by `smtpsd dev`.
# Every key is documented in README.md ("Configuration"). Paths are relative to this file.

[server]
hostname = "localhost"
data_dir = "."
# `mailq` for every local user who can reach this directory: their own messages only.
mailq_socket = "mailq.sock"
# The development server runs as whoever starts it. A production server started as root
# names an unprivileged account instead, e.g. user = "smtpsd" (README "Privileges").
run_as_root = true

[tls]
min_version = "TLSv1.2"

[[tls.certificates]]
certificate = "tls/server-ecdsa.pem"
key = "tls/server-ecdsa.key"

[[tls.certificates]]
certificate = "tls/server-rsa.pem"
key = "tls/server-rsa.key"

[[domains]]
name = "localhost"
# What demo@localhost submits is signed twice (RSA-2048 and Ed25519). The records to publish
# are in dkim/localhost.zone; `smtpsctl dkim keygen DOMAIN` makes keys for a real domain.
dkim = [{{ selector = "dev-rsa", key = "dkim/localhost/dev-rsa.key" }},
        {{ selector = "dev-ed25519", key = "dkim/localhost/dev-ed25519.key" }}]

[auth]
# The mailboxes and logins: demo@localhost, password in demo.password. Add a mailbox with
# `smtpsctl user add --users users ADDRESS` (--no-password for one that only receives).
users_file = "users"

[addressing]
aliases_file = "aliases"             # manage with `smtpsctl alias --aliases aliases ...`
administrator = "demo@localhost"     # postmaster@ and abuse@ land in demo's Maildir
subaddress_separator = "+"           # demo+anything@localhost is demo's
subaddress_folders = true            # ... filed in the Maildir folder .anything

[limits]
# Load tests (smtpsctl bench) come from one address and one user: the rate limits are off
# here. A production server keeps them (README "Replies and limits").
max_connections_per_minute_per_ip = 0

[sending_limits]
# Off here too for the load tests; the bounds on distinct external recipients stay at
# their defaults (50 an hour, 200 a day: past one a user's mail is held in the queue until
# `smtpsctl queue release --user USER`; README "Sending limits").
messages_per_hour = 0

[queue]
# Mail for the local mailboxes is in them when the 250 comes (README "Local delivery").
# reply_after = "log" answers once the message is durable in the spool's commit log and
# makes the mailbox copy right after (1.1-1.2 times the messages/s at 100 per connection).
reply_after = "mailbox"

[screening]
# Port-25 clients (the smtp listener below) are screened as Postfix's postscreen does: one
# that talks before the final greeting line (sent after pregreet_wait; a client that waited
# once is remembered), or pipelines without PIPELINING, is refused. DNS block lists are left
# out here (no queries leave a development machine); README "Screening port 25 clients":
#   [[screening.dns_lists]]
#   zone = "zen.spamhaus.org"
#   weight = 2
pregreet_wait = "1s"
improper_pipelining = "refuse"

# Milters (rspamd, OpenDKIM, spamass-milter, ...) are named here and listed per listener,
# README "Filtering with milters":
#   [[milters]]
#   name = "rspamd"
#   address = "unix:/run/rspamd/milter.sock"
#   default_action = "tempfail"
# and in a [[listeners]] entry: milters = ["rspamd"]

[[listeners]]
role = "submissions"
address = "127.0.0.1"
port = {}

[[listeners]]
role = "submission"
address = "127.0.0.1"
port = {}

[[listeners]]
role = "smtp"
address = "127.0.0.1"
port = {}

# `sendmail` on this host without a password: every local user who can reach the socket
# (public/submit.sock here) may submit; the sender becomes USER@localhost (root may choose).
[local_submission]
)",
                     default_port(config::Role::kSubmissions, offset),
                     default_port(config::Role::kSubmission, offset),
                     default_port(config::Role::kSmtp, offset));
}

// "127.0.0.1:2525", "[::1]:2525".
std::string address_of(const BoundListener& listener) {
  return base::to_string(base::HostPort{listener.address, listener.port});
}

const BoundListener* first_of(const std::vector<BoundListener>& listening, std::string_view role) {
  for (const BoundListener& listener : listening) {
    if (listener.role == role) return &listener;
  }
  return nullptr;
}

// The DKIM keys of the development domain (made once, kept), and the zone-file lines that
// would publish them: dkim/localhost.zone.
base::Expected<base::Ok, std::string> ensure_dev_dkim(const std::string& dir) {
  const std::string keys = dir + "/dkim/localhost";
  std::error_code ec;
  fs::create_directories(keys, ec);
  if (ec) return base::unexpected("cannot create " + keys + ": " + ec.message());
  std::string zone =
      "; DKIM records of the smtpsd development domain (RFC 6376 §3.6.2.1), as a zone file\n";
  for (const auto& [selector, algorithm] :
       {std::pair<std::string, std::string>{"dev-rsa", "rsa"}, {"dev-ed25519", "ed25519"}}) {
    const std::string path = keys + "/" + selector + ".key";
    if (!fs::exists(path)) {
      auto generated = mailauth::generate_dkim_key(algorithm);
      if (!generated) return base::unexpected(generated.error());
      auto written = base::write_file_atomically(path, generated.value().private_pem, 0600);
      if (!written) return base::unexpected(written.error());
    }
    std::ifstream in(path);
    std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto key = mailauth::DkimSigningKey::load(pem, "localhost", selector);
    if (!key) return base::unexpected(path + ": " + key.error());
    zone +=
        mailauth::dkim_zone_line(selector + "._domainkey.localhost", key.value()->dns_record()) +
        "\n";
  }
  const std::string zone_file = dir + "/dkim/localhost.zone";
  std::ofstream out(zone_file, std::ios::trunc);
  out << zone;
  if (!out.flush()) return base::unexpected("cannot write " + zone_file);
  return base::Ok{};
}

}  // namespace

base::Expected<DevSetup, std::string> prepare_dev(const std::string& dir, int port_offset) {
  if (sodium_init() < 0) return base::unexpected(std::string("libsodium failed to initialise"));
  if (port_offset < 0 || port_offset > 60000) {
    return base::unexpected("--port-offset must be between 0 and 60000, not " +
                            std::to_string(port_offset));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return base::unexpected("cannot create " + dir + ": " + ec.message());
  DevSetup setup;
  setup.dir = fs::absolute(dir).lexically_normal().string();
  setup.port_offset = port_offset;
  setup.config_file = setup.dir + "/smtpsd.toml";

  auto pki = tls::ensure_dev_pki(setup.dir + "/tls", {"localhost", "127.0.0.1", "::1"});
  if (!pki) return base::unexpected(pki.error());

  setup.kept_config = fs::exists(setup.config_file);
  if (!setup.kept_config) {
    auto written = base::write_file_atomically(setup.config_file, dev_config(port_offset), 0644);
    if (!written) return base::unexpected(written.error());
  }
  std::string password_file = setup.dir + "/demo.password";
  if (!fs::exists(password_file)) {
    auto written = base::write_file_atomically(password_file, dev_password() + "\n", 0600);
    if (!written) return base::unexpected(written.error());
  }
  // demo@localhost in the users file (argon2id + SCRAM keys), with the password of
  // demo.password; kept as it is when it is already there.
  std::string users_file = setup.dir + "/users";
  auto store = fs::exists(users_file) ? auth::UserStore::load(users_file)
                                      : auth::UserStore::parse("", users_file);
  if (!store) return base::unexpected(store.error());
  if (store.value().find("demo@localhost") == nullptr) {
    std::ifstream in(password_file);
    std::string password;
    std::getline(in, password);
    if (password.empty()) return base::unexpected("cannot read the password in " + password_file);
    auto set = store.value().set_password("demo@localhost", password, auth::default_argon2());
    sodium_memzero(password.data(), password.size());
    if (!set) return base::unexpected(set.error());
    if (auto saved = store.value().save(users_file); !saved) {
      return base::unexpected(saved.error());
    }
  }
  if (auto dkim = ensure_dev_dkim(setup.dir); !dkim) return base::unexpected(dkim.error());
  delivery::Maildir maildir(setup.dir + "/mail", "localhost");
  auto mailbox = maildir.ensure_mailbox("demo@localhost");
  if (!mailbox) return base::unexpected(mailbox.error());
  return setup;
}

base::Expected<base::Ok, std::string> use_dev_dns(std::string_view server, config::Config& config) {
  base::HostPortForm form;
  form.default_port = 53;
  form.numeric_host = true;
  form.bare_ipv6 = true;
  auto parsed = base::parse_host_port(server, form);
  if (!parsed) {
    return base::unexpected(
        "--dns must be an IP address with an optional port "
        "(\"127.0.0.1:5353\", \"[::1]:53\"): " +
        parsed.error());
  }
  config.dns.mode = config::DnsSettings::Mode::kForward;
  config.dns.servers = {parsed.value()};
  config.dns.validation = config::DnsSettings::Validation::kNo;
  return base::Ok{};
}

std::string dev_port_note(const DevSetup& setup, const config::Config& config) {
  if (!setup.kept_config) return {};
  std::string ports;
  bool differ = false;
  for (const config::Listener& listener : config.listeners) {
    differ = differ || listener.port != default_port(listener.role, setup.port_offset);
    ports += fmt::format("{}{} {}", ports.empty() ? "" : ", ", config::to_string(listener.role),
                         listener.port);
  }
  if (!differ) return {};
  return fmt::format(
      "{} exists and is used as it is: its listener ports ({}) win over --port-offset {}. Edit "
      "the ports there, or remove the file to have it written again with the offset.",
      setup.config_file, ports, setup.port_offset);
}

namespace {

// What serves the names: the dev CA's certificates, or ACME ([acme] in the file).
std::string describe_dev_certificates(const config::Config& config) {
  if (!config.acme) {
    return "from the dev CA; a public server gets its own from an ACME CA (Let's Encrypt)\n"
           "                 with an [acme] table (README \"ACME\"): directory = \"https://...\",\n"
           "                 renewed by smtpsd itself; status: smtpsctl cert status --config ...";
  }
  std::string names;
  for (const std::string& name : config.acme->names)
    names += (names.empty() ? "" : ", ") + name;
  const bool tls_alpn = config.acme->challenge == "tls-alpn-01";
  if (config.acme->challenge == "dns-01")
    return fmt::format("ACME from {} for {} (dns-01 by {}); smtpsctl cert status --config ...",
                       config.acme->directory, names, config.acme->dns_hook.front());
  return fmt::format("ACME from {} for {} ({} on port {}); smtpsctl cert status --config ...",
                     config.acme->directory, names, config.acme->challenge,
                     tls_alpn ? config.acme->tls_alpn_port : config.acme->http_port);
}

}  // namespace

std::string dev_instructions(const DevSetup& s, const config::Config& config,
                             const std::vector<BoundListener>& listening) {
  std::string listeners;
  std::string local_socket;
  for (const BoundListener& l : listening) {
    if (l.role == "local") {
      local_socket =
          fmt::format("  local submit   {} (every local user, no password)\n", l.address);
      continue;
    }
    listeners += fmt::format("{}{} {}{}", listeners.empty() ? "" : ", ", l.role, address_of(l),
                             l.role == "submissions" ? " (implicit TLS)" : "");
  }
  std::string out = fmt::format(
      R"TEXT(
smtpsd development server is ready.
  configuration  {dir}/smtpsd.toml
  CA to trust    {dir}/tls/ca.pem
  mailbox        demo@localhost → {dir}/mail/localhost/demo/new/
                 (also postmaster@ and abuse@localhost; demo+tag@ → demo, in the
                 folder .tag once a mail client has made it)
  listeners      {listeners}
  checks         {checks}
  screening      {screening}
  sending limits {sending}
  local mail     {local_mail}
  DKIM           what demo@localhost submits is signed (keys in {dir}/dkim/localhost/);
                 the DNS records a real domain would publish: {dir}/dkim/localhost.zone
  DNS            {dns}
  outbound TLS   DANE (TLSA) authenticates MX hosts when the resolver validates DNSSEC;
                 this server's own TLSA records: smtpsctl dane tlsa --config {dir}/smtpsd.toml
                 what decides mail to a domain: smtpsctl tls policy DOMAIN --config ...
  records        a real domain's MX, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT and TLSA, each
                 checked with its fix: smtpsctl dns check DOMAIN --config {dir}/smtpsd.toml
  certificates   {acme}
{local})TEXT",
      fmt::arg("dir", s.dir), fmt::arg("listeners", listeners.empty() ? "none" : listeners),
      fmt::arg("checks", describe_configured_checks(config)),
      fmt::arg("screening", describe_screening(config)),
      fmt::arg("sending", describe_sending_limits(config)),
      fmt::arg("local_mail",
               !config.queue.deliver_at_acceptance
                   ? std::string("through the queue (deliver_at_acceptance = false)")
               : config.queue.reply_after_log
                   ? std::string("the 250 once it is durable in the spool's commit log, the "
                                 "mailbox copy right after\n                 (reply_after = "
                                 "\"log\" in [queue])")
                   : std::string("in the mailbox when the 250 comes; [queue] reply_after = "
                                 "\"log\" answers\n                 after the commit log "
                                 "and copies right after (faster)")),
      fmt::arg("dns", config.dns.servers.empty()
                          ? std::string("the system's resolvers (/etc/resolv.conf); "
                                        "`smtpsd dev --dns IP:PORT` sends every lookup there")
                          : "every lookup (SPF, DKIM, DMARC, MX) goes to " +
                                base::to_string(config.dns.servers.front())),
      fmt::arg("local", local_socket), fmt::arg("acme", describe_dev_certificates(config)));
  if (const BoundListener* smtps = first_of(listening, "submissions")) {
    out += fmt::format(
        R"TEXT(
Submit a mail as demo@localhost (implicit TLS, AUTH PLAIN, password in {dir}/demo.password):
  swaks --server {smtps} --tls-on-connect --tls-verify --tls-ca-path {dir}/tls/ca.pem \
        --auth PLAIN --auth-user demo@localhost --auth-password "$(cat {dir}/demo.password)" \
        --from demo@localhost --to demo@localhost
)TEXT",
        fmt::arg("dir", s.dir), fmt::arg("smtps", address_of(*smtps)));
  }
  if (const BoundListener* smtp = first_of(listening, "smtp")) {
    out += fmt::format(
        R"TEXT(
Send a test mail (STARTTLS on the smtp role, certificate verified against the dev CA):
  swaks --server {smtp} --tls --tls-ca-path {dir}/tls/ca.pem --tls-verify \
        --from you@example.org --to demo@localhost
  python3 -c "import smtplib,ssl; c=ssl.create_default_context(cafile='{dir}/tls/ca.pem'); \
s=smtplib.SMTP('{host}',{port}); s.starttls(context=c); \
s.sendmail('you@example.org',['demo@localhost'],'Subject: hi\r\n\r\nhello\r\n'); s.quit()"
  openssl s_client -starttls smtp -connect {smtp} -CAfile {dir}/tls/ca.pem -crlf
)TEXT",
        fmt::arg("dir", s.dir), fmt::arg("smtp", address_of(*smtp)),
        fmt::arg("host", smtp->address), fmt::arg("port", smtp->port));
  }
  if (const BoundListener* smtps = first_of(listening, "submissions")) {
    out += fmt::format("  openssl s_client -connect {} -CAfile {}/tls/ca.pem -crlf\n",
                       address_of(*smtps), s.dir);
  }
  if (first_of(listening, "local") != nullptr) {
    out += fmt::format(
        R"TEXT(
Send from this host as any local user, without a password (the local submission socket):
  printf 'To: demo@localhost\nSubject: hi\n\nhello\n' | SMTPSD_CONFIG={dir}/smtpsd.toml smtpsctl sendmail -t
)TEXT",
        fmt::arg("dir", s.dir));
  }
  out += fmt::format("\nThen look in {}/mail/localhost/demo/new/. Stop with Ctrl-C.\n", s.dir);
  return out;
}

}  // namespace app
