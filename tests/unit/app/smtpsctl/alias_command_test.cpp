// alias_command_test.cpp — `smtpsctl alias` against a temp aliases file: add (new, more
// targets, catch-all), del (one target, whole alias), list (text and --json), and the
// refusals — bad addresses, duplicates, loops (also through --users mailboxes), usage — each
// leaving the file as it was.
#include "app/smtpsctl/alias_command.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "auth/alias_table.h"
#include "auth/user_store.h"

namespace app {
namespace {

namespace fs = std::filesystem;

class AliasCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "smtpsd-alias-XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
    aliases_ = dir_ + "/aliases";
  }
  void TearDown() override { fs::remove_all(dir_); }
  int run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    return run_alias_command(args, out_, err_);
  }
  std::string file() {
    std::ifstream in(aliases_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string dir_;
  std::string aliases_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(AliasCommandTest, AddListDelete) {
  ASSERT_EQ(
      run({"add", "--aliases", aliases_, "team@example.org", "a@example.org", "b@remote.test"}), 0)
      << err_.str();
  struct stat status {};
  ASSERT_EQ(::stat(aliases_.c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0600u);
  ASSERT_EQ(run({"add", "--aliases", aliases_, "team@example.org", "c@example.org"}), 0);
  ASSERT_EQ(run({"add", "--aliases", aliases_, "@example.org", "a@example.org"}), 0) << err_.str();
  EXPECT_EQ(run({"list", "--aliases", aliases_}), 0);
  EXPECT_EQ(out_.str(),
            "team@example.org → a@example.org b@remote.test c@example.org\n"
            "@example.org → a@example.org\n");
  EXPECT_EQ(run({"list", "--aliases", aliases_, "--json", "@example.org"}), 0);
  EXPECT_EQ(out_.str(),
            "[{\"address\":\"@example.org\",\"catch_all\":true,\"targets\":[\"a@example.org\"]}]"
            "\n");
  EXPECT_EQ(run({"del", "--aliases", aliases_, "team@example.org", "b@remote.test"}), 0);
  EXPECT_EQ(run({"del", "--aliases", aliases_, "@example.org"}), 0);
  EXPECT_EQ(run({"list", "--aliases", aliases_}), 0);
  EXPECT_EQ(out_.str(), "team@example.org → a@example.org c@example.org\n");
  EXPECT_EQ(run({"del", "--aliases", aliases_, "nobody@example.org"}), 1);
  EXPECT_NE(err_.str().find("no alias nobody@example.org"), std::string::npos);
  EXPECT_EQ(run({"del", "--aliases", aliases_, "team@example.org", "zz@example.org"}), 1);
}

TEST_F(AliasCommandTest, BadInputIsRefusedAndNothingIsWritten) {
  ASSERT_EQ(run({"add", "--aliases", aliases_, "a@example.org", "b@example.org"}), 0);
  const std::string before = file();
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string why;
  };
  for (const Case& c : std::vector<Case>{
           {{"add", "--aliases", aliases_, "b@example.org", "a@example.org"},
            1,
            "alias a@example.org leads back to itself"},
           {{"add", "--aliases", aliases_, "c@example.org", "C@example.org"},
            1,
            "itself as its only target"},
           {{"add", "--aliases", aliases_, "a@example.org", "B@example.org"}, 1, "listed twice"},
           {{"add", "--aliases", aliases_, "x", "a@example.org"}, 1, "local-part@domain"},
           {{"add", "--aliases", aliases_, "@", "a@example.org"}, 1, "catch-all @"},
           {{"add", "--aliases", aliases_, "d@example.org", "a,b@example.org"}, 1, "','"},
           {{"add", "--aliases", aliases_, "d@example.org", "a\x01@example.org"},
            1,
            "control character"},
           {{"add", "--aliases", aliases_, "d@example.org"}, 2, ""},
           {{"add", "d@example.org", "a@example.org"}, 2, ""},
           {{"frobnicate", "--aliases", aliases_}, 2, ""},
       }) {
    EXPECT_EQ(run(c.args), c.code) << c.args[3 % c.args.size()];
    EXPECT_NE(err_.str().find(c.why), std::string::npos) << err_.str();
    EXPECT_EQ(file(), before);
  }
  // A catch-all to an unknown address of its domain loops once the mailboxes are known.
  {
    auth::UserStore users;
    ASSERT_TRUE(users.add_receive_only("admin@example.org"));
    ASSERT_TRUE(users.save(dir_ + "/users"));
  }
  EXPECT_EQ(run({"add", "--aliases", aliases_, "--users", dir_ + "/users", "@example.org",
                 "nobody@example.org"}),
            1);
  EXPECT_NE(err_.str().find("leads back"), std::string::npos) << err_.str();
  EXPECT_EQ(run({"add", "--aliases", aliases_, "--users", dir_ + "/users", "@example.org",
                 "admin@example.org"}),
            0)
      << err_.str();
}

TEST_F(AliasCommandTest, ALoopAlreadyInTheFileDoesNotBlockOtherEdits) {
  std::ofstream(aliases_) << "smtpsd-aliases 1\nx@example.org y@example.org\n"
                             "y@example.org x@example.org\n";
  EXPECT_EQ(run({"add", "--aliases", aliases_, "ok@example.org", "a@example.org"}), 0)
      << err_.str();
  std::ofstream(aliases_) << "smtpsd-aliases 1\nbroken line here\n";
  EXPECT_EQ(run({"add", "--aliases", aliases_, "ok@example.org", "a@example.org"}), 1);
  EXPECT_NE(err_.str().find(aliases_ + ":2: expected 2 fields"), std::string::npos) << err_.str();
}

}  // namespace
}  // namespace app
