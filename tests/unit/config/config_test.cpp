// Tests for config/config.cpp: a valid file gives the snapshot it says, and every kind of
// mistake names the file, the line and the key.
#include "config/config.h"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char* kMinimal = R"([server]
hostname = "mx.example.org"
data_dir = "/var/lib/smtpsd"

[[tls.certificates]]
certificate = "certs/ecdsa.pem"
key = "certs/ecdsa.key"

[[domains]]
name = "Example.ORG"
users = ["alice", "bob"]

[[listeners]]
role = "smtp"
address = "0.0.0.0"

[[listeners]]
role = "submissions"
address = "::1"
port = 10465
)";

config::ConfigError expect_error(const std::string& text) {
  auto parsed = config::parse(text, "/etc/smtpsd/test.toml");
  EXPECT_FALSE(parsed.has_value()) << "accepted:\n" << text;
  if (parsed.has_value()) return {};
  return parsed.error();
}

TEST(ConfigTest, MinimalFileGivesDefaults) {
  auto parsed = config::parse(kMinimal, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::Config& c = parsed.value();
  EXPECT_EQ(c.hostname, "mx.example.org");
  EXPECT_EQ(c.data_dir, "/var/lib/smtpsd");
  ASSERT_EQ(c.certificates.size(), 1u);
  EXPECT_EQ(c.certificates[0].certificate_file, "/etc/smtpsd/certs/ecdsa.pem");
  ASSERT_EQ(c.domains.size(), 1u);
  EXPECT_EQ(c.domains[0].name, "example.org");
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[0].role, config::Role::kSmtp);
  EXPECT_EQ(c.listeners[0].port, 25);
  EXPECT_FALSE(c.listeners[0].session_tickets) << "tickets must default off on the smtp role";
  EXPECT_FALSE(c.listeners[0].require_tls);
  EXPECT_EQ(c.listeners[1].role, config::Role::kSubmissions);
  EXPECT_EQ(c.listeners[1].port, 10465);
  EXPECT_EQ(c.listeners[1].address, base::parse_ip("::1"));
  EXPECT_EQ(c.listeners[1].address_text, "::1");
  EXPECT_TRUE(c.listeners[1].session_tickets);
  EXPECT_EQ(c.tls.min_version, "TLSv1.2");
  EXPECT_EQ(c.limits.max_text_line, 1000u);
  EXPECT_EQ(c.command_timeout, std::chrono::minutes(5));
  EXPECT_EQ(c.auth.failure_window, std::chrono::minutes(15));
  EXPECT_EQ(c.auth.failure_delay, std::chrono::seconds(1));
  EXPECT_NE(c.find_domain("EXAMPLE.org"), nullptr);
  EXPECT_EQ(c.find_domain("example.net"), nullptr);
}

TEST(ConfigTest, LimitsAndTimeoutsAreRead) {
  std::string text = std::string(kMinimal) + R"(
[limits]
max_message_size = 1048576
max_recipients = 5
max_command_line = 4096
max_text_line = 2000
max_errors = 3
normalize_bare_line_endings = true

[timeouts]
command = 60
data = 30
handshake = 5
)";
  auto parsed = config::parse(text, "t.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const auto& l = parsed.value().limits;
  EXPECT_EQ(l.max_message_size, 1048576u);
  EXPECT_EQ(l.max_recipients, 5u);
  EXPECT_EQ(l.max_command_line, 4096u);
  EXPECT_EQ(l.max_text_line, 2000u);
  EXPECT_EQ(l.max_errors, 3u);
  EXPECT_TRUE(l.normalize_bare_line_endings);
  EXPECT_EQ(parsed.value().data_timeout, std::chrono::seconds(30));
  EXPECT_EQ(parsed.value().handshake_timeout, std::chrono::seconds(5));
}

TEST(ConfigTest, UnknownKeyNamesFileLineAndKey) {
  std::string text = std::string(kMinimal) + "\n[limits]\nmax_mesage_size = 10\n";
  config::ConfigError e = expect_error(text);
  EXPECT_EQ(e.file, "/etc/smtpsd/test.toml");
  EXPECT_EQ(e.key, "limits.max_mesage_size");
  EXPECT_EQ(e.line, 23);
  EXPECT_NE(e.to_string().find("/etc/smtpsd/test.toml:23: limits.max_mesage_size: unknown key"),
            std::string::npos)
      << e.to_string();
}

TEST(ConfigTest, TomlSyntaxErrorNamesLine) {
  config::ConfigError e = expect_error("[server]\nhostname = \"x\nport = 1\n");
  EXPECT_EQ(e.line, 2);
}

TEST(ConfigTest, WrongTypesAreRefused) {
  std::string text = kMinimal;
  text.replace(text.find("port = 10465"), 12, "port = \"465\"");
  config::ConfigError e = expect_error(text);
  EXPECT_EQ(e.key, "listeners[1].port");
  EXPECT_NE(e.message.find("integer"), std::string::npos);
}

TEST(ConfigTest, OutOfRangeValuesAreRefused) {
  config::ConfigError e =
      expect_error(std::string(kMinimal) + "\n[limits]\nmax_command_line = 100\n");
  EXPECT_EQ(e.key, "limits.max_command_line");
  EXPECT_NE(e.message.find("512"), std::string::npos) << e.message;
  e = expect_error(std::string(kMinimal) +
                   "\n[[listeners]]\nrole = \"smtp\"\naddress = \"::\"\nport = 70000\n");
  EXPECT_EQ(e.key, "listeners[2].port");
}

