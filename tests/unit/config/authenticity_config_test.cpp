// Tests for [authenticity] and the DKIM keys of [[domains]] (config/config.cpp): defaults,
// every setting read, and each mistake named by file, line and key.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"

namespace {

const char* kBase = R"([server]
hostname = "mx.example.org"
data_dir = "/var/lib/smtpsd"

[[tls.certificates]]
certificate = "certs/ecdsa.pem"
key = "certs/ecdsa.key"

[[listeners]]
role = "smtp"
address = "0.0.0.0"
)";

config::ConfigError error_of(const std::string& text) {
  auto parsed = config::parse(text, "/etc/smtpsd/a.toml");
  EXPECT_FALSE(parsed.has_value()) << "accepted:\n" << text;
  return parsed.has_value() ? config::ConfigError{} : parsed.error();
}

TEST(AuthenticityConfig, OnByDefaultWithTheHostnameAsAuthservId) {
  auto parsed = config::parse(kBase, "a.toml");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  const config::AuthenticitySettings& a = parsed.value().authenticity;
  EXPECT_TRUE(a.verify);
  EXPECT_EQ(a.authserv_id, "mx.example.org");
  EXPECT_EQ(a.spf, config::SpfEnforcement::kDmarc);
  EXPECT_EQ(a.dmarc, config::DmarcEnforcement::kEnforce);
  EXPECT_FALSE(a.defer_on_temperror);
  EXPECT_EQ(a.quarantine_folder, "Junk");
}

TEST(AuthenticityConfig, EverySettingIsRead) {
  auto parsed = config::parse(std::string(kBase) + R"(
[[domains]]
name = "example.org"
dmarc = "monitor"

[authenticity]
authserv_id = "MX1.Example.org"
spf = "strict"
dmarc = "off"
temperror = "defer"
max_signatures = 3
quarantine_folder = "Spam.Quarantine"
trusted_forwarders = ["192.0.2.0/24", "2001:db8::/32"]
trusted_arc_sealers = ["Lists.Example.org", "forwarder.example.net"]
deadline = 2000
)",
                              "a.toml");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  const config::AuthenticitySettings& a = parsed.value().authenticity;
  EXPECT_EQ(a.authserv_id, "mx1.example.org");
  EXPECT_EQ(a.spf, config::SpfEnforcement::kStrict);
  EXPECT_EQ(a.dmarc, config::DmarcEnforcement::kOff);
  EXPECT_TRUE(a.defer_on_temperror);
  EXPECT_EQ(a.max_signatures, 3u);
  EXPECT_EQ(a.quarantine_folder, "Spam.Quarantine");
  EXPECT_EQ(a.trusted_forwarders.size(), 2u);
  EXPECT_EQ(a.trusted_arc_sealers,
            (std::vector<std::string>{"lists.example.org", "forwarder.example.net"}));
  EXPECT_EQ(a.deadline.count(), 2000);
  ASSERT_EQ(parsed.value().domains.size(), 1u);
  EXPECT_EQ(parsed.value().domains[0].dmarc, config::DmarcEnforcement::kMonitor);
  EXPECT_NE(config::describe(parsed.value()).find("SPF strict"), std::string::npos);
  EXPECT_NE(config::describe(parsed.value())
                .find("last sealed by lists.example.org, forwarder.example.net\n"),
            std::string::npos);
  EXPECT_NE(config::describe(parsed.value())
                .find("DNS: the servers of /etc/resolv.conf, "
                      "validation auto (/usr/share/dns/root.key)"),
            std::string::npos)
      << config::describe(parsed.value());
}

