// spool_test.cpp — queue::Spool against real files in a temp dir: the envelope format
// round-trips every field, content round-trips byte for byte, failures remove the file
// (RFC 5321 §4.5.4 / §6.1: nothing acknowledged may be lost, nothing half-written kept).
#include "queue/spool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace queue {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path, std::uint64_t offset = 0) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::size_t count_entries(const std::string& path) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(path))
    ++count;
  return count;
}

smtp::Envelope full_envelope() {
  smtp::Envelope envelope;
  envelope.helo = "client.example [with spaces] % and -";
  envelope.esmtp = true;
  envelope.reverse_path = "\"john q. public\"@example.com";
  envelope.recipients = {
      {"\"two  spaces\"@Example.ORG", "SUCCESS,FAILURE", "rfc822;\"two  spaces\"@example.org"},
      {"用户@例子.测试", "NEVER", ""},
      {"-@x.example", "", "utf-8;用户@例子.测试"},
      {"tab\there%20@x.example", "DELAY", "-"},
  };
  envelope.body = smtp::BodyType::k8BitMime;
  envelope.smtputf8 = true;
  envelope.declared_size = 123456789;
  envelope.dsn_return = smtp::DsnReturn::kHeaders;
  envelope.envelope_id = "QQ314159 with space\nnewline";
  return envelope;
}

void expect_same(const smtp::Envelope& a, const smtp::Envelope& b) {
  EXPECT_EQ(a.helo, b.helo);
  EXPECT_EQ(a.esmtp, b.esmtp);
  EXPECT_EQ(a.reverse_path, b.reverse_path);
  ASSERT_EQ(a.recipients.size(), b.recipients.size());
  for (std::size_t i = 0; i < a.recipients.size(); ++i) {
    EXPECT_EQ(a.recipients[i].address, b.recipients[i].address) << i;
    EXPECT_EQ(a.recipients[i].notify, b.recipients[i].notify) << i;
    EXPECT_EQ(a.recipients[i].original_recipient, b.recipients[i].original_recipient) << i;
  }
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.smtputf8, b.smtputf8);
  EXPECT_EQ(a.declared_size, b.declared_size);
  EXPECT_EQ(a.dsn_return, b.dsn_return);
  EXPECT_EQ(a.envelope_id, b.envelope_id);
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/smtpsd-spool-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    dir_ = root_ + "/spool";
    auto spool = Spool::open(dir_);
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(*spool);
  }
  void TearDown() override {
    spool_.reset();
    fs::remove_all(root_);
  }

  std::string commit_message(const smtp::Envelope& envelope, const std::string& content) {
    auto writer = spool_->begin(envelope, 1700000000);
    EXPECT_TRUE(writer) << writer.error().message;
    EXPECT_TRUE((*writer)->append(content));
    auto committed = (*writer)->commit();
    EXPECT_TRUE(committed) << committed.error().message;
    return (*writer)->id();
  }

  std::string root_;
  std::string dir_;
  std::unique_ptr<Spool> spool_;
};

TEST_F(SpoolTest, OpenCreatesTmpAndQueue) {
  EXPECT_TRUE(fs::is_directory(dir_ + "/tmp"));
  EXPECT_TRUE(fs::is_directory(dir_ + "/queue"));
  EXPECT_TRUE(spool_->list().empty());
}

TEST_F(SpoolTest, EnvelopeRoundTripsEveryField) {
  smtp::Envelope envelope = full_envelope();
  const std::string content = "Received: from x\r\nSubject: hi\r\n\r\nbody\r\n";
  std::string id = commit_message(envelope, content);

  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->id, id);
  EXPECT_EQ(loaded->path, dir_ + "/queue/" + id);
  EXPECT_EQ(loaded->received_unix, 1700000000);
  expect_same(loaded->envelope, envelope);
  EXPECT_EQ(read_file(loaded->path, loaded->content_offset), content);
}

