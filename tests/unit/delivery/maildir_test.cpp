// maildir_test.cpp — delivery::Maildir against real directories: the file lands in new/
// complete, a second call (a retry after a crash) never duplicates it, nothing escapes
// <mail_root>, and names follow the Maildir grammar with Dovecot's ",S=" size.
#include "delivery/maildir.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <regex>
#include <span>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "delivery/smtp_transport.h"

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
  void TearDown() override {
    spool_.reset();
    fs::remove_all(root_);
  }

  queue::Spool& spool() {
    if (!spool_) {
      auto opened = queue::Spool::open(root_ + "/spool");
      EXPECT_TRUE(opened) << opened.error().message;
      spool_ = std::move(*opened);
    }
    return *spool_;
  }

  // A message committed to a real spool; edit (if given) changes it before the commit.
  queue::StoredMessage message(std::vector<std::string> recipients, const std::string& content,
                               std::string reverse_path = "sender@example.com",
                               const std::function<void(queue::SpoolWriter&)>& edit = nullptr) {
    smtp::Envelope envelope;
    envelope.reverse_path = std::move(reverse_path);
    for (auto& address : recipients)
      envelope.recipients.push_back({address, "", ""});
    const std::string id = "0123456789ABCDEF" + std::to_string(next_++) + "xyz";
    auto writer = spool().begin_with_id(id, envelope, 1700000000);
    EXPECT_TRUE(writer) << writer.error().message;
    EXPECT_TRUE((*writer)->append(content));
    if (edit) edit(**writer);
    auto committed = (*writer)->commit();
    EXPECT_TRUE(committed) << committed.error().message;
    auto loaded = spool().load(id);
    EXPECT_TRUE(loaded) << loaded.error().message;
    return *loaded;
  }

  std::string root_;
  std::string mail_root_;
  std::unique_ptr<queue::Spool> spool_;
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
            "Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\n" + content);
  EXPECT_TRUE(entries(mailbox + "/tmp").empty());
  EXPECT_TRUE(entries(mailbox + "/cur").empty());
  for (const std::string& dir : {mailbox, mailbox + "/tmp", mailbox + "/new", mailbox + "/cur"}) {
    struct stat status {};
    ASSERT_EQ(::stat(dir.c_str(), &status), 0) << dir;
    EXPECT_EQ(status.st_mode & 0777, 0700u) << dir;
  }
}

// A folder chosen by a check (spooled with the message): Maildir++ .<folder>/ beside the
// INBOX's tmp/ new/ cur/, made as Dovecot and Courier make one (marker file included), in an
// existing mailbox or a new one; the INBOX stays empty.
TEST_F(MaildirTest, AMessageWithAFolderLandsInThatFolder) {
  Maildir maildir(mail_root_, "mx");
  const std::string content = "Subject: spam\r\n\r\nbuy\r\n";
  auto set_folder = [](const std::string& folder) {
    return [folder](queue::SpoolWriter& writer) { ASSERT_TRUE(writer.set_folder(folder)); };
  };
  auto junk = message({"alice@example.com", "bob@example.com"}, content, "s@example.com",
                      set_folder("Junk"));
  ASSERT_EQ(junk.folder, "Junk");
  ASSERT_TRUE(maildir.ensure_mailbox("bob@example.com"));  // one existing mailbox, one new
  for (const std::string local : {"alice", "bob"}) {
    SCOPED_TRACE(local);
    auto result = maildir.deliver(junk, local == "alice" ? 0 : 1);
    ASSERT_EQ(result.status, DeliveryStatus::kDelivered) << result.detail;
    const std::string mailbox = mail_root_ + "/example.com/" + local;
    const std::string folder = mailbox + "/.Junk";
    auto files = entries(folder + "/new");
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(
        read_file(folder + "/new/" + files[0]),
        "Return-Path: <s@example.com>\r\nDelivered-To: " + local + "@example.com\r\n" + content);
    EXPECT_TRUE(entries(folder + "/tmp").empty());
    EXPECT_TRUE(entries(folder + "/cur").empty());
    EXPECT_TRUE(entries(mailbox + "/new").empty());
    ASSERT_TRUE(fs::is_regular_file(folder + "/maildirfolder"));
    EXPECT_EQ(fs::file_size(folder + "/maildirfolder"), 0u);
    for (const std::string& dir : {folder, folder + "/tmp", folder + "/new", folder + "/cur"}) {
      struct stat status {};
      ASSERT_EQ(::stat(dir.c_str(), &status), 0) << dir;
      EXPECT_EQ(status.st_mode & 0777, 0700u) << dir;
    }
    // A retry finds it there: still one copy.
    auto again = maildir.deliver(junk, local == "alice" ? 0 : 1);
    EXPECT_NE(again.detail.find("already delivered"), std::string::npos) << again.detail;
    EXPECT_EQ(entries(folder + "/new").size(), 1u);
  }
  // A sub-folder is one directory, its levels joined by '.'; no folder is INBOX.
  auto list = message({"alice@example.com"}, content, "s@example.com", set_folder("Lists.smtpsd"));
  ASSERT_EQ(maildir.deliver(list, 0).status, DeliveryStatus::kDelivered);
  EXPECT_EQ(entries(mail_root_ + "/example.com/alice/.Lists.smtpsd/new").size(), 1u);
  auto inbox = message({"alice@example.com"}, content);
  ASSERT_EQ(maildir.deliver(inbox, 0).status, DeliveryStatus::kDelivered);
  EXPECT_EQ(entries(mail_root_ + "/example.com/alice/new").size(), 1u);
  EXPECT_EQ(entries(mail_root_ + "/example.com/alice/.Junk/new").size(), 1u);
  // A folder that would leave the mailbox (a StoredMessage not from load()) is refused.
  inbox.folder = "../../bob";
  EXPECT_EQ(maildir.deliver(inbox, 0).status, DeliveryStatus::kPermanent);
}

