// Tests for app/smtpsd/data_dir_owner.cpp: the walk skips what disappears under it (a mail
// reader moving files, a queue run removing a message) and the start-up walk never lists a
// mailbox.
#include "app/smtpsd/data_dir_owner.h"
#include "app/smtpsd/privileges.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

class DataDirOwnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/data-dir-owner-XXXXXX";
    ASSERT_NE(::mkdtemp(name), nullptr);
    top_ = name;
  }
  void TearDown() override { fs::remove_all(top_); }
  void touch(const std::string& relative) {
    fs::create_directories(fs::path(top_ + "/" + relative).parent_path());
    std::ofstream(top_ + "/" + relative) << "x";
  }
  std::string top_;
};

// Root never writes into a directory the account can change: once data_dir is the account's,
// what is written there before the switch is written as the account (so a link the account
// planted leads nowhere root could write), and root comes back whole afterwards.
TEST_F(DataDirOwnerTest, WritesBeforeTheSwitchAreTheAccountsOnceDataDirIsItsOwn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  app::PrivilegeSettings settings;
  settings.user = "nobody";
  settings.data_dir = top_;
  const auto make = [&](const std::string& name) {
    return [this, name]() -> base::Expected<base::Ok, std::string> {
      std::ofstream(top_ + "/" + name) << "x";
      return base::Ok{};
    };
  };
  const int groups_before = ::getgroups(0, nullptr);
  // First start: data_dir is not yet the account's; root writes (the walk gives it later).
  ASSERT_TRUE(app::write_as_data_dir_owner(settings, make("as-root")));
  struct stat info {};
  ASSERT_EQ(::stat((top_ + "/as-root").c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 0u);
  // Later starts: the account's own directory.
  ASSERT_EQ(::chown(top_.c_str(), 65534, 65534), 0);
  auto written = app::write_as_data_dir_owner(settings, make("as-account"));
  ASSERT_TRUE(written) << written.error();
  ASSERT_EQ(::stat((top_ + "/as-account").c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 65534u);
  EXPECT_EQ(::geteuid(), 0u);
  EXPECT_EQ(::getegid(), 0u);
  EXPECT_EQ(::getgroups(0, nullptr), groups_before);
  // What the work says is what the caller hears; root is back either way.
  auto failed = app::write_as_data_dir_owner(settings, [] {
    return base::Expected<base::Ok, std::string>(base::unexpected(std::string("no")));
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), "no");
  EXPECT_EQ(::geteuid(), 0u);
}

TEST_F(DataDirOwnerTest, AFileRemovedBeforeItsVisitIsSkipped) {
  for (const char* name : {"spool/queue/a", "spool/queue/b", "spool/queue/c", "users"})
    touch(name);
  std::vector<std::string> visited;
  auto walked = app::walk_tree(
      top_, [](const std::string&) { return true; },
      [&](const std::string& path) {
        // Listed, then gone before the change: what a concurrent rename does.
        if (path == top_ + "/spool/queue/b") ::unlink(path.c_str());
        if (::lchown(path.c_str(), ::geteuid(), ::getegid()) != 0) return errno;
        visited.push_back(path);
        return 0;
      });
  ASSERT_TRUE(walked.has_value()) << walked.error();
  EXPECT_EQ(walked.value().vanished, 1u);
  EXPECT_EQ(walked.value().visited, 6u);  // top, spool, queue, a, c, users
  EXPECT_EQ(std::count(visited.begin(), visited.end(), top_ + "/spool/queue/c"), 1);
}

TEST_F(DataDirOwnerTest, ADirectoryRemovedBeforeItIsListedIsSkipped) {
  touch("mail/example.org/alice/new/1");
  touch("spool/queue/a");
  auto walked = app::walk_tree(
      top_, [](const std::string&) { return true; },
      [&](const std::string& path) {
        if (path == top_ + "/mail") fs::remove_all(path);  // visited, then gone
        return 0;
      });
  ASSERT_TRUE(walked.has_value()) << walked.error();
  EXPECT_EQ(walked.value().vanished, 1u);
}

TEST_F(DataDirOwnerTest, AnotherErrorStopsTheWalkNamingThePath) {
  touch("spool/queue/a");
  auto walked = app::walk_tree(
      top_, [](const std::string&) { return true; },
      [&](const std::string& path) { return path == top_ + "/spool/queue/a" ? EPERM : 0; });
  ASSERT_FALSE(walked.has_value());
  EXPECT_NE(walked.error().find(top_ + "/spool/queue/a: Operation not permitted"),
            std::string::npos)
      << walked.error();
}

TEST_F(DataDirOwnerTest, SymbolicLinksAreVisitedNotFollowed) {
  touch("elsewhere/secret");
  fs::create_directories(top_ + "/data");
  fs::create_directory_symlink(top_ + "/elsewhere", top_ + "/data/link");
  fs::create_symlink(top_ + "/nowhere", top_ + "/data/dangling");
  std::set<std::string> visited;
  auto walked = app::walk_tree(
      top_ + "/data", [](const std::string&) { return true; },
      [&](const std::string& path) {
        visited.insert(path);
        return 0;
      });
  ASSERT_TRUE(walked.has_value()) << walked.error();
  EXPECT_EQ(visited,
            (std::set<std::string>{top_ + "/data", top_ + "/data/link", top_ + "/data/dangling"}));
}

// As root only: the real change of owner.
TEST_F(DataDirOwnerTest, GivesEverythingButTheMailboxes) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing owners needs root";
  touch("spool/queue/a");
  touch("mail/example.org/alice/new/1");
  touch("mail/example.org/alice/cur/2");
  const uid_t uid = 65534;
  const gid_t gid = 65534;
  auto given = app::give_data_dir_to(top_, uid, gid);
  ASSERT_TRUE(given.has_value()) << given.error();
  for (const char* mine :
       {"", "/spool", "/spool/queue", "/spool/queue/a", "/mail", "/mail/example.org"}) {
    struct stat info {};
    ASSERT_EQ(::lstat((top_ + mine).c_str(), &info), 0) << mine;
    EXPECT_EQ(info.st_uid, uid) << mine;
    EXPECT_EQ(info.st_gid, gid) << mine;
  }
  for (const char* mailbox : {"/mail/example.org/alice", "/mail/example.org/alice/new",
                              "/mail/example.org/alice/new/1", "/mail/example.org/alice/cur/2"}) {
    struct stat info {};
    ASSERT_EQ(::lstat((top_ + mailbox).c_str(), &info), 0) << mailbox;
    EXPECT_EQ(info.st_uid, 0u) << mailbox;
  }
  EXPECT_EQ(given.value().visited, 6u);
  // The top is the account's now: the next start does nothing.
  auto again = app::give_data_dir_to(top_, uid, gid);
  ASSERT_TRUE(again.has_value()) << again.error();
  EXPECT_EQ(again.value().visited, 0u);
}

}  // namespace
