// user_command_test.cpp — `smtpsctl user` against a temp users file: add, passwd, del,
// list, alias add/del, refusals (existing/unknown user, mismatched input), usage errors,
// and that neither passwords nor hashes are ever printed.
#include "app/smtpsctl/user_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace app {
namespace {

namespace fs = std::filesystem;

class UserCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "smtpsd-user-XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
    users_ = dir_ + "/users";
  }
  void TearDown() override { fs::remove_all(dir_); }

  int run(std::vector<std::string> args, std::string password = "s3cret pass") {
    out_.str("");
    err_.str("");
    reads_ = 0;
    PasswordReader reader = [this, password]() -> base::Expected<std::string, std::string> {
      ++reads_;
      if (password.empty()) return base::unexpected(std::string("the passwords do not match"));
      return password;
    };
    return run_user_command(args, out_, err_, reader, auth::test_argon2());
  }

  auth::UserStore load() {
    auto store = auth::UserStore::load(users_);
    EXPECT_TRUE(store) << store.error();
    return store ? std::move(store.value()) : auth::UserStore{};
  }

  std::string dir_;
  std::string users_;
  std::ostringstream out_;
  std::ostringstream err_;
  int reads_ = 0;
};

TEST_F(UserCommandTest, AddCreatesTheFileWithMode0600) {
  EXPECT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0) << err_.str();
  EXPECT_EQ(reads_, 1);
  EXPECT_NE(out_.str().find("added alice@example.org"), std::string::npos);
  struct stat status {};
  ASSERT_EQ(::stat(users_.c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0600u);
  auth::UserStore store = load();
  ASSERT_NE(store.find("alice@example.org"), nullptr);
  EXPECT_TRUE(auth::verify_password(store.find("alice@example.org"), "s3cret pass"));
}

TEST_F(UserCommandTest, AddRefusesAnExistingUserWithoutAskingForAPassword) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0);
  EXPECT_EQ(run({"add", "--users", users_, "ALICE@example.org"}), 1);
  EXPECT_EQ(reads_, 0);
  EXPECT_NE(err_.str().find("already exists"), std::string::npos);
}

TEST_F(UserCommandTest, AddRefusesABadAddress) {
  EXPECT_EQ(run({"add", "--users", users_, "not-an-address"}), 1);
  EXPECT_NE(err_.str().find("local-part@domain"), std::string::npos);
  EXPECT_FALSE(fs::exists(users_));
}

TEST_F(UserCommandTest, PasswordReaderErrorLeavesTheFileAlone) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0);
  std::string before = load().serialize();
  EXPECT_EQ(run({"passwd", "--users", users_, "alice@example.org"}, ""), 1);
  EXPECT_NE(err_.str().find("do not match"), std::string::npos);
  EXPECT_EQ(load().serialize(), before);
  EXPECT_EQ(run({"add", "--users", users_, "bob@example.org"}, ""), 1);
  EXPECT_EQ(load().find("bob@example.org"), nullptr);
}

TEST_F(UserCommandTest, PasswdChangesThePassword) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0);
  EXPECT_EQ(run({"passwd", "--users", users_, "Alice@Example.org"}, "new one"), 0) << err_.str();
  auth::UserStore store = load();
  EXPECT_TRUE(auth::verify_password(store.find("alice@example.org"), "new one"));
  EXPECT_FALSE(auth::verify_password(store.find("alice@example.org"), "s3cret pass"));
  EXPECT_EQ(store.find("alice@example.org")->address, "alice@example.org");
}

TEST_F(UserCommandTest, PasswdAndDelRefuseAnUnknownUser) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0);
  EXPECT_EQ(run({"passwd", "--users", users_, "bob@example.org"}), 1);
  EXPECT_EQ(reads_, 0);
  EXPECT_NE(err_.str().find("no user bob@example.org"), std::string::npos);
  EXPECT_EQ(run({"del", "--users", users_, "bob@example.org"}), 1);
  EXPECT_EQ(run({"passwd", "--users", dir_ + "/missing", "bob@example.org"}), 1);
  EXPECT_NE(err_.str().find("no such file"), std::string::npos);
}

TEST_F(UserCommandTest, DelRemovesTheUser) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0);
  ASSERT_EQ(run({"add", "--users", users_, "bob@example.org"}), 0);
  EXPECT_EQ(run({"del", "--users", users_, "alice@example.org"}), 0);
  auth::UserStore store = load();
  EXPECT_EQ(store.find("alice@example.org"), nullptr);
  EXPECT_NE(store.find("bob@example.org"), nullptr);
}