// Postfix's loop guard: a message that already carries Delivered-To: <this mailbox> (any
// case, folded, in angle brackets) came back; it fails permanently with 5.4.6 and nothing is
// written. Another mailbox's Delivered-To, or the field in the body, is no loop.
TEST_F(MaildirTest, AMessageThatAlreadyHasOurDeliveredToIsALoop) {
  Maildir maildir(mail_root_, "mx");
  for (const std::string header :
       {"Delivered-To: alice@example.com\r\n", "DELIVERED-TO:   <Alice@Example.COM> \r\n",
        "X-A: 1\r\nDelivered-To:\r\n alice@example.com\r\n"}) {
    auto stored = message({"alice@example.com"}, "Subject: x\r\n" + header + "\r\nbody\r\n");
    auto result = maildir.deliver(stored, 0);
    EXPECT_EQ(result.status, DeliveryStatus::kPermanent) << header;
    EXPECT_EQ(result.enhanced, "5.4.6");
    EXPECT_EQ(result.detail, "mail loop: the message already has Delivered-To: alice@example.com");
  }
  EXPECT_TRUE(entries(mail_root_ + "/example.com/alice/new").empty());
  auto other = message({"alice@example.com"},
                       "Delivered-To: bob@example.com\r\n\r\nDelivered-To: alice@example.com\r\n");
  EXPECT_EQ(maildir.deliver(other, 0).status, DeliveryStatus::kDelivered);
}

TEST_F(MaildirTest, NullSenderGetsAnEmptyReturnPath) {
  Maildir maildir(mail_root_, "mx");
  auto stored = message({"alice@example.com"}, "x\r\n", "");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(mail_root_ + "/example.com/alice/new/" + files[0]),
            "Return-Path: <>\r\nDelivered-To: alice@example.com\r\nx\r\n");
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

