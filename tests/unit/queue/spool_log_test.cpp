// The spool's commit log (queue/spool_log.h): records, recovery of queue/ from the log after
// what a power cut can leave, the upgrade from a spool without a log, segment reclaim and
// compaction.
#include "queue/spool_log.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "queue/message_reader.h"
#include "queue/spool.h"
#include "support/open_files.h"

namespace queue {
namespace {

namespace fs = std::filesystem;

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

std::string record(char kind, const std::string& id, const std::string& payload) {
  return format_log_record_line(kind, id, payload.size(),
                                log_record_crc(kind, id, payload.size(), payload)) +
         payload;
}

TEST(SpoolLogRecords, ParsesCompleteRecordsAndStopsAtTheFirstBadOne) {
  const std::string header(SpoolLog::kSegmentHeader);
  const std::string good = header + record('M', "abc1", "hello\n") + record('D', "abc1", "") +
                           record('M', "abc2", std::string(5000, 'x'));
  std::uint64_t end = 0;
  std::string error;
  auto records = parse_log_records(good, end, error);
  ASSERT_EQ(records.size(), 3u) << error;
  EXPECT_EQ(error, "");
  EXPECT_EQ(end, good.size());
  EXPECT_EQ(records[0].kind, 'M');
  EXPECT_EQ(records[0].id, "abc1");
  EXPECT_EQ(good.substr(records[0].payload_offset, records[0].length), "hello\n");
  EXPECT_EQ(records[1].kind, 'D');
  EXPECT_EQ(records[2].length, 5000u);

  // A power cut in the middle of the last record (torn at any octet): the others stay.
  const std::size_t last_start = good.size() - record('M', "abc2", std::string(5000, 'x')).size();
  for (std::size_t cut = last_start + 1; cut < good.size(); cut += 97) {
    records = parse_log_records(std::string_view(good).substr(0, cut), end, error);
    EXPECT_EQ(records.size(), 2u) << cut;
    EXPECT_EQ(end, last_start) << cut;
    EXPECT_NE(error, "") << cut;
  }
  // A flipped octet in a payload, or in a line: the CRC or the grammar refuses it.
  std::string flipped = good;
  flipped[last_start + 60] ^= 0x20;
  records = parse_log_records(flipped, end, error);
  EXPECT_EQ(records.size(), 2u);
  EXPECT_NE(error.find("CRC"), std::string::npos) << error;
  flipped = good;
  flipped[header.size() + 2] = '/';  // the id of the first record
  EXPECT_TRUE(parse_log_records(flipped, end, error).empty());
  // Zeros where a record should start (a file extended without its data): stop there.
  records = parse_log_records(good + std::string(4096, '\0'), end, error);
  EXPECT_EQ(records.size(), 3u);
  EXPECT_EQ(end, good.size());
  // Not a segment at all.
  EXPECT_TRUE(parse_log_records("garbage", end, error).empty());
  EXPECT_EQ(error, "no segment header");
}

class SpoolLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/smtpsd-spool-log-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    dir_ = root_ + "/spool";
    reopen();
  }
  void TearDown() override {
    spool_.reset();
    fs::remove_all(root_);
  }
  void reopen(std::uint64_t segment_size = 0,
              std::chrono::seconds compact_after = kLogCompactAfter) {
    spool_.reset();
    auto spool = Spool::open(dir_, segment_size, compact_after);
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(*spool);
  }
  std::string commit(const std::string& content) {
    smtp::Envelope envelope;
    envelope.reverse_path = "a@example.org";
    envelope.recipients = {{"b@example.com", "", ""}};
    auto writer = spool_->begin(envelope, 1700000000);
    EXPECT_TRUE(writer) << writer.error().message;
    EXPECT_TRUE((*writer)->append(content));
    auto committed = (*writer)->commit();
    EXPECT_TRUE(committed) << committed.error().message;
    return (*writer)->id();
  }
  std::size_t segments() const {
    std::size_t count = 0;
    for (const auto& entry : fs::directory_iterator(dir_ + "/log"))
      count += entry.path().extension() == ".seg";
    return count;
  }
  std::string queued(const std::string& id) const { return read_file(dir_ + "/queue/" + id); }

  std::string root_;
  std::string dir_;
  std::unique_ptr<Spool> spool_;
};

