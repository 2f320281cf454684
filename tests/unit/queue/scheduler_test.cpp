// scheduler_test.cpp — queue::Scheduler with a scripted deliverer over a real spool:
// every recipient delivered then the file removed, transient failures retried on the timer
// queue, restart pickup, DSNs for failures and expiry (never to <>), per-recipient state
// kept across restarts, and the operator commands (hold, release, flush, delete, list).
#include "queue/scheduler.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <span>
#include <thread>

#include <gtest/gtest.h>

#include "../obs/log_capture.h"
#include "base/clock.h"
#include "queue/message_reader.h"

namespace queue {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Answers per recipient address from a script (the last answer repeats); records calls.
class ScriptedDeliverer {
 public:
  void script(const std::string& address, std::vector<DeliveryStatus> answers) {
    std::lock_guard lock(mutex_);
    scripts_[address] = std::move(answers);
  }
  // Deliveries to address wait until open_gate() (a server that does not answer).
  void close_gate(const std::string& address) {
    std::lock_guard lock(mutex_);
    gated_ = address;
  }
  void open_gate() {
    {
      std::lock_guard lock(mutex_);
      gated_.clear();
    }
    gate_.notify_all();
  }
  std::size_t waiting_at_gate() const {
    std::lock_guard lock(mutex_);
    return waiting_;
  }
  DeliveryResult deliver(const StoredMessage& message, std::size_t index) {
    std::unique_lock lock(mutex_);
    const std::string& address = message.envelope.recipients.at(index).address;
    if (address == gated_) {
      ++waiting_;
      gate_.wait(lock, [&] { return gated_ != address; });
      --waiting_;
    }
    if (auto reader = MessageReader::open(message)) {
      std::string text(reader->size(), '\0');
      std::size_t filled = 0;
      while (filled < text.size()) {
        auto got = reader->read(std::span<char>(text).subspan(filled));
        if (!got || *got == 0) break;
        filled += *got;
      }
      contents_[address] = text.substr(0, filled);
    }
    calls_.push_back(message.id + "/" + std::to_string(index));
    senders_[address] = message.envelope.reverse_path;
    if (message.recovered) recovered_.push_back(message.id);
    if (!message.notice_of.empty()) {
      std::string notice = message.id + " about " + message.notice_of + ":";
      for (const std::string& line : message.notice_state)
        notice += " " + line;
      notices_.push_back(notice);
    }
    std::size_t n = counts_[address]++;
    auto it = scripts_.find(address);
    DeliveryStatus status = DeliveryStatus::kDelivered;
    if (it != scripts_.end() && !it->second.empty()) {
      status = it->second[std::min(n, it->second.size() - 1)];
    }
    return DeliveryResult{status, "scripted answer " + std::to_string(n), "test"};
  }
  std::vector<std::string> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  std::vector<std::string> recovered() const {
    std::lock_guard lock(mutex_);
    return recovered_;
  }
  // "<notice id> about <original id>: <state line>..." of each notice delivered.
  std::vector<std::string> notices() const {
    std::lock_guard lock(mutex_);
    return notices_;
  }
  std::string sender_seen_by(const std::string& address) const {
    std::lock_guard lock(mutex_);
    auto it = senders_.find(address);
    return it == senders_.end() ? "(none)" : it->second;
  }
  std::string content_seen_by(const std::string& address) const {
    std::lock_guard lock(mutex_);
    auto it = contents_.find(address);
    return it == contents_.end() ? "(none)" : it->second;
  }
  std::size_t count(const std::string& address) const {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(address);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<DeliveryStatus>> scripts_;
  std::map<std::string, std::size_t> counts_;
  std::vector<std::string> calls_;
  std::vector<std::string> recovered_;           // ids seen with StoredMessage::recovered set
  std::vector<std::string> notices_;             // see notices()
  std::map<std::string, std::string> senders_;   // reverse-path of the last message per address
  std::map<std::string, std::string> contents_;  // content of the last message per address
  std::condition_variable gate_;
  std::string gated_;
  std::size_t waiting_ = 0;
};

template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return predicate();
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/smtpsd-scheduler-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    reopen();
  }
  void TearDown() override {
    spool_.reset();
    fs::remove_all(root_);
  }
  void reopen() {
    spool_.reset();
    auto spool = Spool::open(root_ + "/spool");
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(*spool);
  }
  std::string commit(std::vector<std::string> recipients, std::string sender = "sender@example.com",
                     std::string notify = "", bool authenticated = false) {
    smtp::Envelope envelope;
    envelope.reverse_path = sender;
    envelope.authenticated = authenticated;
    for (auto& address : recipients)
      envelope.recipients.push_back({address, notify, ""});
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    auto writer = spool_->begin(envelope, now);
    EXPECT_TRUE(writer);
    EXPECT_TRUE((*writer)->append("Subject: test\r\n\r\nhello\r\n"));
    EXPECT_TRUE((*writer)->commit());
    return (*writer)->id();
  }
  std::unique_ptr<Scheduler> make_scheduler(SchedulerOptions options = {}) {
    return std::make_unique<Scheduler>(
        *spool_,
        [this](const StoredMessage& message, std::span<const std::size_t> recipients) {
          std::vector<DeliveryResult> results;
          for (std::size_t index : recipients)
            results.push_back(deliverer_.deliver(message, index));
          return results;
        },
        std::move(options));
  }
  // A notice about original as a power cut can leave it: committed, while the lines of the
  // original's state it stands for never reached the disk.
  std::string commit_notice(const std::string& original, std::vector<std::string> lines) {
    smtp::Envelope envelope;
    envelope.recipients.push_back({"sender@example.com", "", ""});
    const std::string id = spool_->new_notice_id(original);
    auto writer = spool_->begin_with_id(id, envelope, 1700000000);
    EXPECT_TRUE(writer);
    EXPECT_TRUE((*writer)->append("Subject: notice\r\n\r\nabout " + original + "\r\n"));
    EXPECT_TRUE((*writer)->set_notice(original, lines));
    EXPECT_TRUE((*writer)->commit());
    return id;
  }
  static SchedulerOptions fast() {
    SchedulerOptions options;
    options.retry_schedule = {10ms};
    return options;
  }

