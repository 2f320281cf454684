// spool_test.cpp — queue::Spool against real files in a temp dir: the envelope format
// round-trips every field, content round-trips byte for byte, failures remove the file
// (RFC 5321 §4.5.4 / §6.1: nothing acknowledged may be lost, nothing half-written kept).
#include "queue/spool.h"

#include "queue/message_reader.h"

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
#include <string_view>
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

// The message as a deliverer gets it: through MessageReader, in pieces of odd sizes.
std::string content_of(const StoredMessage& message) {
  auto reader = MessageReader::open(message);
  EXPECT_TRUE(reader) << reader.error().message;
  if (!reader) return "";
  std::string content;
  char buffer[4093];
  for (;;) {
    auto got = reader->read(buffer);
    EXPECT_TRUE(got) << got.error().message;
    if (!got || *got == 0) break;
    content.append(buffer, *got);
  }
  EXPECT_EQ(content.size(), reader->size());
  EXPECT_EQ(content.size(), message.content_size);
  return content;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::size_t count_spool_entries(const std::string& path) {
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
    EXPECT_EQ(a.recipients[i].expansion_record, b.recipients[i].expansion_record) << i;
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
  EXPECT_EQ(content_of(*loaded), content);
}

// The record of an alias expanded with NOTIFY=SUCCESS: a fourth field on its rcpt line, in
// the header and in a late envelope; any other fourth field is refused.
TEST_F(SpoolTest, AnExpansionRecordRoundTrips) {
  smtp::Envelope envelope = full_envelope();
  envelope.recipients.insert(envelope.recipients.begin(),
                             {"sales@x.example", "SUCCESS", "rfc822;sales@x.example", true});
  std::string id = commit_message(envelope, "Subject: x\r\n\r\nbody\r\n");
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  expect_same(loaded->envelope, envelope);
  EXPECT_TRUE(loaded->envelope.recipients[0].expansion_record);
  auto bad = queue::parse_spool_file(
      "0123456789ABCDEF0001abcd",
      "smtpsd-spool 1\nid 0123456789ABCDEF0001abcd\nreceived 1\nhelo h\nesmtp 1\nfrom a@b\n"
      "body 7bit\nsmtputf8 0\nsize -\nret unspecified\nenvid -\nrecipients 1\n"
      "rcpt c@d - - other\n\nx\r\n",
      200);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("rcpt needs three fields"), std::string::npos) << bad.error();
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

TEST_F(SpoolTest, AnAuthenticatedSessionIsRememberedAndAnUnauthenticatedOneWritesNoLine) {
  smtp::Envelope envelope = full_envelope();
  envelope.authenticated = true;
  std::string id = commit_message(envelope, "body\r\n");
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(loaded->envelope.authenticated);

  envelope.authenticated = false;
  id = commit_message(envelope, "body\r\n");
  loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_FALSE(loaded->envelope.authenticated);
  std::ifstream file(dir_ + "/queue/" + id);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("authenticated"), std::string::npos);  // files stay as they were
}

TEST_F(SpoolTest, TheAuthenticatedUserIsRememberedEncodedAndAbsentWithoutOne) {
  smtp::Envelope envelope = full_envelope();
  envelope.authenticated = true;
  envelope.authenticated_user = "alice smith@example.org";
  std::string id = commit_message(envelope, "body\r\n");
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->envelope.authenticated_user, "alice smith@example.org");
  {
    std::ifstream file(dir_ + "/queue/" + id);
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("\nuser alice%20smith@example.org\n"), std::string::npos);
  }
  envelope.authenticated = false;
  envelope.authenticated_user.clear();
  id = commit_message(envelope, "body\r\n");
  loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->envelope.authenticated_user, "");
  std::ifstream file(dir_ + "/queue/" + id);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("\nuser "), std::string::npos);
}

TEST_F(SpoolTest, RequireTlsIsRememberedAndAFileWithoutItWritesNoLine) {
  smtp::Envelope envelope = full_envelope();
  envelope.require_tls = true;
  std::string id = commit_message(envelope, "body\r\n");
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_TRUE(loaded->envelope.require_tls);
  EXPECT_NE(read_file(dir_ + "/queue/" + id).find("\nrequiretls 1\n"), std::string::npos);

  envelope.require_tls = false;
  id = commit_message(envelope, "body\r\n");
  loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_FALSE(loaded->envelope.require_tls);
  // Files without REQUIRETLS are as before (and older files, which never have the line, load).
  EXPECT_EQ(read_file(dir_ + "/queue/" + id).find("requiretls"), std::string::npos);

  // A bad value or a repeat is a corrupt file.
  for (std::string_view bad : {"requiretls 0\n", "requiretls 1\nrequiretls 1\n"}) {
    std::string file = read_file(dir_ + "/queue/" + id);
    file.insert(file.find("recipients "), bad);
    EXPECT_FALSE(parse_spool_file(id, file, file.size())) << bad;
  }
}

TEST_F(SpoolTest, TlsOptionalIsStoredAfterTheContentAndLoaded) {
  const std::string content = "TLS-Required: No\r\nSubject: s\r\n\r\nbody\r\n";
  for (int variant = 0; variant < 3; ++variant) {  // alone, with a folder, with a new envelope
    SCOPED_TRACE(variant);
    auto writer = spool_->begin(full_envelope(), 1700000000);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(content));
    ASSERT_TRUE((*writer)->set_tls_optional(true));
    if (variant == 1) {
      ASSERT_TRUE((*writer)->set_folder("Junk"));
    }
    if (variant == 2) {
      ASSERT_TRUE((*writer)->replace_envelope("s@example.org", {{"r@example.org", "", ""}}));
    }
    ASSERT_TRUE((*writer)->commit());
    const std::string id = (*writer)->id();
    const std::string file = read_file(dir_ + "/queue/" + id);
    EXPECT_TRUE(file.starts_with("smtpsd-spool 3\n")) << file.substr(0, 100);
    EXPECT_TRUE(file.ends_with("\ntls_optional 1\n")) << file;
    auto loaded = spool_->load(id);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_TRUE(loaded->tls_optional);
    EXPECT_EQ(content_of(*loaded), content);
    EXPECT_EQ(loaded->folder, variant == 1 ? "Junk" : "");
    if (variant == 2) {
      EXPECT_EQ(loaded->envelope.reverse_path, "s@example.org");
    }
    // Nothing may follow it, and its only value is 1.
    std::string broken = file + "folder Junk\n";
    EXPECT_FALSE(parse_spool_file(id, broken, broken.size()));
    broken = file.substr(0, file.size() - 2) + "2\n";
    EXPECT_FALSE(parse_spool_file(id, broken, broken.size()));
  }
  // Cancelled: a version 2 file without the line, loaded as not optional.
  auto writer = spool_->begin(full_envelope(), 1700000000);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(content));
  ASSERT_TRUE((*writer)->set_tls_optional(true));
  ASSERT_TRUE((*writer)->set_tls_optional(false));
  ASSERT_TRUE((*writer)->commit());
  const std::string file = read_file(dir_ + "/queue/" + (*writer)->id());
  EXPECT_TRUE(file.starts_with("smtpsd-spool 2\n"));
  EXPECT_EQ(file.find("tls_optional"), std::string::npos);
  auto loaded = spool_->load((*writer)->id());
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->tls_optional);
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
  EXPECT_EQ(loaded->content_size, 0u);
  EXPECT_TRUE(loaded->segments.empty());
  EXPECT_EQ(content_of(*loaded), "");
}