TEST_F(SpoolLogTest, ACommittedMessageIsInTheLogAsItsQueueFile) {
  const std::string id = commit("Subject: one\r\n\r\nbody\r\n");
  const std::string image = queued(id);
  ASSERT_FALSE(image.empty());
  std::string all;
  for (const auto& entry : fs::directory_iterator(dir_ + "/log"))
    all += read_file(entry.path());
  EXPECT_NE(all.find(format_log_record_line('M', id, image.size(),
                                            log_record_crc('M', id, image.size(), image)) +
                     image),
            std::string::npos);
}

// A large message's record is written from its file, with the CRC its writer computed
// while writing (no read back); after a cut (truncate_content) the file is read back.
TEST_F(SpoolLogTest, ALargeMessageWrittenInPiecesOrCutHasItsRecordAndCrc) {
  smtp::Envelope envelope;
  envelope.reverse_path = "a@example.org";
  envelope.recipients = {{"b@example.com", "", ""}};
  std::vector<std::string> ids;
  for (bool cut : {false, true}) {
    auto writer = spool_->begin(envelope, 1700000000);
    ASSERT_TRUE(writer) << writer.error().message;
    ASSERT_TRUE((*writer)->append("Subject: pieces\r\n\r\n"));
    for (int i = 0; i < 4000; ++i)  // 200 kB through the 64 KiB buffer
      ASSERT_TRUE((*writer)->append("line " + std::to_string(100000 + i) +
                                    " of a message written in pieces, CRLF\r\n"));
    if (cut) {
      ASSERT_TRUE((*writer)->truncate_content(1000));
    }
    ASSERT_TRUE((*writer)->commit());
    ids.push_back((*writer)->id());
  }
  std::string all;
  for (const auto& entry : fs::directory_iterator(dir_ + "/log"))
    all += read_file(entry.path());
  for (const std::string& id : ids) {
    const std::string image = queued(id);
    EXPECT_GT(image.size(), 1000u);
    EXPECT_NE(all.find(format_log_record_line('M', id, image.size(),
                                              log_record_crc('M', id, image.size(), image)) +
                       image),
              std::string::npos)
        << id;
  }
}

TEST_F(SpoolLogTest, QueueFilesAPowerCutLostOrTruncatedComeBackFromTheLog) {
  const std::string kept = commit("Subject: kept\r\n\r\nbody\r\n");
  const std::string lost = commit("Subject: lost\r\n\r\nbody\r\n");
  // Over 2 MiB, lines that differ by position: the log copies a large record in pieces of
  // 1 MiB (each handed to writeback), so a piece lost, doubled or out of place shows.
  std::string body;
  for (int line = 0; body.size() < 2 * 1024 * 1024 + 4097; ++line)
    body += "line " + std::to_string(line) + " of the torn message\r\n";
  const std::string torn = commit("Subject: torn\r\n\r\n" + body);
  const std::string zeroed = commit("Subject: zeroed\r\n\r\nbody\r\n");
  const std::string image_kept = queued(kept), image_lost = queued(lost), image_torn = queued(torn),
                    image_zeroed = queued(zeroed);
  spool_.reset();
  // What a power cut can leave of files that were never fsynced: no entry, a short file,
  // a file of the right size full of zeros (the size made it, the data did not).
  fs::remove(dir_ + "/queue/" + lost);
  fs::resize_file(dir_ + "/queue/" + torn, 4096);
  write_file(dir_ + "/queue/" + zeroed, std::string(image_zeroed.size(), '\0'));
  reopen();
  EXPECT_EQ(queued(kept), image_kept);
  EXPECT_EQ(queued(lost), image_lost);
  EXPECT_EQ(queued(torn), image_torn);
  EXPECT_EQ(queued(zeroed), image_zeroed);
  EXPECT_EQ(spool_->list().size(), 4u);
  auto loaded = spool_->load(torn);
  ASSERT_TRUE(loaded) << loaded.error().message;
}

TEST_F(SpoolLogTest, ARemovedMessageStaysRemovedAndAFileTheLogDoesNotKnowIsMovedAside) {
  const std::string done = commit("Subject: done\r\n\r\nbody\r\n");
  const std::string live = commit("Subject: live\r\n\r\nbody\r\n");
  ASSERT_TRUE(spool_->remove(done));
  spool_.reset();
  write_file(dir_ + "/queue/0123456789ABCDEFstray", "smtpsd-spool 2\nnot acknowledged\n");
  reopen();
  EXPECT_EQ(spool_->list(), std::vector<std::string>{live});
  EXPECT_TRUE(fs::exists(dir_ + "/orphaned/0123456789ABCDEFstray"));
}