  std::string root_;
  std::unique_ptr<Spool> spool_;
  ScriptedDeliverer deliverer_;
  obs_test::LogCapture log_;  // what the scheduler logs (obs::Log)
};

TEST_F(SchedulerTest, DeliversEveryRecipientThenRemovesTheFile) {
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::string id = commit({"a@example.com", "b@example.com", "c@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_TRUE(eventually([&] { return scheduler->pending() == 0; }));
  EXPECT_EQ(deliverer_.calls(), (std::vector<std::string>{id + "/0", id + "/1", id + "/2"}));
  EXPECT_EQ(log_.count("event=delivered id=" + id), 3u) << log_.all();
  EXPECT_EQ(log_.count("event=delivered id=" + id + " rcpt=a@example.com to=test detail="), 1u)
      << log_.all();
  EXPECT_TRUE(eventually([&] { return log_.count("event=removed id=" + id) == 1; }));
}

TEST_F(SchedulerTest, RetriesATransientFailureThenRemoves) {
  deliverer_.script("flaky@example.com", {DeliveryStatus::kTransient, DeliveryStatus::kTransient,
                                          DeliveryStatus::kDelivered});
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::string id = commit({"ok@example.com", "flaky@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("flaky@example.com"), 3u);
  EXPECT_EQ(deliverer_.count("ok@example.com"), 1u);  // a done recipient is not redone
  EXPECT_EQ(log_.count("event=deferred id=" + id + " rcpt=flaky@example.com"), 2u) << log_.all();
  EXPECT_EQ(log_.count("event=retry id=" + id + " attempts=2 retry_in=10ms"), 1u) << log_.all();
}

TEST_F(SchedulerTest, APermanentFailureCountsAsDone) {
  deliverer_.script("gone@example.com", {DeliveryStatus::kPermanent});
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::string id = commit({"gone@example.com", "ok@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("gone@example.com"), 1u);
  EXPECT_EQ(log_.count("event=failed id=" + id + " rcpt=gone@example.com"), 1u) << log_.all();
}

TEST_F(SchedulerTest, PicksUpMessagesLeftInTheSpoolAtStart) {
  std::string first = commit({"a@example.com"});
  std::string second = commit({"b@example.com", "c@example.com"});
  reopen();  // as after a crash: a new process, the same spool
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.calls(), (std::vector<std::string>{first + "/0", second + "/0",
                                                          second + "/1"}));  // oldest first
  EXPECT_EQ(log_.count("event=recovered count=2"), 1u) << log_.all();
  // The deliverer is told these may have been delivered before the crash.
  EXPECT_EQ(deliverer_.recovered(), (std::vector<std::string>{first, second, second}));
}

TEST_F(SchedulerTest, AFreshMessageIsNotMarkedRecovered) {
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::string id = commit({"a@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.calls(), (std::vector<std::string>{id + "/0"}));
  EXPECT_TRUE(deliverer_.recovered().empty());
}

TEST_F(SchedulerTest, EnqueueOfAMessageAlreadyPickedUpDoesNotDeliverTwice) {
  std::string id = commit({"a@example.com"});
  auto scheduler = make_scheduler(fast());
  scheduler->enqueue(id);  // before start(), and start() finds it in the spool too
  scheduler->start();
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  ASSERT_TRUE(eventually([&] { return scheduler->pending() == 0; }));
  EXPECT_EQ(deliverer_.count("a@example.com"), 1u);
}

TEST_F(SchedulerTest, PermanentFailuresSendOneDsnToTheSenderFromTheNullPath) {
  deliverer_.script("gone1@example.com", {DeliveryStatus::kPermanent});
  deliverer_.script("gone2@example.com", {DeliveryStatus::kPermanent});
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::string id = commit({"gone1@example.com", "ok@example.com", "gone2@example.com"});
  scheduler->enqueue(id);
  // The DSN is itself a queued message, delivered to the original sender.
  ASSERT_TRUE(eventually([&] { return deliverer_.count("sender@example.com") == 1; }))
      << log_.all();
  EXPECT_EQ(deliverer_.sender_seen_by("sender@example.com"), "");  // null reverse-path
  EXPECT_EQ(log_.count("event=dsn id=" + id + " kind=failure"), 1u) << log_.all();
  EXPECT_EQ(log_.count("recipients=2"), 1u) << log_.all();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("ok@example.com"), 1u);
}

TEST_F(SchedulerTest, NoDsnGoesToTheNullReversePath) {
  deliverer_.script("gone@example.com", {DeliveryStatus::kPermanent});
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::string id = commit({"gone@example.com"}, "");
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(log_.count("event=dsn"), 0u) << log_.all();
  EXPECT_EQ(log_.count("event=failed id=" + id), 1u) << log_.all();
}

TEST_F(SchedulerTest, GivesUpAfterTheLifetimeWithAnExpiryDsn) {
  deliverer_.script("down@example.com", {DeliveryStatus::kTransient});
  SchedulerOptions options = fast();
  options.retry_schedule = {200ms};
  options.max_lifetime = 1s;
  auto scheduler = make_scheduler(options);
  scheduler->start();
  std::string id = commit({"down@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return log_.count("event=expired id=" + id) == 1; }, 15s))
      << log_.all();
  ASSERT_TRUE(eventually([&] { return deliverer_.count("sender@example.com") == 1; }))
      << log_.all();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_GE(deliverer_.count("down@example.com"), 2u);  // retried before giving up
  EXPECT_LE(deliverer_.count("down@example.com"), 8u);  // but on the schedule, not in a loop
}

TEST_F(SchedulerTest, ADelayWarningIsSentOnceWhileRetrying) {
  deliverer_.script("slow@example.com", {DeliveryStatus::kTransient, DeliveryStatus::kTransient,
                                         DeliveryStatus::kTransient, DeliveryStatus::kDelivered});
  SchedulerOptions options = fast();
  options.delay_warning = 1ms;
  auto scheduler = make_scheduler(options);
  scheduler->start();
  std::string id = commit({"slow@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return log_.count("event=removed id=" + id) == 1; })) << log_.all();
  EXPECT_EQ(log_.count("event=dsn id=" + id + " kind=delay"), 1u) << log_.all();
  EXPECT_EQ(log_.count("kind=failure"), 0u) << log_.all();
}

TEST_F(SchedulerTest, FinishedRecipientsAreNotDeliveredAgainAfterARestart) {
  deliverer_.script("later@example.com", {DeliveryStatus::kTransient});
  SchedulerOptions options;
  options.retry_schedule = {std::chrono::hours(1)};
  std::string id = commit({"now@example.com", "later@example.com"});
  {
    auto scheduler = make_scheduler(options);
    scheduler->start();
    scheduler->enqueue(id);
    ASSERT_TRUE(eventually([&] { return log_.count("event=retry id=" + id) == 1; })) << log_.all();
  }
  reopen();
  deliverer_.script("later@example.com", {DeliveryStatus::kDelivered});
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("now@example.com"), 1u);
  EXPECT_EQ(deliverer_.count("later@example.com"), 2u);
  EXPECT_TRUE(eventually([&] { return fs::is_empty(root_ + "/spool/state"); }));
}

// A message delivered in one attempt gets no state file, unless its removal fails: then
// the deliveries are recorded, so that the retry of the removal delivers nothing again.
TEST_F(SchedulerTest, ADeliveryIsRecordedWhenTheMessageCannotBeRemoved) {
  const std::string id = commit({"a@example.com"});
  const std::string queued = root_ + "/spool/queue/" + id;
  SchedulerOptions options;
  options.retry_schedule = {std::chrono::hours(1)};
  Scheduler scheduler(
      *spool_,
      [&](const StoredMessage& message, std::span<const std::size_t> recipients) {
        // queue/<id> becomes a directory, which unlink(2) cannot remove, and spare/ (where
        // a small file goes instead) is gone.
        fs::rename(queued, queued + ".moved");
        fs::create_directory(queued);
        fs::remove(root_ + "/spool/spare");
        std::vector<DeliveryResult> results;
        for (std::size_t index : recipients)
          results.push_back(deliverer_.deliver(message, index));
        return results;
      },
      options);
  scheduler.start();
  scheduler.enqueue(id);
  ASSERT_TRUE(eventually([&] { return log_.count("id=" + id + " action=retry") == 1; }))
      << log_.all();
  EXPECT_EQ(spool_->read_state(id), std::vector<std::string>{"delivered 0"});
}

TEST_F(SchedulerTest, ANoticeIsSpooledUnderItsOriginalsIdAndNamesTheStateItStandsFor) {
  deliverer_.script("gone@example.com", {DeliveryStatus::kPermanent});
  deliverer_.script("later@example.com", {DeliveryStatus::kTransient});
  SchedulerOptions options;
  options.retry_schedule = {std::chrono::hours(1)};
  options.delay_warning = 1ms;
  auto scheduler = make_scheduler(options);
  scheduler->start();
  std::string id = commit({"gone@example.com", "later@example.com"});
  scheduler->enqueue(id);
  // A failure notice for the first, a delay notice for the second; the message stays.
  ASSERT_TRUE(eventually([&] { return deliverer_.count("sender@example.com") == 2; }))
      << log_.all();
  std::vector<std::string> notices = deliverer_.notices();
  std::sort(notices.begin(), notices.end(), [](const std::string& a, const std::string& b) {
    return a.substr(a.find(' ')) < b.substr(b.find(' '));
  });
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_TRUE(notices[0].ends_with(" about " + id + ": failed 0")) << notices[0];
  EXPECT_TRUE(notices[1].ends_with(" about " + id + ": warned")) << notices[1];
  for (const std::string& notice : notices) {
    const std::string notice_id = notice.substr(0, notice.find(' '));
    EXPECT_EQ(Spool::original_of(notice_id), id);
    EXPECT_EQ(log_.count("dsn_id=" + notice_id + " to=sender@example.com"), 1u) << log_.all();
  }
  // Written before either notice was handed over (and synced: Spool::sync_state).
  const std::vector<std::string> state = spool_->read_state(id);
  EXPECT_NE(std::find(state.begin(), state.end(), "failed 0"), state.end());
  EXPECT_NE(std::find(state.begin(), state.end(), "warned"), state.end());
  EXPECT_TRUE(eventually([&] { return spool_->list() == std::vector<std::string>{id}; }))
      << log_.all();
}

TEST_F(SchedulerTest, AFailureNoticeLeftByAPowerCutStandsForTheFailureItsOriginalLost) {
  // The failure DSN was committed; the original's "failed 0" and its removal were not on
  // disk yet. Without the notice's lines, the original would fail again and its sender would
  // get a second DSN.
  deliverer_.script("gone@example.com", {DeliveryStatus::kPermanent});
  const std::string id = commit({"gone@example.com", "ok@example.com"});
  const std::string notice = commit_notice(id, {"failed 0"});
  reopen();
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("gone@example.com"), 0u) << log_.all();  // final already
  EXPECT_EQ(deliverer_.count("ok@example.com"), 1u);
  EXPECT_EQ(deliverer_.count("sender@example.com"), 1u);  // the notice, once
  EXPECT_EQ(log_.count("event=dsn "), 0u) << log_.all();
  EXPECT_EQ(log_.count("event=notice_recovered id=" + id + " dsn_id=" + notice + " lines=1"), 1u)
      << log_.all();
}

TEST_F(SchedulerTest, ADelayNoticeLeftByAPowerCutIsNotSentAgain) {
  deliverer_.script("slow@example.com", {DeliveryStatus::kTransient});
  const std::string id = commit({"slow@example.com"});
  ASSERT_TRUE(spool_->append_state(id, "deferred 0 busy"));  // a line that did survive
  commit_notice(id, {"warned"});
  reopen();
  SchedulerOptions options = fast();
  options.retry_schedule = {std::chrono::hours(1)};
  options.delay_warning = 1ms;
  auto scheduler = make_scheduler(options);
  scheduler->start();
  ASSERT_TRUE(eventually([&] { return log_.count("event=retry id=" + id) == 1; })) << log_.all();
  ASSERT_TRUE(eventually([&] { return deliverer_.count("sender@example.com") == 1; }));
  EXPECT_EQ(log_.count("event=dsn "), 0u) << log_.all();
  const std::vector<std::string> state = spool_->read_state(id);
  ASSERT_GE(state.size(), 2u);
  EXPECT_EQ(state[1], "warned");  // written back at start, before the attempt
  EXPECT_EQ(std::count(state.begin(), state.end(), "warned"), 1);
}

TEST_F(SchedulerTest, ANoticeWhoseOriginalIsGoneOrAlreadyKnowsItChangesNothing) {
  const std::string id = commit({"a@example.com"});
  ASSERT_TRUE(spool_->append_state(id, "delivered 0"));
  commit_notice(id, {"delivered 0"});                   // its lines made it: nothing to add
  commit_notice("0123456789ABCDEFabcd", {"failed 0"});  // its original left the queue
  reopen();
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("a@example.com"), 0u);
  EXPECT_EQ(deliverer_.count("sender@example.com"), 2u);
  EXPECT_EQ(log_.count("event=notice_recovered"), 0u) << log_.all();
}

TEST_F(SchedulerTest, AHoldOutlivesARestartUntilReleased) {
  SchedulerOptions options;
  options.retry_schedule = {std::chrono::hours(1)};
  deliverer_.script("a@example.com", {DeliveryStatus::kTransient, DeliveryStatus::kDelivered});
  std::string id = commit({"a@example.com"});
  {
    auto scheduler = make_scheduler(options);
    scheduler->start();
    scheduler->enqueue(id);
    ASSERT_TRUE(eventually([&] { return log_.count("event=retry id=" + id) == 1; }));
    EXPECT_EQ(scheduler->hold(id), Scheduler::Outcome::kDone);
    EXPECT_EQ(scheduler->show(id)->state, "held");
  }
  reopen();
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(deliverer_.count("a@example.com"), 1u);  // not tried while held
  auto listed = scheduler->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state, "held");
  EXPECT_EQ(listed[0].sender, "sender@example.com");
  EXPECT_EQ(scheduler->pending(), 0u);
  EXPECT_EQ(scheduler->release(id), Scheduler::Outcome::kDone);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("a@example.com"), 2u);
}

// The last temporary failure of each recipient is in state/<id>, so a listing after a restart
// (before the next attempt) still says why the message waits; each next attempt is known.
TEST_F(SchedulerTest, ALastErrorOutlivesARestart) {
  SchedulerOptions options;
  options.retry_schedule = {10ms, std::chrono::hours(1)};
  deliverer_.script("a@example.com", {DeliveryStatus::kTransient});
  deliverer_.script("b@example.com", {DeliveryStatus::kDelivered});
  std::string id = commit({"a@example.com", "b@example.com"});
  {
    auto scheduler = make_scheduler(options);
    scheduler->start();
    scheduler->enqueue(id);
    ASSERT_TRUE(eventually([&] { return log_.count("event=retry id=" + id) == 2; }));
    auto listed = scheduler->list(/*with_recipients=*/true);
    ASSERT_EQ(listed.size(), 1u);
    ASSERT_EQ(listed[0].recipients.size(), 2u);
    EXPECT_EQ(listed[0].recipients[0].state, "pending");
    EXPECT_EQ(listed[0].recipients[0].detail, "scripted answer 1");
    EXPECT_GT(listed[0].recipients[0].next_attempt_unix, base::unix_now() + 3000);
    EXPECT_EQ(listed[0].recipients[1].state, "delivered");
    EXPECT_EQ(listed[0].recipients[1].next_attempt_unix, 0);
  }
  std::vector<std::string> lines = spool_->read_state(id);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "deferred 0 scripted answer 0"), 1);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "deferred 0 scripted answer 1"), 1);
  reopen();
  auto scheduler = make_scheduler(options);  // not started: nothing is attempted
  scheduler->enqueue(id);
  auto listed = scheduler->list(/*with_recipients=*/true);
  ASSERT_EQ(listed.size(), 1u);
  ASSERT_EQ(listed[0].recipients.size(), 2u);
  EXPECT_EQ(listed[0].recipients[0].detail, "scripted answer 1");
  EXPECT_EQ(listed[0].recipients[1].state, "delivered");
}

// A check's hold at intake (SpoolWriter::mark_held): the committed message waits from its
// enqueue on, and after a restart, until released.
TEST_F(SchedulerTest, AMessageHeldAtIntakeIsDeliveredOnlyOnceReleased) {
  smtp::Envelope envelope;
  envelope.reverse_path = "sender@example.com";
  envelope.recipients.push_back({"a@example.com", "", ""});
  auto writer = spool_->begin(envelope, 1700000000);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("Subject: held\r\n\r\nhello\r\n"));
  ASSERT_TRUE((*writer)->mark_held());
  ASSERT_TRUE((*writer)->commit());
  const std::string id = (*writer)->id();
  {
    auto scheduler = make_scheduler(fast());
    scheduler->start();  // picks it up from the spool: held
    scheduler->enqueue(id);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(deliverer_.count("a@example.com"), 0u);
    ASSERT_TRUE(scheduler->show(id));
    EXPECT_EQ(scheduler->show(id)->state, "held");
  }
  reopen();
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(deliverer_.count("a@example.com"), 0u);  // still held after a restart
  EXPECT_EQ(scheduler->release(id), Scheduler::Outcome::kDone);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("a@example.com"), 1u);
}