TEST_F(SpoolTest, HeaderIsOneLinePerFieldWithVersionFirst) {
  std::string id = commit_message(full_envelope(), "x");
  std::string file = read_file(dir_ + "/queue/" + id);
  const std::string layout =
      "layout 00000000000000000001 00000000000000000000 00000000000000000000";
  EXPECT_EQ(file.rfind("smtpsd-spool 2\n" + layout + "\nid " + id + "\n", 0), 0u) << file;
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
  std::string content = content_of(*loaded);
  ASSERT_EQ(content.size(), expected.size());
  EXPECT_TRUE(content == expected);
}

TEST_F(SpoolTest, AbortRemovesTmp) {
  spool_->set_memory_budget(0);  // past 64 KiB the message goes to tmp/
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(std::string(100 * 1024, 'x')));
  EXPECT_TRUE(fs::exists(dir_ + "/tmp/" + (*writer)->id()));
  (*writer)->abort();
  EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ(count_spool_entries(dir_ + "/queue"), 0u);
  EXPECT_FALSE((*writer)->commit());
}

TEST_F(SpoolTest, DestructorWithoutCommitRemovesTmp) {
  {
    auto writer = spool_->begin(full_envelope(), 1);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append("data"));
  }
  EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ(count_spool_entries(dir_ + "/queue"), 0u);
}

TEST_F(SpoolTest, CommitMovesIntoQueueAndAppendAfterCommitFails) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->commit());
  EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
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
  ASSERT_EQ(count_spool_entries(dir_ + "/tmp"), 2u);

  auto reopened = Spool::open(dir_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ((*reopened)->list(), std::vector<std::string>{id});
  auto loaded = (*reopened)->load(id);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(content_of(*loaded), "kept");
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
  ASSERT_TRUE(duplicate);  // tmp/<id> is made only when first needed (Spool::create_tmp)
  ASSERT_TRUE((*first)->content_reader());  // makes the first's file
  auto refused = (*duplicate)->content_reader();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().error_number, EEXIST);
  ASSERT_TRUE((*first)->commit());  // the duplicate's failure left the first's file alone
  // A committed id is never replaced (RENAME_NOREPLACE): the second commit fails cleanly.
  auto again = spool_->begin_with_id(id, full_envelope(), 1);
  ASSERT_TRUE(again);
  EXPECT_FALSE((*again)->commit());
  EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
  EXPECT_EQ(count_spool_entries(dir_ + "/queue"), 1u);
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
      {"wrong version", replace("smtpsd-spool 2", "smtpsd-spool 3")},
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
  EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
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
    if (count_spool_entries(dir_ + "/tmp") != 0 || count_spool_entries(dir_ + "/queue") != 0)
      return 5;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

