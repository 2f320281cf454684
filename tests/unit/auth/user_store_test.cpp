// user_store_test.cpp — auth::UserStore and auth::UserDirectory against real files in a
// temp dir: round trip, mode 0600, refusals naming file:line, reload on change and the old
// snapshot kept on a broken file, reloads off the reading threads, argon2id verification
// (test_argon2 params, fast).
#include "auth/user_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "auth/crypto_primitives.h"

namespace auth {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "smtpsd-auth-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

UserStore two_users() {
  UserStore store;
  EXPECT_TRUE(store.set_password("alice@example.org", "correct horse", test_argon2()));
  EXPECT_TRUE(store.set_password("bob@Example.NET", "battery staple", test_argon2()));
  EXPECT_TRUE(store.add_alias("alice@example.org", "postmaster@example.org"));
  EXPECT_TRUE(store.add_alias("alice@example.org", "a.smith@example.org"));
  return store;
}

TEST(UserStoreTest, TypicalScramIterationsIsTheMostCommonCount) {
  UserStore store;
  EXPECT_EQ(store.typical_scram_iterations(), kDefaultScramIterations);  // no users yet
  ASSERT_TRUE(store.set_password("a@example.org", "pw one", test_argon2(), 10000));
  ASSERT_TRUE(store.set_password("b@example.org", "pw two", test_argon2(), 10000));
  ASSERT_TRUE(store.set_password("c@example.org", "pw three", test_argon2(), 200000));
  auto parsed = UserStore::parse(store.serialize(), "users");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->typical_scram_iterations(), 10000u);
}

TEST(UserStoreTest, SaveLoadRoundTripKeepsEveryField) {
  TempDir dir;
  UserStore store = two_users();
  ASSERT_TRUE(store.save(dir.file("users")));
  auto loaded = UserStore::load(dir.file("users"));
  ASSERT_TRUE(loaded) << loaded.error();
  ASSERT_EQ(loaded->size(), 2u);
  for (const User* original : store.users()) {
    const User* copy = loaded->find(original->address);
    ASSERT_NE(copy, nullptr);
    EXPECT_EQ(copy->address, original->address);
    EXPECT_EQ(copy->password_hash, original->password_hash);
    EXPECT_EQ(copy->scram.salt, original->scram.salt);
    EXPECT_EQ(copy->scram.iterations, original->scram.iterations);
    EXPECT_EQ(copy->scram.stored_key, original->scram.stored_key);
    EXPECT_EQ(copy->scram.server_key, original->scram.server_key);
    EXPECT_EQ(copy->aliases, original->aliases);
  }
  EXPECT_EQ(loaded->serialize(), store.serialize());
}

TEST(UserStoreTest, FileHoldsNoPlaintextAndUsesDocumentedFields) {
  TempDir dir;
  ASSERT_TRUE(two_users().save(dir.file("users")));
  std::string text = read_file(dir.file("users"));
  EXPECT_EQ(text.find("correct horse"), std::string::npos);
  EXPECT_EQ(text.find("battery staple"), std::string::npos);
  EXPECT_NE(text.find("\nsmtpsd-users 1\n"), std::string::npos);
  EXPECT_NE(text.find("alice@example.org $argon2id$v=19$"), std::string::npos);
  EXPECT_NE(text.find(" scram-sha-256:100000:"), std::string::npos);  // the default count
  EXPECT_NE(text.find(" postmaster@example.org,a.smith@example.org\n"), std::string::npos);
  EXPECT_NE(text.find(" -\n"), std::string::npos);  // bob has no aliases
}

