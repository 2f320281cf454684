// group_commit_test.cpp — queue::GroupCommitter: many sessions' commits batched onto a few
// committer threads; every done callback runs once, success only for durable messages.
#include "queue/group_commit.h"

#include "obs/log_capture.h"

#include "queue/message_reader.h"
#include "queue/spool_log.h"
#include "support/open_files.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <span>
#include <thread>

#include <gtest/gtest.h>

namespace queue {
namespace {

namespace fs = std::filesystem;

std::size_t count_entries(const std::string& path) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(path))
    ++count;
  return count;
}

smtp::Envelope simple_envelope() {
  smtp::Envelope envelope;
  envelope.reverse_path = "sender@example.com";
  envelope.recipients = {{"rcpt@example.com", "", ""}};
  return envelope;
}

// Counts done callbacks; wait() returns once n arrived (or after 10 s).
class Completions {
 public:
  void add(bool ok, std::thread::id thread) {
    std::lock_guard lock(mutex_);
    (ok ? succeeded_ : failed_) += 1;
    threads_.insert(thread);
    changed_.notify_all();
  }
  bool wait(std::size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10),
                             [&] { return succeeded_ + failed_ >= n; });
  }
  std::size_t succeeded() const {
    std::lock_guard lock(mutex_);
    return succeeded_;
  }
  std::size_t failed() const {
    std::lock_guard lock(mutex_);
    return failed_;
  }
  std::set<std::thread::id> threads() const {
    std::lock_guard lock(mutex_);
    return threads_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t succeeded_ = 0;
  std::size_t failed_ = 0;
  std::set<std::thread::id> threads_;
};

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/smtpsd-group-commit-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    auto spool = Spool::open(root_ + "/spool");
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(*spool);
  }
  void TearDown() override {
    spool_.reset();
    fs::remove_all(root_);
  }
  // A writer for a message to these recipients.
  std::unique_ptr<SpoolWriter> begin_writer(const std::vector<std::string>& recipients) {
    smtp::Envelope envelope = simple_envelope();
    envelope.recipients.clear();
    for (const std::string& address : recipients)
      envelope.recipients.push_back({address, "", ""});
    auto writer = spool_->begin(envelope, 1);
    EXPECT_TRUE(writer);
    return std::move(*writer);
  }
  std::string root_;
  std::unique_ptr<Spool> spool_;
};