TEST_F(SpoolTest, AppendFailsAndKeepsFailingOnAFullDisk) {
  int status = run_with_file_size_limit(100 * 1024, [&] {
    spool_->set_memory_budget(0);  // past 64 KiB the message goes to tmp/
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
    if (count_spool_entries(dir_ + "/tmp") != 0) return 4;  // removed at the first failure
    if ((*writer)->commit()) return 5;
    if (count_spool_entries(dir_ + "/queue") != 0) return 6;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

// --- late changes: header fields learnt after the body, a replaced body -----------------

const std::string kReceived = "Received: from client.example by mx.example; Tue, 1 Jul 2025\r\n";
const std::string kHeader = "From: a@example.org\r\nSubject: old\r\nX-Spam: yes\r\n";
const std::string kBody = "\r\nHello,\r\n\r\n.dot line\r\nBye\r\n";

// A body large enough that the file's start has left the write buffer before commit: the
// layout is then written with pwrite(2) rather than patched in the buffer.
std::string big_body() {
  std::string body = "\r\n";
  while (body.size() < 300 * 1024)
    body += "line " + std::to_string(body.size()) + " of a long body\r\n";
  return body;
}

class SpoolEditTest : public SpoolTest, public ::testing::WithParamInterface<bool> {
 protected:
  std::string body() const { return GetParam() ? big_body() : kBody; }

  // Commits kReceived + header + body after edit(writer); returns the message reloaded from
  // a spool opened again (what a restarted smtpsd would deliver).
  StoredMessage commit_and_reload(const std::string& header, const std::string& body,
                                  const std::function<void(SpoolWriter&)>& edit) {
    auto writer = spool_->begin(full_envelope(), 1700000000);
    EXPECT_TRUE(writer) << writer.error().message;
    EXPECT_TRUE((*writer)->append(kReceived));
    EXPECT_TRUE((*writer)->append(header));
    // The body in pieces, as DATA arrives.
    for (std::size_t at = 0; at < body.size(); at += 1000)
      EXPECT_TRUE((*writer)->append(std::string_view(body).substr(at, 1000)));
    edit(**writer);
    auto committed = (*writer)->commit();
    EXPECT_TRUE(committed) << committed.error().message;
    std::string id = (*writer)->id();
    spool_.reset();
    auto reopened = Spool::open(dir_);
    EXPECT_TRUE(reopened) << reopened.error().message;
    spool_ = std::move(*reopened);
    auto loaded = spool_->load(id);
    EXPECT_TRUE(loaded) << loaded.error().message;
    return loaded ? *loaded : StoredMessage{};
  }
};

INSTANTIATE_TEST_SUITE_P(SmallAndLarge, SpoolEditTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "large" : "small"; });

TEST_P(SpoolEditTest, PrependedFieldsComeBeforeTheReceivedHeader) {
  const std::string added =
      "Authentication-Results: mx.example; spf=pass smtp.mailfrom=example.org\r\n"
      "DKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n\tb=AAAA\r\n";
  StoredMessage loaded = commit_and_reload(kHeader, body(), [&](SpoolWriter& writer) {
    ASSERT_TRUE(writer.replace_header_section(0, added));
  });
  EXPECT_TRUE(content_of(loaded) == added + kReceived + kHeader + body());
  // Nothing received was moved: the content is still in one piece right after the envelope
  // header, and the new fields follow it at the end of the file.
  ASSERT_EQ(loaded.segments.size(), 2u);
  const std::string file = read_file(loaded.path);
  EXPECT_EQ(loaded.segments[0].offset + loaded.segments[0].length, file.size());
  EXPECT_EQ(file.substr(loaded.segments[0].offset), added);
  EXPECT_EQ(loaded.segments[1].offset, file.find("\n\n") + 2);
  EXPECT_TRUE(file.substr(loaded.segments[1].offset, loaded.segments[1].length) ==
              kReceived + kHeader + body());
}

TEST_P(SpoolEditTest, ChangedHeaderSectionLeavesTheBodyUntouched) {
  // A milter deletes X-Spam and adds X-Checked: the intake passes the edited block.
  const std::string edited = kReceived + "From: a@example.org\r\nSubject: old\r\nX-Checked: 1\r\n";
  StoredMessage loaded = commit_and_reload(kHeader, body(), [&](SpoolWriter& writer) {
    ASSERT_TRUE(writer.replace_header_section(kReceived.size() + kHeader.size(), edited));
  });
  EXPECT_TRUE(content_of(loaded) == edited + body());
}

TEST_P(SpoolEditTest, ReplacedBody) {
  const std::string new_body = "\r\nreplaced by the milter\r\n";
  StoredMessage loaded = commit_and_reload(kHeader, body(), [&](SpoolWriter& writer) {
    ASSERT_EQ(writer.content_size(), kReceived.size() + kHeader.size() + body().size());
    ASSERT_TRUE(writer.truncate_content(kReceived.size() + kHeader.size()));
    EXPECT_EQ(writer.content_size(), kReceived.size() + kHeader.size());
    ASSERT_TRUE(writer.append(new_body));
  });
  EXPECT_EQ(content_of(loaded), kReceived + kHeader + new_body);
  // The old body was cut off the file, not copied around: envelope header + new content.
  const std::string file = read_file(loaded.path);
  EXPECT_EQ(file.size(), file.find("\n\n") + 2 + loaded.content_size);
}

TEST_P(SpoolEditTest, ReplacedHeaderSectionAndBodyInEitherOrder) {
  const std::string edited = "X-First: 1\r\n" + kReceived + "Subject: new\r\n";
  const std::string new_body = "\r\nnew body\r\n" + std::string(GetParam() ? 100000 : 10, 'b');
  const std::uint64_t header_size = kReceived.size() + kHeader.size();
  StoredMessage headers_first = commit_and_reload(kHeader, body(), [&](SpoolWriter& writer) {
    ASSERT_TRUE(writer.replace_header_section(header_size, edited));
    ASSERT_TRUE(writer.truncate_content(header_size));
    ASSERT_TRUE(writer.append(new_body));
  });
  EXPECT_TRUE(content_of(headers_first) == edited + new_body);
  StoredMessage body_first = commit_and_reload(kHeader, body(), [&](SpoolWriter& writer) {
    ASSERT_TRUE(writer.truncate_content(header_size));
    ASSERT_TRUE(writer.append(new_body));
    ASSERT_TRUE(writer.replace_header_section(0, "X-Dropped: 1\r\n"));  // the last call wins
    ASSERT_TRUE(writer.replace_header_section(header_size, edited));
  });
  EXPECT_TRUE(content_of(body_first) == edited + new_body);
}

TEST_F(SpoolTest, ContentReaderReadsWhatWasAppendedAndOutlivesTheWriter) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  const std::string content = kReceived + kHeader + kBody;
  ASSERT_TRUE((*writer)->append(content));  // small: still in the writer's buffer
  auto reader = (*writer)->content_reader();
  ASSERT_TRUE(reader);
  const ContentReader& r = *reader.value();
  EXPECT_EQ(r.size(), content.size());
  std::string out;
  ASSERT_TRUE(r.read(0, content.size() + 100, out));
  EXPECT_EQ(out, content);  // the buffered octets were written out, the envelope is not in it
  ASSERT_TRUE(r.read(kReceived.size(), 5, out));
  EXPECT_EQ(out, kHeader.substr(0, 5));
  ASSERT_TRUE(r.read(content.size(), 10, out));
  EXPECT_EQ(out, "");
  (*writer)->abort();  // the file is gone; the reader keeps its own descriptor
  ASSERT_TRUE(r.read(kReceived.size() + kHeader.size(), 1000, out));
  EXPECT_EQ(out, kBody);
}

TEST_F(SpoolTest, MisusedEditsAreRefusedAndChangeNothing) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  SpoolWriter& w = **writer;
  ASSERT_TRUE(w.append(kReceived + kHeader + kBody));
  const std::uint64_t size = w.content_size();
  ASSERT_TRUE(w.replace_header_section(kReceived.size(), "X-Kept: 1\r\n"));
  auto refused = [](const base::Expected<base::Ok, SpoolError>& result, const std::string& what) {
    ASSERT_FALSE(result) << what;
    EXPECT_FALSE(result.error().transient) << what;
    EXPECT_EQ(result.error().error_number, EINVAL) << what;
    EXPECT_FALSE(result.error().message.empty()) << what;
  };
  refused(w.replace_header_section(0, "X-Bare: lf\n"), "bare LF at the end");
  refused(w.replace_header_section(0, "X-Bare: lf\nX-Next: 1\r\n"), "bare LF inside");
  refused(w.replace_header_section(0, "X-Bare: cr\rX-Next: 1\r\n"), "bare CR");
  refused(w.replace_header_section(0, "X-No-End: 1"), "no final CRLF");
  refused(w.replace_header_section(0, "X-Cr-At-End: 1\r"), "CR at the end");
  refused(w.replace_header_section(0, std::string("X-Nul: a\0b\r\n", 12)), "NUL");
  std::string huge;
  while (huge.size() <= SpoolWriter::kMaxHeaderSectionSize)
    huge += "X-Long: " + std::string(990, 'x') + "\r\n";
  refused(w.replace_header_section(0, huge), "over 1 MiB");
  refused(w.replace_header_section(size + 1, "X-A: 1\r\n"), "longer than the content");
  refused(w.truncate_content(size + 1), "keep more than the content");
  refused(w.truncate_content(kReceived.size() - 1), "cut into the replaced header section");
  // The writer is still usable and the message is what the accepted calls made it.
  EXPECT_EQ(w.content_size(), size);
  ASSERT_TRUE(w.commit());
  auto loaded = spool_->load(w.id());
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(content_of(*loaded), "X-Kept: 1\r\n" + kHeader + kBody);
  // Once committed, the edits fail like append().
  EXPECT_FALSE(w.replace_header_section(0, "X-Late: 1\r\n"));
  EXPECT_FALSE(w.truncate_content(0));
  EXPECT_EQ(content_of(*loaded), "X-Kept: 1\r\n" + kHeader + kBody);
}