TEST_F(SpoolTest, ALargeEnvelopeRoundTripsAndATooLargeOneIsRefusedUpFront) {
  // 1,000 recipients (the configuration's maximum) with 500-octet ORCPTs of '%' (stored
  // escaped, three octets each) still load; ten times that is refused by begin(), never
  // written and then found unreadable.
  smtp::Envelope envelope;
  envelope.reverse_path = "sender@example.org";
  for (int i = 0; i < 1000; ++i) {
    envelope.recipients.push_back(smtp::Recipient{"user" + std::to_string(i) + "@example.com",
                                                  "SUCCESS,FAILURE",
                                                  "rfc822;" + std::string(492, '%')});
  }
  std::string id = commit_message(envelope, "body\r\n");
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->envelope.recipients.size(), 1000u);
  EXPECT_EQ(loaded->envelope.recipients[999].original_recipient, "rfc822;" + std::string(492, '%'));

  for (int i = 0; i < 9000; ++i)
    envelope.recipients.push_back(envelope.recipients.front());
  auto refused = spool_->begin(envelope, 1700000000);
  ASSERT_FALSE(refused);
  EXPECT_FALSE(refused.error().transient);
  EXPECT_NE(refused.error().message.find("envelope too large"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir_ + "/tmp"));
}

TEST_F(SpoolTest, NullSenderAndDefaultsRoundTrip) {
  smtp::Envelope envelope;
  envelope.helo = "-";
  envelope.reverse_path = "";  // the null reverse-path <>
  envelope.recipients = {{"postmaster@example.com", "", ""}};
  envelope.envelope_id = "";
  std::string id = commit_message(envelope, "");

  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  expect_same(loaded->envelope, envelope);
  EXPECT_FALSE(loaded->envelope.declared_size.has_value());
  EXPECT_EQ(loaded->content_offset, fs::file_size(loaded->path));
}

TEST_F(SpoolTest, HeaderIsOneLinePerFieldWithVersionFirst) {
  std::string id = commit_message(full_envelope(), "x");
  std::string file = read_file(dir_ + "/queue/" + id);
  EXPECT_EQ(file.rfind("smtpsd-spool 1\nid " + id + "\n", 0), 0u) << file;
  std::string header = file.substr(0, file.find("\n\n"));
  // Nothing unsafe survives unescaped: no tab, no raw UTF-8, no newline inside a field.
  for (char c : header) {
    auto byte = static_cast<unsigned char>(c);
    EXPECT_TRUE(c == '\n' || (byte >= 0x20 && byte < 0x7F)) << int(byte);
  }
}

TEST_F(SpoolTest, BigContentRoundTripsByteForByte) {
  smtp::Envelope envelope = full_envelope();
  auto writer = spool_->begin(envelope, 1);
  ASSERT_TRUE(writer);
  std::string expected;
  expected.reserve(5 * 1024 * 1024);
  std::string piece(1000, '\0');
  std::uint32_t state = 12345;
  while (expected.size() < 5 * 1024 * 1024) {
    for (char& c : piece) {
      state = state * 1103515245u + 12345u;
      c = static_cast<char>(state >> 24);  // every byte value, NUL and CR LF included
    }
    ASSERT_TRUE((*writer)->append(piece));
    expected += piece;
  }
  ASSERT_TRUE((*writer)->append(std::string(200 * 1024, 'L')));  // one piece over the buffer
  expected += std::string(200 * 1024, 'L');
  ASSERT_TRUE((*writer)->commit());
  auto loaded = spool_->load((*writer)->id());
  ASSERT_TRUE(loaded) << loaded.error().message;
  std::string content = read_file(loaded->path, loaded->content_offset);
  ASSERT_EQ(content.size(), expected.size());
  EXPECT_TRUE(content == expected);
}

TEST_F(SpoolTest, AbortRemovesTmp) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(std::string(100 * 1024, 'x')));
  EXPECT_TRUE(fs::exists(dir_ + "/tmp/" + (*writer)->id()));
  (*writer)->abort();
  EXPECT_EQ(count_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ(count_entries(dir_ + "/queue"), 0u);
  EXPECT_FALSE((*writer)->commit());
}

TEST_F(SpoolTest, DestructorWithoutCommitRemovesTmp) {
  {
    auto writer = spool_->begin(full_envelope(), 1);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append("data"));
  }
  EXPECT_EQ(count_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ(count_entries(dir_ + "/queue"), 0u);
}

