// domains_config_test.cpp — config/config.cpp for the per-domain settings of [[domains]]
// (kind, max_message_size, delivery, relay, next_hop, recipients) and [srs]: what a valid
// entry gives, and that every bad value names the file, the line and the key.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"

namespace {

const char* kDomainsBase = R"([server]
hostname = "mx.example.org"
data_dir = "/var/lib/smtpsd"

[[tls.certificates]]
certificate = "certs/ecdsa.pem"
key = "certs/ecdsa.key"

[[listeners]]
role = "smtp"
address = "0.0.0.0"
)";

// Lines of kDomainsBase (a [[domains]] entry appended starts on line kDomainsBaseLines + 2).
constexpr long kDomainsBaseLines = 11;

config::ConfigError domains_error_of(const std::string& tail) {
  auto parsed = config::parse(std::string(kDomainsBase) + "\n" + tail, "/etc/smtpsd/test.toml");
  EXPECT_FALSE(parsed.has_value()) << "accepted:\n" << tail;
  if (parsed.has_value()) return {};
  EXPECT_EQ(parsed.error().file, "/etc/smtpsd/test.toml");
  EXPECT_GT(parsed.error().line, kDomainsBaseLines) << parsed.error().to_string();
  return parsed.error();
}

config::Config parsed(const std::string& tail) {
  auto result = config::parse(std::string(kDomainsBase) + "\n" + tail, "/etc/smtpsd/test.toml");
  EXPECT_TRUE(result.has_value()) << result.error().to_string();
  return result.has_value() ? result.value() : config::Config{};
}

// A file in a fresh directory, with mode.
class TempFile {
 public:
  TempFile(const std::string& content, mode_t mode) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "smtpsd-domains-XXXXXX").string();
    directory_ = ::mkdtemp(pattern.data());
    path_ = directory_ + "/file";
    std::ofstream(path_) << content;
    ::chmod(path_.c_str(), mode);
  }
  ~TempFile() { std::filesystem::remove_all(directory_); }
  const std::string& path() const { return path_; }

 private:
  std::string directory_;
  std::string path_;
};

TEST(DomainsConfigTest, PerDomainSettingsAreRead) {
  config::Config c = parsed(R"([[domains]]
name = "example.org"
users = ["alice"]
max_message_size = 1048576
delivery = "unix:/run/dovecot/lmtp"
relay = "smtps://smtp.provider.test"
relay_user = "me"
relay_password_file = "relay.pass"

[[domains]]
name = "maildir.example.org"
delivery = "maildir"

[[domains]]
name = "Backup.Example"
kind = "relay"
next_hop = "smtp://10.0.0.5:2525"
next_hop_tls = "may"
recipients = ["ann", "Bob@backup.example"]
)");
  ASSERT_EQ(c.domains.size(), 2u);
  const config::Domain& org = c.domains[0];
  EXPECT_EQ(org.kind, config::DomainKind::kLocal);
  EXPECT_EQ(org.max_message_size, 1048576u);
  ASSERT_TRUE(org.lmtp);
  EXPECT_EQ(org.lmtp->unix_path, "/run/dovecot/lmtp");
  ASSERT_TRUE(org.relay);
  EXPECT_EQ(org.relay->url.host, "smtp.provider.test");
  EXPECT_TRUE(org.relay->url.implicit_tls);
  EXPECT_EQ(org.relay->tls, tls::OutboundLevel::kVerify);
  EXPECT_EQ(org.relay->user, "me");
  EXPECT_EQ(org.relay->password_file, "/etc/smtpsd/relay.pass");
  EXPECT_TRUE(c.domains[1].maildir);
  // A relay domain is not a local domain: it has no mailboxes here.
  EXPECT_EQ(c.find_domain("backup.example"), nullptr);
  const config::Domain* backup = c.find_relay_domain("BACKUP.example");
  ASSERT_NE(backup, nullptr);
  EXPECT_EQ(backup->kind, config::DomainKind::kRelay);
  ASSERT_TRUE(backup->next_hop);
  EXPECT_EQ(backup->next_hop->url.port, 2525);
  EXPECT_EQ(backup->next_hop->tls, tls::OutboundLevel::kMay);
  EXPECT_EQ(backup->recipients, (std::vector<std::string>{"ann", "Bob"}));
  EXPECT_EQ(c.max_message_size_for("a@EXAMPLE.org"), 1048576u);
  EXPECT_EQ(c.max_message_size_for("a@maildir.example.org"), c.limits.max_message_size);
  EXPECT_EQ(c.max_message_size_for("a@elsewhere.test"), c.limits.max_message_size);
  EXPECT_FALSE(c.srs);
}