TEST_F(SchedulerTest, AMessageHeldAtIntakeAndEnqueuedWaitsForRelease) {
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  smtp::Envelope envelope;
  envelope.reverse_path = "sender@example.com";
  envelope.recipients.push_back({"a@example.com", "", ""});
  auto writer = spool_->begin(envelope, 1700000000);
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->append("Subject: held\r\n\r\nhello\r\n"));
  ASSERT_TRUE((*writer)->mark_held());
  ASSERT_TRUE((*writer)->commit());
  const std::string id = (*writer)->id();
  std::string plain = commit({"b@example.com"});
  scheduler->enqueue(id);  // as the server does once the message is durable
  scheduler->enqueue(plain);
  ASSERT_TRUE(eventually([&] { return deliverer_.count("b@example.com") == 1; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(deliverer_.count("a@example.com"), 0u);
  ASSERT_TRUE(scheduler->show(id));
  EXPECT_EQ(scheduler->show(id)->state, "held");
  EXPECT_EQ(scheduler->release(id), Scheduler::Outcome::kDone);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("a@example.com"), 1u);
}

TEST_F(SchedulerTest, FlushTriesDeferredMessagesNow) {
  deliverer_.script("a@example.com", {DeliveryStatus::kTransient, DeliveryStatus::kDelivered});
  SchedulerOptions options;
  options.retry_schedule = {std::chrono::hours(1)};
  auto scheduler = make_scheduler(options);
  scheduler->start();
  std::string id = commit({"a@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return log_.count("event=retry id=" + id) == 1; }));
  auto shown = scheduler->show(id);
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->state, "deferred");
  ASSERT_EQ(shown->recipients.size(), 1u);
  EXPECT_EQ(shown->recipients[0].state, "pending");
  EXPECT_EQ(shown->recipients[0].detail, "scripted answer 0");
  EXPECT_EQ(scheduler->flush(), 1u);
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); }, 2s)) << log_.all();
}