TEST(AuthenticityConfig, MistakesNameTheKey) {
  struct Case {
    std::string text;
    std::string key;
    std::string words;
  };
  const Case cases[] = {
      {"[authenticity]\nspf = \"hard\"\n", "authenticity.spf", "must be \"dmarc\""},
      {"[authenticity]\ndmarc = \"yes\"\n", "authenticity.dmarc", "must be \"enforce\""},
      {"[authenticity]\ntemperror = \"retry\"\n", "authenticity.temperror", "\"accept\""},
      {"[authenticity]\nauthserv_id = \"a b\"\n", "authenticity.authserv_id", "not a host name"},
      {"[authenticity]\nquarantine_folder = \"../x\"\n", "authenticity.quarantine_folder",
       "not a Maildir folder"},
      {"[authenticity]\ntrusted_forwarders = [\"nonsense\"]\n", "authenticity.trusted_forwarders",
       "CIDR"},
      {"[authenticity]\nmax_signatures = 0\n", "authenticity.max_signatures", ""},
      {"[authenticity]\ntrusted_arc_sealers = [\"a b\"]\n", "authenticity.trusted_arc_sealers",
       "ARC-Seal d="},
      {"[authenticity]\ntrusted_arc_sealers = [1]\n", "authenticity.trusted_arc_sealers",
       "ARC-Seal d="},
      {"[authenticity]\nverfy = true\n", "authenticity.verfy", "unknown key"},
      {"[[domains]]\nname = \"example.org\"\ndkim = [\"k\"]\n", "domains[0].dkim[0]",
       "must be a table"},
      {"[[domains]]\nname = \"example.org\"\ndkim = [{ selector = \"a b\", key = \"k\" }]\n",
       "domains[0].dkim[0].selector", "not a valid selector"},
      {"[[domains]]\nname = \"example.org\"\ndkim = [{ selector = \"s1\" }]\n",
       "domains[0].dkim[0].key", ""},
      {"[[domains]]\nname = \"example.org\"\ndkim = [{ selector = \"s1\", key = "
       "\"/nonexistent/s1.key\" }]\n",
       "domains[0].dkim[0].key", "cannot read /nonexistent/s1.key"},
      {"[[domains]]\nname = \"r.example\"\nkind = \"relay\"\nnext_hop = \"smtp://127.0.0.1\"\n"
       "dkim = []\n",
       "domains[0].dkim", "only for kind = \"local\""},
  };
  for (const Case& c : cases) {
    config::ConfigError e = error_of(std::string(kBase) + "\n" + c.text);
    EXPECT_EQ(e.key, c.key) << c.text << e.to_string();
    EXPECT_NE(e.message.find(c.words), std::string::npos) << c.text << e.to_string();
    EXPECT_GT(e.line, 0) << c.text;
  }
}

TEST(AuthenticityConfig, DkimKeysAreReadPrivateOnly) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("smtpsd-dkim-config-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string key = (dir / "s1.key").string();
  {
    std::ofstream out(key);
    out << "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
  }
  const std::string text = std::string(kBase) +
                           "\n[[domains]]\nname = \"example.org\"\ndkim = [{ "
                           "selector = \"S1\", key = \"" +
                           key + "\" }]\n";
  ::chmod(key.c_str(), 0644);
  config::ConfigError e = error_of(text);
  EXPECT_EQ(e.key, "domains[0].dkim[0].key");
  EXPECT_NE(e.message.find("readable or writable by others"), std::string::npos) << e.message;
  // A client (smtpsctl, mailq) never opens the key: the same file is fine for it.
  EXPECT_TRUE(config::parse(text, "a.toml", config::Reading::kClient));
  ::chmod(key.c_str(), 0600);
  auto parsed = config::parse(text, "a.toml");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  ASSERT_EQ(parsed.value().domains[0].dkim.size(), 1u);
  EXPECT_EQ(parsed.value().domains[0].dkim[0].selector, "s1");
  EXPECT_NE(parsed.value().domains[0].dkim[0].pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  {
    std::ofstream out(key, std::ios::trunc);
    out << "not a key\n";
  }
  e = error_of(text);
  EXPECT_NE(e.message.find("holds no PEM private key"), std::string::npos) << e.message;
  std::filesystem::remove_all(dir);
}

}  // namespace