// A D record has no ticket: a sync to the last ticket finds every message record durable and
// syncs nothing,
// sync_removals() syncs (the reply after the log relies on it after a batch of copies).
TEST_F(SpoolLogTest, OnlySyncRemovalsMakesADRecordWrittenAfterTheLastSyncDurable) {
  const std::string done = commit("Subject: done\r\n\r\nbody\r\n");
  const std::uint64_t before = spool_->log().syncs();
  ASSERT_TRUE(spool_->remove(done));
  ASSERT_TRUE(spool_->log().sync(spool_->log().last_ticket()));
  EXPECT_EQ(spool_->log().syncs(), before);
  ASSERT_TRUE(spool_->sync_removals());
  EXPECT_EQ(spool_->log().syncs(), before + 1);
}

TEST_F(SpoolLogTest, ASpoolWithoutALogHasItsQueueEnteredIntoANewLog) {
  const std::string id = commit("Subject: before the upgrade\r\n\r\nbody\r\n");
  const std::string image = queued(id);
  spool_.reset();
  fs::remove_all(dir_ + "/log");  // an older smtpsd: fsynced queue files, no log
  reopen();
  EXPECT_EQ(spool_->list(), std::vector<std::string>{id});
  // Now the log has it: a power cut that loses the file after this start is repaired.
  spool_.reset();
  fs::remove(dir_ + "/queue/" + id);
  reopen();
  EXPECT_EQ(queued(id), image);
}

TEST_F(SpoolLogTest, AnImportCutShortLeavesNoLogThatLacksTheQueue) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(commit("Subject: before the upgrade\r\n\r\n" + std::string(3000, 'q') + "\r\n"));
  std::sort(ids.begin(), ids.end());
  const std::string image = queued(ids[2]);
  spool_.reset();
  fs::remove_all(dir_ + "/log");
  // The first start after the upgrade fails in the middle of the import (here: files may
  // not grow past 5000 octets, so the second message does not fit in the log).
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{5000, 5000};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(100);
    ::_exit(Spool::open(dir_) ? 1 : 0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the import should have failed";
  reopen();
  std::vector<std::string> listed = spool_->list();
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, ids);
  EXPECT_FALSE(fs::exists(dir_ + "/orphaned"));
  EXPECT_FALSE(fs::exists(dir_ + "/log.new"));
  spool_.reset();
  fs::remove(dir_ + "/queue/" + ids[2]);
  reopen();
  EXPECT_EQ(queued(ids[2]), image);
}

TEST_F(SpoolLogTest, SegmentsGoWhenTheirMessagesAreDoneAndALongDeferredOneMovesForward) {
  reopen(/*segment_size=*/16 * 1024, /*compact_after=*/std::chrono::seconds(0));
  const std::string body = "Subject: x\r\n\r\n" + std::string(3000, 'z') + "\r\n";
  const std::string deferred = commit(body);
  std::vector<std::string> delivered;
  for (int i = 0; i < 40; ++i)
    delivered.push_back(commit(body));
  EXPECT_GE(segments(), 6u);
  for (const std::string& id : delivered)
    ASSERT_TRUE(spool_->remove(id));
  // The first segment still holds the deferred message, a small part of it: the next
  // segment to start copies it forward, and every segment before it goes.
  for (int i = 0; i < 8; ++i)
    ASSERT_TRUE(spool_->remove(commit(body)));
  EXPECT_LE(segments(), 3u);
  EXPECT_EQ(spool_->list(), std::vector<std::string>{deferred});
  // And it is still recoverable from where it moved.
  const std::string image = queued(deferred);
  spool_.reset();
  fs::remove(dir_ + "/queue/" + deferred);
  reopen(16 * 1024, std::chrono::seconds(0));
  EXPECT_EQ(queued(deferred), image);
}

TEST_F(SpoolLogTest, MessagesOnTheirWayPinTheirSegmentUntilItIsOldEnoughToCompact) {
  // The default age (a minute): segments sealed a moment ago are not compacted, however
  // small their live part (those messages are usually delivered the next moment).
  reopen(/*segment_size=*/16 * 1024);
  const std::string body = "Subject: x\r\n\r\n" + std::string(3000, 'z') + "\r\n";
  const std::string waiting = commit(body);
  for (int i = 0; i < 48; ++i)
    ASSERT_TRUE(spool_->remove(commit(body)));
  EXPECT_GE(segments(), 6u);
  EXPECT_EQ(spool_->list(), std::vector<std::string>{waiting});
}