// A message at its first delivery (just accepted: StoredMessage::never_delivered) is not looked
// for in new/ first; should its file name be taken all the same (an id used twice), the file
// there stays as it was and the copy fails for now, alone or in a batch.
TEST_F(MaildirTest, AFirstDeliveryNeverReplacesAFileInNew) {
  Maildir maildir(mail_root_, "mx");
  auto stored = message({"alice@example.com"}, "the new message\r\n");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  const std::string mailbox = mail_root_ + "/example.com/alice";
  const std::string name = entries(mailbox + "/new").at(0);
  std::ofstream(mailbox + "/new/" + name, std::ios::trunc) << "an older message\r\n";
  stored.never_delivered = true;
  auto alone = maildir.deliver(stored, 0);
  EXPECT_EQ(alone.status, DeliveryStatus::kTransient) << alone.detail;
  EXPECT_NE(alone.detail.find("rename"), std::string::npos) << alone.detail;
  {
    MaildirBatch batch;
    ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);  // staged
    batch.complete();
    ASSERT_EQ(batch.copies().size(), 1u);
    EXPECT_NE(batch.copies()[0].error.find("rename"), std::string::npos);
  }
  EXPECT_EQ(read_file(mailbox + "/new/" + name), "an older message\r\n");
  EXPECT_EQ(entries(mailbox + "/new").size(), 1u);
  EXPECT_TRUE(entries(mailbox + "/tmp").empty());
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
  std::string name = Maildir::file_name(
      stored.received_unix, stored.id, 0, "mx",
      std::string("Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\n"
                  "complete\r\n")
          .size());
  std::ofstream(mailbox + "/tmp/" + name) << "half of a much longer message that was cut";
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  EXPECT_TRUE(entries(mailbox + "/tmp").empty());
  EXPECT_EQ(entries(mailbox + "/new"), std::vector<std::string>{name});
  EXPECT_EQ(read_file(mailbox + "/new/" + name),
            "Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\ncomplete\r\n");
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
  EXPECT_TRUE(delivered ==
              "Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\n" + content);
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
  EXPECT_EQ(entries(root_), std::vector<std::string>{"spool"});
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
  stored.file.reset();  // gone before anything opened it (load()'s descriptor keeps it)
  fs::remove(stored.path);
  auto result = maildir.deliver(stored, 0);
  EXPECT_EQ(result.status, DeliveryStatus::kTransient);
  EXPECT_NE(result.detail.find("No such file"), std::string::npos) << result.detail;
}

// --- what the spool says is the message is what lands (late header sections, new bodies) ----

// The content as the spool file's segments say, read with pread(2) on the path: what every
// deliverer must hand on, octet for octet.
std::string content_by_segments(const queue::StoredMessage& stored) {
  std::string content;
  std::ifstream in(stored.path, std::ios::binary);
  for (const queue::ContentSegment& segment : stored.segments) {
    std::string piece(static_cast<std::size_t>(segment.length), '\0');
    in.seekg(static_cast<std::streamoff>(segment.offset));
    in.read(piece.data(), static_cast<std::streamsize>(piece.size()));
    EXPECT_EQ(static_cast<std::uint64_t>(in.gcount()), segment.length);
    content += piece;
  }
  EXPECT_EQ(content.size(), stored.content_size);
  return content;
}

const std::string kReceived = "Received: from client.example by mx.example\r\n";

TEST_F(MaildirTest, PrependedFieldsAndAReplacedBodyAreWhatIsDelivered) {
  Maildir maildir(mail_root_, "mx");
  const std::string header = "From: a@example.org\r\nX-Spam: yes\r\nSubject: hi\r\n";
  const std::string added =
      "Authentication-Results: mx.example; dkim=pass header.d=example.org\r\n";
  // A header section edited by a milter (X-Spam deleted, a field added), new fields before
  // the Received header, and a new body.
  const std::string edited =
      added + kReceived + "From: a@example.org\r\nSubject: hi\r\nX-Milter: 1\r\n";
  const std::string new_body = "\r\nthe milter's body\r\n";
  auto stored = message({"alice@example.com"}, kReceived + header + "\r\nold body\r\n",
                        "sender@example.com", [&](queue::SpoolWriter& writer) {
                          const std::uint64_t header_size = kReceived.size() + header.size();
                          ASSERT_TRUE(writer.replace_header_section(header_size, edited));
                          ASSERT_TRUE(writer.truncate_content(header_size));
                          ASSERT_TRUE(writer.append(new_body));
                        });
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  const std::string delivered = read_file(mail_root_ + "/example.com/alice/new/" + files[0]);
  EXPECT_EQ(delivered, "Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\n" +
                           edited + new_body);
  EXPECT_EQ(delivered.substr(delivered.find("\r\n", delivered.find("\r\n") + 2) + 2),
            content_by_segments(stored));
  EXPECT_TRUE(files[0].ends_with(",S=" + std::to_string(delivered.size()))) << files[0];
}