TEST(DomainsConfigTest, RelayRecipientsMayComeFromAFile) {
  TempFile list("# backup MX recipients\nann\n\n  carl@backup.example  \r\n", 0644);
  config::Config c = parsed(
      "[[domains]]\nname = \"backup.example\"\nkind = \"relay\"\n"
      "next_hop = \"smtp://10.0.0.5\"\nrecipients_file = \"" +
      list.path() + "\"\n");
  ASSERT_EQ(c.relay_domains.size(), 1u);
  EXPECT_EQ(c.relay_domains[0].recipients, (std::vector<std::string>{"ann", "carl"}));
}

TEST(DomainsConfigTest, BadDomainValuesNameLineAndKey) {
  const std::string head = "[[domains]]\nname = \"example.org\"\n";
  const long value_line = kDomainsBaseLines + 4;  // the line after name
  struct Case {
    std::string text;
    std::string key;
    std::string says;
  };
  const Case cases[] = {
      {head + "kind = \"backup\"\n", "domains[0].kind", "\"local\""},
      {head + "max_message_size = 100\n", "domains[0].max_message_size", "between"},
      {head + "max_message_size = \"10M\"\n", "domains[0].max_message_size", "integer"},
      {head + "delivery = \"mbox\"\n", "domains[0].delivery", "maildir"},
      {head + "delivery = \"unix:relative\"\n", "domains[0].delivery", "maildir"},
      {head + "relay = \"http://x.test\"\n", "domains[0].relay", "smtps://"},
      {head + "relay = \"smtp://x.test\"\nrelay_tls = \"sometimes\"\n", "domains[0].relay_tls",
       "verify"},
      {head + "relay_user = \"me\"\n", "domains[0].relay_user", "needs domains[0].relay"},
      {head + "relay = \"smtp://x.test\"\nrelay_user = \"me\"\n", "domains[0].relay_user",
       "relay_password_file"},
      {head + "relay = \"smtp://x.test\"\nrelay_tls = \"may\"\nrelay_user = \"me\"\n"
              "relay_password_file = \"p\"\n",
       "domains[0].relay_tls", "verify"},
      {head + "next_hop = \"smtp://x.test\"\n", "domains[0].next_hop", "kind = \"relay\""},
      {head + "recipients = [\"a\"]\n", "domains[0].recipients", "kind = \"relay\""},
      {head + "kind = \"relay\"\nrecipients = [\"a\"]\n", "domains[0].next_hop", "missing"},
      {head + "kind = \"relay\"\nnext_hop = \"smtp://x.test\"\n", "domains[0].recipients",
       "backscatter"},
      {head + "kind = \"relay\"\nnext_hop = \"x.test:25\"\nrecipients = [\"a\"]\n",
       "domains[0].next_hop", "smtp://"},
      {head + "kind = \"relay\"\nnext_hop = \"smtp://x.test\"\nrecipients = [\"a b\"]\n",
       "domains[0].recipients", "not a recipient"},
      {head +
           "kind = \"relay\"\nnext_hop = \"smtp://x.test\"\nrecipients_file = \"/nonexistent\"\n",
       "domains[0].recipients_file", "cannot read"},
      {head + "kind = \"relay\"\nusers = [\"a\"]\nnext_hop = \"smtp://x.test\"\n",
       "domains[0].users", "only for kind = \"local\""},
      {head + "kind = \"relay\"\ndelivery = \"maildir\"\n", "domains[0].delivery",
       "only for kind = \"local\""},
      {head + "colour = \"blue\"\n", "domains[0].colour", "unknown key"},
      {head + "max_message_size = 2000000000\n", "domains[0].max_message_size",
       "above limits.max_message_size"},
  };
  for (const Case& c : cases) {
    config::ConfigError error = domains_error_of(c.text);
    EXPECT_EQ(error.key, c.key) << c.text << " -> " << error.to_string();
    EXPECT_NE(error.message.find(c.says), std::string::npos) << error.to_string();
    EXPECT_GE(error.line, value_line - 2) << error.to_string();
  }
  // The line is the value's own where there is one.
  EXPECT_EQ(domains_error_of(head + "kind = \"backup\"\n").line, value_line);
}