TEST_F(SchedulerTest, DeleteRemovesAMessageWithoutADsn) {
  deliverer_.script("a@example.com", {DeliveryStatus::kTransient});
  SchedulerOptions options;
  options.retry_schedule = {std::chrono::hours(1)};
  auto scheduler = make_scheduler(options);
  scheduler->start();
  std::string id = commit({"a@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return log_.count("event=retry id=" + id) == 1; }));
  EXPECT_EQ(scheduler->remove(id), Scheduler::Outcome::kDone);
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_EQ(scheduler->remove(id), Scheduler::Outcome::kNotFound);
  EXPECT_FALSE(scheduler->show(id));
  EXPECT_EQ(log_.count("event=dsn"), 0u);
  EXPECT_EQ(scheduler->pending(), 0u);
}

TEST_F(SchedulerTest, SeveralThreadsDeliverManyMessages) {
  SchedulerOptions options = fast();
  options.threads = 3;
  auto scheduler = make_scheduler(options);
  scheduler->start();
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    ids.push_back(commit({"a" + std::to_string(i) + "@example.com", "b@example.com"}));
    scheduler->enqueue(ids.back());
  }
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.calls().size(), 60u);
  EXPECT_TRUE(eventually([&] { return log_.count("event=removed") == 30; })) << log_.all();
}

