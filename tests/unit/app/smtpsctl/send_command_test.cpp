// send_command_test.cpp — the parts of `smtpsctl send` / `sendmail` that need no server:
// --server URLs, sendmail's flags (grouped, attached and separate values, ignored -o
// options, refused modes), the configuration file's strictness (file, line and key in
// every error), and that `send` has no --password option.
#include "app/smtpsctl/send_command.h"

#include <sstream>

#include <gtest/gtest.h>

namespace app {
namespace {

TEST(SendCommand, ServerUrls) {
  auto smtps = parse_server_url("smtps://mail.example.net");
  ASSERT_TRUE(smtps);
  EXPECT_TRUE(smtps->implicit_tls);
  EXPECT_EQ(smtps->host, "mail.example.net");
  EXPECT_EQ(smtps->port, 465);
  auto smtp = parse_server_url("smtp://mail.example.net:2587");
  ASSERT_TRUE(smtp);
  EXPECT_FALSE(smtp->implicit_tls);
  EXPECT_EQ(smtp->port, 2587);
  EXPECT_EQ(parse_server_url("smtp://mail.example.net")->port, 587);
  auto v6 = parse_server_url("smtps://[::1]:2465");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 2465);
  EXPECT_EQ(parse_server_url("smtps://[::1]")->port, 465);
  for (const char* bad : {"mail.example.net", "http://x", "smtp://", "smtp://x:", "smtp://x:0",
                          "smtp://x:70000", "smtp://x:12a", "smtps://[::1", "smtp://u@x"}) {
    EXPECT_FALSE(parse_server_url(bad)) << bad;
  }
}

TEST(SendCommand, SendmailFlags) {
  auto parsed = parse_sendmail_arguments(
      {"-t", "-i", "-f", "robot@example.org", "-F", "Cron Daemon", "-odi", "-oem", "a@x.org"});
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_TRUE(parsed->extract_recipients);
  EXPECT_FALSE(parsed->dot_ends);
  EXPECT_EQ(parsed->sender, "robot@example.org");
  EXPECT_EQ(parsed->full_name, "Cron Daemon");
  EXPECT_EQ(parsed->recipients, std::vector<std::string>{"a@x.org"});
}

TEST(SendCommand, SendmailGroupedAndAttached) {
  auto parsed = parse_sendmail_arguments({"-ti", "-frobot@example.org", "-oi", "--", "-odd@x.org"});
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_TRUE(parsed->extract_recipients);
  EXPECT_FALSE(parsed->dot_ends);
  EXPECT_EQ(parsed->sender, "robot@example.org");
  EXPECT_EQ(parsed->recipients, std::vector<std::string>{"-odd@x.org"});

  auto oi = parse_sendmail_arguments({"-oi", "a@x.org"});
  ASSERT_TRUE(oi);
  EXPECT_FALSE(oi->dot_ends);
  EXPECT_TRUE(parse_sendmail_arguments({"a@x.org"})->dot_ends);

  auto config = parse_sendmail_arguments({"--config", "/etc/x.toml", "-bm", "-N", "never", "a@x"});
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->config_file, "/etc/x.toml");
  EXPECT_EQ(parse_sendmail_arguments({"--config=/y.toml"})->config_file, "/y.toml");
}

TEST(SendCommand, SendmailRefusals) {
  EXPECT_FALSE(parse_sendmail_arguments({"-f"}));        // missing value
  EXPECT_FALSE(parse_sendmail_arguments({"-bp"}));       // mailq mode
  EXPECT_FALSE(parse_sendmail_arguments({"-q"}));        // queue run
  EXPECT_FALSE(parse_sendmail_arguments({"-Z"}));        // unknown
  EXPECT_FALSE(parse_sendmail_arguments({"--bogus"}));   // unknown long option
  EXPECT_FALSE(parse_sendmail_arguments({"--config"}));  // missing file
  auto error = parse_sendmail_arguments({"-bd"});        // daemon mode
  EXPECT_NE(error.error().find("-bd"), std::string::npos);
}

TEST(SendCommand, SendmailSpeaksSmtpWithBs) {
  auto parsed = parse_sendmail_arguments({"-bs"});
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_TRUE(parsed->speak_smtp);
  EXPECT_FALSE(parse_sendmail_arguments({"-bm"})->speak_smtp);
  // Options Postfix's sendmail ignores are ignored here too, wherever they appear.
  auto ignored = parse_sendmail_arguments({"-oi", "-oem", "-odb", "-U", "-m", "-bm", "x@y.org"});
  ASSERT_TRUE(ignored) << ignored.error();
  EXPECT_FALSE(ignored->dot_ends);
  EXPECT_EQ(ignored->recipients, std::vector<std::string>{"x@y.org"});
}