TEST_F(GroupCommitTest, FiftyWritersFromSeveralThreadsAllLandInQueue) {
  GroupCommitter committer(2);
  Completions completions;
  constexpr int kThreads = 5;
  constexpr int kPerThread = 10;
  std::vector<std::unique_ptr<SpoolWriter>> writers(kThreads * kPerThread);
  std::vector<std::thread> sessions;
  for (int t = 0; t < kThreads; ++t) {
    sessions.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto writer = spool_->begin(simple_envelope(), 1);
        ASSERT_TRUE(writer);
        std::string content = "message " + (*writer)->id() + "\r\n";
        ASSERT_TRUE((*writer)->append(content));
        auto& slot = writers[static_cast<std::size_t>(t * kPerThread + i)];
        slot = std::move(*writer);
        committer.commit_async(*slot, [&](base::Expected<base::Ok, SpoolError> result) {
          completions.add(result.has_value(), std::this_thread::get_id());
        });
      }
    });
  }
  for (auto& session : sessions)
    session.join();
  ASSERT_TRUE(completions.wait(kThreads * kPerThread));
  EXPECT_EQ(completions.succeeded(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(completions.threads().count(std::this_thread::get_id()), 0u);  // committer threads

  EXPECT_EQ(count_entries(root_ + "/spool/queue"), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(count_entries(root_ + "/spool/tmp"), 0u);
  for (const std::string& id : spool_->list()) {
    auto loaded = spool_->load(id);
    ASSERT_TRUE(loaded) << loaded.error().message;
    auto reader = MessageReader::open(*loaded);
    ASSERT_TRUE(reader) << reader.error().message;
    char buffer[256];
    auto got = reader->read(buffer);
    ASSERT_TRUE(got);
    EXPECT_EQ(std::string(buffer, *got), "message " + id + "\r\n");
  }
  writers.clear();  // destroying committed writers keeps their files
  EXPECT_EQ(count_entries(root_ + "/spool/queue"), static_cast<std::size_t>(kThreads * kPerThread));
}

// The commit log's segment stays open from one batch to the next (an open and a close a
// batch cost messages/s, bench/README.md), but not for good: once a committer has had
// nothing to commit for a while it closes it, so that an idle server's spool file system
// can be remounted read-only.
TEST_F(GroupCommitTest, TheLogSegmentStaysOpenBetweenBatchesAndAnIdleCommitterClosesIt) {
  auto segments_open = [&] {
    std::size_t open = 0;
    for (const std::string& file : test_support::open_files_under(root_ + "/spool/log"))
      open += file.ends_with(".seg") ? 1 : 0;
    return open;
  };
  Completions completions;
  auto commit_one = [&](GroupCommitter& committer, std::unique_ptr<SpoolWriter>& writer) {
    writer = begin_writer({"rcpt@example.com"});
    ASSERT_TRUE(writer->append("idle\r\n"));
    committer.commit_async(*writer, [&](base::Expected<base::Ok, SpoolError> result) {
      completions.add(result.has_value(), std::this_thread::get_id());
    });
  };
  std::unique_ptr<SpoolWriter> first;
  std::unique_ptr<SpoolWriter> second;
  {
    GroupCommitter busy(1, std::chrono::hours(1));  // never idle long enough here
    commit_one(busy, first);
    ASSERT_TRUE(completions.wait(1));
    EXPECT_EQ(segments_open(), 1u) << "closed after its batch: the next one opens it again";
  }
  GroupCommitter committer(1, std::chrono::milliseconds(50));
  commit_one(committer, second);
  ASSERT_TRUE(completions.wait(2));
  EXPECT_EQ(completions.succeeded(), 2u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (segments_open() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(segments_open(), 0u) << "an idle committer left the log segment open for writing";
  EXPECT_EQ(spool_->list().size(), 2u);
}

TEST_F(GroupCommitTest, ConcurrentCommitsShareDirectoryFsyncs) {
  // 100 messages queued at once by one thread: the committer thread finds most of them
  // pending together and syncs queue/ once per batch, not once per message.
  GroupCommitter committer(1);
  Completions completions;
  constexpr std::size_t kMessages = 100;
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (std::size_t i = 0; i < kMessages; ++i) {
    auto writer = spool_->begin(simple_envelope(), 1);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append("batched\r\n"));
    writers.push_back(std::move(*writer));
  }
  for (auto& writer : writers) {
    committer.commit_async(*writer, [&](base::Expected<base::Ok, SpoolError> result) {
      completions.add(result.has_value(), std::this_thread::get_id());
    });
  }
  ASSERT_TRUE(completions.wait(kMessages));
  EXPECT_EQ(completions.succeeded(), kMessages);
  GroupCommitter::Stats stats = committer.stats();
  EXPECT_EQ(stats.messages, kMessages);
  EXPECT_GE(stats.syncs, 1u);
  // The first batch may hold a single message; the rest arrive while it syncs.
  EXPECT_LT(stats.syncs, kMessages / 2) << "batching did not happen";
}

TEST_F(GroupCommitTest, AFailedWriterFailsAloneAndIsRemoved) {
  GroupCommitter committer(1);
  Completions completions;
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (int i = 0; i < 5; ++i) {
    auto writer = spool_->begin(simple_envelope(), 1);
    ASSERT_TRUE(writer);
    writers.push_back(std::move(*writer));
  }
  writers[2]->abort();  // its flush_to_log() will fail
  std::vector<std::optional<bool>> results(writers.size());
  std::mutex results_mutex;
  for (std::size_t i = 0; i < writers.size(); ++i) {
    committer.commit_async(*writers[i], [&, i](base::Expected<base::Ok, SpoolError> result) {
      {
        std::lock_guard lock(results_mutex);
        results[i] = result.has_value();
      }
      completions.add(result.has_value(), std::this_thread::get_id());
    });
  }
  ASSERT_TRUE(completions.wait(writers.size()));
  EXPECT_EQ(completions.failed(), 1u);
  std::lock_guard lock(results_mutex);
  EXPECT_EQ(results[2], std::optional<bool>(false));
  EXPECT_EQ(count_entries(root_ + "/spool/queue"), 4u);
  EXPECT_EQ(count_entries(root_ + "/spool/tmp"), 0u);
}

TEST_F(GroupCommitTest, StopCommitsWhatIsQueuedThenRefuses) {
  auto committer = std::make_unique<GroupCommitter>(2);
  Completions completions;
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (int i = 0; i < 20; ++i) {
    auto writer = spool_->begin(simple_envelope(), 1);
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->append(std::string(1000, 'x')));
    writers.push_back(std::move(*writer));
    committer->commit_async(*writers.back(), [&](base::Expected<base::Ok, SpoolError> result) {
      completions.add(result.has_value(), std::this_thread::get_id());
    });
  }
  committer->stop();  // drains: every queued commit completes before the threads exit
  EXPECT_EQ(completions.succeeded(), 20u);
  EXPECT_EQ(count_entries(root_ + "/spool/queue"), 20u);

  auto late = spool_->begin(simple_envelope(), 1);
  ASSERT_TRUE(late);
  bool called = false;
  committer->commit_async(**late, [&](base::Expected<base::Ok, SpoolError> result) {
    called = true;
    EXPECT_FALSE(result.has_value());
  });
  EXPECT_TRUE(called);  // at once, on this thread
  // The writer is left to its owner, whole: it still commits by itself.
  ASSERT_TRUE((*late)->commit());
  EXPECT_EQ(count_entries(root_ + "/spool/queue"), 21u);
  committer.reset();  // a second stop() is harmless
}

TEST_F(GroupCommitTest, ADirectoryFailureFailsTheBatchAndRemovesItsFiles) {
  // Without queue/ the renames fail: every message of the batch reports an error and no
  // file is left behind in tmp/ (the session then answers 4xx).
  GroupCommitter committer(1);
  Completions completions;
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (int i = 0; i < 3; ++i) {
    auto writer = spool_->begin(simple_envelope(), 1);
    ASSERT_TRUE(writer);
    writers.push_back(std::move(*writer));
  }
  ASSERT_EQ(::rmdir((root_ + "/spool/queue").c_str()), 0);
  for (auto& writer : writers) {
    committer.commit_async(*writer, [&](base::Expected<base::Ok, SpoolError> result) {
      completions.add(result.has_value(), std::this_thread::get_id());
    });
  }
  ASSERT_TRUE(completions.wait(3));
  EXPECT_EQ(completions.failed(), 3u);
  EXPECT_EQ(count_entries(root_ + "/spool/tmp"), 0u);
}

// Delivery at acceptance: the deliverer sees the finished message (late edits included); a
// message it delivers to every recipient never reaches the log or queue/; the others are
// committed as usual, with "delivered N" for the recipients that were done.
TEST_F(GroupCommitTest, ADelivererTakesWholeMessagesAndLeavesTheRestToTheQueue) {
  GroupCommitter committer(1);
  std::mutex seen_mutex;
  std::vector<std::string> seen;  // "<id> <content> <recipients>" as the deliverer read them
  auto one = [&](const StoredMessage& message) -> std::optional<std::vector<bool>> {
    auto reader = MessageReader::open(message);
    EXPECT_TRUE(reader) << reader.error().message;
    std::string content(reader->size(), '\0');
    auto got = reader->read(std::span<char>(content.data(), content.size()));
    EXPECT_TRUE(got);
    std::lock_guard lock(seen_mutex);
    seen.push_back(message.id + " " + content + " " +
                   std::to_string(message.envelope.recipients.size()));
    const std::string& first = message.envelope.recipients.front().address;
    if (first == "queue@example.com") return std::nullopt;  // not for delivery now
    std::vector<bool> done(message.envelope.recipients.size(), true);
    if (first == "half@example.com") done.back() = false;
    return done;
  };
  std::size_t batches = 0;
  committer.set_deliverer([&](std::span<const StoredMessage> messages) {
    ++batches;  // one committer thread: one call at a time
    std::vector<std::optional<std::vector<bool>>> results;
    for (const StoredMessage& message : messages)
      results.push_back(one(message));
    return results;
  });
  auto begin = [&](std::vector<std::string> recipients) { return begin_writer(recipients); };
  auto all = begin({"all@example.com", "b@example.com"});
  ASSERT_TRUE(all->append("Subject: x\r\n\r\nbody\r\n"));
  ASSERT_TRUE(all->replace_header_section(0, "X-Late: 1\r\n"));  // read back as delivered
  auto half = begin({"half@example.com", "b@example.com"});
  ASSERT_TRUE(half->append("half\r\n"));
  auto queued = begin({"queue@example.com"});
  ASSERT_TRUE(queued->append("queued\r\n"));
  // Past the write buffer: finished through the file, then logged from it (its CRC).
  const std::string big_content = "Subject: big\r\n\r\n" + std::string(200 * 1024, 'b') + "\r\n";
  auto big = begin({"queue@example.com"});
  ASSERT_TRUE(big->append(big_content));
  ASSERT_TRUE(big->replace_header_section(0, "X-Late: 2\r\n"));
  auto held = begin({"all@example.com"});
  ASSERT_TRUE(held->append("held\r\n"));
  ASSERT_TRUE(held->mark_held());
  Completions completions;
  for (SpoolWriter* writer : {all.get(), half.get(), queued.get(), held.get(), big.get()}) {
    committer.commit_async(*writer, [&](base::Expected<base::Ok, SpoolError> result) {
      completions.add(result.has_value(), std::this_thread::get_id());
    });
  }
  ASSERT_TRUE(completions.wait(5));
  EXPECT_EQ(completions.succeeded(), 5u);
  {
    std::lock_guard lock(seen_mutex);
    EXPECT_EQ(seen.size(), 4u);  // the held message is never offered
    EXPECT_NE(std::find(seen.begin(), seen.end(),
                        all->id() + " X-Late: 1\r\nSubject: x\r\n\r\nbody\r\n 2"),
              seen.end());
  }
  EXPECT_TRUE(all->delivered());
  EXPECT_FALSE(half->delivered());
  EXPECT_FALSE(queued->delivered());
  EXPECT_FALSE(held->delivered());
  std::vector<std::string> expected = {half->id(), queued->id(), held->id(), big->id()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(spool_->list(), expected);
  EXPECT_EQ(count_entries(root_ + "/spool/tmp"), 0u);
  EXPECT_FALSE(spool_->log().live_length(all->id()));  // no record in the log
  EXPECT_EQ(spool_->read_state(half->id()), std::vector<std::string>{"delivered 0"});
  EXPECT_TRUE(spool_->read_state(queued->id()).empty());
  EXPECT_TRUE(spool_->is_held(held->id()));
  EXPECT_EQ(committer.stats().delivered, 1u);
  EXPECT_GE(batches, 1u);
  auto next = begin({"queue@example.com"});
  ASSERT_TRUE(next->append("next\r\n"));
  ASSERT_TRUE(next->commit());
  auto loaded = spool_->load(next->id());
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->content_size, 6u);
  next.reset();
  // What went to the queue after finish() is whole, and the log agrees with it: a spool
  // opened again rebuilds queue/ from the log (here: the big message's file removed).
  const std::string big_id = big->id();
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (auto* writer : {&all, &half, &queued, &held, &big})
    writers.push_back(std::move(*writer));
  writers.clear();
  ASSERT_EQ(::unlink((root_ + "/spool/queue/" + big_id).c_str()), 0);
  committer.stop();  // its thread may close the spool's log segment until then
  spool_.reset();
  auto reopened = Spool::open(root_ + "/spool");
  ASSERT_TRUE(reopened) << reopened.error().message;
  spool_ = std::move(*reopened);
  auto loaded_big = spool_->load(big_id);
  ASSERT_TRUE(loaded_big) << loaded_big.error().message;
  auto big_reader = MessageReader::open(*loaded_big);
  ASSERT_TRUE(big_reader);
  std::string read_back(big_reader->size(), '\0');
  ASSERT_TRUE(big_reader->read(std::span<char>(read_back.data(), read_back.size())));
  EXPECT_EQ(read_back, "X-Late: 2\r\n" + big_content);
}

// The reply after the log: each message the deliverer takes is answered once its record is
// durable in the log, before any copy is made (the deliverer here waits until every answer
// came); then the deliverer's batch, a D record for what it delivered whole, and queue/ (with
// the state lines) for the rest, handed to queued(). A message in memory never had a file
// until then; one the deliverer does not take goes the usual way; a queue file that cannot be
// written yet is written once it can.
TEST_F(GroupCommitTest, TheReplyAfterTheLogComesBeforeTheCopiesAndTheQueueGetsTheRest) {
  std::mutex gate_mutex;
  std::condition_variable gate_changed;
  bool open = false;
  std::vector<std::string> offered;  // ids, in the order the deliverer saw them
  std::mutex queued_mutex;
  std::condition_variable queued_changed;
  std::vector<std::string> queued_ids;
  auto wait_queued = [&](std::size_t count) {
    std::unique_lock lock(queued_mutex);
    return queued_changed.wait_for(lock, std::chrono::seconds(10),
                                   [&] { return queued_ids.size() >= count; });
  };
  GroupCommitter committer(1);  // after what its threads use: destroyed first
  committer.set_deliverer([&](std::span<const StoredMessage> messages) {
    std::unique_lock lock(gate_mutex);
    gate_changed.wait_for(lock, std::chrono::seconds(20), [&] { return open; });
    std::vector<std::optional<std::vector<bool>>> results;
    for (const StoredMessage& message : messages) {
      offered.push_back(message.id);
      const std::string& first = message.envelope.recipients.front().address;
      if (first == "later@example.com") {  // taken, but not for delivery after all
        results.emplace_back(std::nullopt);
        continue;
      }
      std::vector<bool> done(message.envelope.recipients.size(), true);
      if (first == "half@example.com") done.back() = false;
      results.emplace_back(std::move(done));
    }
    return results;
  });
  committer.set_reply_after_log(
      [&](const std::string& id) {
        std::lock_guard lock(queued_mutex);
        queued_ids.push_back(id);
        queued_changed.notify_all();
      },
      [](const StoredMessage& message) {
        return message.envelope.recipients.front().address != "queue@example.com";
      });
  auto begin = [&](std::vector<std::string> recipients) { return begin_writer(recipients); };
  auto all = begin({"all@example.com", "b@example.com"});
  ASSERT_TRUE(all->append("Subject: x\r\n\r\nbody\r\n"));
  auto half = begin({"half@example.com", "b@example.com"});
  ASSERT_TRUE(half->append("half\r\n"));
  auto queued = begin({"queue@example.com"});
  ASSERT_TRUE(queued->append("queued\r\n"));
  auto later = begin({"later@example.com"});
  ASSERT_TRUE(later->append("later\r\n"));
  // Over the 256 KiB a writer keeps in memory: a file, in queue/ before the reply.
  auto big = begin({"all@example.com"});
  ASSERT_TRUE(big->append("Subject: big\r\n\r\n" + std::string(300 * 1024, 'b') + "\r\n"));
  auto held = begin({"all@example.com"});
  ASSERT_TRUE(held->append("held\r\n"));
  ASSERT_TRUE(held->mark_held());
  // later's queue file cannot be written at first (a directory where it is made).
  const std::string in_the_way = root_ + "/spool/tmp/" + later->id();
  ASSERT_TRUE(fs::create_directory(in_the_way));
  Completions completions;
  const std::vector<SpoolWriter*> writers = {all.get(),   half.get(), queued.get(),
                                             later.get(), big.get(),  held.get()};
  for (SpoolWriter* writer : writers) {
    committer.commit_async(*writer, [&](base::Expected<base::Ok, SpoolError> result) {
      completions.add(result.has_value(), std::this_thread::get_id());
    });
  }
  const bool answered = completions.wait(writers.size());  // while the deliverer waits
  // Answered, in the log, and not delivered yet (non-fatal checks: the gate opens after).
  EXPECT_EQ(completions.succeeded(), writers.size());
  for (SpoolWriter* writer : {all.get(), half.get(), later.get(), big.get()}) {
    EXPECT_TRUE(writer->taken()) << writer->id();
    EXPECT_FALSE(writer->delivered());
    EXPECT_TRUE(spool_->log().live_length(writer->id())) << writer->id();
  }
  EXPECT_FALSE(queued->taken());
  EXPECT_FALSE(held->taken());
  {
    std::lock_guard lock(gate_mutex);
    open = true;
  }
  gate_changed.notify_all();
  ASSERT_TRUE(answered);
  ASSERT_TRUE(wait_queued(1));  // half's
  // later's once its queue file could be written: not yet.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  {
    std::lock_guard lock(queued_mutex);
    EXPECT_EQ(queued_ids, std::vector<std::string>{half->id()});
  }
  fs::remove(in_the_way);
  ASSERT_TRUE(wait_queued(2));
  committer.stop();  // the delivery thread has ended: nothing more happens
  EXPECT_EQ(offered, (std::vector<std::string>{all->id(), half->id(), later->id(), big->id()}));
  EXPECT_EQ(queued_ids, (std::vector<std::string>{half->id(), later->id()}));
  std::vector<std::string> in_queue = {half->id(), queued->id(), later->id(), held->id()};
  std::sort(in_queue.begin(), in_queue.end());
  EXPECT_EQ(spool_->list(), in_queue);
  EXPECT_EQ(spool_->read_state(half->id()), std::vector<std::string>{"delivered 0"});
  for (SpoolWriter* writer : {half.get(), later.get()}) {
    auto loaded = spool_->load(writer->id());
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->content_size, writer == half.get() ? 6u : 7u);
  }
  EXPECT_FALSE(spool_->log().live_length(all->id()));
  EXPECT_FALSE(spool_->log().live_length(big->id()));
  EXPECT_EQ(committer.stats().delivered, 2u);
  // The log agrees: opened again, the spool has the same queue, and nothing comes back.
  const std::vector<std::string> before = spool_->list();
  for (auto* writer : {&all, &half, &queued, &later, &big, &held})
    writer->reset();
  spool_.reset();
  auto reopened = Spool::open(root_ + "/spool");
  ASSERT_TRUE(reopened) << reopened.error().message;
  spool_ = std::move(*reopened);
  EXPECT_EQ(spool_->list(), before);
}

