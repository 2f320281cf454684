// server_checks_test.cpp — the network host running a listener's checks, end to end: a real
// net::Server on a loopback port, a real spool and group committer, and a client speaking
// SMTP over a plain socket. What only the host can get wrong: a verdict that arrives later
// from another thread, pipelined replies kept in order while a check is pending (RFC 2920
// §3.1), a deadline that passes (the check's default verdict; the late answer ignored), a
// discard (250, nothing stored), a hold (250, stored held) and a folder (stored with the
// message).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "intake/check.h"
#include "intake/pipeline.h"
#include "net/server.h"
#include "queue/group_commit.h"
#include "queue/spool.h"

namespace net {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A check whose behaviour each test scripts; answers given later run on threads it owns.
class ScriptedCheck : public intake::Check {
 public:
  using Behaviour =
      std::function<void(ScriptedCheck&, intake::Stage, const intake::Context&, Done)>;
  ScriptedCheck(intake::StageMask stages, Behaviour behaviour,
                std::chrono::milliseconds deadline = 5s)
      : stages_(stages), behaviour_(std::move(behaviour)), deadline_(deadline) {}
  ~ScriptedCheck() override { join(); }

  std::string_view name() const override { return "scripted"; }
  intake::StageMask stages() const override { return stages_; }
  std::chrono::milliseconds deadline() const override { return deadline_; }
  void run(intake::Stage stage, const intake::Context& context, Done done) override {
    behaviour_(*this, stage, context, std::move(done));
  }

  // Calls done(verdict) from another thread after a pause.
  void answer_later(Done done, intake::Verdict verdict, std::chrono::milliseconds after) {
    std::lock_guard lock(mutex_);
    threads_.emplace_back([done = std::move(done), verdict = std::move(verdict), after]() {
      std::this_thread::sleep_for(after);
      done(verdict);
    });
  }
  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& thread : threads)
      thread.join();
  }

 private:
  intake::StageMask stages_;
  Behaviour behaviour_;
  std::chrono::milliseconds deadline_;
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