TEST(UserStoreTest, AFirstFileMadeByRootIsOwnedLikeItsDirectory) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown)";
  TempDir dir;
  // The data directory belongs to the server's account (65534 here): so does a new file.
  ASSERT_EQ(::chown(dir.file("").c_str(), 65534, 65534), 0);
  ASSERT_TRUE(replace_file_atomically(dir.file("aliases"), "smtpsd-aliases 1\n"));
  struct stat status {};
  ASSERT_EQ(::stat(dir.file("aliases").c_str(), &status), 0);
  EXPECT_EQ(status.st_uid, 65534u);
  EXPECT_EQ(status.st_gid, 65534u);
  EXPECT_EQ(status.st_mode & 07777, 0600u);
  // A root-owned directory with the server's group (/etc/smtpsd root:smtpsd): root, that
  // group, 0640.
  ASSERT_EQ(::chown(dir.file("").c_str(), 0, 65534), 0);
  ASSERT_TRUE(replace_file_atomically(dir.file("users2"), "smtpsd-users 1\n"));
  ASSERT_EQ(::stat(dir.file("users2").c_str(), &status), 0);
  EXPECT_EQ(status.st_uid, 0u);
  EXPECT_EQ(status.st_gid, 65534u);
  EXPECT_EQ(status.st_mode & 07777, 0640u);
}

TEST(UserStoreTest, SavedFileHasMode0600WhateverTheUmask) {
  TempDir dir;
  mode_t old_mask = ::umask(0);
  auto saved = two_users().save(dir.file("users"));
  ::umask(old_mask);
  ASSERT_TRUE(saved) << saved.error();
  struct stat status {};
  ASSERT_EQ(::stat(dir.file("users").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0600u);
  // Replacing keeps the mode (a group the server reads through), never a permission for
  // others (the file holds password hashes), and leaves no temp file behind.
  write_file(dir.file("users"), read_file(dir.file("users")));
  ::chmod(dir.file("users").c_str(), 0640);
  ASSERT_TRUE(two_users().save(dir.file("users")));
  ASSERT_EQ(::stat(dir.file("users").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0640u);
  ::chmod(dir.file("users").c_str(), 0644);
  ASSERT_TRUE(two_users().save(dir.file("users")));
  ASSERT_EQ(::stat(dir.file("users").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0640u);
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir.file("")))
    ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST(UserStoreTest, SaveIntoMissingDirectoryFails) {
  TempDir dir;
  auto saved = two_users().save(dir.file("missing/users"));
  ASSERT_FALSE(saved);
  EXPECT_NE(saved.error().find("missing/users"), std::string::npos);
}

TEST(UserStoreTest, CommentsBlankLinesAndBlankRunsAreAccepted) {
  UserStore store = two_users();
  std::string text = "# users\n\n   \n" + store.serialize() + "# trailing comment\n";
  // Tabs and runs of spaces between fields.
  std::string line = store.serialize().substr(store.serialize().find("bob@"));
  std::string spaced = line;
  for (std::size_t at = spaced.find(' '); at != std::string::npos; at = spaced.find(' ', at + 3)) {
    spaced.replace(at, 1, " \t ");
  }
  auto parsed = UserStore::parse(text, "users");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->size(), 2u);
  auto parsed_spaced = UserStore::parse("smtpsd-users 1\n" + spaced, "users");
  ASSERT_TRUE(parsed_spaced) << parsed_spaced.error();
  EXPECT_EQ(parsed_spaced->size(), 1u);
}

TEST(UserStoreTest, EmptyTextIsAnEmptyStore) {
  auto parsed = UserStore::parse("# nothing yet\n\n", "users");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->size(), 0u);
}