// Delivery at acceptance: a message finished whole from its writer's buffer is read from
// memory (no file in the spool's tmp/), its pieces written in order like a file's.
TEST_F(MaildirTest, AMessageFinishedFromMemoryIsWhatIsDelivered) {
  Maildir maildir(mail_root_, "mx");
  const std::string header = "From: a@example.org\r\nSubject: hi\r\n";
  const std::string edited = kReceived + header + "X-Milter: 1\r\n";
  smtp::Envelope envelope;
  envelope.reverse_path = "sender@example.com";
  envelope.recipients.push_back({"alice@example.com", "", ""});
  auto writer = spool().begin_with_id("0123456789ABCDEFmem", envelope, 1700000000);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(kReceived + header + "\r\nbody\r\n"));
  ASSERT_TRUE((*writer)->replace_header_section(kReceived.size() + header.size(), edited));
  auto finished = (*writer)->finish();
  ASSERT_TRUE(finished) << finished.error().message;
  ASSERT_TRUE(finished->file);
  EXPECT_LT(finished->file->fd, 0);
  EXPECT_TRUE(entries(root_ + "/spool/tmp").empty());
  ASSERT_EQ(maildir.deliver(*finished, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  const std::string delivered = read_file(mail_root_ + "/example.com/alice/new/" + files[0]);
  EXPECT_EQ(delivered, "Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\n" +
                           edited + "\r\nbody\r\n");
  EXPECT_TRUE(files[0].ends_with(",S=" + std::to_string(delivered.size()))) << files[0];
  (*writer)->mark_delivered();
  EXPECT_TRUE(entries(root_ + "/spool/tmp").empty());
  EXPECT_TRUE(entries(root_ + "/spool/spare").empty());
}

// Pieces in memory past what one writev takes at a time (8 with the return path) are
// written in order all the same.
TEST_F(MaildirTest, AMessageInMemoryOfManyPiecesIsWrittenInOrder) {
  Maildir maildir(mail_root_, "mx");
  queue::StoredMessage stored;
  stored.id = "0123456789ABCDEFpieces";
  stored.envelope.reverse_path = "sender@example.com";
  stored.envelope.recipients.push_back({"alice@example.com", "", ""});
  const std::string file = "0123456789abcdefghijklmnopqrstuvwxyz\r\n";
  stored.file = std::make_shared<const queue::OpenSpoolFile>(file);
  stored.segments.clear();
  std::string expected;
  for (std::uint64_t offset = 20; offset > 0; offset -= 2) {  // 10 pieces, backwards
    stored.segments.push_back(queue::ContentSegment{offset, 2});
    expected += file.substr(offset, 2);
  }
  stored.content_size = expected.size();
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(mail_root_ + "/example.com/alice/new/" + files[0]),
            "Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\n" + expected);
}