TEST_F(UserCommandTest, ListShowsAddressesAndAliasesNeverSecrets) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0);
  ASSERT_EQ(run({"add", "--users", users_, "bob@example.org"}), 0);
  ASSERT_EQ(run({"alias", "add", "--users", users_, "alice@example.org", "sales@example.org"}), 0)
      << err_.str();
  EXPECT_EQ(run({"list", "--users", users_}), 0);
  EXPECT_EQ(out_.str(), "alice@example.org (aliases: sales@example.org)\nbob@example.org\n");
  EXPECT_EQ(out_.str().find("argon2"), std::string::npos);
  EXPECT_EQ(out_.str().find("scram"), std::string::npos);
  EXPECT_EQ(run({"list", "--users", users_, "BOB@example.org"}), 0);
  EXPECT_EQ(out_.str(), "bob@example.org\n");
  EXPECT_EQ(run({"list", "--users", users_, "carol@example.org"}), 1);
}

TEST_F(UserCommandTest, JsonOnEveryCommandThatPrints) {
  ASSERT_EQ(run({"add", "--json", "--users", users_, "alice@example.org"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "{\"action\":\"added\",\"address\":\"alice@example.org\"}\n");
  ASSERT_EQ(run({"add", "--users", users_, "bob@example.org"}), 0);
  ASSERT_EQ(
      run({"alias", "add", "--json", "--users", users_, "alice@example.org", "sales@example.org"}),
      0);
  EXPECT_EQ(out_.str(),
            "{\"action\":\"alias_added\",\"address\":\"alice@example.org\",\"alias\":"
            "\"sales@example.org\"}\n");
  EXPECT_EQ(run({"list", "--json", "--users", users_}), 0);
  EXPECT_EQ(out_.str(),
            "{\"users\":[{\"address\":\"alice@example.org\",\"aliases\":[\"sales@example.org\"]},"
            "{\"address\":\"bob@example.org\",\"aliases\":[]}]}\n");
  EXPECT_EQ(run({"passwd", "--json", "--users", users_, "bob@example.org"}), 0);
  EXPECT_EQ(out_.str(), "{\"action\":\"password_changed\",\"address\":\"bob@example.org\"}\n");
  EXPECT_EQ(run({"del", "--json", "--users", users_, "bob@example.org"}), 0);
  EXPECT_EQ(out_.str(), "{\"action\":\"deleted\",\"address\":\"bob@example.org\"}\n");
  // An error stays text on stderr, nothing on stdout.
  EXPECT_EQ(run({"list", "--json", "--users", users_, "carol@example.org"}), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_NE(err_.str().find("no user carol@example.org"), std::string::npos);
}

TEST_F(UserCommandTest, AliasAddAndDel) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0);
  EXPECT_EQ(run({"alias", "add", "--users", users_, "alice@example.org", "a@example.org"}), 0);
  EXPECT_TRUE(load().may_send_as("alice@example.org", "a@example.org"));
  EXPECT_EQ(run({"alias", "add", "--users", users_, "alice@example.org", "A@example.org"}), 1);
  EXPECT_NE(err_.str().find("already an alias"), std::string::npos);
  EXPECT_EQ(run({"alias", "add", "--users", users_, "bob@example.org", "b@example.org"}), 1);
  EXPECT_EQ(run({"alias", "del", "--users", users_, "alice@example.org", "a@example.org"}), 0);
  EXPECT_FALSE(load().may_send_as("alice@example.org", "a@example.org"));
  EXPECT_EQ(run({"alias", "del", "--users", users_, "alice@example.org", "a@example.org"}), 1);
  EXPECT_NE(err_.str().find("is not an alias"), std::string::npos);
}

TEST_F(UserCommandTest, UsageErrorsExitWith2) {
  EXPECT_EQ(run({}), 2);
  EXPECT_EQ(run({"frobnicate"}), 2);
  EXPECT_EQ(run({"add", "alice@example.org"}), 2);  // --users missing
  EXPECT_EQ(run({"add", "--users", users_}), 2);    // address missing
  // A password on the command line is an extra argument, refused before anything happens.
  EXPECT_EQ(run({"add", "--users", users_, "alice@example.org", "hunter2"}), 2);
  EXPECT_EQ(reads_, 0);
  EXPECT_FALSE(fs::exists(users_));
  EXPECT_EQ(run({"alias", "--users", users_}), 2);
  EXPECT_EQ(run({"--help"}), 0);
  EXPECT_NE(out_.str().find("passwd"), std::string::npos);
}

TEST_F(UserCommandTest, CorruptFileIsReportedAndNotOverwritten) {
  {
    std::ofstream out(users_);
    out << "smtpsd-users 1\ngarbage\n";
  }
  EXPECT_EQ(run({"add", "--users", users_, "alice@example.org"}), 1);
  EXPECT_NE(err_.str().find(users_ + ":2:"), std::string::npos) << err_.str();
  std::ifstream in(users_);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "smtpsd-users 1\ngarbage\n");
}