TEST_F(SpoolTest, EmptyAndFullReplacements) {
  // An empty section with length 0 cancels an earlier call; the whole content may be
  // replaced; an empty message may get fields.
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("A: 1\r\n\r\nbody\r\n"));
  ASSERT_TRUE((*writer)->replace_header_section(3, "B: 2\r\n"));
  ASSERT_TRUE((*writer)->replace_header_section(0, ""));
  ASSERT_TRUE((*writer)->commit());
  auto cancelled = spool_->load((*writer)->id());
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(content_of(*cancelled), "A: 1\r\n\r\nbody\r\n");
  EXPECT_EQ(cancelled->segments.size(), 1u);

  auto whole = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(whole);
  ASSERT_TRUE((*whole)->append("A: 1\r\n"));
  ASSERT_TRUE((*whole)->replace_header_section(6, "B: 2\r\n\r\n"));
  ASSERT_TRUE((*whole)->commit());
  auto replaced = spool_->load((*whole)->id());
  ASSERT_TRUE(replaced);
  EXPECT_EQ(content_of(*replaced), "B: 2\r\n\r\n");
  EXPECT_EQ(replaced->segments.size(), 1u);  // no empty segment for the content left

  auto empty = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(empty);
  ASSERT_TRUE((*empty)->replace_header_section(0, "C: 3\r\n"));
  ASSERT_TRUE((*empty)->commit());
  auto added = spool_->load((*empty)->id());
  ASSERT_TRUE(added);
  EXPECT_EQ(content_of(*added), "C: 3\r\n");
}

TEST_F(SpoolTest, ACrashBeforeCommitLeavesNothingInQueueUnlessTheLogHasIt) {
  // A child edits a message the way the intake does and dies (no destructor runs) at each
  // step before the rename; the parent then opens the spool as a restarted smtpsd would.
  // Once flush_to_log() appended it to the commit log (step 2), the message is recovered:
  // the log cannot tell a sync that completed from one that did not, so a message whose
  // client got no answer may be delivered (a duplicate if the client sends it again, never
  // a loss).
  for (int step = 0; step < 3; ++step) {
    spool_.reset();
    pid_t pid = ::fork();
    if (pid == 0) {
      auto spool = Spool::open(dir_);
      if (!spool) ::_exit(10);
      (*spool)->set_memory_budget(0);  // the big body goes to tmp/, which the crash leaves
      auto writer = (*spool)->begin(full_envelope(), 1);
      if (!writer) ::_exit(11);
      if (!(*writer)->append(kReceived + kHeader + big_body())) ::_exit(12);
      if (!(*writer)->replace_header_section(0, "X-Added: 1\r\n")) ::_exit(13);
      if (step >= 1 && !(*writer)->truncate_content(kReceived.size() + kHeader.size())) {
        ::_exit(14);
      }
      if (step >= 2 && !(*writer)->flush_to_log()) ::_exit(15);  // in the log, and in tmp/
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << step;
    EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 1u) << step;  // what the crash left
    auto reopened = Spool::open(dir_);
    ASSERT_TRUE(reopened) << reopened.error().message;
    spool_ = std::move(*reopened);
    EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u) << step;
    EXPECT_EQ(count_spool_entries(dir_ + "/queue"), step >= 2 ? 1u : 0u) << step;
    EXPECT_EQ(spool_->list().size(), step >= 2 ? 1u : 0u) << step;
    for (const std::string& id : spool_->list()) {
      auto loaded = spool_->load(id);
      ASSERT_TRUE(loaded) << loaded.error().message;
      EXPECT_EQ(content_of(*loaded), "X-Added: 1\r\n" + kReceived + kHeader);
      ASSERT_TRUE(spool_->remove(id));
    }
  }
}