// A spool on a small file system of its own (tmpfs; mounting needs root, as CI has).
class SpoolLogFullDiskTest : public SpoolLogTest {
 protected:
  static constexpr std::uint64_t kSegment = 64 * 1024;
  void SetUp() override {
    SpoolLogTest::SetUp();
    spool_.reset();
    fs::remove_all(dir_);
    fs::create_directory(dir_);
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
    ASSERT_EQ(::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=1m,mode=0700"), 0)
        << std::strerror(errno);
    mounted_ = true;
    reopen(kSegment);  // the default age: only a low disk makes compaction start early
  }
  void TearDown() override {
    spool_.reset();
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    SpoolLogTest::TearDown();
  }
  // Writes a file until the disk is full.
  void fill_disk() {
    int fd = ::open((dir_ + "/filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    EXPECT_EQ(errno, ENOSPC);
    ::close(fd);
  }
  std::uint64_t newest_segment_size() const {
    std::uint64_t size = 0;
    fs::path newest;
    for (const auto& entry : fs::directory_iterator(dir_ + "/log"))
      if (entry.path().extension() == ".seg" && entry.path() > newest) newest = entry.path();
    if (!newest.empty()) size = fs::file_size(newest);
    return size;
  }
  bool mounted_ = false;
};

TEST_F(SpoolLogFullDiskTest, OneDeferredMessageDoesNotLetDeadSegmentsFillTheDisk) {
  // 2 MB of mail through a 1 MiB disk, one message staying: the segments it pins are
  // compacted as soon as space runs low, without waiting for their age.
  const std::string body = "Subject: x\r\n\r\n" + std::string(3000, 'z') + "\r\n";
  const std::string deferred = commit(body);
  for (int i = 0; i < 700 && !HasFailure(); ++i)
    ASSERT_TRUE(spool_->remove(commit(body)));
  EXPECT_EQ(spool_->list(), std::vector<std::string>{deferred});
}

TEST_F(SpoolLogFullDiskTest, OnAFullDiskTheReserveLetsTheNextSegmentFreeTheDeadOnes) {
  const std::string body = "Subject: x\r\n\r\n" + std::string(3000, 'z') + "\r\n";
  const std::string deferred = commit(body);
  const std::string image = queued(deferred);
  std::string last;  // the message that fills the segment stays queued too
  for (int i = 0; i < 100 && last.empty() && !HasFailure(); ++i) {
    std::string id = commit(body);
    if (newest_segment_size() >= kSegment) {
      last = id;
    } else {
      ASSERT_TRUE(spool_->remove(id));
    }
  }
  ASSERT_FALSE(last.empty());
  EXPECT_TRUE(fs::exists(dir_ + "/log/reserve"));
  fill_disk();
  // The next message starts a segment: it has no room but the reserve's, which lets the
  // deferred message move and the full segment go; then the reserve is made again.
  const std::string next = commit("Subject: next\r\n\r\nfits\r\n");
  std::vector<std::string> expected{deferred, last, next};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(spool_->list(), expected);
  EXPECT_EQ(segments(), 1u);
  EXPECT_TRUE(fs::exists(dir_ + "/log/reserve"));
  spool_.reset();
  fs::remove(dir_ + "/queue/" + deferred);
  reopen(kSegment);
  EXPECT_EQ(queued(deferred), image);
}

// A commit of its own (no committer to close the segment once idle, group_commit_test.cpp),
// a removal and the sync of its D record on an idle spool leave no file of the log open.
TEST_F(SpoolLogTest, AnIdleSpoolHoldsNoFileOpenForWriting) {
  auto expect_none_open = [&](const std::string& after) {
    for (const std::string& file : test_support::open_files_under(dir_ + "/log"))
      ADD_FAILURE() << file << " is open after " << after;
  };
  const std::string id = commit("Subject: one\r\n\r\nbody\r\n");
  expect_none_open("a commit");
  ASSERT_TRUE(spool_->remove(id));
  expect_none_open("a removal");
  const std::uint64_t syncs = spool_->log().syncs();
  ASSERT_TRUE(spool_->sync_removals());
  EXPECT_EQ(spool_->log().syncs(), syncs + 1) << "the D record was not synced";
  expect_none_open("the sync of a D record");
}

}  // namespace
}  // namespace queue
