// maildir_test.cpp — delivery::Maildir against real directories: the file lands in new/
// complete, a second call (a retry after a crash) never duplicates it, nothing escapes
// <mail_root>, and names follow the Maildir grammar with Dovecot's ",S=" size.
#include "delivery/maildir.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

namespace delivery {
namespace {

namespace fs = std::filesystem;
using queue::DeliveryStatus;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> entries(const std::string& path) {
  std::vector<std::string> names;
  if (!fs::exists(path)) return names;
  for (const auto& entry : fs::directory_iterator(path)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class MaildirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/smtpsd-maildir-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    mail_root_ = root_ + "/data/mail";
  }
  void TearDown() override { fs::remove_all(root_); }

  // A spool-like file: a header, then content from content_offset.
  queue::StoredMessage message(std::vector<std::string> recipients, const std::string& content,
                               std::string reverse_path = "sender@example.com") {
    queue::StoredMessage stored;
    stored.id = "0123456789ABCDEF" + std::to_string(next_++) + "xyz";
    stored.path = root_ + "/" + stored.id;
    stored.received_unix = 1700000000;
    stored.envelope.reverse_path = std::move(reverse_path);
    for (auto& address : recipients)
      stored.envelope.recipients.push_back({address, "", ""});
    const std::string header = "smtpsd-spool 1\nanything\n\n";
    std::ofstream out(stored.path, std::ios::binary);
    out << header << content;
    stored.content_offset = header.size();
    return stored;
  }

  std::string root_;
  std::string mail_root_;
  int next_ = 0;
};

TEST_F(MaildirTest, DeliversIntoNewWithTheContentAfterReturnPath) {
  Maildir maildir(mail_root_, "mx.example.com");
  const std::string content = "Received: from x\r\nSubject: hi\r\n\r\nbody\r\n";
  auto stored = message({"alice@example.com"}, content);
  auto result = maildir.deliver(stored, 0);
  ASSERT_EQ(result.status, DeliveryStatus::kDelivered) << result.detail;
  EXPECT_EQ(result.transport, "maildir");

  const std::string mailbox = mail_root_ + "/example.com/alice";
  auto files = entries(mailbox + "/new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(mailbox + "/new/" + files[0]),
            "Return-Path: <sender@example.com>\r\n" + content);
  EXPECT_TRUE(entries(mailbox + "/tmp").empty());
  EXPECT_TRUE(entries(mailbox + "/cur").empty());
  for (const std::string& dir : {mailbox, mailbox + "/tmp", mailbox + "/new", mailbox + "/cur"}) {
    struct stat status {};
    ASSERT_EQ(::stat(dir.c_str(), &status), 0) << dir;
    EXPECT_EQ(status.st_mode & 0777, 0700u) << dir;
  }
}

TEST_F(MaildirTest, NullSenderGetsAnEmptyReturnPath) {
  Maildir maildir(mail_root_, "mx");
  auto stored = message({"alice@example.com"}, "x\r\n", "");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(mail_root_ + "/example.com/alice/new/" + files[0]),
            "Return-Path: <>\r\nx\r\n");
}

TEST_F(MaildirTest, FileNameFollowsTheMaildirGrammarWithDovecotSize) {
  Maildir maildir(mail_root_, "mx/1:a,b.example");
  auto stored = message({"alice@example.com"}, "hello\r\n");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  const std::string& name = files[0];
  EXPECT_EQ(name.find('/'), std::string::npos);
  EXPECT_EQ(name.find(':'), std::string::npos);
  EXPECT_TRUE(std::regex_match(name, std::regex(R"(\d+\.Q[0-9A-Za-z]+R\d+\.[^/:,]+,S=\d+)")))
      << name;
  EXPECT_EQ(name, "1700000000.Q" + stored.id + "R0.mx\\0571\\072a\\054b.example,S=" +
                      std::to_string(fs::file_size(mail_root_ + "/example.com/alice/new/" + name)));
}

TEST_F(MaildirTest, DeliveringTwiceDoesNotDuplicate) {
  Maildir maildir(mail_root_, "mx");
  auto stored = message({"alice@example.com", "bob@example.com"}, "once\r\n");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto again = maildir.deliver(stored, 0);
  ASSERT_EQ(again.status, DeliveryStatus::kDelivered) << again.detail;
  EXPECT_NE(again.detail.find("already delivered"), std::string::npos) << again.detail;
  EXPECT_EQ(entries(mail_root_ + "/example.com/alice/new").size(), 1u);
  // Another recipient index of the same message is another delivery.
  ASSERT_EQ(maildir.deliver(stored, 1).status, DeliveryStatus::kDelivered);
  EXPECT_EQ(entries(mail_root_ + "/example.com/bob/new").size(), 1u);
}

TEST_F(MaildirTest, ARecoveredMessageAlreadyMovedToCurCountsAsDelivered) {
  Maildir maildir(mail_root_, "mx");
  auto stored = message({"alice@example.com"}, "read me\r\n");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  const std::string mailbox = mail_root_ + "/example.com/alice";
  std::string name = entries(mailbox + "/new").at(0);
  fs::rename(mailbox + "/new/" + name, mailbox + "/cur/" + name + ":2,S");  // the reader saw it
  stored.recovered = true;  // found in the spool after a crash: cur/ must be searched
  auto again = maildir.deliver(stored, 0);
  EXPECT_EQ(again.status, DeliveryStatus::kDelivered) << again.detail;
  EXPECT_TRUE(entries(mailbox + "/new").empty());
  EXPECT_EQ(entries(mailbox + "/cur").size(), 1u);
}

TEST_F(MaildirTest, ALeftoverTmpFileFromACrashIsReplaced) {
  Maildir maildir(mail_root_, "mx");
  auto stored = message({"alice@example.com"}, "complete\r\n");
  ASSERT_TRUE(maildir.ensure_mailbox("alice@example.com"));
  const std::string mailbox = mail_root_ + "/example.com/alice";
  std::string name = Maildir::file_name(stored.received_unix, stored.id, 0, "mx",
                                        std::string("Return-Path: <sender@example.com>\r\n"
                                                    "complete\r\n")
                                            .size());
  std::ofstream(mailbox + "/tmp/" + name) << "half of a much longer message that was cut";
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  EXPECT_TRUE(entries(mailbox + "/tmp").empty());
  EXPECT_EQ(entries(mailbox + "/new"), std::vector<std::string>{name});
  EXPECT_EQ(read_file(mailbox + "/new/" + name),
            "Return-Path: <sender@example.com>\r\ncomplete\r\n");
}

TEST_F(MaildirTest, BigContentIsCopiedByteForByte) {
  Maildir maildir(mail_root_, "mx");
  std::string content(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < content.size(); ++i)
    content[i] = static_cast<char>(i * 7 + i / 251);
  auto stored = message({"alice@example.com"}, content);
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  std::string delivered = read_file(mail_root_ + "/example.com/alice/new/" + files[0]);
  EXPECT_TRUE(delivered == "Return-Path: <sender@example.com>\r\n" + content);
}

TEST_F(MaildirTest, UnsafeLocalPartsAndDomainsAreRefused) {
  Maildir maildir(mail_root_, "mx");
  const std::vector<std::string> unsafe = {
      "../escape@example.com",
      "a/b@example.com",
      ".@example.com",
      "..@example.com",
      "@example.com",
      ".hidden@example.com",
      "\"../x\"@example.com",
      "\"a/b\"@example.com",
      "\"\"@example.com",
      "\".\"@example.com",
      std::string("nul\0x@example.com", 17),
      "tab\t@example.com",
      "alice@..",
      "alice@",
      "alice@../etc",
      "alice@a/b",
      "noatsign",
      "\"x\\\"@example.com",  // a quoted-pair backslash at the very end
  };
  for (const std::string& address : unsafe) {
    auto stored = message({address}, "x\r\n");
    auto result = maildir.deliver(stored, 0);
    EXPECT_EQ(result.status, DeliveryStatus::kPermanent) << address;
    EXPECT_EQ(Maildir::mailbox_path(mail_root_, address), "") << address;
  }
  // Nothing was created anywhere: not even mail_root.
  EXPECT_FALSE(fs::exists(mail_root_));
  EXPECT_EQ(entries(root_).size(), unsafe.size());  // only the spool-like files
}

TEST_F(MaildirTest, QuotedLocalPartsLoseTheirQuotesWhenSafe) {
  Maildir maildir(mail_root_, "mx");
  EXPECT_EQ(Maildir::mailbox_path(mail_root_, "\"john smith\"@example.com"),
            mail_root_ + "/example.com/john smith");
  EXPECT_EQ(Maildir::mailbox_path(mail_root_, "\"a\\\"b\"@example.com"),
            mail_root_ + "/example.com/a\"b");
  auto stored = message({"\"john smith\"@example.com"}, "x\r\n");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  EXPECT_EQ(entries(mail_root_ + "/example.com/john smith/new").size(), 1u);
}

TEST_F(MaildirTest, DomainIsLowerCasedAndLocalPartKept) {
  Maildir maildir(mail_root_, "mx");
  EXPECT_EQ(Maildir::mailbox_path(mail_root_, "Alice@EXAMPLE.Com"),
            mail_root_ + "/example.com/Alice");
  auto stored = message({"Alice@EXAMPLE.Com", "用户@例子.测试"}, "x\r\n");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  ASSERT_EQ(maildir.deliver(stored, 1).status, DeliveryStatus::kDelivered);
  EXPECT_EQ(entries(mail_root_), (std::vector<std::string>{"example.com", "例子.测试"}));
  EXPECT_EQ(entries(mail_root_ + "/example.com/Alice/new").size(), 1u);
  EXPECT_EQ(entries(mail_root_ + "/例子.测试/用户/new").size(), 1u);
}

TEST_F(MaildirTest, EnsureMailboxCreatesTmpNewCur) {
  Maildir maildir(mail_root_, "mx");
  ASSERT_TRUE(maildir.ensure_mailbox("demo@localhost"));
  ASSERT_TRUE(maildir.ensure_mailbox("demo@localhost"));  // idempotent
  const std::string mailbox = Maildir::mailbox_path(mail_root_, "demo@localhost");
  EXPECT_EQ(entries(mailbox), (std::vector<std::string>{"cur", "new", "tmp"}));
  auto refused = maildir.ensure_mailbox("../x@localhost");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("cannot name a mailbox"), std::string::npos);
}