TEST_F(SpoolTest, ALateSectionThatCannotBeWrittenFailsTheCommit) {
  // The content fits under the limit, the late section does not: the commit must fail and
  // leave nothing, never publish a message whose layout points past its end.
  int status = run_with_file_size_limit(64 * 1024, [&] {
    auto writer = spool_->begin(full_envelope(), 1);
    if (!writer) return 1;
    if (!(*writer)->append(std::string(40 * 1024, 'x'))) return 2;
    std::string fields;
    while (fields.size() < 40 * 1024)
      fields += "X-Field: " + std::string(100, 'y') + "\r\n";
    if (!(*writer)->replace_header_section(0, fields)) return 3;
    auto committed = (*writer)->commit();
    if (committed) return 4;
    if (committed.error().message.find("write") == std::string::npos) return 5;
    if (count_spool_entries(dir_ + "/tmp") != 0 || count_spool_entries(dir_ + "/queue") != 0)
      return 6;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

TEST_F(SpoolTest, AVersion1FileStillLoads) {
  // Written by hand the way smtpsd before version 2 wrote it: no layout line, the content
  // runs to the end of the file. That smtpsd had no commit log either.
  spool_.reset();
  std::filesystem::remove_all(dir_ + "/log");
  const std::string id = "0123456789ABCDEF0001abcd";
  const std::string content =
      "Received: from old\r\nSubject: queued before the upgrade\r\n\r\nhi\r\n";
  write_file(dir_ + "/queue/" + id,
             "smtpsd-spool 1\nid " + id +
                 "\nreceived 1690000000\nhelo old.example\nesmtp 1\nfrom a@example.org\n"
                 "body 8bitmime\nsmtputf8 0\nsize 1234\nret full\nenvid ENV%201\nrecipients 2\n"
                 "rcpt b@example.com NEVER -\nrcpt c@example.com - rfc822;c@example.com\n\n" +
                 content);
  auto reopened = Spool::open(dir_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  spool_ = std::move(*reopened);
  EXPECT_EQ(spool_->list(), std::vector<std::string>{id});
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->received_unix, 1690000000);
  EXPECT_EQ(loaded->envelope.helo, "old.example");
  EXPECT_EQ(loaded->envelope.reverse_path, "a@example.org");
  EXPECT_EQ(loaded->envelope.body, smtp::BodyType::k8BitMime);
  EXPECT_EQ(loaded->envelope.declared_size, 1234u);
  EXPECT_EQ(loaded->envelope.dsn_return, smtp::DsnReturn::kFull);
  EXPECT_EQ(loaded->envelope.envelope_id, "ENV 1");
  ASSERT_EQ(loaded->envelope.recipients.size(), 2u);
  EXPECT_EQ(loaded->envelope.recipients[1].original_recipient, "rfc822;c@example.com");
  EXPECT_EQ(content_of(*loaded), content);
  // A version 1 file has no layout line: one there is a corrupt file, not a version 2 one.
  std::string file = read_file(dir_ + "/queue/" + id);
  write_file(dir_ + "/queue/" + id, file.insert(file.find('\n') + 1,
                                                "layout 00000000000000000000 00000000000000000000 "
                                                "00000000000000000000\n"));
  EXPECT_FALSE(spool_->load(id));
}

TEST_F(SpoolTest, LoadRefusesALayoutThatDoesNotFitTheFile) {
  std::string id = commit_message(full_envelope(), std::string(13, 'c'));
  std::string path = dir_ + "/queue/" + id;
  const std::string id_line = "id " + id + "\n";
  const std::string good = read_file(path);
  const std::string layout = good.substr(15, good.find('\n', 15) + 1 - 15);
  ASSERT_EQ(layout, "layout 00000000000000000013 00000000000000000000 00000000000000000000\n");
  auto with_layout = [&](const std::string& line) {
    std::string copy = good;
    return copy.replace(15, layout.size(), line);
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"content too long",
       with_layout("layout 00000000000000000014 00000000000000000000 00000000000000000000\n")},
      {"content too short",
       with_layout("layout 00000000000000000012 00000000000000000000 00000000000000000000\n")},
      {"late section past the end",
       with_layout("layout 00000000000000000013 00000000000000000000 00000000000000000001\n")},
      {"replaces more than the content",
       with_layout("layout 00000000000000000013 00000000000000000014 00000000000000000000\n")},
      {"huge content",
       with_layout("layout 18446744073709551615 00000000000000000000 00000000000000000014\n")},
      {"over 64 bits",
       with_layout("layout 99999999999999999999 00000000000000000000 00000000000000000000\n")},
      {"not fixed width", with_layout("layout 13 0 0\n")},
      {"sign",
       with_layout("layout +0000000000000000013 00000000000000000000 00000000000000000000\n")},
      {"missing layout line", good.substr(0, 15) + good.substr(15 + layout.size())},
      {"layout not second",
       good.substr(0, 15) + id_line + layout + good.substr(15 + layout.size() + id_line.size())},
      {"appended octets", good + "x"},
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

// replace_envelope(): the file becomes version 3 with the new sender and recipients after
// the content (nothing received is moved), every other envelope field stays, and a late
// header section still works beside it. Small (start still buffered) and big messages.
TEST_F(SpoolTest, AReplacedEnvelopeIsTheOneLoaded) {
  for (std::size_t size : {5u, 300000u}) {
    SCOPED_TRACE(size);
    const std::string content = "Subject: s\r\n\r\n" + std::string(size, 'b') + "\r\n";
    auto writer = spool_->begin(full_envelope(), 1700000000);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(content));
    ASSERT_TRUE((*writer)->replace_header_section(0, "X-Added: 1\r\n"));
    std::vector<smtp::Recipient> recipients = {{"n%ew @example.net", "NEVER", ""},
                                               {"z@example.org", "", "rfc822;z@example.org"}};
    ASSERT_TRUE((*writer)->replace_envelope("", {{"first@example.net", "", ""}}));
    ASSERT_TRUE((*writer)->replace_envelope("new-sender@example.net", recipients));  // last wins
    ASSERT_TRUE((*writer)->commit());
    const std::string id = (*writer)->id();
    const std::string file = read_file(dir_ + "/queue/" + id);
    EXPECT_TRUE(file.starts_with("smtpsd-spool 3\nlayout ")) << file.substr(0, 100);
    EXPECT_TRUE(file.ends_with("rcpt z@example.org - rfc822;z@example.org\n"));
    auto loaded = spool_->load(id);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->envelope.reverse_path, "new-sender@example.net");
    ASSERT_EQ(loaded->envelope.recipients.size(), 2u);
    EXPECT_EQ(loaded->envelope.recipients[0].address, "n%ew @example.net");
    EXPECT_EQ(loaded->envelope.recipients[0].notify, "NEVER");
    EXPECT_EQ(loaded->envelope.recipients[1].original_recipient, "rfc822;z@example.org");
    EXPECT_EQ(loaded->envelope.helo, full_envelope().helo);
    EXPECT_EQ(loaded->envelope.envelope_id, full_envelope().envelope_id);
    EXPECT_EQ(content_of(*loaded), "X-Added: 1\r\n" + content);
    // The pure parser, given the whole file, reads the same.
    auto parsed = parse_spool_file(id, file, file.size());
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_EQ(parsed->envelope.reverse_path, "new-sender@example.net");
    EXPECT_EQ(parsed->segments, loaded->segments);
    EXPECT_TRUE(spool_->remove(id));
  }
  // Without replace_envelope() the file stays version 2, readable by an older smtpsd.
  std::string id = commit_message(full_envelope(), "x");
  EXPECT_TRUE(read_file(dir_ + "/queue/" + id).starts_with("smtpsd-spool 2\n"));
}

TEST_F(SpoolTest, ReplaceEnvelopeRefusesWhatCouldNotBeDelivered) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("x\r\n"));
  for (const auto& recipients :
       {std::vector<smtp::Recipient>{}, std::vector<smtp::Recipient>{{"", "", ""}}}) {
    auto refused = (*writer)->replace_envelope("a@example.org", recipients);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().error_number, EINVAL);
  }
  ASSERT_TRUE((*writer)->commit());  // the writer is unchanged: the old envelope
  auto loaded = spool_->load((*writer)->id());
  ASSERT_TRUE(loaded);
  expect_same(loaded->envelope, full_envelope());
}

TEST_F(SpoolTest, LoadRefusesABrokenLateEnvelope) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("x\r\n"));
  ASSERT_TRUE((*writer)->replace_envelope("s@example.org", {{"r@example.org", "", ""}}));
  ASSERT_TRUE((*writer)->commit());
  const std::string id = (*writer)->id();
  const std::string path = dir_ + "/queue/" + id;
  const std::string good = read_file(path);
  const std::string tail = "from s@example.org\nrecipients 1\nrcpt r@example.org - -\n";
  ASSERT_TRUE(good.ends_with(tail));
  const std::string head = good.substr(0, good.size() - tail.size());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no late envelope", head},
      {"count too high", head + "from s@example.org\nrecipients 2\nrcpt r@example.org - -\n"},
      {"no recipients", head + "from s@example.org\nrecipients 0\n"},
      {"unterminated", head + "from s@example.org\nrecipients 1\nrcpt r@example.org - -"},
      {"unknown key", head + "from s@example.org\nrecipients 1\nrcpt r@example.org - -\nx 1\n"},
      {"rcpt first", head + "rcpt r@example.org - -\nfrom s@example.org\nrecipients 1\n"},
      {"bad escape", head + "from s%G0\nrecipients 1\nrcpt r@example.org - -\n"},
      {"version 2 with octets after", "smtpsd-spool 2" + good.substr(14)},
  };
  for (const auto& [name, bytes] : cases) {
    write_file(path, bytes);
    auto loaded = spool_->load(id);
    ASSERT_FALSE(loaded) << name;
    EXPECT_NE(loaded.error().message.find("corrupt spool file"), std::string::npos)
        << name << ": " << loaded.error().message;
  }
  write_file(path, good);
  EXPECT_TRUE(spool_->load(id));
}