TEST(UserStoreTest, CorruptLinesAreRefusedWithFileAndLine) {
  UserStore store = two_users();
  std::string good = store.serialize();
  std::string alice = good.substr(good.find("alice@"));
  alice = alice.substr(0, alice.find('\n'));
  std::string hash = store.find("alice@example.org")->password_hash;
  std::string scram = alice.substr(alice.find(" scram-") + 1);
  scram = scram.substr(0, scram.find(' '));
  std::string head = "# header\nsmtpsd-users 1\n";  // the user line is line 3

  struct Case {
    std::string text;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"alice@example.org " + hash + " " + scram + " -\n", "users:1: expected \"smtpsd-users 1\""},
      {"smtpsd-users 2\n", "users:1: unsupported users file version"},
      {head + "alice@example.org " + hash + " " + scram + "\n", "users:3: expected 4 fields"},
      {head + "alice " + hash + " " + scram + " -\n", "users:3: address must be local-part@domain"},
      {head + "alice@example.org plaintext " + scram + " -\n", "users:3: password hash is not"},
      {head + "alice@example.org $argon2i$v=19$m=8,t=1,p=1$x$y " + scram + " -\n",
       "users:3: password hash is not an argon2id hash"},
      {head + "alice@example.org " + hash +
           " scram-sha-256:1000:" + scram.substr(scram.find(':', 14) + 1) + " -\n",
       "users:3: SCRAM keys: iteration count below 4096"},
      {head + "alice@example.org " + hash + " scram-sha-256:4096:!!!:a:b -\n",
       "users:3: SCRAM keys: salt is not base64"},
      {head + "alice@example.org " + hash + " scram-sha-256:4096:c2FsdA==:c2FsdA==:c2FsdA== -\n",
       "users:3: SCRAM keys: key is not 32 bytes"},
      {head + "alice@example.org " + hash + " " + scram + " bad-alias\n", "users:3: alias:"},
      {head + alice + "\n" + "ALICE@example.org " + hash + " " + scram + " -\n",
       "users:4: duplicate user"},
      {head + "alice@example.org " + hash + " " + scram + " -\r\n", "users:3: control character"},
  };
  for (const auto& c : cases) {
    auto parsed = UserStore::parse(c.text, "users");
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_NE(parsed.error().find(c.expected), std::string::npos)
        << "got: " << parsed.error() << "\nwanted: " << c.expected;
  }
}

TEST(UserStoreTest, LoadNamesTheFileInErrors) {
  TempDir dir;
  write_file(dir.file("users"), "smtpsd-users 1\ngarbage\n");
  auto loaded = UserStore::load(dir.file("users"));
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().rfind(dir.file("users") + ":2: ", 0), 0u) << loaded.error();
  auto missing = UserStore::load(dir.file("nope"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("nope"), std::string::npos);
}

TEST(UserStoreTest, FindIsCaseInsensitiveForLocalPartAndDomain) {
  UserStore store = two_users();
  ASSERT_NE(store.find("ALICE@EXAMPLE.ORG"), nullptr);
  EXPECT_EQ(store.find("ALICE@EXAMPLE.ORG")->address, "alice@example.org");
  EXPECT_NE(store.find("bob@example.net"), nullptr);
  EXPECT_EQ(store.find("alice@example.or"), nullptr);
  EXPECT_EQ(store.find(""), nullptr);
}

TEST(UserStoreTest, MaySendAsOwnAddressAndAliasesOnly) {
  UserStore store = two_users();
  EXPECT_TRUE(store.may_send_as("alice@example.org", "alice@example.org"));
  EXPECT_TRUE(store.may_send_as("alice@example.org", "Alice@EXAMPLE.org"));
  EXPECT_TRUE(store.may_send_as("ALICE@example.org", "postmaster@Example.Org"));
  EXPECT_TRUE(store.may_send_as("alice@example.org", "a.smith@example.org"));
  EXPECT_FALSE(store.may_send_as("alice@example.org", "bob@example.net"));
  EXPECT_FALSE(store.may_send_as("bob@example.net", "postmaster@example.org"));
  EXPECT_FALSE(store.may_send_as("carol@example.org", "carol@example.org"));
  EXPECT_FALSE(store.may_send_as("alice@example.org", ""));
}