TEST_F(MaildirTest, AVersion1SpoolFileStillDelivers) {
  // Queued by an smtpsd from before the late header sections; delivered after an upgrade.
  spool();
  spool_.reset();
  std::filesystem::remove_all(root_ + "/spool/log");  // an older smtpsd had no commit log
  const std::string id = "0123456789ABCDEF9old";
  const std::string content = kReceived + "Subject: old\r\n\r\nstill here\r\n";
  std::ofstream(root_ + "/spool/queue/" + id, std::ios::binary)
      << "smtpsd-spool 1\nid " << id
      << "\nreceived 1690000000\nhelo old.example\nesmtp 1\nfrom a@example.org\nbody 7bit\n"
         "smtputf8 0\nsize -\nret unspecified\nenvid -\nrecipients 1\n"
         "rcpt bob@example.com - -\n\n"
      << content;
  auto loaded = spool().load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  Maildir maildir(mail_root_, "mx");
  ASSERT_EQ(maildir.deliver(*loaded, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/bob/new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(mail_root_ + "/example.com/bob/new/" + files[0]),
            "Return-Path: <a@example.org>\r\nDelivered-To: bob@example.com\r\n" + content);
}

TEST_F(MaildirTest, ACorruptSpoolFileIsPermanent) {
  Maildir maildir(mail_root_, "mx");
  auto stored =
      message({"alice@example.com"}, "x\r\n", "sender@example.com", [](queue::SpoolWriter& writer) {
        ASSERT_TRUE(writer.replace_header_section(0, "X-A: 1\r\n"));
      });
  ASSERT_EQ(::truncate(stored.path.c_str(), 5), 0);  // shorter than its layout says
  auto result = maildir.deliver(stored, 0);
  EXPECT_EQ(result.status, DeliveryStatus::kPermanent) << result.detail;
  EXPECT_NE(result.detail.find("shorter"), std::string::npos) << result.detail;
}

// A one-connection LMTP server on a unix socket (RFC 2033) that records the message it
// receives, dot-stuffing undone (RFC 5321 §4.5.2).
class RecordingLmtpServer {
 public:
  explicit RecordingLmtpServer(std::string path) : path_(std::move(path)) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path_.c_str());
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 1) != 0) {
      ADD_FAILURE() << "cannot listen on " << path_ << ": " << std::strerror(errno);
      return;
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~RecordingLmtpServer() {
    if (thread_.joinable()) thread_.join();
    ::close(listener_);
  }
  // Waits for the session to end; the message as received.
  std::string message() {
    if (thread_.joinable()) thread_.join();
    return message_;
  }

 private:
  bool read_line(int fd, std::string& line) {
    for (;;) {
      std::size_t end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        line = buffer_.substr(0, end + 2);
        buffer_.erase(0, end + 2);
        return true;
      }
      char chunk[65536];
      ssize_t got = ::read(fd, chunk, sizeof chunk);
      if (got <= 0) return false;
      buffer_.append(chunk, static_cast<std::size_t>(got));
    }
  }
  static void say(int fd, std::string_view reply) {
    EXPECT_EQ(::write(fd, reply.data(), reply.size()), static_cast<ssize_t>(reply.size()));
  }
  void serve() {
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    say(fd, "220 fake LMTP\r\n");
    std::string line;
    int recipients = 0;
    while (read_line(fd, line)) {
      std::string verb = line.substr(0, 4);
      if (verb == "LHLO" || verb == "MAIL" || verb == "RSET") {
        say(fd, "250 ok\r\n");
      } else if (verb == "RCPT") {
        ++recipients;
        say(fd, "250 ok\r\n");
      } else if (verb == "DATA") {
        say(fd, "354 go on\r\n");
        while (read_line(fd, line) && line != ".\r\n")
          message_ += line.starts_with('.') ? line.substr(1) : line;
        for (int i = 0; i < recipients; ++i)
          say(fd, "250 delivered\r\n");
      } else if (verb == "QUIT") {
        say(fd, "221 bye\r\n");
        break;
      } else {
        say(fd, "500 what\r\n");
      }
    }
    ::close(fd);
  }

  std::string path_;
  int listener_ = -1;
  std::thread thread_;
  std::string buffer_;
  std::string message_;
};

TEST_F(MaildirTest, TheMaildirCopyAndARelayedCopyAreWhatTheSegmentsSay) {
  // A large body (several reads and copies), a line that needs dot-stuffing, fields
  // prepended and a replaced body: both deliverers must send the very same octets.
  std::string body = "\r\n";
  while (body.size() < 200 * 1024)
    body += "line " + std::to_string(body.size()) + "\r\n.starts with a dot\r\n";
  const std::string header = "Subject: relayed\r\n";
  auto stored = message({"alice@example.com"}, kReceived + header + "\r\nold\r\n",
                        "sender@example.com", [&](queue::SpoolWriter& writer) {
                          ASSERT_TRUE(writer.replace_header_section(0, "X-Prepended: 1\r\n"));
                          ASSERT_TRUE(writer.truncate_content(kReceived.size() + header.size()));
                          ASSERT_TRUE(writer.append(body));
                        });
  const std::string expected = content_by_segments(stored);
  ASSERT_EQ(expected, "X-Prepended: 1\r\n" + kReceived + header + body);

  Maildir maildir(mail_root_, "mx");
  ASSERT_EQ(maildir.deliver(stored, 0).status, DeliveryStatus::kDelivered);
  auto files = entries(mail_root_ + "/example.com/alice/new");
  ASSERT_EQ(files.size(), 1u);
  const std::string delivered = read_file(mail_root_ + "/example.com/alice/new/" + files[0]);
  EXPECT_TRUE(delivered ==
              "Return-Path: <sender@example.com>\r\nDelivered-To: alice@example.com\r\n" +
                  expected);

  RecordingLmtpServer server(root_ + "/lmtp.sock");
  TransportOptions options;
  options.client.protocol = smtp::ClientProtocol::kLmtp;
  options.client.helo_name = "test.example";
  options.starttls = false;
  options.command_timeout = std::chrono::seconds(10);
  auto connection = Connection::open(Endpoint{"localhost", root_ + "/lmtp.sock", 0, true}, options);
  ASSERT_TRUE(connection) << connection.error().detail;
  const std::size_t recipient = 0;
  auto sent = (*connection)->send(stored, std::span<const std::size_t>(&recipient, 1));
  ASSERT_TRUE(sent) << sent.error().detail;
  ASSERT_EQ(sent->size(), 1u);
  EXPECT_TRUE((*sent)[0].reply.positive());
  (*connection)->quit();
  EXPECT_TRUE(server.message() == expected);
}

