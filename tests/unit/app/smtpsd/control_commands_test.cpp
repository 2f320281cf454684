// Tests for app/control_commands.cpp and app/control_socket.cpp: listing and lifting
// lockouts through a real unix socket, and what a wrong request gets; the queue commands
// over a real spool and scheduler whose deliverer defers every remote recipient: the
// listing (text and JSON) with each pending recipient's last error and next attempt, the
// selections, the bulk verbs, show with the body, and what a caller of the read-only
// listing socket may see and do.
#include "app/smtpsd/control_commands.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include "app/common/control_socket.h"
#include "base/clock.h"

namespace app {
namespace {

std::unique_ptr<auth::FailureLimiter> locked_limiter(std::chrono::steady_clock::time_point now) {
  auth::FailureLimiterOptions options;
  options.per_user_ip_max_failures = 2;
  auto limiter = auth::FailureLimiter::create(options);
  EXPECT_TRUE(limiter);
  for (int i = 0; i < 2; ++i)
    limiter.value()->record_failure("192.0.2.7", "alice@x", now);
  return std::move(limiter.value());
}

TEST(ControlCommandsTest, ListsAndLiftsLockouts) {
  auto now = std::chrono::steady_clock::now();
  auto limiter = locked_limiter(now);
  std::string listed = handle_control_request("auth lockouts", *limiter, now);
  EXPECT_NE(listed.find("192.0.2.7 alice@x 2 "), std::string::npos) << listed;
  EXPECT_EQ(handle_control_request("auth unlock alice@x", *limiter, now), "unlocked alice@x\n");
  EXPECT_EQ(handle_control_request("auth lockouts", *limiter, now), "");
  EXPECT_EQ(handle_control_request("auth unlock alice@x", *limiter, now),
            "error: nothing to unlock for alice@x\n");
  EXPECT_EQ(handle_control_request("queue flush", *limiter, now).rfind("error: ", 0), 0u);
}

TEST(ControlCommandsTest, CertGoesToTheAcmeServiceOrSaysItIsOff) {
  ControlContext context;
  EXPECT_EQ(handle_control_request("cert status", context).rfind("error: ACME is off", 0), 0u);
  std::vector<std::string> asked;
  context.certificates = [&asked](const std::vector<std::string>& words) {
    std::string joined;
    for (const std::string& word : words)
      joined += (joined.empty() ? "" : " ") + word;
    asked.push_back(joined);
    return std::string("ecdsa: …\n");
  };
  EXPECT_EQ(handle_control_request("cert status", context), "ecdsa: …\n");
  EXPECT_EQ(handle_control_request("cert renew", context), "ecdsa: …\n");
  EXPECT_EQ(handle_control_request("cert revoke rsa 1", context), "ecdsa: …\n");
  EXPECT_EQ(asked, (std::vector<std::string>{"status", "renew", "revoke rsa 1"}));
  // Not for the read-only listing socket.
  ControlCaller listing;
  listing.read_only = true;
  EXPECT_EQ(handle_control_request("cert renew", context, listing).rfind("error: ", 0), 0u);
  EXPECT_EQ(handle_control_request("cert revoke all 0", context, listing).rfind("error: ", 0), 0u);
  EXPECT_EQ(asked.size(), 3u);
}

TEST(ControlSocketTest, ServesItsOwnerOverAnOwnerOnlySocket) {
  char pattern[] = "/tmp/smtpsd-control-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::string path = std::string(pattern) + "/control.sock";
  auto now = std::chrono::steady_clock::now();
  auto limiter = locked_limiter(now);
  {
    ControlSocket control;
    ASSERT_TRUE(control.start(path, [&](const std::string& request) {
      return handle_control_request(request, *limiter, now);
    }));
    struct stat status {};
    ASSERT_EQ(::stat(path.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 0777, 0600u);
    auto listed = control_request(path, "auth lockouts");
    ASSERT_TRUE(listed) << listed.error();
    EXPECT_NE(listed.value().find("192.0.2.7 alice@x"), std::string::npos);
    auto unlocked = control_request(path, "auth unlock 192.0.2.7");
    ASSERT_TRUE(unlocked);
    EXPECT_EQ(unlocked.value(), "unlocked 192.0.2.7\n");
  }
  EXPECT_FALSE(std::filesystem::exists(path));  // removed at stop
  auto gone = control_request(path, "auth lockouts");
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().find("cannot reach the server"), std::string::npos);
  std::filesystem::remove_all(pattern);
}

// A spool and a scheduler whose deliverer answers "451 4.3.0 try later" for every
// recipient (and counts the attempts), with an hour between attempts: every message
// stays deferred until a command acts on it.
class QueueControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/smtpsd-queue-control-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    auto spool = queue::Spool::open(root_ + "/spool");
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(*spool);
    queue::SchedulerOptions options;
    options.retry_schedule = {std::chrono::hours(1)};
    scheduler_ = std::make_unique<queue::Scheduler>(
        *spool_,
        [this](const queue::StoredMessage&, std::span<const std::size_t> recipients) {
          ++attempts_;
          return std::vector<queue::DeliveryResult>(
              recipients.size(),
              queue::DeliveryResult{queue::DeliveryStatus::kTransient, "451 4.3.0 try later"});
        },
        options);
    scheduler_->start();
    context_.scheduler = scheduler_.get();
    context_.spool = spool_.get();
    context_.now_unix = base::unix_now();
    context_.forget_next_hops = [this] { ++forgotten_; };
    context_.is_local_address = [](std::string_view address) {
      return address.ends_with("@example.test");
    };
  }
  void TearDown() override {
    scheduler_.reset();
    spool_.reset();
    std::filesystem::remove_all(root_);
  }
  // Commits a message and waits until its first attempt deferred it.
  std::string queued(const std::string& sender, std::vector<std::string> recipients,
                     const std::string& user = "") {
    smtp::Envelope envelope;
    envelope.reverse_path = sender;
    envelope.authenticated = !user.empty();
    envelope.authenticated_user = user;
    for (auto& address : recipients)
      envelope.recipients.push_back({address, "", ""});
    auto writer = spool_->begin(envelope, base::unix_now());
    EXPECT_TRUE(writer);
    EXPECT_TRUE((*writer)->append("Subject: queued\r\n\r\nthe body\r\n"));
    EXPECT_TRUE((*writer)->commit());
    std::string id = (*writer)->id();
    scheduler_->enqueue(id);
    EXPECT_TRUE(deferred(id)) << id;
    return id;
  }
  bool deferred(const std::string& id) {
    for (int i = 0; i < 2000; ++i) {
      auto entry = scheduler_->show(id);
      if (entry && entry->state == "deferred") return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }
  std::string ask(const std::string& request, const ControlCaller& caller = {}) {
    context_.now_unix = base::unix_now();
    return handle_control_request(request, context_, caller);
  }
  std::string state_of(const std::string& id) {
    auto entry = scheduler_->show(id);
    return entry ? entry->state : "gone";
  }

  std::string root_;
  std::unique_ptr<queue::Spool> spool_;
  std::unique_ptr<queue::Scheduler> scheduler_;
  ControlContext context_;
  std::atomic<int> attempts_{0};
  int forgotten_ = 0;
};

TEST_F(QueueControlTest, ListShowsEachPendingRecipientWithItsLastErrorAndNextAttempt) {
  std::string id = queued("alice@example.test", {"bob@remote.test", "carol@other.test"});
  std::string listed = ask("queue list");
  EXPECT_TRUE(
      std::regex_search(listed, std::regex(id + " deferred \\d+ \\d+ 1 <alice@example.test>\n")))
      << listed;
  // The next attempt is an hour away: 3599 or 3600 seconds, depending on the clock.
  EXPECT_TRUE(std::regex_search(
      listed,
      std::regex("    <bob@remote.test> next attempt in 3[56]\\d\\ds: 451 4.3.0 try later\n")))
      << listed;
  EXPECT_NE(listed.find("    <carol@other.test> next attempt in "), std::string::npos) << listed;
}

TEST_F(QueueControlTest, ListAndShowInJson) {
  std::string id = queued("alice@example.test", {"bob@remote.test"});
  std::string listed = ask("queue list json");
  EXPECT_EQ(listed.rfind("{\"messages\":[{\"id\":\"" + id +
                             "\",\"state\":\"deferred\",\"held\":false,"
                             "\"sender\":\"alice@example.test\",",
                         0),
            0u)
      << listed;
  EXPECT_NE(listed.find("\"recipients\":[{\"address\":\"bob@remote.test\",\"state\":\"pending\","
                        "\"last_error\":\"451 4.3.0 try later\""),
            std::string::npos)
      << listed;
  std::smatch next;
  ASSERT_TRUE(std::regex_search(listed, next, std::regex("\"next_attempt_unix\":(\\d+)\\}\\]")))
      << listed;
  EXPECT_NEAR(std::stoll(next[1]), base::unix_now() + 3600, 5);
  EXPECT_EQ(listed.back(), '\n');
  EXPECT_EQ(ask("queue list json to-domain=nowhere.test"), "{\"messages\":[]}\n");
  std::string shown = ask("queue show " + id + " json");
  EXPECT_EQ(shown.rfind("{\"id\":\"" + id + "\"", 0), 0u) << shown;
  EXPECT_EQ(shown.find("\"body\""), std::string::npos);
  std::string with_body = ask("queue show " + id + " body json");
  EXPECT_NE(with_body.find("\"body\":\"Subject: queued\\r\\n"), std::string::npos) << with_body;
  EXPECT_NE(with_body.find("Subject: queued\\r\\n\\r\\nthe body\\r\\n\"}"), std::string::npos)
      << with_body;
}

TEST_F(QueueControlTest, ShowBodyPrintsTheStoredMessageAsPostcat) {
  std::string id = queued("alice@example.test", {"bob@remote.test"});
  std::string shown = ask("queue show " + id + " body");
  EXPECT_EQ(shown.rfind("*** ENVELOPE ***\nid: " + id + "\n", 0), 0u) << shown;
  EXPECT_NE(shown.find("recipient: <bob@remote.test> pending: 451 4.3.0 try later\n*** MESSAGE "
                       "CONTENTS " +
                       id + " ***\nSubject: queued\r\n"),
            std::string::npos)
      << shown;
  EXPECT_NE(shown.find("Subject: queued\r\n\r\nthe body\r\n*** END OF MESSAGE ***\n"),
            std::string::npos)
      << shown;
  EXPECT_EQ(ask("queue list body"), "error: body goes with queue show ID only\n");
}

TEST_F(QueueControlTest, SelectionsPickByRecipientDomainAndSender) {
  std::string a = queued("alice@example.test", {"bob@remote.test"});
  std::string b = queued("carol@example.test", {"dave@REMOTE.test", "erin@other.test"});
  std::string c = queued("", {"frank@other.test"});  // a bounce
  std::string to_remote = ask("queue list to-domain=remote.TEST.");
  EXPECT_NE(to_remote.find(a + " "), std::string::npos) << to_remote;
  EXPECT_NE(to_remote.find(b + " "), std::string::npos) << to_remote;
  EXPECT_EQ(to_remote.find(c + " "), std::string::npos) << to_remote;
  std::string from_carol = ask("queue list from=CAROL@example.test");
  EXPECT_EQ(from_carol.find(a + " "), std::string::npos) << from_carol;
  EXPECT_NE(from_carol.find(b + " "), std::string::npos) << from_carol;
  std::string bounces = ask("queue list from=<>");
  EXPECT_EQ(bounces.find(a + " "), std::string::npos) << bounces;
  EXPECT_NE(bounces.find(c + " deferred"), std::string::npos) << bounces;
  std::string both = ask("queue list to-domain=other.test from=carol@example.test");
  EXPECT_NE(both.find(b + " "), std::string::npos) << both;
  EXPECT_EQ(both.find(c + " "), std::string::npos) << both;
}

TEST_F(QueueControlTest, ReleaseByUserReleasesItsMailAndLiftsItsSendingHold) {
  auth::SendingLimits bounds;
  bounds.external_recipients_per_hour = 1;
  auth::SendingLimiter sending(bounds);
  context_.sending_limiter = &sending;
  auto now = std::chrono::steady_clock::now();
  const std::vector<std::string> two{"a@remote.test", "b@remote.test"};
  ASSERT_TRUE(sending.admit_message("alice", two, now, 5).hold);
  ASSERT_TRUE(sending.admit_message("Bob", two, now, 6).hold);
  EXPECT_EQ(ask("auth held"), "alice 2 1 1h 5\nbob 2 1 1h 6\n");  // users in lower case
  std::string a = queued("alice@example.test", {"x@remote.test"}, "alice");
  std::string b = queued("bob@example.test", {"x@remote.test"}, "Bob");
  std::string c = queued("carol@example.test", {"x@remote.test"});
  EXPECT_EQ(ask("queue hold all"), "held " + a + "\nheld " + b + "\nheld " + c + "\n");
  EXPECT_EQ(ask("queue list user=ALICE").find(b), std::string::npos);
  EXPECT_NE(ask("queue list user=ALICE").find(a + " held"), std::string::npos);
  EXPECT_EQ(ask("queue release user=alice"),
            "released " + a + "\nlifted the sending hold of alice\n");
  EXPECT_TRUE(deferred(a));
  EXPECT_EQ(state_of(b), "held");
  EXPECT_EQ(state_of(c), "held");
  EXPECT_FALSE(sending.containment("alice"));
  // Nothing more to lift: the release alone (of a message no longer held, as by id).
  EXPECT_EQ(ask("queue release user=alice"), "released " + a + "\n");
  EXPECT_EQ(ask("queue release user="), "error: user= needs a user name\n");
  EXPECT_EQ(ask("queue release all user=Bob").rfind("error: --all", 0), 0u);
  // auth unlock lifts the hold and leaves the held mail to the administrator.
  auto failures = locked_limiter(now);
  context_.limiter = failures.get();
  EXPECT_EQ(ask("auth unlock Bob"),
            "unlocked Bob\nlifted the sending hold of Bob; the mail held meanwhile stays held: "
            "smtpsctl queue release --user Bob (or queue delete --user)\n");
  EXPECT_EQ(state_of(b), "held");
  EXPECT_EQ(ask("auth held"), "");
  EXPECT_EQ(ask("auth unlock Bob"), "error: nothing to unlock for Bob\n");
  ASSERT_TRUE(sending.admit_message("carol", two, now, 7).hold);
  EXPECT_EQ(ask("queue release user=carol json"),
            "{\"action\":\"released\",\"count\":0,\"messages\":[],\"sending_hold_lifted\":true}\n");
  EXPECT_FALSE(sending.containment("carol"));
  EXPECT_EQ(ask("queue release user=Bob json"),
            "{\"action\":\"released\",\"count\":1,\"messages\":[{\"id\":\"" + b +
                "\",\"when_attempt_ends\":false}]}\n");
}

// The user selection ignores ASCII case, and so does the sending hold it lifts.
TEST_F(QueueControlTest, ReleaseByUserIgnoresCaseForTheHoldToo) {
  auth::SendingLimits bounds;
  bounds.external_recipients_per_hour = 1;
  auth::SendingLimiter sending(bounds);
  context_.sending_limiter = &sending;
  const std::vector<std::string> two{"a@remote.test", "b@remote.test"};
  ASSERT_TRUE(sending.admit_message("alice", two, std::chrono::steady_clock::now(), 5).hold);
  std::string a = queued("alice@example.test", {"x@remote.test"}, "alice");
  EXPECT_EQ(ask("queue hold all"), "held " + a + "\n");
  EXPECT_EQ(ask("queue release user=ALICE"),
            "released " + a + "\nlifted the sending hold of ALICE\n");
  EXPECT_FALSE(sending.containment("alice"));
  // In JSON, the lifted hold is a field beside the messages released.
  ASSERT_TRUE(sending.admit_message("Alice", two, std::chrono::steady_clock::now(), 6).hold);
  std::string b = queued("alice@example.test", {"y@remote.test"}, "Alice");
  EXPECT_EQ(ask("queue hold " + b), "held " + b + "\n");
  // (a, released above, is selected too, and may be in a delivery attempt.)
  const std::string json = ask("queue release user=aLiCe json");
  EXPECT_TRUE(json.starts_with("{\"action\":\"released\",\"count\":2,\"messages\":[{\"id\":\""))
      << json;
  EXPECT_NE(json.find("{\"id\":\"" + b + "\",\"when_attempt_ends\":false}"), std::string::npos)
      << json;
  EXPECT_TRUE(json.ends_with("}],\"sending_hold_lifted\":true}\n")) << json;
}

TEST_F(QueueControlTest, BulkVerbsActOnTheSelectionOnly) {
  std::string a = queued("alice@example.test", {"bob@remote.test"});
  std::string b = queued("carol@example.test", {"erin@other.test"});
  std::string c = queued("carol@example.test", {"bob@remote.test"});
  EXPECT_EQ(ask("queue hold to-domain=remote.test"), "held " + a + "\nheld " + c + "\n");
  EXPECT_EQ(state_of(a), "held");
  EXPECT_EQ(state_of(b), "deferred");
  EXPECT_EQ(ask("queue release all from=carol@example.test").rfind("error: --all", 0), 0u);
  EXPECT_EQ(ask("queue release from=carol@example.test json"),
            "{\"action\":\"released\",\"count\":2,\"messages\":[{\"id\":\"" + b +
                "\",\"when_attempt_ends\":false},{\"id\":\"" + c +
                "\",\"when_attempt_ends\":false}]}\n");
  EXPECT_EQ(state_of(a), "held");
  EXPECT_TRUE(deferred(c));  // released: tried at once, deferred again
  EXPECT_EQ(ask("queue delete from=carol@example.test"), "deleted " + b + "\ndeleted " + c + "\n");
  EXPECT_EQ(state_of(b), "gone");
  EXPECT_FALSE(std::filesystem::exists(root_ + "/spool/queue/" + c));
  EXPECT_EQ(ask("queue delete to-domain=nowhere.test"), "no message selected\n");
  EXPECT_EQ(ask("queue release all"), "released " + a + "\n");
  EXPECT_TRUE(deferred(a));
  EXPECT_EQ(ask("queue delete all json"),
            "{\"action\":\"deleted\",\"count\":1,\"messages\":[{\"id\":\"" + a +
                "\",\"when_attempt_ends\":false}]}\n");
  EXPECT_EQ(ask("queue list"), "");
}

TEST_F(QueueControlTest, RequeueForgetsNextHopsAndTriesDeferredMessagesNow) {
  std::string a = queued("alice@example.test", {"bob@remote.test"});
  std::string b = queued("alice@example.test", {"erin@other.test"});
  const int before = attempts_;
  EXPECT_EQ(ask("queue requeue to-domain=remote.test"),
            "requeued 1 deferred messages (next hops forgotten)\n  " + a + "\n");
  EXPECT_EQ(forgotten_, 1);
  for (int i = 0; i < 2000 && attempts_ == before; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(attempts_, before + 1);
  EXPECT_TRUE(deferred(a));
  auto shown = scheduler_->show(a);
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->attempts, 2u);
  EXPECT_EQ(scheduler_->show(b)->attempts, 1u);
  EXPECT_EQ(ask("queue requeue"),
            "error: queue requeue needs a queue id, --all, --to-domain, --from or --user\n");
  EXPECT_EQ(ask("queue flush " + b), "flushed 1 deferred messages\n  " + b + "\n");
}

TEST_F(QueueControlTest, BadQueueRequestsSayWhatIsWrong) {
  std::string a = queued("alice@example.test", {"bob@remote.test"});
  EXPECT_EQ(
      ask("queue delete " + a + " all"),
      "error: give a queue id or a selection (--all, --to-domain, --from, --user), not both\n");
  EXPECT_EQ(ask("queue hold to-domain=exa_mple..test")
                .rfind("error: 'exa_mple..test' is not a domain name", 0),
            0u);
  EXPECT_EQ(ask("queue hold to-domain="), "error: '' is not a domain name (empty domain)\n");
  EXPECT_EQ(
      ask("queue list from=not-an-address").rfind("error: 'not-an-address' is not an address", 0),
      0u);
  EXPECT_EQ(ask("queue list colour=blue"), "error: unknown option 'colour=blue'\n");
  EXPECT_EQ(ask("queue show 0123456789ABCDEF0000"),
            "error: no message 0123456789ABCDEF0000 in the queue\n");
  EXPECT_EQ(ask("queue delete 0123456789ABCDEF0000"),
            "error: no message 0123456789ABCDEF0000 in the queue\n");
  EXPECT_EQ(ask("queue flush 0123456789ABCDEF0000"),
            "error: no message 0123456789ABCDEF0000 in the queue\n");
  EXPECT_EQ(ask("queue hold ../../etc/passwd"), "error: '../../etc/passwd' is not a queue id\n");
  EXPECT_EQ(ask("queue list " + a), "error: queue list takes no id (use queue show ID)\n");
  EXPECT_EQ(ask("queue bounce " + a), "error: unknown queue command 'bounce'\n");
  EXPECT_EQ(state_of(a), "deferred");  // nothing above touched it
}

TEST_F(QueueControlTest, TheListingSocketShowsACallerOnlyTheirOwnMessagesAndChangesNothing) {
  std::string own = queued("Alice@example.test", {"bob@remote.test"});
  std::string other = queued("bob@example.test", {"bob@remote.test"});
  std::string forged_elsewhere = queued("alice@elsewhere.test", {"bob@remote.test"});
  ControlCaller alice;
  alice.read_only = true;
  alice.all_messages = false;
  alice.user = "alice";
  std::string listed = ask("queue list", alice);
  EXPECT_NE(listed.find(own + " deferred"), std::string::npos) << listed;
  EXPECT_EQ(listed.find(other), std::string::npos) << listed;
  EXPECT_EQ(listed.find(forged_elsewhere), std::string::npos) << listed;
  std::string json = ask("queue list json", alice);
  EXPECT_NE(json.find(own), std::string::npos);
  EXPECT_EQ(json.find(other), std::string::npos);
  for (const std::string& request :
       std::vector<std::string>{"queue delete " + other, "queue delete all", "queue hold " + own,
                                "queue release all", "queue flush", "queue requeue all",
                                "queue show " + other, "auth lockouts", "tls memory"}) {
    EXPECT_EQ(ask(request, alice).rfind("error: permission denied", 0), 0u) << request;
  }
  EXPECT_EQ(state_of(own), "deferred");
  EXPECT_EQ(state_of(other), "deferred");
  EXPECT_EQ(forgotten_, 0);
  // Root and the server's own user, on the same socket, see everything, still read-only.
  ControlCaller root;
  root.read_only = true;
  root.all_messages = true;
  std::string everything = ask("queue list", root);
  EXPECT_NE(everything.find(other), std::string::npos) << everything;
  EXPECT_EQ(ask("queue delete all", root).rfind("error: permission denied", 0), 0u);
  // A caller with no login name sees nothing.
  ControlCaller nameless = alice;
  nameless.user.clear();
  EXPECT_EQ(ask("queue list", nameless), "");
}

// What any local user can send to the listing socket: every answer is one "error: " line
// whose echo of the input is escaped (no ESC, CR or LF of the caller's reaches a terminal).
TEST_F(QueueControlTest, HostileRequestsOnTheListingSocketGetOneEscapedErrorLine) {
  queued("alice@example.test", {"bob@remote.test"});
  ControlCaller alice;
  alice.read_only = true;
  alice.all_messages = false;
  alice.user = "alice";
  const std::string escape = "\x1b[2J";
  for (const std::string& request : std::vector<std::string>{
           "queue list from=" + escape + "@example.test", "queue list to-domain=" + escape,
           "queue list " + escape, "queue list from=a@b\rforged", "queue " + escape,
           "queue list " + std::string(3000, 'x'), "queue list to-domain=" + std::string(300, 'a'),
           std::string("queue list \xff\xfe"), "queue list all to-domain=x.test"}) {
    std::string answer = ask(request, alice);
    EXPECT_EQ(answer.rfind("error: ", 0), 0u) << request;
    EXPECT_EQ(answer.find('\n'), answer.size() - 1) << answer;
    EXPECT_EQ(answer.find('\x1b'), std::string::npos) << answer;
    EXPECT_EQ(answer.find('\r'), std::string::npos) << answer;
  }
}

TEST(ControlSocketTest, TheListingSocketIsOpenToEveryoneAndToldThePeer) {
  char pattern[] = "/tmp/smtpsd-control-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::string path = std::string(pattern) + "/mailq.sock";
  {
    ControlSocket listing;
    ASSERT_TRUE(listing.start_for_everyone(path, [](const std::string& request, uid_t peer) {
      return request + " from " + std::to_string(peer) + "\n";
    }));
    struct stat status {};
    ASSERT_EQ(::stat(path.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 0777, 0666u);
    auto reply = control_request(path, "queue list");
    ASSERT_TRUE(reply) << reply.error();
    EXPECT_EQ(reply.value(), "queue list from " + std::to_string(::geteuid()) + "\n");
  }
  std::filesystem::remove_all(pattern);
}

// `smtpsd serve --config smtpsd.toml` from the configuration's directory (as `smtpsd dev`
// writes it: mailq_socket = "mailq.sock") names the socket without a directory.
TEST(ControlSocketTest, TheListingSocketMayBeABareFileNameInTheWorkingDirectory) {
  char pattern[] = "/tmp/smtpsd-control-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::filesystem::path before = std::filesystem::current_path();
  std::filesystem::current_path(pattern);
  {
    ControlSocket listing;
    auto started = listing.start_for_everyone(
        "mailq.sock", [](const std::string& request, uid_t) { return request + "\n"; });
    EXPECT_TRUE(started) << (started ? "" : started.error());
    auto reply = control_request("mailq.sock", "queue list");
    ASSERT_TRUE(reply) << reply.error();
    EXPECT_EQ(reply.value(), "queue list\n");
  }
  std::filesystem::current_path(before);
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace app