TEST_F(SpoolTest, CommitMovesIntoQueueAndAppendAfterCommitFails) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->commit());
  EXPECT_EQ(count_entries(dir_ + "/tmp"), 0u);
  EXPECT_TRUE(fs::exists(dir_ + "/queue/" + (*writer)->id()));
  EXPECT_FALSE((*writer)->append("late"));
  (*writer)->abort();  // a no-op once committed
  EXPECT_TRUE(fs::exists(dir_ + "/queue/" + (*writer)->id()));
}

TEST_F(SpoolTest, OpenClearsTmpLeftoversButKeepsQueue) {
  std::string id = commit_message(full_envelope(), "kept");
  spool_.reset();
  // What a crash in the middle of DATA leaves behind.
  write_file(dir_ + "/tmp/" + id + "X", "smtpsd-spool 1\nid half a message");
  write_file(dir_ + "/tmp/stray", "junk");
  ASSERT_EQ(count_entries(dir_ + "/tmp"), 2u);

  auto reopened = Spool::open(dir_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(count_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ((*reopened)->list(), std::vector<std::string>{id});
  auto loaded = (*reopened)->load(id);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(read_file(loaded->path, loaded->content_offset), "kept");
}

TEST_F(SpoolTest, SecondOpenOfTheSameDirectoryIsRefused) {
  auto second = Spool::open(dir_);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
}

TEST_F(SpoolTest, IdsAreUniqueAcrossThreadsAndSafe) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        ids[t].push_back(spool_->new_id());
    });
  }
  for (auto& thread : threads)
    thread.join();
  std::set<std::string> all;
  for (const auto& per_thread : ids) {
    for (std::size_t i = 0; i < per_thread.size(); ++i) {
      ASSERT_TRUE(Spool::is_valid_id(per_thread[i])) << per_thread[i];
      if (i > 0) {
        EXPECT_LT(per_thread[i - 1], per_thread[i]);  // time order within a thread
      }
      all.insert(per_thread[i]);
    }
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_F(SpoolTest, IdsSortByTimeAndDifferAfterRestart) {
  std::string first = spool_->new_id();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  std::string second = spool_->new_id();
  EXPECT_LT(first, second);
  spool_.reset();
  auto reopened = Spool::open(dir_);
  ASSERT_TRUE(reopened);
  std::string third = (*reopened)->new_id();
  EXPECT_LT(second, third);
  EXPECT_NE(third.substr(0, 16), second.substr(0, 16));
  spool_ = std::move(*reopened);
}

TEST_F(SpoolTest, ListIsOldestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(commit_message(full_envelope(), "m"));
  write_file(dir_ + "/queue/.hidden", "not a message");
  EXPECT_EQ(spool_->list(), ids);
}

TEST_F(SpoolTest, BeginWithIdRefusesUnsafeAndDuplicateIds) {
  for (const std::string& bad :
       std::vector<std::string>{"", "../escape", "a/b", "with space", std::string(65, 'a'), "é"}) {
    auto writer = spool_->begin_with_id(bad, full_envelope(), 1);
    EXPECT_FALSE(writer) << bad;
  }
  std::string id = spool_->new_id();
  auto first = spool_->begin_with_id(id, full_envelope(), 1);
  ASSERT_TRUE(first);
  auto duplicate = spool_->begin_with_id(id, full_envelope(), 1);
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().error_number, EEXIST);
  ASSERT_TRUE((*first)->commit());
  // A committed id is never replaced (RENAME_NOREPLACE): the second commit fails cleanly.
  auto again = spool_->begin_with_id(id, full_envelope(), 1);
  ASSERT_TRUE(again);
  EXPECT_FALSE((*again)->commit());
  EXPECT_EQ(count_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ(count_entries(dir_ + "/queue"), 1u);
}

TEST_F(SpoolTest, LoadRefusesCorruptFiles) {
  std::string id = commit_message(full_envelope(), "content");
  std::string path = dir_ + "/queue/" + id;
  const std::string good = read_file(path);
  const std::string header = good.substr(0, good.find("\n\n") + 1);
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string copy = good;
    std::size_t at = copy.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return copy.replace(at, from.size(), to);
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"wrong version", replace("smtpsd-spool 1", "smtpsd-spool 2")},
      {"no blank line", header},
      {"unknown key", replace("\nesmtp 1\n", "\nesmtp 1\ncolour blue\n")},
      {"bad escape", replace("\nhelo client.example", "\nhelo %ZZclient.example")},
      {"raw space in a field", replace("\nhelo client.example%20", "\nhelo client.example ")},
      {"id mismatch", replace("\nid " + id, "\nid OTHER")},
      {"missing key", replace("\nsmtputf8 1", "")},
      {"duplicate key", replace("\nesmtp 1\n", "\nesmtp 1\nesmtp 1\n")},
      {"count mismatch", replace("\nrecipients 4\n", "\nrecipients 5\n")},
      {"bad number", replace("\nreceived 1700000000", "\nreceived 17x")},
      {"truncated rcpt", replace(" SUCCESS,FAILURE ", " SUCCESS,FAILURE")},
      {"empty file", ""},
  };
  for (const auto& [name, bytes] : cases) {
    write_file(path, bytes);
    auto loaded = spool_->load(id);
    ASSERT_FALSE(loaded) << name;
    EXPECT_FALSE(loaded.error().transient) << name;
    EXPECT_NE(loaded.error().message.find("corrupt spool file"), std::string::npos)
        << name << ": " << loaded.error().message;
  }
  write_file(path, good);
  EXPECT_TRUE(spool_->load(id));
}