TEST(UserStoreTest, AliasesAddAndRemove) {
  UserStore store = two_users();
  EXPECT_FALSE(store.add_alias("alice@example.org", "POSTMASTER@example.org"));  // duplicate
  EXPECT_FALSE(store.add_alias("alice@example.org", "alice@example.org"));       // own address
  EXPECT_FALSE(store.add_alias("carol@example.org", "x@example.org"));           // no user
  EXPECT_FALSE(store.add_alias("alice@example.org", "not an address"));
  EXPECT_TRUE(store.remove_alias("alice@example.org", "Postmaster@example.org"));
  EXPECT_FALSE(store.remove_alias("alice@example.org", "postmaster@example.org"));
  EXPECT_FALSE(store.may_send_as("alice@example.org", "postmaster@example.org"));
}

TEST(UserStoreTest, SetPasswordReplacesHashAndScramSalt) {
  UserStore store = two_users();
  User before = *store.find("alice@example.org");
  ASSERT_TRUE(store.set_password("Alice@example.org", "new password", test_argon2()));
  const User* after = store.find("alice@example.org");
  EXPECT_EQ(after->address, "alice@example.org");  // the existing spelling stays
  EXPECT_NE(after->password_hash, before.password_hash);
  EXPECT_NE(after->scram.salt, before.scram.salt);
  EXPECT_EQ(after->aliases, before.aliases);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_TRUE(verify_password(after, "new password"));
  EXPECT_FALSE(verify_password(after, "correct horse"));
}

TEST(UserStoreTest, SetPasswordRefusesBadInput) {
  UserStore store;
  EXPECT_FALSE(store.set_password("alice@example.org", "", test_argon2()));
  EXPECT_FALSE(store.set_password("alice@example.org", std::string("a\0b", 3), test_argon2()));
  EXPECT_FALSE(store.set_password("alice@example.org", std::string(1025, 'x'), test_argon2()));
  EXPECT_FALSE(store.set_password("alice example.org", "pw", test_argon2()));
  EXPECT_FALSE(store.set_password("a@b@c", "pw", test_argon2()));
  EXPECT_EQ(store.size(), 0u);
}

TEST(UserStoreTest, RemoveUser) {
  UserStore store = two_users();
  EXPECT_TRUE(store.remove("BOB@example.net"));
  EXPECT_FALSE(store.remove("bob@example.net"));
  EXPECT_EQ(store.size(), 1u);
}