// A blocking SMTP client on a plain socket.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& text) {
    ASSERT_EQ(::write(fd_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  // The next reply's last line ("250 2.0.0 ..."), "" on timeout or close.
  std::string reply() {
    for (;;) {
      std::size_t end = buffer_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        if (line.size() >= 4 && line[3] == '-') continue;  // a multi-line reply goes on
        return line;
      }
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) return {};
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

class ServerChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("server-checks-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto spool = queue::Spool::open(dir_.string());
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(spool.value());
  }
  void TearDown() override {
    if (server_) {
      server_->stop();
      thread_.join();
    }
    server_.reset();
    committer_.stop();  // its threads may close the spool's log segment until then
    spool_.reset();
    fs::remove_all(dir_);
  }

  // Starts a server with one plaintext smtp listener running `check`; its port.
  std::uint16_t start(std::shared_ptr<intake::Check> check) {
    ServerServices services;
    services.hostname = "mx.example";
    services.spool = spool_.get();
    services.committer = &committer_;
    services.on_committed = [this](const std::string& id) {
      std::lock_guard lock(mutex_);
      committed_.push_back(id);
    };
    server_ = std::make_unique<Server>(1, std::move(services));
    ListenerOptions options;
    options.role = "smtp";
    options.address = "127.0.0.1";
    options.port = 0;
    options.session.hostname = "mx.example";
    options.session.tls_mode = smtp::TlsMode::kStartTlsOptional;
    options.checks = std::make_shared<const intake::Pipeline>(
        std::vector<std::shared_ptr<intake::Check>>{check});
    auto port = server_->listen(options);
    EXPECT_TRUE(port) << (port ? "" : port.error());
    thread_ = std::thread([this] { server_->run(); });
    return port ? *port : 0;
  }
  std::vector<std::string> committed() {
    std::lock_guard lock(mutex_);
    return committed_;
  }
  std::size_t queued_files() {
    std::size_t n = 0;
    for (const auto& entry : fs::directory_iterator(dir_ / "queue")) {
      (void)entry;
      ++n;
    }
    return n;
  }
  // Greeting, EHLO, MAIL, RCPT, DATA with a small message: the reply to the final dot.
  std::string send_message(Client& client) {
    EXPECT_EQ(client.reply().substr(0, 3), "220");
    client.send("EHLO client.example\r\n");
    EXPECT_EQ(client.reply().substr(0, 3), "250");
    client.send("MAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");
    EXPECT_EQ(client.reply().substr(0, 3), "250");
    EXPECT_EQ(client.reply().substr(0, 3), "250");
    EXPECT_EQ(client.reply().substr(0, 3), "354");
    client.send("Subject: hello\r\n\r\nbody\r\n.\r\n");
    return client.reply();
  }

  fs::path dir_;
  std::unique_ptr<queue::Spool> spool_;
  queue::GroupCommitter committer_{1};
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> committed_;
};

TEST_F(ServerChecksTest, ALaterAnswerFromAnotherThreadRefusesOneRecipientAndRepliesKeepOrder) {
  auto check = std::make_shared<ScriptedCheck>(
      intake::mask(intake::Stage::kRcpt),
      [](ScriptedCheck& self, intake::Stage, const intake::Context& context,
         intake::Check::Done done) {
        intake::Verdict verdict =
            context.recipient.rfind("bad", 0) == 0
                ? intake::Verdict::refuse(smtp::Reply{550, "5.7.1", "Not this one"})
                : intake::Verdict::pass();
        self.answer_later(std::move(done), std::move(verdict), 50ms);
      });
  Client client(start(check));
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(client.reply().substr(0, 3), "220");
  client.send("EHLO client.example\r\n");
  EXPECT_EQ(client.reply().substr(0, 3), "250");
  // One write: every command waits behind the pending check of the one before it.
  client.send(
      "MAIL FROM:<a@client.example>\r\nRCPT TO:<bad@mx.example>\r\nRCPT "
      "TO:<good@mx.example>\r\nDATA\r\n");
  EXPECT_EQ(client.reply().substr(0, 3), "250");
  EXPECT_EQ(client.reply(), "550 5.7.1 Not this one");
  EXPECT_EQ(client.reply().substr(0, 3), "250");
  EXPECT_EQ(client.reply().substr(0, 3), "354");
  client.send("Subject: hello\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(client.reply().substr(0, 3), "250");
  EXPECT_EQ(committed().size(), 1u);
}

TEST_F(ServerChecksTest, APassedDeadlineAppliesTheDefaultVerdictAndTheLateAnswerIsIgnored) {
  std::mutex kept_mutex;
  std::vector<intake::Check::Done> kept;  // answered only after the deadline
  auto check = std::make_shared<ScriptedCheck>(
      intake::mask(intake::Stage::kMail),
      [&](ScriptedCheck&, intake::Stage, const intake::Context&, intake::Check::Done done) {
        std::lock_guard lock(kept_mutex);
        kept.push_back(std::move(done));
      },
      100ms);
  Client client(start(check));
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(client.reply().substr(0, 3), "220");
  client.send("EHLO client.example\r\nMAIL FROM:<a@client.example>\r\n");
  EXPECT_EQ(client.reply().substr(0, 3), "250");
  EXPECT_EQ(client.reply(), "451 4.7.1 Temporary failure checking the message");
  {
    std::lock_guard lock(kept_mutex);
    ASSERT_EQ(kept.size(), 1u);
    kept[0](intake::Verdict::refuse(smtp::Reply{550, "5.7.1", "too late"}));
  }
  client.send("NOOP\r\n");  // the session goes on; the late verdict changed nothing
  EXPECT_EQ(client.reply().substr(0, 3), "250");
}

TEST_F(ServerChecksTest, ADiscardIsAnswered250AndNothingIsStored) {
  auto check = std::make_shared<ScriptedCheck>(
      intake::mask(intake::Stage::kEndOfData),
      [](ScriptedCheck&, intake::Stage, const intake::Context&, intake::Check::Done done) {
        intake::Verdict verdict;
        verdict.kind = intake::Verdict::Kind::kDiscard;
        done(verdict);
      });
  Client client(start(check));
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(send_message(client).substr(0, 3), "250");
  EXPECT_TRUE(committed().empty());
  EXPECT_EQ(queued_files(), 0u);
}

TEST_F(ServerChecksTest, AHoldIsAnswered250AndStoredHeld) {
  auto check = std::make_shared<ScriptedCheck>(
      intake::mask(intake::Stage::kEndOfData),
      [](ScriptedCheck& self, intake::Stage, const intake::Context&, intake::Check::Done done) {
        intake::Verdict verdict;
        verdict.kind = intake::Verdict::Kind::kHold;
        self.answer_later(std::move(done), std::move(verdict), 20ms);
      });
  Client client(start(check));
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(send_message(client).substr(0, 3), "250");
  auto ids = committed();
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_TRUE(spool_->is_held(ids[0]));
  EXPECT_EQ(queued_files(), 1u);
}

TEST_F(ServerChecksTest, AFolderChosenByACheckIsStoredWithTheMessage) {
  auto check = std::make_shared<ScriptedCheck>(
      intake::mask(intake::Stage::kEndOfData),
      [](ScriptedCheck&, intake::Stage, const intake::Context&, intake::Check::Done done) {
        intake::Verdict verdict;
        verdict.folder = "Junk";
        done(verdict);
      });
  Client client(start(check));
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(send_message(client).substr(0, 3), "250");
  auto ids = committed();
  ASSERT_EQ(ids.size(), 1u);
  auto stored = spool_->load(ids[0]);
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_EQ(stored->folder, "Junk");
}

}  // namespace
}  // namespace net