TEST_F(SpoolTest, LoadOfMissingMessageSaysEnoent) {
  auto loaded = spool_->load(spool_->new_id());
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().error_number, ENOENT);
  EXPECT_FALSE(spool_->load("../../etc/passwd"));
}

TEST_F(SpoolTest, RemoveUnlinks) {
  std::string id = commit_message(full_envelope(), "x");
  ASSERT_TRUE(spool_->remove(id));
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_TRUE(spool_->remove(id));  // idempotent
}

TEST_F(SpoolTest, CommitFailsCleanlyWhenTheRenameFails) {
  // queue/ vanishing under us stands in for a directory the rename cannot write to
  // (chmod does not stop root, which runs these tests).
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("content"));
  ASSERT_EQ(::rmdir((dir_ + "/queue").c_str()), 0);
  auto committed = (*writer)->commit();
  ASSERT_FALSE(committed);
  EXPECT_TRUE(committed.error().transient);
  EXPECT_NE(committed.error().message.find("rename"), std::string::npos);
  EXPECT_EQ(count_entries(dir_ + "/tmp"), 0u);
  EXPECT_FALSE((*writer)->commit());  // and keeps failing
}

// Runs body in a child whose files may not grow past limit bytes (a full disk, as far as
// write(2) can tell: EFBIG). Returns the child's exit status: 0 when every check held.
int run_with_file_size_limit(rlim_t limit, const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST_F(SpoolTest, CommitFailsCleanlyOnAFullDiskAtCommit) {
  // Everything fits in the write buffer: the error comes at commit().
  int status = run_with_file_size_limit(4096, [&] {
    auto writer = spool_->begin(full_envelope(), 1);
    if (!writer) return 1;
    if (!(*writer)->append(std::string(20000, 'x'))) return 2;
    auto committed = (*writer)->commit();
    if (committed) return 3;
    if (committed.error().message.find("write") == std::string::npos) return 4;
    if (count_entries(dir_ + "/tmp") != 0 || count_entries(dir_ + "/queue") != 0) return 5;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

TEST_F(SpoolTest, AppendFailsAndKeepsFailingOnAFullDisk) {
  int status = run_with_file_size_limit(100 * 1024, [&] {
    auto writer = spool_->begin(full_envelope(), 1);
    if (!writer) return 1;
    bool failed = false;
    std::string first_error;
    for (int i = 0; i < 1000; ++i) {
      auto appended = (*writer)->append(std::string(1000, 'y'));
      if (!appended) {
        if (!failed) first_error = appended.error().message;
        if (failed && appended.error().message != first_error) return 2;
        failed = true;
      }
    }
    if (!failed) return 3;
    if (count_entries(dir_ + "/tmp") != 0) return 4;  // removed at the first failure
    if ((*writer)->commit()) return 5;
    if (count_entries(dir_ + "/queue") != 0) return 6;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace queue