// set_folder(): the folder a check chose survives the commit (version 3, after the content),
// alone or after a replaced envelope; without it the file is version 2, byte for byte what
// it was before folders existed.
TEST_F(SpoolTest, AFolderIsStoredAndLoaded) {
  const std::string content = "Subject: s\r\n\r\nbody\r\n";
  for (bool new_envelope : {false, true}) {
    SCOPED_TRACE(new_envelope);
    auto writer = spool_->begin(full_envelope(), 1700000000);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(content));
    ASSERT_TRUE((*writer)->set_folder("Junk"));
    ASSERT_TRUE((*writer)->set_folder("Lists.smtp sd"));  // the last call wins
    if (new_envelope) {
      ASSERT_TRUE((*writer)->replace_envelope("s@example.org", {{"r@example.org", "", ""}}));
    }
    ASSERT_TRUE((*writer)->commit());
    const std::string id = (*writer)->id();
    const std::string file = read_file(dir_ + "/queue/" + id);
    EXPECT_TRUE(file.starts_with("smtpsd-spool 3\n")) << file.substr(0, 100);
    EXPECT_TRUE(file.ends_with("\nfolder Lists.smtp%20sd\n")) << file;
    auto loaded = spool_->load(id);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->folder, "Lists.smtp sd");
    EXPECT_EQ(content_of(*loaded), content);
    if (new_envelope) {
      EXPECT_EQ(loaded->envelope.reverse_path, "s@example.org");
    } else {
      expect_same(loaded->envelope, full_envelope());
    }
    auto parsed = parse_spool_file(id, file, file.size());
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_EQ(parsed->folder, "Lists.smtp sd");
  }
  // No folder, or one cancelled with "": version 2, the same octets as without the call.
  auto plain = spool_->begin_with_id("plain", full_envelope(), 1700000000);
  ASSERT_TRUE(plain);
  ASSERT_TRUE((*plain)->append(content));
  ASSERT_TRUE((*plain)->commit());
  auto cancelled = spool_->begin_with_id("cancelled", full_envelope(), 1700000000);
  ASSERT_TRUE(cancelled);
  ASSERT_TRUE((*cancelled)->append(content));
  ASSERT_TRUE((*cancelled)->set_folder("Junk"));
  ASSERT_TRUE((*cancelled)->set_folder(""));
  ASSERT_TRUE((*cancelled)->commit());
  std::string plain_file = read_file(dir_ + "/queue/plain");
  std::string cancelled_file = read_file(dir_ + "/queue/cancelled");
  EXPECT_TRUE(plain_file.starts_with("smtpsd-spool 2\n"));
  const std::string plain_id_line = "\nid plain\n";
  const std::string cancelled_id_line = "\nid cancelled\n";
  plain_file.replace(plain_file.find(plain_id_line), plain_id_line.size(), cancelled_id_line);
  EXPECT_EQ(plain_file, cancelled_file);
  auto loaded = spool_->load("plain");
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->folder, "");
}

TEST_F(SpoolTest, InvalidFolderNamesAreRefusedByTheWriterAndByLoad) {
  for (std::string_view bad :
       {std::string_view(".Junk"), std::string_view("a/b"), std::string_view("a\\b"),
        std::string_view("."), std::string_view(".."), std::string_view("a..b"),
        std::string_view("a\0b", 3), std::string_view("a\nb"), std::string_view("caf\xc3\xa9")}) {
    EXPECT_FALSE(Spool::is_valid_folder(bad)) << bad;
  }
  EXPECT_FALSE(Spool::is_valid_folder(""));
  EXPECT_FALSE(Spool::is_valid_folder(std::string(201, 'a')));
  EXPECT_TRUE(Spool::is_valid_folder(std::string(200, 'a')));
  EXPECT_TRUE(Spool::is_valid_folder("Lists.smtpsd"));
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("x\r\n"));
  auto refused = (*writer)->set_folder("../x");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().error_number, EINVAL);
  ASSERT_TRUE((*writer)->set_folder("Junk"));
  ASSERT_TRUE((*writer)->commit());
  const std::string id = (*writer)->id();
  const std::string path = dir_ + "/queue/" + id;
  const std::string good = read_file(path);
  ASSERT_TRUE(good.ends_with("folder Junk\n"));
  const std::string head = good.substr(0, good.size() - std::string("folder Junk\n").size());
  for (const std::string& tail : {std::string("folder %2E%2E\n"), std::string("folder a%2Fb\n"),
                                  std::string("folder Junk\nfolder Junk\n"),
                                  std::string("folder Junk\nfrom s@example.org\n")}) {
    write_file(path, head + tail);
    auto loaded = spool_->load(id);
    ASSERT_FALSE(loaded) << tail;
    EXPECT_NE(loaded.error().message.find("corrupt spool file"), std::string::npos) << tail;
  }
}

TEST_F(SpoolTest, ANoticeNamesItsOriginalByItsIdAndByTheStateLinesItStandsFor) {
  const std::string original = "0123456789ABCDEFabcd";
  const std::string id = spool_->new_notice_id(original);
  EXPECT_EQ(id.size(), original.size() + 9);
  EXPECT_TRUE(id.starts_with(original + "N")) << id;
  EXPECT_TRUE(Spool::is_valid_id(id));
  EXPECT_EQ(Spool::original_of(id), original);
  EXPECT_NE(spool_->new_notice_id(original), id);  // fresh each time
  EXPECT_EQ(Spool::original_of(original), "");     // an ordinary id is no notice
  EXPECT_EQ(Spool::original_of("N12345678"), "");
  EXPECT_EQ(Spool::original_of("aX12345678"), "");
  EXPECT_EQ(Spool::original_of("a-N12345678"), "");  // not an id at all
  // No room after an id of 56 characters: a plain id, which names no original.
  EXPECT_EQ(Spool::original_of(spool_->new_notice_id(std::string(56, 'a'))), "");
  EXPECT_EQ(Spool::original_of(spool_->new_notice_id(std::string(55, 'a'))), std::string(55, 'a'));

  const std::string content = "Subject: notice\r\n\r\nbody\r\n";
  for (bool with_folder : {false, true}) {
    SCOPED_TRACE(with_folder);
    const std::string notice = spool_->new_notice_id(original);
    auto writer = spool_->begin_with_id(notice, full_envelope(), 1700000000);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(content));
    if (with_folder) {
      ASSERT_TRUE((*writer)->set_folder("Junk"));
    }
    ASSERT_TRUE((*writer)->set_notice(original, {"warned"}));
    ASSERT_TRUE((*writer)->set_notice(original, {"failed 0", "failed 12"}));  // the last wins
    ASSERT_TRUE((*writer)->commit());
    const std::string file = read_file(dir_ + "/queue/" + notice);
    EXPECT_TRUE(file.starts_with("smtpsd-spool 3\n")) << file.substr(0, 100);
    EXPECT_TRUE(file.ends_with("\nnotice " + original + " failed%200 failed%2012\n")) << file;
    auto loaded = spool_->load(notice);
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->notice_of, original);
    EXPECT_EQ(loaded->notice_state, (std::vector<std::string>{"failed 0", "failed 12"}));
    EXPECT_EQ(content_of(*loaded), content);
    EXPECT_EQ(loaded->folder, with_folder ? "Junk" : "");
    expect_same(loaded->envelope, full_envelope());
    // Last, once, with an id and at least one printable line.
    const std::string head = file.substr(0, file.rfind("notice "));
    for (const std::string& tail :
         {std::string("notice " + original + "\n"), std::string("notice " + original + " -\n"),
          std::string("notice a-b failed%200\n"), std::string("notice " + original + "  x\n"),
          std::string("notice " + original + " a%0Ab\n"),
          std::string("notice " + original + " x\nnotice " + original + " x\n"),
          std::string("notice " + original + " x\nfolder Junk\n")}) {
      const std::string broken = head + tail;
      EXPECT_FALSE(parse_spool_file(notice, broken, broken.size())) << tail;
    }
  }
  // An ordinary message names none.
  auto plain = spool_->load(commit_message(full_envelope(), "x\r\n"));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->notice_of, "");
  EXPECT_TRUE(plain->notice_state.empty());
}