TEST(UserStoreTest, ScramKeysMatchRfc7677) {
  // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
  auto salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  ASSERT_TRUE(salt);
  ScramCredentials scram = derive_scram_credentials("pencil", *salt, 4096);
  // ServerSignature in the RFC is HMAC(ServerKey, AuthMessage); check it here.
  std::string auth_message =
      "n=user,r=rOprNGfwEbeRWgbNEkqO,"
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  EXPECT_EQ(base64_encode(as_view(hmac_sha256(as_view(scram.server_key), auth_message))),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST(VerifyPasswordTest, TrueForRightFalseForWrongAndUnknown) {
  UserStore store = two_users();
  const User* alice = store.find("alice@example.org");
  EXPECT_TRUE(verify_password(alice, "correct horse"));
  EXPECT_FALSE(verify_password(alice, "correct horse "));
  EXPECT_FALSE(verify_password(alice, ""));
  EXPECT_FALSE(verify_password(nullptr, "correct horse"));
  EXPECT_FALSE(verify_password(nullptr, ""));
  User broken = *alice;
  broken.password_hash = "$argon2id$garbage";
  EXPECT_FALSE(verify_password(&broken, "correct horse"));
}

TEST(DefaultArgon2Test, IsAtLeastLibsodiumInteractive) {
  EXPECT_GE(default_argon2().opslimit, 2u);
  EXPECT_GE(default_argon2().memlimit, 64u * 1024 * 1024);
  EXPECT_LT(test_argon2().memlimit, default_argon2().memlimit);
}

// One offline guess against the SCRAM keys of the file must not be cheap next to one
// against the argon2id hash (README "Users and authentication": 100000 rounds,
// bench/password_cost_bench).
TEST(DefaultScramIterationsTest, IsRaisedWellAboveTheRfcMinimum) {
  EXPECT_GE(kDefaultScramIterations, 100000u);
  UserStore store;
  ASSERT_TRUE(store.set_password("alice@example.org", "pw", test_argon2()));
  EXPECT_EQ(store.find("alice@example.org")->scram.iterations, kDefaultScramIterations);
  EXPECT_FALSE(store.set_password("alice@example.org", "pw", test_argon2(), 4095));
}

TEST(UserDirectoryTest, StatusSaysWhetherTheFileInServiceIsTheFileOnDisk) {
  TempDir dir;
  std::string path = dir.file("users");
  ASSERT_TRUE(two_users().save(path));
  UserDirectory directory(path);
  UserDirectory::Status status = directory.status();
  EXPECT_TRUE(status.valid);
  EXPECT_EQ(status.users, 2u);
  EXPECT_GT(status.loaded_unix, 0);
  write_file(path, "smtpsd-users 1\nbroken\n");
  EXPECT_FALSE(directory.refresh());
  status = directory.status();
  EXPECT_FALSE(status.valid);
  EXPECT_EQ(status.users, 2u);  // the previous users still serve
  ASSERT_TRUE(two_users().save(path));
  EXPECT_TRUE(directory.refresh());
  EXPECT_TRUE(directory.status().valid);
}

// --- UserDirectory ----------------------------------------------------------------------

TEST(UserDirectoryTest, MissingFileIsAnEmptyStore) {
  TempDir dir;
  UserDirectory directory(dir.file("users"));
  EXPECT_EQ(directory.current()->size(), 0u);
  EXPECT_EQ(directory.last_error(), "");
}

TEST(UserDirectoryTest, ReloadsOnChangeAndKeepsOldSnapshotOnBrokenFile) {
  TempDir dir;
  std::string path = dir.file("users");
  UserStore one;
  ASSERT_TRUE(one.set_password("alice@example.org", "pw1", test_argon2()));
  ASSERT_TRUE(one.save(path));
  UserDirectory directory(path);
  auto first = directory.current();
  EXPECT_EQ(first->size(), 1u);

  UserStore two = one;
  ASSERT_TRUE(two.set_password("bob@example.org", "pw2", test_argon2()));
  ASSERT_TRUE(two.save(path));  // rename: a new inode
  EXPECT_TRUE(directory.refresh());
  auto second = directory.current();
  EXPECT_EQ(second->size(), 2u);
  EXPECT_EQ(first->size(), 1u);  // a snapshot never changes under its holder
  EXPECT_NE(second->find("BOB@example.org"), nullptr);

  write_file(path, "smtpsd-users 1\nthis is not a user\n");
  EXPECT_FALSE(directory.refresh());
  auto third = directory.current();
  EXPECT_EQ(third, second);
  EXPECT_NE(directory.last_error().find(path + ":2: "), std::string::npos)
      << directory.last_error();
  EXPECT_FALSE(directory.refresh());  // no reload while the broken file is unchanged
  EXPECT_EQ(directory.current(), second);

  ASSERT_TRUE(one.save(path));  // fixed
  EXPECT_TRUE(directory.refresh());
  EXPECT_EQ(directory.current()->size(), 1u);
  EXPECT_EQ(directory.last_error(), "");

  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_TRUE(directory.refresh());
  EXPECT_EQ(directory.current()->size(), 0u);
}

// The real file system, with a record of which threads stat or read the file.
class WatchedSource : public UsersFileSource {
 public:
  Signature signature(const std::string& path) override {
    note();
    return real_->signature(path);
  }
  base::Expected<std::string, std::string> read(const std::string& path) override {
    note();
    return real_->read(path);
  }
  std::vector<std::thread::id> callers() {
    std::lock_guard lock(mutex_);
    return callers_;
  }
  std::size_t calls() {
    std::lock_guard lock(mutex_);
    return callers_.size();
  }

 private:
  void note() {
    std::lock_guard lock(mutex_);
    callers_.push_back(std::this_thread::get_id());
  }
  std::unique_ptr<UsersFileSource> real_ = make_file_system_source();
  std::mutex mutex_;
  std::vector<std::thread::id> callers_;
};

TEST(UserDirectoryTest, CurrentNeverLooksAtTheFile) {
  TempDir dir;
  std::string path = dir.file("users");
  auto source = std::make_unique<WatchedSource>();
  WatchedSource* watched = source.get();
  UserDirectory directory(path, std::move(source));
  const std::size_t after_construction = watched->calls();
  UserStore one;
  ASSERT_TRUE(one.set_password("alice@example.org", "pw1", test_argon2()));
  ASSERT_TRUE(one.save(path));
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(directory.current()->size(), 0u);  // not looked at: no watcher, no refresh()
  EXPECT_EQ(watched->calls(), after_construction);
  EXPECT_TRUE(directory.refresh());
  EXPECT_EQ(directory.current()->size(), 1u);
}

// The watcher thread notices a new file and publishes it; the thread that plays the I/O
// thread only ever calls current(), and never stats or reads the file itself.
TEST(UserDirectoryTest, WatcherReloadsOffTheReadingThread) {
  TempDir dir;
  std::string path = dir.file("users");
  auto source = std::make_unique<WatchedSource>();
  WatchedSource* watched = source.get();
  UserDirectory directory(path, std::move(source));
  directory.start_watching(std::chrono::milliseconds(5));
  UserStore one;
  ASSERT_TRUE(one.set_password("alice@example.org", "pw1", test_argon2()));

  std::atomic<bool> seen{false};
  std::thread::id reader_id;
  std::thread reader([&] {
    reader_id = std::this_thread::get_id();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (directory.current()->find("alice@example.org") != nullptr) {
        seen = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  ASSERT_TRUE(one.save(path));
  reader.join();
  EXPECT_TRUE(seen);
  std::vector<std::thread::id> callers = watched->callers();
  EXPECT_GT(callers.size(), 1u);  // the construction, then the watcher's polls
  for (std::thread::id caller : callers)
    EXPECT_NE(caller, reader_id);
}

// Readers on several threads while the file is replaced again and again: each sees a whole
// snapshot (one of the versions written), never a torn one. ASan and TSan builds run this.
TEST(UserDirectoryTest, ConcurrentReadersDuringSwapsSeeWholeSnapshots) {
  TempDir dir;
  std::string path = dir.file("users");
  UserStore small, large;
  ASSERT_TRUE(small.set_password("alice@example.org", "pw1", test_argon2()));
  large = small;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(
        large.set_password("user" + std::to_string(i) + "@example.org", "pw", test_argon2()));
  }
  ASSERT_TRUE(small.save(path));
  UserDirectory directory(path);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::atomic<bool> torn{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&] {
      while (!stop) {
        std::shared_ptr<const UserStore> store = directory.current();
        const std::size_t size = store->size();
        if ((size != 1 && size != 21) || store->find("alice@example.org") == nullptr ||
            (size == 21) != (store->find("user19@example.org") != nullptr)) {
          torn = true;
        }
        ++reads;
      }
    });
  }
  // Replaced by rename as save() does, without its fsyncs (this is about the swap).
  const std::string texts[2] = {large.serialize(), small.serialize()};
  int swaps = 0;
  for (int i = 0; i < 60; ++i) {
    write_file(path + ".new", texts[i % 2]);
    fs::rename(path + ".new", path);
    if (directory.refresh()) ++swaps;
  }
  stop = true;
  for (std::thread& t : readers)
    t.join();
  EXPECT_FALSE(torn);
  EXPECT_EQ(swaps, 60);
  EXPECT_GT(reads.load(), 0u);
}

TEST(UserDirectoryTest, SwitchToAnotherFile) {
  TempDir dir;
  UserStore one;
  ASSERT_TRUE(one.set_password("alice@example.org", "pw1", test_argon2()));
  ASSERT_TRUE(one.save(dir.file("a")));
  write_file(dir.file("broken"), "not a users file\n");
  UserDirectory directory(dir.file("missing"));
  EXPECT_EQ(directory.current()->size(), 0u);
  EXPECT_FALSE(directory.switch_to(dir.file("broken")));
  EXPECT_EQ(directory.path(), dir.file("missing"));
  ASSERT_TRUE(directory.switch_to(dir.file("a")));
  EXPECT_EQ(directory.current()->size(), 1u);
  EXPECT_EQ(directory.path(), dir.file("a"));
  EXPECT_FALSE(directory.refresh());  // already looked at
}

// find() is a hash lookup under same_address(): any case, and consistent after removals.
TEST(UserStoreTest, FindIgnoresCaseAndSurvivesRemoval) {
  UserStore store = two_users();
  ASSERT_TRUE(store.set_password("carol@example.org", "pw", test_argon2()));
  EXPECT_EQ(store.find("ALICE@EXAMPLE.ORG")->address, "alice@example.org");
  EXPECT_TRUE(store.remove("Alice@example.org"));
  EXPECT_EQ(store.find("alice@example.org"), nullptr);
  ASSERT_NE(store.find("bob@example.net"), nullptr);
  EXPECT_EQ(store.find("bob@example.net")->address, "bob@Example.NET");
  EXPECT_EQ(store.find("CAROL@example.org")->address, "carol@example.org");
  UserStore copy = store;
  EXPECT_EQ(copy.find("carol@example.org"), copy.users()[1]);  // the copy indexes its own
}

}  // namespace
}  // namespace auth

