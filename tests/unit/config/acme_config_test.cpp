// Tests for the [acme] table of config/config.cpp: defaults, the pairs it adds to the
// certificates, and each mistake named with file, line and key.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "config/config.h"

namespace {

const char* kAcmeBase = R"([server]
hostname = "mx.example.org"
data_dir = "/var/lib/smtpsd"

[[listeners]]
role = "submissions"
address = "::1"

[acme]
directory = "https://ca.example.net/dir"
)";

config::ConfigError acme_error(const std::string& more) {
  auto parsed = config::parse(std::string(kAcmeBase) + more, "/etc/smtpsd/a.toml");
  EXPECT_FALSE(parsed.has_value()) << more;
  return parsed ? config::ConfigError{} : parsed.error();
}

TEST(AcmeConfigTest, DefaultsAndTheCertificatePairsItServes) {
  auto parsed = config::parse(kAcmeBase, "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::Config& c = parsed.value();
  ASSERT_TRUE(c.acme.has_value());
  EXPECT_EQ(c.acme->directory, "https://ca.example.net/dir");
  EXPECT_EQ(c.acme->names, std::vector<std::string>{"mx.example.org"});  // the hostname
  EXPECT_EQ(c.acme->http_port, 80);
  EXPECT_EQ(c.acme->http_address, "");
  EXPECT_FALSE(c.acme->renew_before.has_value());
  EXPECT_EQ(c.acme->retry_wait, std::chrono::minutes(1));
  EXPECT_EQ(c.acme->directory_on_disk, "/var/lib/smtpsd/acme");
  // No [[tls.certificates]] needed: ACME's ECDSA and RSA pairs form the set of its names.
  ASSERT_EQ(c.certificates.size(), 2u);
  EXPECT_EQ(c.certificates[0].certificate_file, "/var/lib/smtpsd/acme/ecdsa.crt");
  EXPECT_EQ(c.certificates[0].key_file, "/var/lib/smtpsd/acme/ecdsa.key");
  EXPECT_EQ(c.certificates[1].certificate_file, "/var/lib/smtpsd/acme/rsa.crt");
  EXPECT_EQ(c.certificates[1].names, std::vector<std::string>{"mx.example.org"});
  EXPECT_EQ(c.certificate_lines[0], 9);
}

TEST(AcmeConfigTest, EveryKeyIsRead) {
  auto parsed = config::parse(std::string(kAcmeBase) + R"(contact = "postmaster@example.org"
names = ["MX.example.org", "mail.example.org"]
http_address = "127.0.0.1"
http_port = 8080
ca_file = "ca.pem"
renew_before = "30d"
retry_wait = "200ms"
retry_max_wait = "1h"
)",
                              "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::AcmeSettings& a = *parsed.value().acme;
  EXPECT_EQ(a.contact, "postmaster@example.org");
  EXPECT_EQ(a.names, (std::vector<std::string>{"mx.example.org", "mail.example.org"}));
  EXPECT_EQ(a.http_address, "127.0.0.1");
  EXPECT_EQ(a.http_port, 8080);
  EXPECT_EQ(a.ca_file, "/etc/smtpsd/ca.pem");
  EXPECT_EQ(a.renew_before, std::chrono::milliseconds(std::chrono::hours(24 * 30)));
  EXPECT_EQ(a.retry_wait, std::chrono::milliseconds(200));
  EXPECT_EQ(a.retry_max_wait, std::chrono::hours(1));
}

// A renew_before past half of a 90-day certificate does nothing more (the renewal never comes
// before half of the lifetime): a warning for `smtpsd check` and the start log.
TEST(AcmeConfigTest, ARenewBeforeOverHalfATypicalLifetimeIsAWarning) {
  auto parsed =
      config::parse(std::string(kAcmeBase) + "renew_before = \"30d\"\n", "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_TRUE(parsed.value().warnings.empty());
  parsed = config::parse(std::string(kAcmeBase) + "renew_before = \"60d\"\n", "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  ASSERT_EQ(parsed.value().warnings.size(), 1u);
  EXPECT_NE(parsed.value().warnings[0].find("/etc/smtpsd/a.toml:11: acme.renew_before: longer "
                                            "than half of a 90-day certificate's lifetime"),
            std::string::npos)
      << parsed.value().warnings[0];
}

TEST(AcmeConfigTest, MistakesNameFileLineAndKey) {
  config::ConfigError e = acme_error("contact = \"postmaster\"\n");
  EXPECT_EQ(e.key, "acme.contact");
  EXPECT_EQ(e.line, 11);
  EXPECT_NE(e.to_string().find("/etc/smtpsd/a.toml:11: acme.contact: not an e-mail address"),
            std::string::npos)
      << e.to_string();
  e = acme_error("names = [\"*.example.org\"]\n");
  EXPECT_EQ(e.key, "acme.names");
  EXPECT_NE(e.message.find("wildcard needs challenge = \"dns-01\""), std::string::npos)
      << e.message;
  e = acme_error("http_address = \"localhost\"\n");
  EXPECT_EQ(e.key, "acme.http_address");
  e = acme_error("http_port = 70000\n");
  EXPECT_EQ(e.key, "acme.http_port");
  e = acme_error("retry_wait = \"1h\"\nretry_max_wait = \"1m\"\n");
  EXPECT_EQ(e.key, "acme.retry_max_wait");
  e = acme_error("renew_before = \"soon\"\n");
  EXPECT_EQ(e.key, "acme.renew_before");
  e = acme_error("directry = \"x\"\n");
  EXPECT_EQ(e.key, "acme.directry");
  EXPECT_NE(e.message.find("unknown key"), std::string::npos);
}

TEST(AcmeConfigTest, TheDirectoryMustBeHttps) {
  for (const char* url : {"http://ca.example.net/dir", "ca.example.net", "https:///dir",
                          "https://user@ca.example.net/dir"}) {
    std::string text = kAcmeBase;
    text.replace(text.find("https://ca.example.net/dir"), 26, url);
    auto parsed = config::parse(text, "/etc/smtpsd/a.toml");
    ASSERT_FALSE(parsed.has_value()) << url;
    EXPECT_EQ(parsed.error().key, "acme.directory") << url;
    EXPECT_EQ(parsed.error().line, 10) << url;
  }
  std::string missing = kAcmeBase;
  missing.erase(missing.find("directory = "));
  auto parsed = config::parse(missing, "/etc/smtpsd/a.toml");
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().key, "acme.directory");
}

TEST(AcmeConfigTest, ANameIsServedByOneSetOnly) {
  std::string text = std::string(kAcmeBase) + R"(
[[tls.certificates]]
certificate = "a.pem"
key = "a.key"
names = ["mx.example.org"]
)";
  // [[tls.certificates]] after [acme] in the file is still read first.
  auto parsed = config::parse(text, "/etc/smtpsd/a.toml");
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().key, "acme.names");
  EXPECT_NE(parsed.error().message.find("also in tls.certificates[0]"), std::string::npos)
      << parsed.error().message;
}