TEST_F(SchedulerTest, StopDoesNotWaitForRetryTimersAndKeepsTheFile) {
  deliverer_.script("slow@example.com", {DeliveryStatus::kTransient});
  SchedulerOptions options;
  options.retry_schedule = {std::chrono::hours(1)};
  auto scheduler = make_scheduler(options);
  scheduler->start();
  std::string id = commit({"slow@example.com"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return deliverer_.count("slow@example.com") == 1; }));
  ASSERT_TRUE(eventually([&] { return log_.count("retry_in=3600s") == 1; })) << log_.all();
  EXPECT_EQ(scheduler->pending(), 1u);  // waiting on its timer
  auto before = std::chrono::steady_clock::now();
  scheduler->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);
  EXPECT_EQ(spool_->list(), std::vector<std::string>{id});
}

TEST_F(SchedulerTest, ACorruptFileIsKeptAndNotRetried) {
  std::string id = commit({"a@example.com"});
  {
    std::FILE* file = std::fopen((root_ + "/spool/queue/" + id).c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs("not a spool file\n\nbody", file);
    std::fclose(file);
  }
  auto scheduler = make_scheduler(fast());
  scheduler->start();
  ASSERT_TRUE(eventually([&] { return log_.count("event=error id=" + id) == 1; })) << log_.all();
  ASSERT_TRUE(eventually([&] { return scheduler->pending() == 0; }));
  EXPECT_EQ(spool_->list(), std::vector<std::string>{id});
  EXPECT_EQ(deliverer_.calls().size(), 0u);
}

// Two lanes: recipients at here.test are local, the rest remote.
SchedulerOptions two_lanes() {
  SchedulerOptions options;
  options.retry_schedule = {10ms};
  options.threads = 1;
  options.local_threads = 1;
  options.is_local = [](std::string_view address) { return address.ends_with("@here.test"); };
  return options;
}

TEST_F(SchedulerTest, LocalMailIsDeliveredWhileEveryRemoteThreadWaitsOnASilentServer) {
  deliverer_.close_gate("far@tarpit.test");
  auto scheduler = make_scheduler(two_lanes());
  scheduler->start();
  std::string stuck = commit({"far@tarpit.test"});
  scheduler->enqueue(stuck);
  ASSERT_TRUE(eventually([&] { return deliverer_.waiting_at_gate() == 1; })) << log_.all();
  std::string local = commit({"me@here.test"});
  scheduler->enqueue(local);
  EXPECT_TRUE(eventually([&] { return deliverer_.count("me@here.test") == 1; }, 5s))
      << "local mail waited behind the remote delivery\n"
      << log_.all();
  EXPECT_EQ(deliverer_.count("far@tarpit.test"), 0u);
  deliverer_.open_gate();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("far@tarpit.test"), 1u);
}

