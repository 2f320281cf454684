// Tests for acme/http01_webroot.cpp: the token file a web server serves, readable by it,
// removed afterwards, and never outside the challenge directory.
#include "acme/http01_webroot.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

class WebrootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (std::filesystem::temp_directory_path() /
             ("acme-webroot-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

TEST_F(WebrootTest, TheTokenFileHoldsTheKeyAuthorizationAndGoesAway) {
  const mode_t old_mask = ::umask(077);  // a strict umask: the web server must still read it
  acme::WebrootPublisher webroot(root_);
  auto published = webroot.publish("aB-_9x", "aB-_9x.thumbprint");
  ::umask(old_mask);
  ASSERT_TRUE(published.has_value()) << published.error();
  const std::string file = root_ + "/.well-known/acme-challenge/aB-_9x";
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "aB-_9x.thumbprint");
  struct stat info {};
  ASSERT_EQ(::stat(file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
  for (const std::string& dir : {root_ + "/.well-known", root_ + "/.well-known/acme-challenge"}) {
    ASSERT_EQ(::stat(dir.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0755u) << dir;
  }
  webroot.withdraw("aB-_9x");
  EXPECT_FALSE(std::filesystem::exists(file));
}

TEST_F(WebrootTest, ATokenThatIsNotBase64urlIsRefusedAndNothingIsWritten) {
  acme::WebrootPublisher webroot(root_ + "/www");
  std::filesystem::create_directories(root_ + "/www");
  for (const std::string& token :
       std::vector<std::string>{"../../x", "a/b", "..", "", "a b", std::string(257, 'a')}) {
    auto published = webroot.publish(token, "k");
    ASSERT_FALSE(published.has_value()) << token;
    EXPECT_NE(published.error().find("not base64url"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(root_ + "/x"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/www/.well-known"));
}

TEST_F(WebrootTest, AWebrootItCannotWriteIsAClearError) {
  std::filesystem::create_directories(root_ + "/www/.well-known");
  // A file where the challenge directory should be.
  std::ofstream(root_ + "/www/.well-known/acme-challenge") << "x";
  acme::WebrootPublisher webroot(root_ + "/www");
  auto published = webroot.publish("abc", "abc.k");
  ASSERT_FALSE(published.has_value());
  EXPECT_NE(published.error().find(root_ + "/www/.well-known/acme-challenge"), std::string::npos)
      << published.error();
}

}  // namespace