// RFC 8737: tls-alpn-01 on its own address and port (443); each responder's keys only with
// its challenge; dns-01 not yet.
TEST(AcmeConfigTest, TheChallengeAndItsResponder) {
  auto parsed =
      config::parse(std::string(kAcmeBase) + "challenge = \"tls-alpn-01\"\n", "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed->acme->challenge, "tls-alpn-01");
  EXPECT_EQ(parsed->acme->tls_alpn_port, 443);
  EXPECT_EQ(parsed->acme->tls_alpn_address, "");
  parsed = config::parse(std::string(kAcmeBase) +
                             "challenge = \"tls-alpn-01\"\ntls_alpn_address = \"::1\"\n"
                             "tls_alpn_port = 8443\n",
                         "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed->acme->tls_alpn_address, "::1");
  EXPECT_EQ(parsed->acme->tls_alpn_port, 8443);
  EXPECT_EQ(config::parse(kAcmeBase, "/etc/smtpsd/a.toml")->acme->challenge, "http-01");

  // dns-01: a hook (a path, or an argv array), run without a shell; wildcards allowed.
  parsed = config::parse(std::string(kAcmeBase) +
                             "names = [\"*.example.org\", \"example.org\"]\n"
                             "challenge = \"dns-01\"\n"
                             "dns_hook = [\"/bin/true\", \"-z\", \"example.org\"]\n"
                             "dns_hook_timeout = \"5s\"\ndns_propagation_timeout = \"2m\"\n",
                         "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed->acme->dns_hook, (std::vector<std::string>{"/bin/true", "-z", "example.org"}));
  EXPECT_EQ(parsed->acme->dns_hook_timeout, std::chrono::seconds(5));
  EXPECT_EQ(parsed->acme->dns_propagation_timeout, std::chrono::minutes(2));
  parsed =
      config::parse(std::string(kAcmeBase) + "challenge = \"dns-01\"\ndns_hook = \"/bin/true\"\n",
                    "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed->acme->dns_hook, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ(parsed->acme->dns_propagation_timeout, std::chrono::minutes(5));

  config::ConfigError e = acme_error("challenge = \"dns-01\"\n");
  EXPECT_EQ(e.key, "acme.dns_hook");
  EXPECT_EQ(e.line, 11);
  EXPECT_NE(e.message.find("needs dns_hook"), std::string::npos) << e.message;
  e = acme_error("challenge = \"dns-01\"\ndns_hook = \"/nonexistent/hook\"\n");
  EXPECT_EQ(e.key, "acme.dns_hook");
  EXPECT_EQ(e.line, 12);
  EXPECT_NE(e.message.find("cannot run /nonexistent/hook"), std::string::npos) << e.message;
  e = acme_error("challenge = \"dns-01\"\ndns_hook = 7\n");
  EXPECT_EQ(e.key, "acme.dns_hook");
  e = acme_error("challenge = \"dns-01\"\ndns_hook = []\n");
  EXPECT_EQ(e.key, "acme.dns_hook");
  e = acme_error("dns_hook = \"/bin/true\"\n");  // the challenge is http-01
  EXPECT_EQ(e.key, "acme.dns_hook");
  EXPECT_NE(e.message.find("only for challenge = \"dns-01\""), std::string::npos);
  e = acme_error("challenge = \"tls-sni-01\"\n");
  EXPECT_EQ(e.key, "acme.challenge");
  EXPECT_NE(e.message.find("not 'tls-sni-01'"), std::string::npos) << e.message;
  e = acme_error("tls_alpn_port = 8443\n");  // the challenge is http-01
  EXPECT_EQ(e.key, "acme.tls_alpn_port");
  EXPECT_NE(e.message.find("only for challenge = \"tls-alpn-01\""), std::string::npos);
  e = acme_error("challenge = \"tls-alpn-01\"\nhttp_port = 8080\n");
  EXPECT_EQ(e.key, "acme.http_port");
  EXPECT_EQ(e.line, 12);
  e = acme_error("challenge = \"tls-alpn-01\"\ntls_alpn_address = \"localhost\"\n");
  EXPECT_EQ(e.key, "acme.tls_alpn_address");
  e = acme_error("challenge = \"tls-alpn-01\"\ntls_alpn_port = 65536\n");
  EXPECT_EQ(e.key, "acme.tls_alpn_port");
}

// RFC 8555 §7.3.4: the key identifier and the MAC key's file, both or neither; the file only
// the account may read, holding base64url; the key never in an error.
TEST(AcmeConfigTest, TheExternalAccountBindingComesFromAPrivateFile) {
  char directory[] = "/tmp/acme_eab_XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  const std::string file = std::string(directory) + "/eab.key";
  auto write = [&](const std::string& text, mode_t mode) {
    std::ofstream(file, std::ios::trunc) << text;
    ::chmod(file.c_str(), mode);
  };
  const std::string both = "eab_kid = \"kid-1\"\neab_hmac_key_file = \"" + file + "\"\n";
  // 48 bytes in base64url, as Pebble's example gives them (a trailing newline is fine).
  write("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n", 0600);
  auto parsed = config::parse(std::string(kAcmeBase) + both, "/etc/smtpsd/a.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  EXPECT_EQ(parsed->acme->eab_kid, "kid-1");
  EXPECT_EQ(parsed->acme->eab_hmac_key_file, file);
  ASSERT_EQ(parsed->acme->eab_hmac_key.size(), 48u);
  EXPECT_EQ(static_cast<unsigned char>(parsed->acme->eab_hmac_key[0]), 0xcdu);
  // smtpsctl (an ordinary user) names the file but never opens it.
  auto client =
      config::parse(std::string(kAcmeBase) + both, "/etc/smtpsd/a.toml", config::Reading::kClient);
  ASSERT_TRUE(client.has_value());
  EXPECT_EQ(client->acme->eab_hmac_key, "");

  config::ConfigError e = acme_error("eab_kid = \"kid-1\"\n");
  EXPECT_EQ(e.key, "acme.eab_kid");
  EXPECT_EQ(e.line, 11);
  EXPECT_NE(e.message.find("needs acme.eab_hmac_key_file"), std::string::npos) << e.message;
  e = acme_error("eab_hmac_key_file = \"" + file + "\"\n");
  EXPECT_EQ(e.key, "acme.eab_hmac_key_file");
  EXPECT_NE(e.message.find("needs acme.eab_kid"), std::string::npos) << e.message;
  e = acme_error("eab_kid = \"kid 1\"\neab_hmac_key_file = \"" + file + "\"\n");
  EXPECT_EQ(e.key, "acme.eab_kid");
  write("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n", 0640);
  e = acme_error(both);
  EXPECT_EQ(e.key, "acme.eab_hmac_key_file");
  EXPECT_EQ(e.line, 12);
  EXPECT_NE(e.message.find("(mode 0640)"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("chmod 600"), std::string::npos) << e.message;
  // Standard base64 ('+', '/', padding), too short, or not base64 at all: refused, and the
  // error does not repeat the file's text.
  for (const char* text : {"zWNDZM6eQGHWpSRTPal5eIUY+Tu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
                           "c2hvcnQ", "not a key at all!", "c2VjcmV0LWtleS0xMjM0NTY3OA=="}) {
    write(text, 0600);
    e = acme_error(both);
    EXPECT_EQ(e.key, "acme.eab_hmac_key_file") << text;
    EXPECT_NE(e.message.find("does not hold a MAC key"), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find(text), std::string::npos) << e.message;
  }
  ::unlink(file.c_str());
  e = acme_error(both);
  EXPECT_NE(e.message.find("cannot read"), std::string::npos) << e.message;
  ::rmdir(directory);
}

}  // namespace