TEST_F(SchedulerTest, AMixedMessageReachesItsLocalRecipientsFirstInOneAttempt) {
  deliverer_.close_gate("far@tarpit.test");
  auto scheduler = make_scheduler(two_lanes());
  scheduler->start();
  std::string id = commit({"far@tarpit.test", "me@here.test", "other@remote.test"});
  scheduler->enqueue(id);
  ASSERT_TRUE(eventually([&] { return deliverer_.count("me@here.test") == 1; })) << log_.all();
  ASSERT_TRUE(eventually([&] { return deliverer_.waiting_at_gate() == 1; })) << log_.all();
  auto shown = scheduler->show(id);
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->attempts, 1u);
  EXPECT_EQ(shown->recipients.at(1).state, "delivered");
  EXPECT_EQ(shown->recipients.at(0).state, "pending");
  deliverer_.open_gate();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  // Each recipient once, the local one first; no retry was needed in between.
  EXPECT_EQ(deliverer_.calls(), (std::vector<std::string>{id + "/1", id + "/0", id + "/2"}));
  EXPECT_EQ(log_.count("event=retry id=" + id), 0u) << log_.all();
}

TEST_F(SchedulerTest, SuccessNoticesForUnauthenticatedSendersCarryNothingAndAreRateBound) {
  SchedulerOptions options = fast();
  options.unauthenticated_success_dsns_per_minute = 2;
  auto scheduler = make_scheduler(options);
  scheduler->start();
  for (int i = 0; i < 3; ++i) {
    scheduler->enqueue(commit({"ok@example.com"}, "victim@forged.test", "SUCCESS"));
  }
  ASSERT_TRUE(eventually([&] { return log_.count("event=dsn_suppressed") == 1; })) << log_.all();
  ASSERT_TRUE(eventually([&] { return spool_->list().empty(); })) << log_.all();
  EXPECT_EQ(deliverer_.count("victim@forged.test"), 2u) << log_.all();
  const std::string notice = deliverer_.content_seen_by("victim@forged.test");
  EXPECT_NE(notice.find("Successful Mail Delivery Report"), std::string::npos) << notice;
  EXPECT_EQ(notice.find("Subject: test"), std::string::npos) << notice;
  EXPECT_EQ(notice.find("rfc822-headers"), std::string::npos) << notice;

  // An authenticated sender is one of our users: the notice has the headers, no bound.
  for (int i = 0; i < 3; ++i) {
    scheduler->enqueue(commit({"ok@example.com"}, "user@here.test", "SUCCESS", true));
  }
  ASSERT_TRUE(eventually([&] { return deliverer_.count("user@here.test") == 3; })) << log_.all();
  EXPECT_NE(deliverer_.content_seen_by("user@here.test").find("Subject: test"), std::string::npos);
  EXPECT_EQ(log_.count("event=dsn_suppressed"), 1u);
}

