// Tests for app/control_commands.cpp and app/control_socket.cpp: listing and lifting
// lockouts through a real unix socket, and what a wrong request gets.
#include "app/smtpsd/control_commands.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "app/common/control_socket.h"

namespace app {
namespace {

std::unique_ptr<auth::FailureLimiter> locked_limiter(std::chrono::steady_clock::time_point now) {
  auth::FailureLimiterOptions options;
  options.per_user_ip_max_failures = 2;
  auto limiter = auth::FailureLimiter::create(options);
  EXPECT_TRUE(limiter);
  for (int i = 0; i < 2; ++i)
    limiter.value()->record_failure("192.0.2.7", "alice@x", now);
  return std::move(limiter.value());
}

TEST(ControlCommandsTest, ListsAndLiftsLockouts) {
  auto now = std::chrono::steady_clock::now();
  auto limiter = locked_limiter(now);
  std::string listed = handle_control_request("auth lockouts", *limiter, now);
  EXPECT_NE(listed.find("192.0.2.7 alice@x 2 "), std::string::npos) << listed;
  EXPECT_EQ(handle_control_request("auth unlock alice@x", *limiter, now), "unlocked alice@x\n");
  EXPECT_EQ(handle_control_request("auth lockouts", *limiter, now), "");
  EXPECT_EQ(handle_control_request("auth unlock alice@x", *limiter, now),
            "error: nothing to unlock for alice@x\n");
  EXPECT_EQ(handle_control_request("queue flush", *limiter, now).rfind("error: ", 0), 0u);
}

TEST(ControlSocketTest, ServesItsOwnerOverAnOwnerOnlySocket) {
  char pattern[] = "/tmp/smtpsd-control-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::string path = std::string(pattern) + "/control.sock";
  auto now = std::chrono::steady_clock::now();
  auto limiter = locked_limiter(now);
  {
    ControlSocket control;
    ASSERT_TRUE(control.start(path, [&](const std::string& request) {
      return handle_control_request(request, *limiter, now);
    }));
    struct stat status {};
    ASSERT_EQ(::stat(path.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 0777, 0600u);
    auto listed = control_request(path, "auth lockouts");
    ASSERT_TRUE(listed) << listed.error();
    EXPECT_NE(listed.value().find("192.0.2.7 alice@x"), std::string::npos);
    auto unlocked = control_request(path, "auth unlock 192.0.2.7");
    ASSERT_TRUE(unlocked);
    EXPECT_EQ(unlocked.value(), "unlocked 192.0.2.7\n");
  }
  EXPECT_FALSE(std::filesystem::exists(path));  // removed at stop
  auto gone = control_request(path, "auth lockouts");
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().find("cannot reach the server"), std::string::npos);
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace app