TEST(ConfigTest, ListenerAddressIsRequiredAndChecked) {
  config::ConfigError e =
      expect_error(std::string(kMinimal) + "\n[[listeners]]\nrole = \"smtp\"\n");
  EXPECT_EQ(e.key, "listeners[2].address");
  e = expect_error(std::string(kMinimal) +
                   "\n[[listeners]]\nrole = \"smtp\"\naddress = \"mail.example.org\"\n");
  EXPECT_EQ(e.key, "listeners[2].address");
  EXPECT_NE(e.message.find("not an IP address"), std::string::npos);
}

TEST(ConfigTest, UnknownRoleIsRefused) {
  config::ConfigError e =
      expect_error(std::string(kMinimal) + "\n[[listeners]]\nrole = \"smtps\"\n");
  EXPECT_EQ(e.key, "listeners[2].role");
  EXPECT_NE(e.message.find("submissions, submission or smtp"), std::string::npos);
}

TEST(ConfigTest, RequireTlsOnlyOnSmtpRole) {
  config::ConfigError e = expect_error(
      std::string(kMinimal) +
      "\n[[listeners]]\nrole = \"submission\"\naddress = \"::\"\nrequire_tls = false\n");
  EXPECT_EQ(e.key, "listeners[2].require_tls");
}

TEST(ConfigTest, ClientCaIsRelativeToTheConfigFile) {
  auto parsed = config::parse(std::string(kMinimal) +
                                  "\n[[listeners]]\nrole = \"submission\"\naddress = \"::\"\n"
                                  "client_ca = \"certs/clients.pem\"\n",
                              "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  ASSERT_EQ(parsed.value().listeners.size(), 3u);
  EXPECT_EQ(parsed.value().listeners[1].client_ca, "") << "no client CA unless configured";
  EXPECT_EQ(parsed.value().listeners[2].client_ca, "/etc/smtpsd/certs/clients.pem");
  EXPECT_NE(config::describe(parsed.value()).find("client certificates from /etc/smtpsd/certs"),
            std::string::npos);
}

TEST(ConfigTest, ClientCaOnlyOnSubmissionRoles) {
  std::string text = kMinimal;
  text.insert(text.find("\n\n[[listeners]]\nrole = \"submissions\""), "\nclient_ca = \"ca.pem\"");
  config::ConfigError e = expect_error(text);
  EXPECT_EQ(e.key, "listeners[0].client_ca");
  EXPECT_EQ(e.file, "/etc/smtpsd/test.toml");
  EXPECT_EQ(e.line, 16) << e.to_string();
  EXPECT_NE(e.message.find("submission roles"), std::string::npos);
  EXPECT_EQ(expect_error(std::string(kMinimal) + "\n[[listeners]]\nrole = \"submissions\"\n"
                                                 "address = \"::\"\nclient_ca = \"\"\n")
                .key,
            "listeners[2].client_ca");
}

TEST(ConfigTest, UnsafeTlsVersionNeedsTheUnsafeSetting) {
  std::string text = kMinimal;
  text.insert(text.find("[[tls.certificates]]"), "[tls]\nmin_version = \"TLSv1\"\n\n");
  config::ConfigError e = expect_error(text);
  EXPECT_EQ(e.key, "tls.min_version");
  EXPECT_EQ(e.line, 6) << e.to_string();
  EXPECT_EQ(e.message.rfind("tls:", 0), std::string::npos) << "no doubled prefix: " << e.message;
  std::string allowed = kMinimal;
  allowed.insert(allowed.find("[[tls.certificates]]"),
                 "[tls]\nmin_version = \"TLSv1\"\nallow_unsafe_tls_versions = true\n\n");
  auto parsed = config::parse(allowed, "t.toml");
  EXPECT_TRUE(parsed.has_value()) << parsed.error().to_string();
}

TEST(ConfigTest, MissingPiecesAreNamed) {
  EXPECT_EQ(expect_error("[server]\ndata_dir = \"/x\"\n").key, "server.hostname");
  std::string no_listeners = kMinimal;
  no_listeners = no_listeners.substr(0, no_listeners.find("[[listeners]]"));
  EXPECT_EQ(expect_error(no_listeners).key, "listeners");
  std::string no_certificates = kMinimal;
  no_certificates.erase(no_certificates.find("[[tls.certificates]]"),
                        no_certificates.find("[[domains]]") - no_certificates.find("[[tls"));
  EXPECT_EQ(expect_error(no_certificates).key, "tls.certificates");
}

TEST(ConfigTest, BadNamesAreRefused) {
  std::string text = kMinimal;
  text.replace(text.find("\"bob\""), 5, "\"../etc\"");
  EXPECT_EQ(expect_error(text).key, "domains[0].users");
  text = kMinimal;
  text.replace(text.find("Example.ORG"), 11, "-bad-.org");
  EXPECT_EQ(expect_error(text).key, "domains[0].name");
  text = std::string(kMinimal) + "\n[[domains]]\nname = \"example.org\"\n";
  EXPECT_NE(expect_error(text).message.find("twice"), std::string::npos);
}

TEST(ConfigTest, MissingFileIsAClearError) {
  auto loaded = config::load_file("/nonexistent/smtpsd.toml");
  ASSERT_FALSE(loaded.has_value());
  EXPECT_NE(loaded.error().to_string().find("/nonexistent/smtpsd.toml: cannot read the file"),
            std::string::npos);
}

}  // namespace

