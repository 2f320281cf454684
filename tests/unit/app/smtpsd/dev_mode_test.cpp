// dev_mode_test.cpp — `smtpsd dev` turns the local submission socket on for every local
// user, and its banner says how to use it (SMTPSD_CONFIG=… smtpsctl sendmail -t).
#include "app/smtpsd/dev_mode.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace app {
namespace {

TEST(DevMode, LocalSubmissionIsOnForEveryUserAndTheBannerShowsSendmail) {
  char directory[] = "/tmp/dev-mode-XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  auto setup = prepare_dev(directory, 0);
  ASSERT_TRUE(setup) << setup.error();
  auto config = config::load_file(setup->config_file);
  ASSERT_TRUE(config) << config.error().to_string();
  const config::LocalSubmissionSettings& local = config->local_submission;
  EXPECT_TRUE(local.enabled);
  EXPECT_TRUE(local.allow_users.empty()) << "every local user";
  EXPECT_EQ(local.domain, "localhost");
  EXPECT_EQ(local.socket, setup->dir + "/public/submit.sock");
  std::vector<BoundListener> listening{{"smtp", "127.0.0.1", 2525}, {"local", local.socket, 0}};
  const std::string banner = dev_instructions(*setup, *config, listening);
  EXPECT_NE(banner.find("SMTPSD_CONFIG=" + setup->dir + "/smtpsd.toml smtpsctl sendmail -t"),
            std::string::npos)
      << banner;
  EXPECT_NE(banner.find("local submit   " + local.socket), std::string::npos) << banner;
  EXPECT_NE(banner.find("listeners      smtp 127.0.0.1:2525\n"), std::string::npos) << banner;
  std::filesystem::remove_all(directory);
}

// swaks --auth-password "$(cat demo.password)" read a leading '-' as an option (one password
// in 64 began with one). 2,000 draws: a generator that allowed it fails with certainty but for
// (63/64)^2000, about 2e-14.
TEST(DevMode, ThePasswordNeverStartsWithADash) {
  for (int i = 0; i < 2000; ++i) {
    std::string password = dev_password();
    ASSERT_EQ(password.size(), 24u);
    ASSERT_NE(password.front(), '-') << password;
  }
}

}  // namespace
}  // namespace app