// A "delivered N" line that cannot be written does not fail the message (its copies are
// made, its 250 stands): it is committed, the queue tries that recipient again, and the log
// says so with the id.
TEST_F(GroupCommitTest, AStateLineThatCannotBeWrittenIsLoggedAndTheMessageStillCommits) {
  obs_test::LogCapture log;
  GroupCommitter committer(1);
  committer.set_deliverer([](std::span<const StoredMessage> messages) {
    std::vector<std::optional<std::vector<bool>>> results;
    for (const StoredMessage& message : messages) {
      std::vector<bool> done(message.envelope.recipients.size(), true);
      done.back() = false;  // the last recipient is left to the queue
      results.push_back(done);
    }
    return results;
  });
  smtp::Envelope envelope = simple_envelope();
  envelope.recipients = {{"a@example.com", "", ""}, {"b@example.com", "", ""}};
  auto writer = spool_->begin(envelope, 1);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("x\r\n"));
  // state/ gone under the open spool: appending a line to state/<id> fails (ENOENT).
  std::filesystem::remove_all(root_ + "/spool/state");
  Completions completions;
  committer.commit_async(**writer, [&](base::Expected<base::Ok, SpoolError> result) {
    completions.add(result.has_value(), std::this_thread::get_id());
  });
  ASSERT_TRUE(completions.wait(1));
  EXPECT_EQ(completions.succeeded(), 1u);
  EXPECT_EQ(spool_->list(), std::vector<std::string>{(*writer)->id()});
  EXPECT_EQ(log.count("event=state_not_written id=" + (*writer)->id() + " state=\"delivered 0\""),
            1u)
      << log.all();
}