namespace auth {
namespace {

TEST(ReceiveOnlyTest, MailboxWithoutPasswordRoundTripsAndNeverLogsIn) {
  UserStore store;
  ASSERT_TRUE(store.add_receive_only("carol@example.org"));
  EXPECT_FALSE(store.add_receive_only("CAROL@example.org"));  // exists
  EXPECT_FALSE(store.add_receive_only("not-an-address"));
  const std::string text = store.serialize();
  EXPECT_NE(text.find("carol@example.org - - -\n"), std::string::npos) << text;
  auto parsed = UserStore::parse(text, "users");
  ASSERT_TRUE(parsed) << parsed.error();
  const User* carol = parsed->find("carol@example.org");
  ASSERT_NE(carol, nullptr);
  EXPECT_FALSE(carol->can_log_in());
  EXPECT_EQ(parsed->find_login("carol@example.org"), nullptr);
  EXPECT_FALSE(verify_password(parsed->find_login("carol@example.org"), ""));
  // A password later turns it into a login.
  ASSERT_TRUE(parsed->set_password("carol@example.org", "pw", test_argon2(), 4096));
  EXPECT_NE(parsed->find_login("carol@example.org"), nullptr);
}

TEST(ReceiveOnlyTest, OneSecretWithoutTheOtherIsRefused) {
  UserStore store;
  ASSERT_TRUE(store.set_password("a@example.org", "pw", test_argon2(), 4096));
  const std::string hash = store.find("a@example.org")->password_hash;
  auto half = UserStore::parse("smtpsd-users 1\na@example.org " + hash + " - -\n", "users");
  ASSERT_FALSE(half);
  EXPECT_EQ(half.error(), "users:2: a receive-only mailbox has \"-\" in both secret fields");
  auto other = UserStore::parse("smtpsd-users 1\na@example.org - x -\n", "users");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().substr(0, 8), "users:2:");
}

}  // namespace
}  // namespace auth