namespace {

TEST(ConfigAuthTest, DefaultsAndValues) {
  auto parsed = config::parse(kMinimal, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed.value().auth.users_file, "/var/lib/smtpsd/users");
  EXPECT_EQ(parsed.value().auth.max_failures_per_user, 5u);
  std::string text = std::string(kMinimal) + R"(
[auth]
users_file = "users.db"
max_failures_per_user = 3
max_failures_per_ip = 10
failure_window = 60
exempt_networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
received_names_user = true
)";
  parsed = config::parse(text, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const auto& a = parsed.value().auth;
  EXPECT_EQ(a.users_file, "/etc/smtpsd/users.db");
  EXPECT_EQ(a.max_failures_per_user, 3u);
  EXPECT_EQ(a.max_failures_per_ip, 10u);
  EXPECT_EQ(a.failure_window, std::chrono::seconds(60));
  ASSERT_EQ(a.exempt_networks.size(), 3u);
  EXPECT_TRUE(a.exempt_networks[0].contains(*base::parse_ip("10.200.0.1")));
  EXPECT_TRUE(a.exempt_networks[2].contains(*base::parse_ip("192.0.2.7")));
  EXPECT_FALSE(a.exempt_networks[2].contains(*base::parse_ip("192.0.2.8")));
  EXPECT_TRUE(a.received_names_user);
}

TEST(ConfigAuthTest, BadNetworksAreNamed) {
  for (const char* bad :
       {"10.0.0.0/33", "10.0.0/8", "2001:db8::/129", "office", "10.0.0.0/", "10.0.0.0/8x", ""}) {
    std::string text = std::string(kMinimal) + "\n[auth]\nexempt_networks = [\"" + bad + "\"]\n";
    auto parsed = config::parse(text, "t.toml");
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().key, "auth.exempt_networks") << bad;
  }
}

}  // namespace