// However a test that holds a batch open ends (an ASSERT returns early), the batch is released
// and the committers stopped before the locals their threads use go away: declared after them.
class ReleaseThenStop {
 public:
  ReleaseThenStop(GroupCommitter& committer, std::mutex& mutex, std::condition_variable& changed,
                  bool& released)
      : committer_(committer), mutex_(mutex), changed_(changed), released_(released) {}
  ~ReleaseThenStop() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    changed_.notify_all();
    committer_.stop();
  }
  ReleaseThenStop(const ReleaseThenStop&) = delete;
  ReleaseThenStop& operator=(const ReleaseThenStop&) = delete;

 private:
  GroupCommitter& committer_;
  std::mutex& mutex_;
  std::condition_variable& changed_;
  bool& released_;
};

// Two committers, the second held back (the daemon's setting where there is no journal): while
// the first is in a small batch, what comes next waits for it (taking it would split the
// batch), unless that batch runs past the set time; beside a large batch it goes at once.
TEST_F(GroupCommitTest, ASecondCommitterWaitsForASmallBatchOnlyUntilItRunsLong) {
  constexpr auto kAfter = std::chrono::milliseconds(1000);
  for (const bool large : {false, true}) {
    SCOPED_TRACE(large ? "the first batch is large" : "the first batch is small");
    GroupCommitter committer(2, GroupCommitter::kLogIdleClose, kAfter);
    std::mutex mutex;
    std::condition_variable changed;
    bool released = false;
    std::vector<std::string> seen;  // the first recipient of each message offered
    committer.set_deliverer([&](std::span<const StoredMessage> messages) {
      std::unique_lock lock(mutex);
      for (const StoredMessage& message : messages)
        seen.push_back(message.envelope.recipients.front().address);
      changed.notify_all();
      if (seen.front() == "first@example.com" && seen.size() == messages.size())
        changed.wait(lock, [&] { return released; });  // the first batch runs until released
      return std::vector<std::optional<std::vector<bool>>>(messages.size(), std::nullopt);
    });
    auto first = begin_writer({"first@example.com"});
    ASSERT_TRUE(first->append(large ? std::string(GroupCommitter::kLargeBatch, 'x') : "x\r\n"));
    auto second = begin_writer({"second@example.com"});
    ASSERT_TRUE(second->append("y\r\n"));
    Completions completions;
    auto done = [&](base::Expected<base::Ok, SpoolError> result) {
      completions.add(result.has_value(), std::this_thread::get_id());
    };
    ReleaseThenStop finish(committer, mutex, changed, released);
    committer.commit_async(*first, done);
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return !seen.empty(); }));
    const auto offered = std::chrono::steady_clock::now();
    committer.commit_async(*second, done);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return seen.size() == 2; }));
    const auto waited = std::chrono::steady_clock::now() - offered;
    if (large) {
      EXPECT_LT(waited, kAfter * 9 / 10);
    } else {
      EXPECT_GE(waited, kAfter * 9 / 10);  // the first batch began just before "offered"
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"first@example.com", "second@example.com"}));
    released = true;
    changed.notify_all();
    lock.unlock();
    ASSERT_TRUE(completions.wait(2));
    EXPECT_EQ(completions.succeeded(), 2u);
  }
}