TEST(DomainsConfigTest, BadLineOfARecipientsFileIsNamed) {
  TempFile list("ann\nnot valid\n", 0644);
  config::ConfigError error = domains_error_of(
      "[[domains]]\nname = \"backup.example\"\nkind = \"relay\"\n"
      "next_hop = \"smtp://10.0.0.5\"\nrecipients_file = \"" +
      list.path() + "\"\n");
  EXPECT_EQ(error.key, "domains[0].recipients_file");
  EXPECT_NE(error.message.find(list.path() + " line 2"), std::string::npos) << error.message;
}

TEST(DomainsConfigTest, OversizedRecipientsAndSecretsFilesAreRefusedUnread) {
  TempFile list("", 0644);
  std::filesystem::resize_file(list.path(), (16u << 20) + 1);  // sparse: never read
  config::ConfigError error = domains_error_of(
      "[[domains]]\nname = \"backup.example\"\nkind = \"relay\"\n"
      "next_hop = \"smtp://10.0.0.5\"\nrecipients_file = \"" +
      list.path() + "\"\n");
  EXPECT_EQ(error.key, "domains[0].recipients_file");
  EXPECT_NE(error.message.find("larger than 16 MiB"), std::string::npos) << error.message;
  TempFile secrets("", 0600);
  std::filesystem::resize_file(secrets.path(), 65537);
  error = domains_error_of("[srs]\ndomain = \"srs.example.org\"\nsecrets_file = \"" +
                           secrets.path() + "\"\n");
  EXPECT_EQ(error.key, "srs.secrets_file");
  EXPECT_NE(error.message.find("larger than 64 KiB"), std::string::npos) << error.message;
}

TEST(DomainsConfigTest, SrsReadsItsSecretsFromAPrivateFile) {
  TempFile secrets("first-secret-0123456789\nolder-secret-0123456789\n", 0600);
  config::Config c = parsed("[srs]\ndomain = \"SRS.example.org\"\nsecrets_file = \"" +
                            secrets.path() + "\"\nmax_age_days = 10\n");
  ASSERT_TRUE(c.srs);
  EXPECT_EQ(c.srs->domain, "srs.example.org");
  EXPECT_EQ(c.srs->max_age_days, 10u);
  EXPECT_EQ(c.srs->secrets,
            (std::vector<std::string>{"first-secret-0123456789", "older-secret-0123456789"}));
}

TEST(DomainsConfigTest, BadSrsSettingsNameLineAndKey) {
  TempFile good("first-secret-0123456789\n", 0600);
  TempFile readable("first-secret-0123456789\n", 0640);
  TempFile empty("\n\n", 0600);
  TempFile short_secret("short\n", 0600);
  auto srs = [](const std::string& domain, const std::string& file, const std::string& more = "") {
    return "[srs]\ndomain = \"" + domain + "\"\nsecrets_file = \"" + file + "\"\n" + more;
  };
  struct Case {
    std::string text;
    std::string key;
    std::string says;
  };
  const Case cases[] = {
      {srs("srs.example.org", readable.path()), "srs.secrets_file", "chmod 600"},
      {srs("srs.example.org", empty.path()), "srs.secrets_file", "no secret"},
      {srs("srs.example.org", short_secret.path()), "srs.secrets_file", "shorter than 16"},
      {srs("srs.example.org", "/nonexistent/srs"), "srs.secrets_file", "cannot read"},
      {srs("not a domain", good.path()), "srs.domain", "not a valid domain"},
      {srs("localhost", good.path()), "srs.domain", "not a valid domain"},
      {srs("srs.example.org", good.path(), "max_age_days = 0\n"), "srs.max_age_days", "between"},
      {srs("srs.example.org", good.path(), "max_age_days = 2000\n"), "srs.max_age_days", "between"},
      {srs("srs.example.org", good.path(), "secret = \"inline\"\n"), "srs.secret", "unknown key"},
      {"[srs]\ndomain = \"srs.example.org\"\n", "srs.secrets_file", "missing"},
      {"[[domains]]\nname = \"b.example\"\nkind = \"relay\"\nnext_hop = \"smtp://x.test\"\n"
       "recipients = [\"a\"]\n" +
           srs("b.example", good.path()),
       "srs.domain", "relay domain"},
  };
  for (const Case& c : cases) {
    config::ConfigError error = domains_error_of(c.text);
    EXPECT_EQ(error.key, c.key) << c.text << " -> " << error.to_string();
    EXPECT_NE(error.message.find(c.says), std::string::npos) << error.to_string();
  }
  // The secret never appears in an error.
  EXPECT_EQ(domains_error_of(srs("srs.example.org", readable.path())).message.find("first-secret"),
            std::string::npos);
}

}  // namespace
