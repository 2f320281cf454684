// Tests for acme/dns01_hook.cpp: the hook runs without a shell with its three words, its exit
// status and output make the error, a hook that hangs is killed at its timeout; publish()
// returns once the resolver sees the TXT value (RFC 8555 §8.4), and says so when it never does.
#include "acme/dns01_hook.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

// A resolver whose TXT answer for a name the test sets (none: NXDOMAIN); counts the questions.
class TxtResolver : public dns::Resolver {
 public:
  std::map<std::string, std::vector<std::string>> texts;
  int asked = 0;
  void lookup(std::string_view name, dns::Type, Callback callback) override {
    ++asked;
    auto answer = std::make_shared<dns::Answer>();
    auto found = texts.find(std::string(name));
    if (found == texts.end()) {
      answer->status = dns::Status::kNxDomain;
    } else {
      answer->status = dns::Status::kOk;
      answer->texts = found->second;
    }
    callback(answer);
  }
  bool validates() const override { return false; }
  std::string describe() const override { return "test"; }
};

class Dns01HookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("dns01-hook-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string script(const std::string& name, const std::string& body) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0755);
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(Dns01HookTest, TheTxtValueIsTheBase64urlOfTheDigest) {
  // RFC 8555 §8.4's construction; 43 characters, the URL-safe alphabet, no padding.
  const std::string value = acme::dns01_txt_value("token.thumbprint");
  EXPECT_EQ(value, "61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I");  // by Python's hashlib
  EXPECT_EQ(value.size(), 43u);
  EXPECT_EQ(
      value.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
  EXPECT_NE(value, acme::dns01_txt_value("token.thumbprinT"));
}

TEST_F(Dns01HookTest, TheHookRunsWithoutAShellAndItsFailureSaysWhy) {
  const std::string log = (dir_ / "args").string();
  // Each argument on its own line: a value with a space or a ';' stays one argument.
  const std::string hook =
      script("hook", "for a in \"$@\"; do echo \"$a\" >> " + log + "; done\necho done\n");
  auto ran = acme::run_hook({hook, "-z", "a b;c", "add", "x", "y"}, std::chrono::seconds(10));
  ASSERT_TRUE(ran.has_value()) << ran.error();
  EXPECT_EQ(ran->exit_status, 0);
  EXPECT_EQ(ran->output, "done\n");
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "-z\na b;c\nadd\nx\ny\n");

  TxtResolver resolver;
  acme::Dns01HookPublisher failing(
      {script("fails", "echo \"no key for $2\" >&2\nexit 3\n")}, std::chrono::seconds(10),
      std::shared_ptr<dns::Resolver>(&resolver, [](dns::Resolver*) {}), std::chrono::seconds(1));
  auto published = failing.publish("mx.example.org", "t.k");
  ASSERT_FALSE(published.has_value());
  EXPECT_EQ(published.error(),
            "dns_hook add exited with status 3: no key for _acme-challenge.mx.example.org");
  EXPECT_EQ(resolver.asked, 0);  // nothing to look for

  auto missing = acme::run_hook({(dir_ / "absent").string(), "add"}, std::chrono::seconds(1));
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().find("cannot run"), std::string::npos) << missing.error();
}

TEST_F(Dns01HookTest, AHookThatHangsIsKilledAtItsTimeout) {
  const auto started = std::chrono::steady_clock::now();
  auto ran = acme::run_hook({script("hangs", "echo started\nexec sleep 30\n")},
                            std::chrono::milliseconds(300));
  ASSERT_TRUE(ran.has_value()) << ran.error();
  EXPECT_TRUE(ran->timed_out);
  EXPECT_EQ(ran->exit_status, -1);
  EXPECT_EQ(ran->output, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
}

TEST_F(Dns01HookTest, PublishWaitsUntilTheResolverSeesTheValue) {
  const std::string log = (dir_ / "calls").string();
  const std::string hook = script("hook", "echo \"$1 $2 $3\" >> " + log + "\n");
  auto resolver = std::make_shared<TxtResolver>();
  const std::string value = acme::dns01_txt_value("t.k");
  // An old value only: never the one asked for, so publish() says it was not seen.
  resolver->texts["_acme-challenge.mx.example.org"] = {"old-value"};
  acme::Dns01HookPublisher publisher({hook}, std::chrono::seconds(10), resolver,
                                     std::chrono::milliseconds(300));
  auto unseen = publisher.publish("MX.example.org", "t.k");
  ASSERT_FALSE(unseen.has_value());
  EXPECT_NE(unseen.error().find("the TXT record _acme-challenge.mx.example.org was not visible "
                                "through the resolver within 300 ms (other values)"),
            std::string::npos)
      << unseen.error();
  EXPECT_GE(resolver->asked, 2);
  publisher.withdraw("MX.example.org");
  resolver->texts["_acme-challenge.mx.example.org"] = {"old-value", value};
  ASSERT_TRUE(publisher.publish("MX.example.org", "t.k").has_value());
  publisher.withdraw("MX.example.org");
  publisher.withdraw("MX.example.org");  // once only
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string record = "_acme-challenge.mx.example.org " + value;
  EXPECT_EQ(text, "add " + record + "\nremove " + record + "\nadd " + record + "\nremove " +
                      record + "\n");
}

}  // namespace