TEST_F(SpoolTest, SetNoticeRefusesWhatItCannotStore) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("x\r\n"));
  for (const auto& [original, lines] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"bad id", {"failed 0"}},
           {"", {"failed 0"}},
           {"Q1", {}},
           {"Q1", {""}},
           {"Q1", {"failed\n0"}},
           {"Q1", {std::string(1001, 'x')}},
           {"Q1", std::vector<std::string>(1001, "warned")}}) {
    auto refused = (*writer)->set_notice(original, lines);
    ASSERT_FALSE(refused) << original;
    EXPECT_EQ(refused.error().error_number, EINVAL);
  }
  ASSERT_TRUE((*writer)->commit());  // the writer stays usable: a version 2 file
  EXPECT_TRUE(read_file(dir_ + "/queue/" + (*writer)->id()).starts_with("smtpsd-spool 2\n"));
}

TEST_F(SpoolTest, SyncStateSyncsWhatAppendStateWrote) {
  const std::string id = commit_message(full_envelope(), "x\r\n");
  EXPECT_TRUE(spool_->sync_state(id));  // no state file yet: only state/ is synced
  ASSERT_TRUE(spool_->append_state(id, "failed 0"));
  EXPECT_TRUE(spool_->sync_state(id));
  EXPECT_EQ(spool_->read_state(id), (std::vector<std::string>{"failed 0"}));
  auto refused = spool_->sync_state("../x");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().error_number, EINVAL);
}

TEST_F(SpoolTest, OpenCutsATornLastStateLineSoThatTheNextLineStandsAlone) {
  const std::string torn = commit_message(full_envelope(), "x\r\n");
  const std::string zeros = commit_message(full_envelope(), "y\r\n");
  const std::string whole = commit_message(full_envelope(), "z\r\n");
  const std::string nothing = commit_message(full_envelope(), "w\r\n");
  const std::string long_torn = commit_message(full_envelope(), "v\r\n");
  write_file(dir_ + "/state/" + torn, "delivered 0\nfai");  // a power cut mid-write
  // Its last '\n' three blocks of the backwards scan before the end.
  write_file(dir_ + "/state/" + long_torn, std::string("held\n") + std::string(9000, '\0'));
  write_file(dir_ + "/state/" + zeros, std::string("warned\n") + std::string(9, '\0'));
  write_file(dir_ + "/state/" + whole, "delivered 0\n");
  write_file(dir_ + "/state/" + nothing, "hel");
  spool_.reset();
  auto reopened = Spool::open(dir_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  spool_ = std::move(*reopened);
  EXPECT_EQ(read_file(dir_ + "/state/" + torn), "delivered 0\n");
  EXPECT_EQ(read_file(dir_ + "/state/" + zeros), "warned\n");
  EXPECT_EQ(read_file(dir_ + "/state/" + whole), "delivered 0\n");
  EXPECT_EQ(read_file(dir_ + "/state/" + nothing), "");
  EXPECT_EQ(read_file(dir_ + "/state/" + long_torn), "held\n");
  for (const std::string& id : {torn, zeros, whole, nothing})
    ASSERT_TRUE(spool_->append_state(id, "failed 1"));
  EXPECT_EQ(spool_->read_state(torn), (std::vector<std::string>{"delivered 0", "failed 1"}));
  EXPECT_EQ(spool_->read_state(zeros), (std::vector<std::string>{"warned", "failed 1"}));
  EXPECT_EQ(spool_->read_state(nothing), (std::vector<std::string>{"failed 1"}));
}

TEST_F(SpoolTest, MarkHeldWritesTheHoldBeforeTheMessageIsPublished) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("x\r\n"));
  ASSERT_TRUE((*writer)->mark_held());
  const std::string id = (*writer)->id();
  EXPECT_FALSE(spool_->is_held(id));  // nothing on disk before the commit
  ASSERT_TRUE((*writer)->flush_to_log());
  EXPECT_TRUE(spool_->is_held(id));
  EXPECT_TRUE(spool_->list().empty());  // still in tmp/
  ASSERT_TRUE((*writer)->sync_log());
  ASSERT_TRUE((*writer)->publish());
  (*writer)->mark_committed();
  EXPECT_TRUE(spool_->is_held(id));
  ASSERT_TRUE(spool_->append_state(id, "released"));
  EXPECT_FALSE(spool_->is_held(id));
}