TEST(SendCommand, ConfigFile) {
  auto config = parse_sendmail_config(
      "server = \"smtps://mail.example.net\"\nuser = \"robot@example.net\"\n"
      "password_file = \"robot.password\"\ncafile = \"/etc/ca.pem\"\nfrom = "
      "\"robot@example.net\"\n",
      "/etc/smtpsctl/smtpsctl.toml");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->server, "smtps://mail.example.net");
  EXPECT_EQ(config->user, "robot@example.net");
  EXPECT_EQ(config->password_file, "/etc/smtpsctl/robot.password");  // relative to the file
  EXPECT_EQ(config->cafile, "/etc/ca.pem");
  EXPECT_EQ(config->from, "robot@example.net");
}

TEST(SendCommand, ConfigErrorsNameFileLineAndKey) {
  auto unknown =
      parse_sendmail_config("server = \"smtps://x\"\n\npasword_file = \"p\"\n", "c.toml");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().rfind("c.toml:3: pasword_file: unknown key", 0), 0u) << unknown.error();

  auto type = parse_sendmail_config("server = 465\n", "c.toml");
  ASSERT_FALSE(type);
  EXPECT_EQ(type.error(), "c.toml:1: server: must be a string");

  auto missing = parse_sendmail_config("user = \"u@x\"\n", "c.toml");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("c.toml: server: missing"), std::string::npos) << missing.error();

  auto url = parse_sendmail_config("\nserver = \"mail.example.net\"\n", "c.toml");
  ASSERT_FALSE(url);
  EXPECT_EQ(url.error().rfind("c.toml:2: server: ", 0), 0u) << url.error();

  auto from = parse_sendmail_config("server = \"smtp://x\"\nfrom = \"not an address\"\n", "c.toml");
  ASSERT_FALSE(from);
  EXPECT_EQ(from.error().rfind("c.toml:2: from: ", 0), 0u) << from.error();

  auto syntax = parse_sendmail_config("server = \n", "c.toml");
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().rfind("c.toml:1: ", 0), 0u) << syntax.error();

  auto table = parse_sendmail_config("server = \"smtp://x\"\n[extra]\nkey = 1\n", "c.toml");
  ASSERT_FALSE(table);
  EXPECT_NE(table.error().find("extra: unknown key"), std::string::npos) << table.error();
}

TEST(SendCommand, NoPasswordOption) {
  std::istringstream in;
  std::ostringstream out, err;
  SendEnvironment env{in, out, err, [](const char*) { return std::nullopt; },
                      [](const std::string&) -> base::Expected<std::string, std::string> {
                        return base::unexpected(std::string("no terminal"));
                      }};
  EXPECT_EQ(
      run_send_command({"--server", "smtps://localhost", "--to", "a@x", "--password", "x"}, env),
      2);
  EXPECT_NE(err.str().find("no --password option"), std::string::npos) << err.str();
  err.str("");
  EXPECT_EQ(run_send_command({"--server", "smtps://localhost", "--password=x"}, env), 2);
  EXPECT_NE(err.str().find("SMTPSCTL_PASSWORD"), std::string::npos) << err.str();
}

TEST(SendCommand, TlsNoneRules) {
  std::istringstream in;
  std::ostringstream out, err;
  SendEnvironment env{in, out, err, [](const char*) { return std::nullopt; },
                      [](const std::string&) -> base::Expected<std::string, std::string> {
                        return base::unexpected(std::string("no terminal"));
                      }};
  EXPECT_EQ(
      run_send_command(
          {"--server", "smtps://localhost", "--tls", "none", "--from", "a@x", "--to", "b@x"}, env),
      2);
  EXPECT_NE(err.str().find("contradicts"), std::string::npos);
  err.str("");
  EXPECT_EQ(
      run_send_command(
          {"--server", "smtp://localhost", "--tls", "none", "--user", "a@x", "--to", "b@x"}, env),
      2);
  EXPECT_NE(err.str().find("never sent without TLS"), std::string::npos);
}

}  // namespace
}  // namespace app