// The PBKDF2 rounds of new SCRAM keys: the default, or --scram-iterations; entries already
// in the file keep the count stored with them (and still verify).
TEST_F(UserCommandTest, ScramIterationsDefaultOptionAndStoredCountsKept) {
  ASSERT_EQ(run({"add", "--users", users_, "alice@example.org"}), 0) << err_.str();
  EXPECT_EQ(load().find("alice@example.org")->scram.iterations, auth::kDefaultScramIterations);
  ASSERT_EQ(run({"add", "--users", users_, "--scram-iterations", "20000", "bob@example.org"}), 0)
      << err_.str();
  EXPECT_EQ(load().find("bob@example.org")->scram.iterations, 20000u);
  ASSERT_EQ(run({"passwd", "--users", users_, "--scram-iterations", "4096", "alice@example.org"}),
            0);
  EXPECT_EQ(load().find("alice@example.org")->scram.iterations, 4096u);
  // An entry written with the old default (10000) is read with its own count.
  auth::UserStore old;
  ASSERT_TRUE(old.set_password("carol@example.org", "s3cret pass", auth::test_argon2(), 10000));
  const auth::User* carol = old.find("carol@example.org");
  {
    std::ofstream out(users_, std::ios::app);
    std::string line = old.serialize();
    out << line.substr(line.find("carol@"));
  }
  ASSERT_EQ(run({"del", "--users", users_, "alice@example.org"}), 0) << err_.str();
  const auth::UserStore reloaded = load();  // kept alive: kept points into it
  const auth::User* kept = reloaded.find("carol@example.org");
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->scram.iterations, 10000u);
  EXPECT_EQ(kept->scram.stored_key, carol->scram.stored_key);
  EXPECT_EQ(load().find("bob@example.org")->scram.iterations, 20000u);
  // Below RFC 7677's 4096, or absurdly high: a usage error, nothing asked or written.
  EXPECT_EQ(run({"add", "--users", users_, "--scram-iterations", "4095", "dave@example.org"}), 2);
  EXPECT_EQ(run({"add", "--users", users_, "--scram-iterations", "99999999", "dave@example.org"}),
            2);
  EXPECT_EQ(reads_, 0);
  EXPECT_EQ(load().find("dave@example.org"), nullptr);
}

}  // namespace
}  // namespace app

namespace app {
namespace {

TEST_F(UserCommandTest, AddNoPasswordMakesAReceiveOnlyMailboxWithoutAsking) {
  EXPECT_EQ(run({"add", "--users", users_, "--no-password", "carol@example.org"}), 0) << err_.str();
  EXPECT_EQ(reads_, 0);
  auth::UserStore store = load();
  ASSERT_NE(store.find("carol@example.org"), nullptr);
  EXPECT_FALSE(store.find("carol@example.org")->can_log_in());
  EXPECT_EQ(run({"list", "--users", users_}), 0);
  EXPECT_EQ(out_.str(), "carol@example.org (receive-only)\n");
  EXPECT_EQ(run({"add", "--users", users_, "--no-password", "Carol@example.org"}), 1);
  EXPECT_NE(err_.str().find("already exists"), std::string::npos);
  EXPECT_EQ(run({"add", "--users", users_, "--no-password", "bad address"}), 1);
  // passwd gives it a password: then it may log in.
  EXPECT_EQ(run({"passwd", "--users", users_, "carol@example.org"}), 0) << err_.str();
  EXPECT_TRUE(auth::verify_password(load().find_login("carol@example.org"), "s3cret pass"));
}

}  // namespace
}  // namespace app