TEST(ConfigDeliveryTest, DefaultsAreDirectMxWithOpportunisticTls) {
  auto parsed = config::parse(kMinimal, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::Config& c = parsed.value();
  EXPECT_FALSE(c.delivery.relay);
  EXPECT_FALSE(c.delivery.lmtp);
  EXPECT_EQ(c.dns.mode, config::DnsSettings::Mode::kSystem);
  EXPECT_TRUE(c.dns.servers.empty());
  EXPECT_EQ(c.dns.validation, config::DnsSettings::Validation::kAuto);
  EXPECT_EQ(c.dns.trust_anchor, "/usr/share/dns/root.key");
  EXPECT_EQ(c.dns.timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.delivery.default_tls, tls::OutboundLevel::kMay);
  EXPECT_EQ(c.delivery.mx_port, 25);
  EXPECT_EQ(c.delivery.helo_name, "mx.example.org");
  EXPECT_EQ(c.queue.max_lifetime, std::chrono::seconds(5 * 86400));
  EXPECT_EQ(c.queue.delay_warning, std::chrono::seconds(0));
  EXPECT_EQ(c.max_received_headers, 50u);
}

TEST(ConfigDeliveryTest, RelayQueueAndPolicyTableAreRead) {
  auto parsed = config::parse(std::string(kMinimal) + R"(
[queue]
retry_schedule = [30, 600]
max_lifetime = 86400
delay_warning = 14400
delivery_threads = 4

[delivery]
relay = "smtps://Smart.Example.NET"
relay_user = "me@example.org"
relay_password_file = "relay.password"
ca_file = "ca.pem"
lmtp = "unix:/run/dovecot/lmtp"

[[delivery.tls_policy]]
domain = "Bank.Example"
level = "verify"

[limits]
max_received_headers = 0
)",
                              "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::Config& c = parsed.value();
  EXPECT_EQ(c.delivery.relay, (base::SmtpUrl{true, "smart.example.net", 465}));
  ASSERT_TRUE(c.delivery.lmtp);
  EXPECT_EQ(c.delivery.lmtp->unix_path, "/run/dovecot/lmtp");
  EXPECT_EQ(c.delivery.relay_tls, tls::OutboundLevel::kVerify);
  EXPECT_EQ(c.delivery.relay_password_file, "/etc/smtpsd/relay.password");
  EXPECT_EQ(c.delivery.ca_file, "/etc/smtpsd/ca.pem");
  ASSERT_EQ(c.delivery.tls_policy.size(), 1u);
  EXPECT_EQ(c.delivery.tls_policy[0].domain, "bank.example");
  EXPECT_EQ(c.delivery.tls_policy[0].level, tls::OutboundLevel::kVerify);
  ASSERT_EQ(c.queue.retry_schedule.size(), 2u);
  EXPECT_EQ(c.queue.retry_schedule[1], std::chrono::seconds(600));
  EXPECT_EQ(c.queue.delivery_threads, 4u);
  EXPECT_EQ(c.max_received_headers, 0u);
  auto ipv6 = config::parse(std::string(kMinimal) + "\n[delivery]\nrelay = \"smtp://[::1]:2525\"\n",
                            "/etc/smtpsd/test.toml");
  ASSERT_TRUE(ipv6.has_value()) << ipv6.error().to_string();
  EXPECT_EQ(ipv6.value().delivery.relay, (base::SmtpUrl{false, "::1", 2525}));
}

TEST(ConfigDeliveryTest, LmtpAndTheDeprecatedDnsServersAreParsed) {
  auto parsed = config::parse(std::string(kMinimal) +
                                  "\n[delivery]\nlmtp = \"[::1]:24\"\n"
                                  "dns_servers = \"127.0.0.1:5353,[::1]:53,::2\"\n",
                              "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::DeliverySettings& d = parsed.value().delivery;
  ASSERT_TRUE(d.lmtp);
  EXPECT_EQ(d.lmtp->tcp, (base::HostPort{"::1", 24}));
  // The deprecated [delivery] dns_servers: [dns] servers without validation, and a warning.
  const config::DnsSettings& dns = parsed.value().dns;
  EXPECT_EQ(dns.servers,
            (std::vector<base::HostPort>{{"127.0.0.1", 5353}, {"::1", 53}, {"::2", 53}}));
  EXPECT_EQ(dns.mode, config::DnsSettings::Mode::kForward);
  EXPECT_EQ(dns.validation, config::DnsSettings::Validation::kNo);
  const std::vector<std::string>& deprecations = parsed.value().deprecations;
  EXPECT_NE(std::find(deprecations.begin(), deprecations.end(),
                      "/etc/smtpsd/test.toml:24: delivery.dns_servers: deprecated: write [dns] "
                      "servers = \"...\" (and validation = \"no\" to keep DNSSEC validation off, "
                      "as dns_servers does)"),
            deprecations.end())
      << fmt::format("{}", fmt::join(deprecations, "\n"));
  // An LMTP server may be named (looked up as the system does, at each connection).
  auto named =
      config::parse(std::string(kMinimal) +
                        "\n[delivery]\nlmtp = \"Dovecot.internal:24\"\n"
                        "max_per_host = 2\nattempt_timeout = 60\n"
                        "[queue]\nlocal_delivery_threads = 3\nsuccess_dsns_per_minute = 0\n"
                        "deliver_at_acceptance = false\n",
                    "/etc/smtpsd/test.toml");
  ASSERT_TRUE(named.has_value()) << named.error().to_string();
  EXPECT_FALSE(named.value().queue.deliver_at_acceptance);
  EXPECT_TRUE(config::parse(std::string(kMinimal), "/etc/smtpsd/test.toml")
                  .value()
                  .queue.deliver_at_acceptance);  // on unless turned off
  auto not_bool = config::parse(std::string(kMinimal) + "\n[queue]\ndeliver_at_acceptance = 1\n",
                                "/etc/smtpsd/test.toml");
  ASSERT_FALSE(not_bool.has_value());
  EXPECT_EQ(not_bool.error().to_string(),
            "/etc/smtpsd/test.toml:" + std::to_string(not_bool.error().line) +
                ": queue.deliver_at_acceptance: must be true or false");
  EXPECT_EQ(named.value().delivery.lmtp->tcp, (base::HostPort{"Dovecot.internal", 24}));
  EXPECT_EQ(named.value().delivery.max_per_host, 2u);
  EXPECT_EQ(named.value().delivery.attempt_timeout, std::chrono::seconds(60));
  EXPECT_EQ(named.value().queue.local_delivery_threads, 3u);
  EXPECT_EQ(named.value().queue.success_dsns_per_minute, 0u);
  // A name would need a resolver to reach the resolver: refused with the entry named.
  auto bad = config::parse(
      std::string(kMinimal) + "\n[delivery]\ndns_servers = \"127.0.0.1,dns.example:53\"\n",
      "/etc/smtpsd/test.toml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().key, "delivery.dns_servers");
  EXPECT_NE(bad.error().message.find("'dns.example:53': not an IP address"), std::string::npos)
      << bad.error().to_string();
}

TEST(ConfigDeliveryTest, MistakesNameTheKey) {
  struct Case {
    const char* toml;
    const char* key;
    const char* says;
  };
  const Case cases[] = {
      {"[delivery]\nrelay = \"https://x.example\"\n", "delivery.relay", "smtps://HOST"},
      {"[delivery]\nrelay = \"smtp://x.example:99999\"\n", "delivery.relay", "smtps://HOST"},
      {"[delivery]\nrelay = \"smtp://user@x.example\"\n", "delivery.relay", "smtps://HOST"},
      {"[delivery]\nrelay_tls = \"strict\"\n", "delivery.relay_tls", "\"verify\""},
      {"[delivery]\nrelay = \"smtp://x.example\"\nrelay_user = \"me\"\n", "delivery.relay_user",
       "relay_password_file"},
      {"[delivery]\nrelay = \"smtp://x.example\"\nrelay_user = \"me\"\nrelay_password_file = "
       "\"p\"\nrelay_tls = \"may\"\n",
       "delivery.relay_tls", "never sent without TLS"},
      // The password goes only to a verified relay: "encrypt" and smtps:// alone are not.
      {"[delivery]\nrelay = \"smtp://x.example\"\nrelay_user = \"me\"\nrelay_password_file = "
       "\"p\"\nrelay_tls = \"encrypt\"\n",
       "delivery.relay_tls", "must be \"verify\" when relay_user is set"},
      {"[delivery]\nrelay = \"smtps://x.example\"\nrelay_user = \"me\"\nrelay_password_file = "
       "\"p\"\nrelay_tls = \"encrypt\"\n",
       "delivery.relay_tls", "must be \"verify\" when relay_user is set"},
      {"[delivery]\nrelay = \"smtps://x.example\"\nrelay_user = \"me\"\nrelay_password_file = "
       "\"p\"\nrelay_tls = \"may\"\n",
       "delivery.relay_tls", "not verified"},
      {"[delivery]\nlmtp = \"/run/dovecot/lmtp\"\n", "delivery.lmtp", "unix:"},
      {"[delivery]\nlmtp = \"127.0.0.1:\"\n", "delivery.lmtp", "HOST:PORT"},
      {"[delivery]\nlmtp = \"127.0.0.1:x\"\n", "delivery.lmtp", "HOST:PORT"},
      {"[delivery]\nlmtp = \"127.0.0.1:70000\"\n", "delivery.lmtp", "HOST:PORT"},
      {"[delivery]\nlmtp = \"dovecot..internal:24\"\n", "delivery.lmtp", "HOST:PORT"},
      {"[delivery]\ndefault_tls = \"dane\"\n", "delivery.default_tls", "\"none\""},
      {"[[delivery.tls_policy]]\ndomain = \"x.example\"\n", "delivery.tls_policy[0].level",
       "missing"},
      {"[[delivery.tls_policy]]\ndomain = \"-bad-\"\nlevel = \"verify\"\n",
       "delivery.tls_policy[0].domain", "not a valid domain"},
      {"[delivery]\nmx_port = 0\n", "delivery.mx_port", "between"},
      {"[queue]\nretry_schedule = []\n", "queue.retry_schedule", "at least one"},
      {"[queue]\nretry_schedule = [60, \"5m\"]\n", "queue.retry_schedule", "seconds"},
      {"[queue]\nmax_lifetime = 0\n", "queue.max_lifetime", "between"},
      {"[queue]\nbounce = true\n", "queue.bounce", "unknown key"},
      {"[limits]\nmax_received_headers = -1\n", "limits.max_received_headers", "between"},
  };
  for (const Case& c : cases) {
    config::ConfigError e = expect_error(std::string(kMinimal) + "\n" + c.toml);
    EXPECT_EQ(e.key, c.key) << c.toml;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << c.toml << " -> " << e.message;
    EXPECT_GT(e.line, 0) << c.toml;
  }
}

namespace {

TEST(ConfigTest, ProxyProtocolNeedsProxyFromInCidrForm) {
  const std::string listener = "\n[[listeners]]\nrole = \"submissions\"\naddress = \"::\"\n";
  auto parsed = config::parse(std::string(kMinimal) + listener +
                                  "proxy_protocol = true\n"
                                  "proxy_from = [\"10.0.0.5/32\", \"2001:db8::/64\"]\n",
                              "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::Listener& l = parsed.value().listeners[2];
  EXPECT_TRUE(l.proxy_protocol);
  EXPECT_EQ(l.proxy_from, (std::vector<base::Network>{*base::parse_network("10.0.0.5/32"),
                                                      *base::parse_network("2001:db8::/64")}));
  EXPECT_FALSE(parsed.value().listeners[0].proxy_protocol) << "off unless configured";
  EXPECT_NE(config::describe(parsed.value()).find("PROXY protocol from 10.0.0.5/32 2001:db8::/64"),
            std::string::npos);

  config::ConfigError e =
      expect_error(std::string(kMinimal) + listener + "proxy_protocol = true\n");
  EXPECT_EQ(e.key, "listeners[2].proxy_from");
  EXPECT_EQ(e.line, 25) << e.to_string();  // the proxy_protocol line
  EXPECT_NE(e.message.find("required"), std::string::npos);
  e = expect_error(std::string(kMinimal) + listener +
                   "proxy_protocol = true\nproxy_from = [\"10.0.0.5/33\"]\n");
  EXPECT_EQ(e.key, "listeners[2].proxy_from");
  EXPECT_NE(e.message.find("CIDR"), std::string::npos);
  e = expect_error(std::string(kMinimal) + listener + "proxy_from = [\"10.0.0.5\"]\n");
  EXPECT_EQ(e.key, "listeners[2].proxy_from");
  EXPECT_NE(e.message.find("only with proxy_protocol"), std::string::npos);
}

TEST(ConfigTest, RateLimitsHaveDefaultsAndZeroTurnsThemOff) {
  auto parsed = config::parse(kMinimal, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed.value().max_connections_per_minute_per_ip, 120u);
  EXPECT_EQ(parsed.value().sending_limits.messages_per_hour, 1000u);
  auto rate_notes = [](const config::Config& c) {
    return std::count_if(c.deprecations.begin(), c.deprecations.end(), [](const std::string& d) {
      return d.find("max_messages_per_user_per_hour") != std::string::npos;
    });
  };
  EXPECT_EQ(rate_notes(parsed.value()), 0);
  // The message rate's old name is still read, with a note naming the new key.
  parsed = config::parse(std::string(kMinimal) +
                             "\n[limits]\nmax_connections_per_minute_per_ip = 0\n"
                             "max_messages_per_user_per_hour = 0\n",
                         "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed.value().max_connections_per_minute_per_ip, 0u);
  EXPECT_EQ(parsed.value().sending_limits.messages_per_hour, 0u);
  EXPECT_EQ(rate_notes(parsed.value()), 1);
  EXPECT_NE(parsed.value().deprecations.back().find(
                "/etc/smtpsd/test.toml:" +
                std::to_string(std::count(kMinimal, kMinimal + std::strlen(kMinimal), '\n') + 4) +
                ": limits.max_messages_per_user_per_hour: deprecated: write [sending_limits] "
                "messages_per_hour = 0"),
            std::string::npos)
      << parsed.value().deprecations.back();
  EXPECT_EQ(
      expect_error(std::string(kMinimal) + "\n[limits]\nmax_connections_per_minute_per_ip = -1\n")
          .key,
      "limits.max_connections_per_minute_per_ip");
}

TEST(ConfigTest, SendingLimitsHaveDefaultsAndTheirErrorsNameFileLineAndKey) {
  auto parsed = config::parse(kMinimal, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed.value().sending_limits.external_recipients_per_hour, 50u);
  EXPECT_EQ(parsed.value().sending_limits.external_recipients_per_day, 200u);
  parsed = config::parse(std::string(kMinimal) +
                             "\n[sending_limits]\nmessages_per_hour = 7\n"
                             "external_recipients_per_hour = 0\nexternal_recipients_per_day = 3\n",
                         "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed.value().sending_limits.messages_per_hour, 7u);
  EXPECT_EQ(parsed.value().sending_limits.external_recipients_per_hour, 0u);
  EXPECT_EQ(parsed.value().sending_limits.external_recipients_per_day, 3u);

  const std::string base = std::string(kMinimal) + "\n[sending_limits]\n";
  const long line = static_cast<long>(std::count(base.begin(), base.end(), '\n')) + 1;
  config::ConfigError e = expect_error(base + "external_recipients_per_hour = -1\n");
  EXPECT_EQ(e.file, "/etc/smtpsd/test.toml");
  EXPECT_EQ(e.line, line);
  EXPECT_EQ(e.key, "sending_limits.external_recipients_per_hour");
  e = expect_error(base + "external_recipients_per_day = \"many\"\n");
  EXPECT_EQ(e.key, "sending_limits.external_recipients_per_day");
  EXPECT_EQ(e.line, line);
  e = expect_error(base + "external_recipients_per_hour = 10\nexternal_recipients_per_day = 5\n");
  EXPECT_EQ(e.key, "sending_limits.external_recipients_per_day");
  EXPECT_EQ(e.line, line + 1);
  EXPECT_NE(e.message.find("below external_recipients_per_hour (10)"), std::string::npos);
  e = expect_error(base + "recipients_per_hour = 10\n");
  EXPECT_EQ(e.key, "sending_limits.recipients_per_hour");
  // The old and the new name of the message rate together: the error names the new one.
  e = expect_error(std::string(kMinimal) + "\n[limits]\nmax_messages_per_user_per_hour = 5\n" +
                   "\n[sending_limits]\nmessages_per_hour = 6\n");
  EXPECT_EQ(e.key, "limits.max_messages_per_user_per_hour");
  EXPECT_NE(e.message.find("sending_limits.messages_per_hour"), std::string::npos);
}

TEST(ConfigTest, TlsReportRetriesAndMtaStsRefreshHaveDefaultsAndBounds) {
  const std::string reports =
      "\n[tls_reports]\norg_name = \"Example\"\nfrom = \"tlsrpt@example.org\"\n";
  auto parsed = config::parse(std::string(kMinimal) + reports, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed.value().tls_reports->save_interval, std::chrono::seconds(60));
  EXPECT_EQ(parsed.value().tls_reports->post_retry_delay, std::chrono::seconds(60));
  EXPECT_EQ(parsed.value().tls_reports->post_retry_lifetime, std::chrono::seconds(86400));
  EXPECT_EQ(parsed.value().delivery.mta_sts_refresh, std::chrono::seconds(3600));
  parsed = config::parse(std::string(kMinimal) + reports +
                             "save_interval = 5\npost_retry_delay = 2\npost_retry_lifetime = 600\n"
                             "\n[delivery]\nmta_sts_refresh = 0\n",
                         "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed.value().tls_reports->save_interval, std::chrono::seconds(5));
  EXPECT_EQ(parsed.value().tls_reports->post_retry_delay, std::chrono::seconds(2));
  EXPECT_EQ(parsed.value().tls_reports->post_retry_lifetime, std::chrono::seconds(600));
  EXPECT_EQ(parsed.value().delivery.mta_sts_refresh, std::chrono::seconds(0));
  EXPECT_EQ(expect_error(std::string(kMinimal) + reports + "save_interval = 0\n").key,
            "tls_reports.save_interval");
  // Only TLS reports have them.
  EXPECT_EQ(
      expect_error(std::string(kMinimal) + "\n[dmarc_reports]\norg_name = \"Example\"\n"
                                           "from = \"dmarc@example.org\"\nsave_interval = 5\n")
          .key,
      "dmarc_reports.save_interval");
}

TEST(ConfigTest, Ipv6PrefixDefaultsTo64AndOutOfRangeNamesFileLineAndKey) {
  auto parsed = config::parse(kMinimal, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed.value().ipv6_prefix, 64u);
  parsed = config::parse(std::string(kMinimal) + "\n[limits]\nipv6_prefix = 56\n",
                         "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed.value().ipv6_prefix, 56u);
  for (const char* bad : {"31", "129", "0"}) {
    config::ConfigError e =
        expect_error(std::string(kMinimal) + "\n[limits]\nipv6_prefix = " + bad + "\n");
    EXPECT_EQ(e.file, "/etc/smtpsd/test.toml");
    EXPECT_EQ(e.line, 23);
    EXPECT_EQ(e.key, "limits.ipv6_prefix");
    EXPECT_NE(e.to_string().find("/etc/smtpsd/test.toml:23: limits.ipv6_prefix"), std::string::npos)
        << e.to_string();
    EXPECT_NE(e.message.find("32"), std::string::npos) << e.message;
  }
}

}  // namespace
// [[tls.certificates]] names: SNI certificate sets (tls/certificate_store.h).
const char* kTwoSets = R"([server]
hostname = "mx.example.org"
data_dir = "/var/lib/smtpsd"

[[tls.certificates]]
certificate = "default.pem"
key = "default.key"

[[tls.certificates]]
certificate = "mail.pem"
key = "mail.key"
names = ["Mail.Example.COM.", "*.example.net"]

[[tls.certificates]]
certificate = "mail-rsa.pem"
key = "mail-rsa.key"
names = ["*.example.net", "mail.example.com"]

[[listeners]]
role = "smtp"
address = "0.0.0.0"
)";

TEST(ConfigCertificateNames, ParsedLowerCaseWithoutTrailingDot) {
  auto parsed = config::parse(kTwoSets, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const auto& certificates = parsed.value().certificates;
  ASSERT_EQ(certificates.size(), 3u);
  EXPECT_TRUE(certificates[0].names.empty());
  EXPECT_EQ(certificates[1].names, (std::vector<std::string>{"mail.example.com", "*.example.net"}));
  EXPECT_EQ(certificates[2].certificate_file, "/etc/smtpsd/mail-rsa.pem");
  EXPECT_EQ(parsed.value().listeners[0].line, 19);
}

TEST(ConfigCertificateNames, MistakesNameLineAndKey) {
  const std::string base = std::string(kTwoSets);
  const struct {
    std::string from;
    std::string to;
    std::string key;
    std::string message;
  } cases[] = {
      {R"(names = ["*.example.net", "mail.example.com"])", R"(names = [])",
       "tls.certificates[2].names", "must name at least one server name"},
      {R"(names = ["*.example.net", "mail.example.com"])", R"(names = ["mail..example.com"])",
       "tls.certificates[2].names", "not a server name: 'mail..example.com'"},
      {R"(names = ["*.example.net", "mail.example.com"])", R"(names = ["*.com"])",
       "tls.certificates[2].names", "not a server name: '*.com'"},
      {R"(names = ["*.example.net", "mail.example.com"])", R"(names = ["a.*.example.com"])",
       "tls.certificates[2].names", "not a server name"},
      {R"(names = ["*.example.net", "mail.example.com"])", R"(names = ["x.test", "X.test"])",
       "tls.certificates[2].names", "'x.test' is listed twice"},
      {R"(names = ["*.example.net", "mail.example.com"])", R"(names = [7])",
       "tls.certificates[2].names", "must be strings"},
      {R"(names = ["*.example.net", "mail.example.com"])", R"(names = ["mail.example.com"])",
       "tls.certificates[2].names",
       "'mail.example.com' is already in tls.certificates[1], whose names differ"},
  };
  for (const auto& c : cases) {
    std::string text = base;
    text.replace(text.find(c.from), c.from.size(), c.to);
    config::ConfigError error = expect_error(text);
    EXPECT_EQ(error.key, c.key) << c.to;
    EXPECT_EQ(error.line, 17) << c.to;
    EXPECT_NE(error.message.find(c.message), std::string::npos) << error.message;
  }
}

namespace {

TEST(ConfigObservabilityTest, MetricsAndLogAreReadWithDefaults) {
  auto plain = config::parse(kMinimal, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(plain.has_value());
  EXPECT_FALSE(plain->metrics.address);
  EXPECT_EQ(plain->log.format, obs::Format::kKeyValue);
  EXPECT_EQ(plain->log.output, config::LogOutput::kStderr);
  EXPECT_EQ(plain->log.facility, LOG_MAIL);
  EXPECT_EQ(plain->log_level, obs::Level::kInfo);
  auto parsed = config::parse(std::string(kMinimal) +
                                  "\n[metrics]\naddress = \"[::1]:9464\"\n"
                                  "[log]\nformat = \"json\"\noutput = \"syslog\"\n"
                                  "facility = \"local3\"\nsyslog_socket = \"/run/log.sock\"\n",
                              "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed->metrics.address, (base::HostPort{"::1", 9464}));
  EXPECT_EQ(parsed->log.format, obs::Format::kJson);
  EXPECT_EQ(parsed->log.output, config::LogOutput::kSyslog);
  EXPECT_EQ(parsed->log.facility, LOG_LOCAL3);
  EXPECT_EQ(parsed->log.syslog_socket, "/run/log.sock");
}

TEST(ConfigObservabilityTest, NonLoopbackMetricsNeedTheSettingThatSaysSo) {
  config::ConfigError e =
      expect_error(std::string(kMinimal) + "\n[metrics]\naddress = \"0.0.0.0:9464\"\n");
  EXPECT_EQ(e.key, "metrics.address");
  EXPECT_EQ(e.line, 23);
  EXPECT_NE(e.message.find("allow_non_loopback"), std::string::npos) << e.message;
  auto allowed = config::parse(std::string(kMinimal) +
                                   "\n[metrics]\naddress = \"0.0.0.0:9464\"\n"
                                   "allow_non_loopback = true\n",
                               "/etc/smtpsd/test.toml");
  EXPECT_TRUE(allowed.has_value());
  EXPECT_EQ(expect_error(std::string(kMinimal) + "\n[metrics]\naddress = \"9464\"\n").key,
            "metrics.address");
  EXPECT_EQ(expect_error(std::string(kMinimal) + "\n[log]\nformat = \"xml\"\n").key, "log.format");
}

}  // namespace

namespace {

// systemd's LoadCredential= copies a key into $CREDENTIALS_DIRECTORY, readable by the
// service's account only; "%credentials%/" names a file there.
TEST(ConfigTest, CredentialsPathsAreInTheCredentialsDirectory) {
  std::string text = kMinimal;
  text.replace(text.find("certs/ecdsa.key"), std::string("certs/ecdsa.key").size(),
               "%credentials%/smtpsd.key");
  ::setenv("CREDENTIALS_DIRECTORY", "/run/credentials/smtpsd.service", 1);
  auto parsed = config::parse(text, "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed.value().certificates.at(0).key_file,
            "/run/credentials/smtpsd.service/smtpsd.key");
  EXPECT_EQ(parsed.value().certificates.at(0).certificate_file, "/etc/smtpsd/certs/ecdsa.pem");
  ::unsetenv("CREDENTIALS_DIRECTORY");
  config::ConfigError e = expect_error(text);
  EXPECT_EQ(e.key, "tls.certificates[0].key");
  EXPECT_EQ(e.line, 7) << e.to_string();
  EXPECT_NE(e.message.find("$CREDENTIALS_DIRECTORY is not set"), std::string::npos);
}

}  // namespace

TEST(ConfigDnsTest, ServersAsAStringOrAList) {
  auto parsed = config::parse(std::string(kMinimal) +
                                  "\n[dns]\nservers = [\"127.0.0.1:5353\", \"::1\"]\n"
                                  "validation = \"no\"\ntimeout = 2\n",
                              "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::DnsSettings& dns = parsed.value().dns;
  EXPECT_EQ(dns.mode, config::DnsSettings::Mode::kForward);
  EXPECT_EQ(dns.servers, (std::vector<base::HostPort>{{"127.0.0.1", 5353}, {"::1", 53}}));
  EXPECT_EQ(dns.validation, config::DnsSettings::Validation::kNo);
  EXPECT_EQ(dns.timeout, std::chrono::seconds(2));
  for (const std::string& deprecation : parsed.value().deprecations)
    EXPECT_EQ(deprecation.find("dns_servers"), std::string::npos) << deprecation;
  auto text = config::parse(std::string(kMinimal) +
                                "\n[dns]\nservers = \"192.0.2.53\"\nmode = \"forward\"\n"
                                "trust_anchor = \"keys/root.key\"\n",
                            "/etc/smtpsd/test.toml");
  ASSERT_TRUE(text.has_value()) << text.error().to_string();
  EXPECT_EQ(text.value().dns.servers, (std::vector<base::HostPort>{{"192.0.2.53", 53}}));
  EXPECT_EQ(text.value().dns.validation, config::DnsSettings::Validation::kAuto);
  EXPECT_EQ(text.value().dns.trust_anchor, "/etc/smtpsd/keys/root.key");
  auto recursive =
      config::parse(std::string(kMinimal) + "\n[dns]\nmode = \"recursive\"\nvalidation = \"yes\"\n",
                    "/etc/smtpsd/test.toml");
  ASSERT_TRUE(recursive.has_value()) << recursive.error().to_string();
  EXPECT_EQ(recursive.value().dns.mode, config::DnsSettings::Mode::kRecursive);
  EXPECT_EQ(recursive.value().dns.validation, config::DnsSettings::Validation::kYes);
}

TEST(ConfigDnsTest, ErrorsNameTheKey) {
  struct Case {
    std::string text;
    std::string key;
    std::string message;
  };
  const Case cases[] = {
      {"[dns]\nservers = \"dns.example\"\n", "dns.servers", "not an IP address"},
      {"[dns]\nservers = []\n", "dns.servers", "empty"},
      {"[dns]\nservers = [53]\n", "dns.servers", "IP addresses"},
      {"[dns]\nmode = \"forward\"\n", "dns.mode", "needs dns.servers"},
      {"[dns]\nmode = \"stub\"\n", "dns.mode", "must be"},
      {"[dns]\nservers = \"127.0.0.1\"\nmode = \"system\"\n", "dns.mode", "remove dns.servers"},
      {"[dns]\nvalidation = true\n", "dns.validation", "must be a string"},
      {"[dns]\nvalidation = \"maybe\"\n", "dns.validation", "must be"},
      {"[dns]\ntimeout = 0\n", "dns.timeout", "between 1 and 60"},
      {"[dns]\nretries = 3\n", "dns.retries", "unknown key"},
      {"[delivery]\ndns_servers = \"127.0.0.1\"\n[dns]\nservers = \"::1\"\n", "dns.servers",
       "deprecated delivery.dns_servers"},
  };
  for (const Case& c : cases) {
    auto parsed = config::parse(std::string(kMinimal) + "\n" + c.text, "/etc/smtpsd/test.toml");
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_EQ(parsed.error().key, c.key) << c.text;
    EXPECT_GT(parsed.error().line, 0) << c.text;
    EXPECT_NE(parsed.error().message.find(c.message), std::string::npos)
        << c.text << ": " << parsed.error().to_string();
  }
}

TEST(ConfigTest, DnsListsAndTheirAnswersAreBounded) {
  std::string lists = std::string(kMinimal) + "\n[screening]\n";  // [screening] on line 22
  for (int i = 0; i < 16; ++i)
    lists += fmt::format("[[screening.dns_lists]]\nzone = \"bl{}.example\"\n", i);
  ASSERT_TRUE(config::parse(lists, "/etc/smtpsd/test.toml").has_value());
  config::ConfigError e =
      expect_error(lists + "[[screening.dns_lists]]\nzone = \"bl16.example\"\n");  // line 55
  EXPECT_EQ(e.file, "/etc/smtpsd/test.toml");
  EXPECT_EQ(e.key, "screening.dns_lists");
  EXPECT_EQ(e.line, 55);
  EXPECT_NE(e.message.find("at most 16"), std::string::npos) << e.message;

  std::vector<std::string> answers;
  for (int i = 1; i <= 32; ++i)
    answers.push_back(fmt::format("\"127.0.0.{}\"", i));
  const std::string list =
      std::string(kMinimal) + "\n[[screening.dns_lists]]\nzone = \"bl.example\"\nanswers = [";
  ASSERT_TRUE(
      config::parse(list + fmt::format("{}]\n", fmt::join(answers, ", ")), "/etc/smtpsd/test.toml")
          .has_value());
  answers.push_back("\"127.0.0.33\"");
  e = expect_error(list + fmt::format("{}]\n", fmt::join(answers, ", ")));
  EXPECT_EQ(e.key, "screening.dns_lists.answers");
  EXPECT_EQ(e.line, 24);
  EXPECT_NE(e.message.find("at most 32"), std::string::npos) << e.message;
}