// Once the second committer waits for its turn beside a small batch, the messages that come
// meanwhile wake no committer: the first takes them when its batch ends, the second goes at
// its turn. (Woken by each, the waiting thread slept again at once: a switch of thread a
// message, a fifth of the server's at 100 x 8.)
TEST_F(GroupCommitTest, MessagesBesideASmallBatchWakeNoCommitterOnceOneWaitsItsTurn) {
  constexpr std::size_t kMore = 20;
  GroupCommitter committer(2, GroupCommitter::kLogIdleClose, std::chrono::seconds(10));
  std::mutex mutex;
  std::condition_variable changed;
  bool released = false;
  std::size_t batches = 0;
  committer.set_deliverer([&](std::span<const StoredMessage> messages) {
    std::unique_lock lock(mutex);
    if (++batches == 1) {
      changed.notify_all();
      changed.wait(lock, [&] { return released; });  // the first batch runs until released
    }
    return std::vector<std::optional<std::vector<bool>>>(messages.size(), std::nullopt);
  });
  std::vector<std::unique_ptr<SpoolWriter>> writers;
  for (std::size_t i = 0; i < kMore + 2; ++i) {
    writers.push_back(begin_writer({"rcpt" + std::to_string(i) + "@example.com"}));
    ASSERT_TRUE(writers.back()->append("x\r\n"));
  }
  Completions completions;
  auto done = [&](base::Expected<base::Ok, SpoolError> result) {
    completions.add(result.has_value(), std::this_thread::get_id());
  };
  ReleaseThenStop finish(committer, mutex, changed, released);
  committer.commit_async(*writers[0], done);
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return batches == 1; }));
  }
  committer.commit_async(*writers[1], done);  // the second committer waits its turn for it
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (committer.stats().waiting_for_turn == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(committer.stats().waiting_for_turn, 1u);
  const std::uint64_t before = committer.stats().wakeups;
  for (std::size_t i = 2; i < writers.size(); ++i) {
    committer.commit_async(*writers[i], done);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // time to wake, were it woken
  }
  EXPECT_LE(committer.stats().wakeups - before, 1u);  // a spurious wake-up at most
  {
    std::lock_guard lock(mutex);
    released = true;
  }
  changed.notify_all();
  ASSERT_TRUE(completions.wait(writers.size()));
  EXPECT_EQ(completions.succeeded(), writers.size());
  EXPECT_EQ(batches, 2u);  // the first committer took all that gathered, in one batch
}

}  // namespace
}  // namespace queue
