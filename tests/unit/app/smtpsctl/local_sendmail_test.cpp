// local_sendmail_test.cpp — what `sendmail` decides before it talks to smtpsd's local
// socket: which mode a call uses (server or client configuration, environment), the
// recipients of -t (To, Cc, Bcc, folded fields, several addresses, groups; Bcc always
// removed), and bare user names qualified with the local domain.
#include "app/smtpsctl/local_sendmail.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

namespace app {
namespace {

MessageHead head_of(const std::string& text) {
  std::istringstream in(text);
  LineReader reader(in, true);
  auto head = read_head(reader);
  EXPECT_TRUE(head) << head.error();
  return head ? head.value() : MessageHead{};
}

TEST(LocalSendmail, RecipientsFromHeadersWithMinusT) {
  MessageHead head = head_of(
      "From: cron@host.example\r\n"
      "To: Alice <alice@example.org>, \"Smith, Bob\" <bob@example.org>\r\n"
      "Cc: team: carol@example.org, dave@example.org;,\r\n"
      "  erin@example.org\r\n"
      "Bcc: hidden@example.org\r\n"
      "Subject: report\r\n"
      "\r\n"
      "body\r\n");
  auto recipients = take_recipients(head, {"given@example.org"}, true);
  EXPECT_EQ(recipients,
            (std::vector<std::string>{"given@example.org", "alice@example.org", "bob@example.org",
                                      "carol@example.org", "dave@example.org", "erin@example.org",
                                      "hidden@example.org"}));
  EXPECT_FALSE(head.has("Bcc")) << "a blind copy must never show";
  EXPECT_TRUE(head.has("To"));
  EXPECT_TRUE(head.has("Cc"));
}

TEST(LocalSendmail, BccRemovedWithoutMinusTAndHeadersIgnored) {
  MessageHead head = head_of("To: a@example.org\r\nBcc: b@example.org\r\n\r\nx\r\n");
  auto recipients = take_recipients(head, {"only@example.org"}, false);
  EXPECT_EQ(recipients, std::vector<std::string>{"only@example.org"});
  EXPECT_FALSE(head.has("Bcc"));
}

TEST(LocalSendmail, BareUserNamesGetTheLocalDomain) {
  EXPECT_EQ(qualify_recipient("root", "host.example"), "root@host.example");
  EXPECT_EQ(qualify_recipient("a@b.example", "host.example"), "a@b.example");
}

struct Env {
  std::istringstream in;
  std::ostringstream out, err;
  std::map<std::string, std::string> variables;
  SendEnvironment get() {
    return SendEnvironment{in, out, err,
                           [this](const char* name) -> std::optional<std::string> {
                             auto it = variables.find(name);
                             if (it == variables.end()) return std::nullopt;
                             return it->second;
                           },
                           [](const std::string&) -> base::Expected<std::string, std::string> {
                             return base::unexpected(std::string("no terminal"));
                           }};
  }
};

TEST(LocalSendmail, ModeChosenByConfigurationAndEnvironment) {
  char directory[] = "/tmp/local-sendmail-XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  const std::string server = std::string(directory) + "/smtpsd.toml";
  const std::string client = std::string(directory) + "/smtpsctl.toml";
  std::ofstream(server) << "[server]\nhostname = \"h.example\"\n";
  std::ofstream(client) << "server = \"smtps://mail.example.net\"\n";
  Env env;
  SendmailArguments arguments;
  arguments.config_file = server;
  EXPECT_EQ(local_server_config(arguments, env.get()), server) << "an smtpsd.toml: local";
  arguments.config_file = client;
  EXPECT_EQ(local_server_config(arguments, env.get()), std::nullopt) << "a smtpsctl.toml: TLS";
  arguments.config_file.clear();
  env.variables["SMTPSD_CONFIG"] = server;
  EXPECT_EQ(local_server_config(arguments, env.get()), server);
  env.variables["SMTPSCTL_CONFIG"] = client;
  EXPECT_EQ(local_server_config(arguments, env.get()), std::nullopt)
      << "the client configuration, named, wins";
  std::remove(server.c_str());
  std::remove(client.c_str());
  ::rmdir(directory);
}

TEST(LocalSendmail, ServerConfigurationWithoutLocalSubmissionIsRefused) {
  char directory[] = "/tmp/local-sendmail-XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  const std::string server = std::string(directory) + "/smtpsd.toml";
  std::ofstream(server) << "[server]\nhostname = \"h.example\"\ndata_dir = \"/tmp\"\n"
                           "[[tls.certificates]]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n"
                           "[[listeners]]\nrole = \"smtp\"\naddress = \"127.0.0.1\"\n";
  Env env;
  env.in.str("To: a@example.org\n\nx\n");
  SendmailArguments arguments;
  arguments.extract_recipients = true;
  EXPECT_EQ(run_local_sendmail(arguments, server, env.get()), 78);
  EXPECT_NE(env.err.str().find("has no [local_submission]"), std::string::npos) << env.err.str();
  EXPECT_NE(env.err.str().find("NOT sent"), std::string::npos);
  std::remove(server.c_str());
  ::rmdir(directory);
}

}  // namespace
}  // namespace app