TEST_F(MaildirTest, ADiskErrorIsTransientAndLeavesNoTmpFile) {
  Maildir maildir(mail_root_, "mx");
  ASSERT_TRUE(maildir.ensure_mailbox("alice@example.com"));
  auto stored = message({"alice@example.com"}, std::string(300 * 1024, 'x'));
  // A child whose files may not grow past 100 KiB: write(2) fails with EFBIG, as on a full
  // disk (chmod cannot stand in: the tests run as root).
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{100 * 1024, 100 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(100);
    auto result = maildir.deliver(stored, 0);
    if (result.status != DeliveryStatus::kTransient) ::_exit(1);
    if (result.detail.find("File too large") == std::string::npos) ::_exit(2);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const std::string mailbox = mail_root_ + "/example.com/alice";
  EXPECT_TRUE(entries(mailbox + "/tmp").empty());
  EXPECT_TRUE(entries(mailbox + "/new").empty());
}

TEST_F(MaildirTest, AMailRootThatIsAFileGivesATransientError) {
  fs::create_directories(root_ + "/data");
  std::ofstream(mail_root_) << "not a directory";
  Maildir maildir(mail_root_, "mx");
  auto result = maildir.deliver(message({"alice@example.com"}, "x\r\n"), 0);
  EXPECT_EQ(result.status, DeliveryStatus::kTransient);
  EXPECT_NE(result.detail.find("Not a directory"), std::string::npos) << result.detail;
}

TEST_F(MaildirTest, AMissingSpoolFileIsTransient) {
  Maildir maildir(mail_root_, "mx");
  auto stored = message({"alice@example.com"}, "x\r\n");
  fs::remove(stored.path);
  auto result = maildir.deliver(stored, 0);
  EXPECT_EQ(result.status, DeliveryStatus::kTransient);
  EXPECT_NE(result.detail.find("No such file"), std::string::npos) << result.detail;
}

}  // namespace
}  // namespace delivery