// A removed small message's file is kept in spare/ and the next message is written into
// it (no inode made or freed); it holds exactly the new message. A large one is unlinked,
// and a start empties spare/.
// Past its 64 KiB buffer a writer keeps the message in memory (up to 256 KiB) while the
// spool's budget lasts: no tmp/ file, finished from memory, committed whole from memory; a
// writer the budget cannot serve, or a larger message, writes its file as before, and
// whatever a writer took goes back.
TEST_F(SpoolTest, AMessageUpTo256KiBStaysInMemoryWhileTheBudgetLasts) {
  spool_->set_memory_budget(192 * 1024);
  std::string content;
  for (int line = 0; content.size() < 200 * 1024; ++line)
    content += "line " + std::to_string(line) + " of a message kept in memory\r\n";
  const auto reads_back = [](const StoredMessage& message) {
    auto reader = MessageReader::open(message);
    EXPECT_TRUE(reader);
    std::string read(reader->size(), '\0');
    EXPECT_TRUE(reader->read(read));
    return read;
  };
  {
    auto in_memory = spool_->begin(full_envelope(), 1);
    ASSERT_TRUE(in_memory);
    for (std::size_t pos = 0; pos < content.size(); pos += 100 * 1024)
      ASSERT_TRUE((*in_memory)->append(std::string_view(content).substr(pos, 100 * 1024)));
    EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
    EXPECT_EQ(spool_->memory_in_use(), 192u * 1024);  // the budget, all of it
    // The budget is spent: the next writer past 64 KiB goes to its file.
    auto on_disk = spool_->begin(full_envelope(), 1);
    ASSERT_TRUE(on_disk);
    ASSERT_TRUE((*on_disk)->append(std::string(100 * 1024, 'd')));
    EXPECT_TRUE(fs::exists(dir_ + "/tmp/" + (*on_disk)->id()));
    EXPECT_EQ(spool_->memory_in_use(), 192u * 1024);
    auto finished = (*in_memory)->finish();
    ASSERT_TRUE(finished) << finished.error().message;
    ASSERT_TRUE(finished->file);
    EXPECT_LT(finished->file->fd, 0);  // read from memory
    EXPECT_EQ(reads_back(*finished), content);
    // Accepted just now: no deliverer can have made a copy of it yet (Maildir does not look
    // for one). Read back from the spool below, it is not.
    EXPECT_TRUE(finished->never_delivered);
    EXPECT_FALSE(fs::exists(dir_ + "/tmp/" + (*in_memory)->id()));
  }
  EXPECT_EQ(spool_->memory_in_use(), 0u);
  EXPECT_EQ(count_spool_entries(dir_ + "/tmp"), 0u);
  // Committed from memory: the queue file and the log record hold it whole.
  spool_->set_memory_budget(Spool::kDefaultMemoryBudget);
  const std::string committed = commit_message(full_envelope(), content);
  EXPECT_EQ(spool_->memory_in_use(), 0u);
  auto loaded = spool_->load(committed);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(reads_back(*loaded), content);
  EXPECT_FALSE(loaded->never_delivered);
  // Over 256 KiB: the file, and the memory taken on the way given back.
  auto large = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(large);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE((*large)->append(std::string(64 * 1024, 'L')));
  EXPECT_TRUE(fs::exists(dir_ + "/tmp/" + (*large)->id()));
  EXPECT_EQ(spool_->memory_in_use(), 0u);
  // Finished through its file: just accepted all the same.
  auto large_finished = (*large)->finish();
  ASSERT_TRUE(large_finished) << large_finished.error().message;
  ASSERT_TRUE(large_finished->file);
  EXPECT_GE(large_finished->file->fd, 0);
  EXPECT_TRUE(large_finished->never_delivered);
}

TEST_F(SpoolTest, ARemovedSmallFileIsReusedForTheNextMessageAndALargeOneIsNot) {
  auto inode = [](const std::string& path) {
    struct stat status {};
    EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
    return status.st_ino;
  };
  const std::string first = commit_message(full_envelope(), std::string(3000, 'a') + "\r\n");
  const auto first_inode = inode(dir_ + "/queue/" + first);
  auto first_loaded = spool_->load(first);  // as `smtpsctl queue cat` holds it
  ASSERT_TRUE(first_loaded);
  EXPECT_TRUE(spool_->still_queued(*first_loaded));
  ASSERT_TRUE(spool_->remove(first));
  EXPECT_FALSE(fs::exists(dir_ + "/queue/" + first));
  EXPECT_EQ(count_spool_entries(dir_ + "/spare"), 1u);
  const std::string second = commit_message(full_envelope(), "short\r\n");
  EXPECT_EQ(inode(dir_ + "/queue/" + second), first_inode);
  EXPECT_EQ(count_spool_entries(dir_ + "/spare"), 0u);
  // The reader of the first message sees that its file now holds another one.
  EXPECT_FALSE(spool_->still_queued(*first_loaded));
  first_loaded = spool_->load(second);
  ASSERT_TRUE(first_loaded);
  EXPECT_TRUE(spool_->still_queued(*first_loaded));
  {
    auto loaded = spool_->load(second);
    ASSERT_TRUE(loaded) << loaded.error().message;
    auto reader = MessageReader::open(*loaded);
    ASSERT_TRUE(reader);
    std::string content(reader->size(), '\0');
    ASSERT_TRUE(reader->read(content));
    EXPECT_EQ(content, "short\r\n");
    EXPECT_LT(fs::file_size(dir_ + "/queue/" + second), 3000u);
  }
  const std::string large = commit_message(full_envelope(), std::string(100000, 'b') + "\r\n");
  ASSERT_TRUE(spool_->remove(large));
  EXPECT_EQ(count_spool_entries(dir_ + "/spare"), 0u);
  ASSERT_TRUE(spool_->remove(second));
  EXPECT_EQ(count_spool_entries(dir_ + "/spare"), 1u);
  spool_.reset();
  auto reopened = Spool::open(dir_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  spool_ = std::move(*reopened);
  EXPECT_EQ(count_spool_entries(dir_ + "/spare"), 0u);
}

TEST_F(SpoolTest, MessageReaderReadsAnyBufferSizeAndNoticesAShortenedFile) {
  auto writer = spool_->begin(full_envelope(), 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append(kReceived + kHeader + kBody));
  ASSERT_TRUE((*writer)->replace_header_section(0, "X-Added: 1\r\n"));
  ASSERT_TRUE((*writer)->commit());
  auto loaded = spool_->load((*writer)->id());
  ASSERT_TRUE(loaded);
  const std::string expected = "X-Added: 1\r\n" + kReceived + kHeader + kBody;
  for (std::size_t size : {1u, 2u, 7u, 12u, 13u, 64u, 4096u}) {
    auto reader = MessageReader::open(*loaded);
    ASSERT_TRUE(reader);
    EXPECT_EQ(reader->size(), expected.size());
    std::string content;
    std::vector<char> buffer(size);
    for (;;) {
      auto got = reader->read(buffer);
      ASSERT_TRUE(got);
      if (*got == 0) break;
      EXPECT_TRUE(*got == size || content.size() + *got == expected.size()) << size;
      content.append(buffer.data(), *got);
    }
    EXPECT_EQ(content, expected) << size;
  }
  // A file cut short (it never is, but a disk can lie) is an error, never a short message.
  auto reader = MessageReader::open(*loaded);
  ASSERT_TRUE(reader);
  ASSERT_EQ(::truncate(loaded->path.c_str(), static_cast<off_t>(fs::file_size(loaded->path) - 5)),
            0);
  char buffer[65536];
  auto got = reader->read(buffer);
  ASSERT_FALSE(got);
  EXPECT_FALSE(got.error().transient);
  // Opened by its path (no descriptor from load()), the short file is refused at once.
  loaded->file.reset();
  auto reopened = MessageReader::open(*loaded);
  ASSERT_FALSE(reopened);
  EXPECT_FALSE(reopened.error().transient);
  EXPECT_NE(reopened.error().message.find("shorter"), std::string::npos);
}

}  // namespace
}  // namespace queue