// A batch (delivery at acceptance): copies wait in tmp/ until complete(), which puts each
// into new/; one that cannot get there is reported and left nowhere; a batch dropped before
// complete() leaves nothing behind.
TEST_F(MaildirTest, ABatchPutsItsCopiesIntoNewOnlyWhenCompleted) {
  Maildir maildir(mail_root_, "mx.example.com");
  auto first = message({"alice@example.com", "bob@example.com"}, "Subject: 1\r\n\r\none\r\n");
  auto second = message({"alice@example.com"}, "Subject: 2\r\n\r\ntwo\r\n");
  ASSERT_TRUE(maildir.ensure_mailbox("bob@example.com"));
  const std::string alice = mail_root_ + "/example.com/alice";
  const std::string bob = mail_root_ + "/example.com/bob";
  {
    MaildirBatch batch;
    EXPECT_EQ(MaildirBatch::current(), &batch);
    for (auto [stored, index] : {std::pair{&first, 0}, {&first, 1}, {&second, 0}}) {
      auto result = maildir.deliver(*stored, static_cast<std::size_t>(index));
      EXPECT_EQ(result.status, DeliveryStatus::kDelivered) << result.detail;
    }
    EXPECT_TRUE(entries(alice + "/new").empty());  // staged, not delivered yet
    EXPECT_EQ(entries(alice + "/tmp").size(), 2u);
    ASSERT_EQ(batch.copies().size(), 3u);
    // bob's new/ goes away: his copy cannot be renamed there.
    fs::remove_all(bob + "/new");
    batch.complete();
    EXPECT_EQ(MaildirBatch::current(), nullptr);
    EXPECT_TRUE(batch.copies()[0].error.empty()) << batch.copies()[0].error;
    EXPECT_EQ(batch.copies()[0].message_id, first.id);
    EXPECT_NE(batch.copies()[1].error.find("rename"), std::string::npos);
    EXPECT_EQ(batch.copies()[1].recipient_index, 1u);
    EXPECT_TRUE(batch.copies()[2].error.empty());
    EXPECT_EQ(batch.copies()[2].path.substr(0, alice.size() + 5), alice + "/new/");
  }
  auto delivered = entries(alice + "/new");
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_NE(read_file(alice + "/new/" + delivered[0]).find("one\r\n"), std::string::npos);
  EXPECT_TRUE(entries(alice + "/tmp").empty());
  EXPECT_TRUE(entries(bob + "/tmp").empty());
  // Dropped before complete(): the staged copy is removed, nothing reaches new/.
  auto third = message({"alice@example.com"}, "Subject: 3\r\n\r\nthree\r\n");
  {
    MaildirBatch batch;
    EXPECT_EQ(maildir.deliver(third, 0).status, DeliveryStatus::kDelivered);
    EXPECT_EQ(entries(alice + "/tmp").size(), 1u);
  }
  EXPECT_TRUE(entries(alice + "/tmp").empty());
  EXPECT_EQ(entries(alice + "/new").size(), 2u);
  EXPECT_EQ(MaildirBatch::current(), nullptr);
  // Without a batch, delivery is durable at once again.
  EXPECT_EQ(maildir.deliver(third, 0).status, DeliveryStatus::kDelivered);
  EXPECT_EQ(entries(alice + "/new").size(), 3u);
}