// Which messages are delivered at acceptance: every recipient local to a mailbox here, no
// success notice asked for, no notice itself, and at most kMaxBytesAtAcceptance of copies;
// the deliveries are logged only once settled.
TEST_F(SchedulerTest, DeliveryAtAcceptanceTakesOnlyWhatItIsFor) {
  std::size_t calls = 0;
  SchedulerOptions options;
  options.at_acceptance = [](std::string_view address) { return address.ends_with("@here"); };
  Scheduler scheduler(
      *spool_,
      [&](const StoredMessage&, std::span<const std::size_t> recipients) {
        ++calls;
        return std::vector<DeliveryResult>(recipients.size(),
                                           DeliveryResult{DeliveryStatus::kDelivered, "ok"});
      },
      options);
  auto make = [](std::vector<std::string> addresses, std::uint64_t size) {
    StoredMessage message;
    message.id = "0123456789ABCDEFGHIJ";
    for (const std::string& address : addresses)
      message.envelope.recipients.push_back({address, "", ""});
    message.content_size = size;
    return message;
  };
  auto fits = scheduler.attempt_at_acceptance(make({"a@here", "b@here"}, 1024));
  ASSERT_TRUE(fits);
  EXPECT_EQ(fits->size(), 2u);
  EXPECT_EQ(scheduler.settle_at_acceptance(make({"a@here", "b@here"}, 1024), *fits, {}),
            (std::vector<bool>{true, true}));
  EXPECT_FALSE(scheduler.attempt_at_acceptance(make({"a@here", "b@elsewhere"}, 1024)));
  EXPECT_FALSE(scheduler.attempt_at_acceptance(
      make({"a@here", "b@here"}, kMaxBytesAtAcceptance / 2 + 1)));  // 2 copies over the bound
  EXPECT_TRUE(scheduler.attempt_at_acceptance(make({"a@here"}, kMaxBytesAtAcceptance)));
  StoredMessage success = make({"a@here"}, 10);
  success.envelope.recipients[0].notify = "SUCCESS";
  EXPECT_FALSE(scheduler.attempt_at_acceptance(success));
  StoredMessage notice = make({"a@here"}, 10);
  notice.notice_of = "0123456789ABCDEFGHIK";
  EXPECT_FALSE(scheduler.attempt_at_acceptance(notice));
  EXPECT_EQ(calls, 2u);  // only the two that were for it
  std::vector<DeliveryResult> partial = {DeliveryResult{DeliveryStatus::kDelivered, "ok"},
                                         DeliveryResult{DeliveryStatus::kTransient, "later"}};
  EXPECT_EQ(scheduler.settle_at_acceptance(make({"a@here", "b@here"}, 10), partial, {}),
            (std::vector<bool>{true, false}));
  // Without the option nothing is ever delivered at acceptance.
  Scheduler plain(*spool_, [&](const StoredMessage&, std::span<const std::size_t> recipients) {
    ++calls;
    return std::vector<DeliveryResult>(recipients.size());
  });
  EXPECT_FALSE(plain.attempt_at_acceptance(make({"a@here"}, 10)));
  EXPECT_EQ(calls, 2u);
}

}  // namespace
}  // namespace queue