// Several copies on one file system are made durable by one syncfs while the system holds
// less unwritten data than the batch's limit, else by an fsync each; one copy alone always by
// its fsync. Either way every copy ends in new/ whole.
TEST_F(MaildirTest, ABatchOfSeveralCopiesIsSyncedTogetherWhileLittleDataIsUnwritten) {
  Maildir maildir(mail_root_, "mx.example.com");
  const std::string alice = mail_root_ + "/example.com/alice";
  std::size_t expected = 0;
  for (const std::uint64_t limit : {std::numeric_limits<std::uint64_t>::max(), std::uint64_t{0}}) {
    auto two = message({"alice@example.com", "bob@example.com"}, "Subject: 2\r\n\r\ntwo\r\n");
    auto one = message({"alice@example.com"}, "Subject: 1\r\n\r\none\r\n");
    {
      MaildirBatch batch(limit);
      for (std::size_t index : {0u, 1u})
        EXPECT_EQ(maildir.deliver(two, index).status, DeliveryStatus::kDelivered);
      batch.complete();
      EXPECT_EQ(batch.synced_together(), limit != 0) << limit;
      for (const MaildirBatch::Copy& copy : batch.copies())
        EXPECT_TRUE(copy.error.empty()) << copy.error;
    }
    {
      MaildirBatch batch(limit);
      EXPECT_EQ(maildir.deliver(one, 0).status, DeliveryStatus::kDelivered);
      batch.complete();
      EXPECT_FALSE(batch.synced_together());
    }
    expected += 2;
    ASSERT_EQ(entries(alice + "/new").size(), expected);
    EXPECT_TRUE(entries(alice + "/tmp").empty());
  }
  for (const std::string& name : entries(mail_root_ + "/example.com/bob/new"))
    EXPECT_NE(read_file(mail_root_ + "/example.com/bob/new/" + name).find("two\r\n"),
              std::string::npos);
}

// One syncfs only covers the file system it is called on: when the copies of a batch go to
// mailboxes on two file systems (here bob's is a link to a directory in /dev/shm), each gets
// its own fsync, and each still ends in its new/.
TEST_F(MaildirTest, ABatchWhoseMailboxesAreOnTwoFileSystemsIsSyncedFileByFile) {
  struct stat here {};
  struct stat there {};
  ASSERT_EQ(::stat(root_.c_str(), &here), 0);
  if (::stat("/dev/shm", &there) != 0 || there.st_dev == here.st_dev)
    GTEST_SKIP() << "no /dev/shm on a file system of its own";
  char elsewhere[] = "/dev/shm/smtpsd-maildir-XXXXXX";
  if (::mkdtemp(elsewhere) == nullptr) GTEST_SKIP() << "/dev/shm: " << std::strerror(errno);
  struct Removed {
    std::string path;
    ~Removed() { fs::remove_all(path); }
  } removed{elsewhere};
  fs::create_directories(mail_root_ + "/example.com");
  fs::create_directory_symlink(elsewhere, mail_root_ + "/example.com/bob");
  Maildir maildir(mail_root_, "mx.example.com");
  auto two = message({"alice@example.com", "bob@example.com"}, "Subject: 2\r\n\r\ntwo\r\n");
  {
    MaildirBatch batch(std::numeric_limits<std::uint64_t>::max());
    for (std::size_t index : {0u, 1u})
      EXPECT_EQ(maildir.deliver(two, index).status, DeliveryStatus::kDelivered);
    batch.complete();
    EXPECT_FALSE(batch.synced_together());
    for (const MaildirBatch::Copy& copy : batch.copies())
      EXPECT_TRUE(copy.error.empty()) << copy.error;
  }
  EXPECT_EQ(entries(mail_root_ + "/example.com/alice/new").size(), 1u);
  EXPECT_EQ(entries(std::string(elsewhere) + "/new").size(), 1u);
}

// A batch holds at most kMaxCopies copies open (3 descriptors each); past it, a copy is
// delivered on its own, durably, at once.
TEST_F(MaildirTest, ABatchStagesAtMostItsBoundAndDeliversTheRestAtOnce) {
  Maildir maildir(mail_root_, "mx.example.com");
  auto stored = message(std::vector<std::string>(MaildirBatch::kMaxCopies + 1, "alice@example.com"),
                        "Subject: many\r\n\r\nx\r\n");
  const std::string alice = mail_root_ + "/example.com/alice";
  MaildirBatch batch;
  for (std::size_t i = 0; i <= MaildirBatch::kMaxCopies; ++i)
    EXPECT_EQ(maildir.deliver(stored, i).status, DeliveryStatus::kDelivered);
  EXPECT_EQ(batch.copies().size(), MaildirBatch::kMaxCopies);
  EXPECT_EQ(entries(alice + "/tmp").size(), MaildirBatch::kMaxCopies);
  EXPECT_EQ(entries(alice + "/new").size(), 1u);
  batch.complete();
  EXPECT_EQ(entries(alice + "/new").size(), MaildirBatch::kMaxCopies + 1);
  EXPECT_TRUE(entries(alice + "/tmp").empty());
}

}  // namespace
}  // namespace delivery
