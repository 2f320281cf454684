// unbound_resolver_test.cpp — dns::UnboundResolver (create_resolver) in forward mode against
// a dnsmasq of the test's own on loopback (tests/unit/support/dnsmasq.h): decoded TXT, MX,
// A/AAAA, NXDOMAIN and NODATA answers; a closed port and a silent server end as kTemporary
// within the timeout; the cache answers a second lookup without a query until the TTL ends.
#include "dns/unbound_resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "obs/metrics.h"
#include "support/dnsmasq.h"

namespace dns {
namespace {

using namespace std::chrono_literals;
using test_support::Dnsmasq;

// A clock the test moves by hand, for the cache's TTLs.
struct FakeClock {
  std::atomic<Cache::Clock::rep> ticks{Cache::Clock::now().time_since_epoch().count()};
  Cache::Clock::time_point now() const {
    return Cache::Clock::time_point(Cache::Clock::duration(ticks.load()));
  }
  void advance(Cache::Clock::duration by) { ticks += by.count(); }
};

std::vector<std::string> zone() {
  return {
      "--txt-record=multi.test,v=spf1 ,ip4:192.0.2.0/24 ,-all",
      "--txt-record=multi.test,second record",
      "--mx-host=mail.test,mx1.mail.test,10",
      "--mx-host=mail.test,mx2.mail.test,20",
      "--mx-host=nomail.test,.,0",
      "--host-record=mx1.mail.test,192.0.2.1",
      "--host-record=mx1.mail.test,2001:db8::1",
      "--txt-record=textonly.test,hello",
  };
}

class UnboundResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error = dns_.start(zone());
    ASSERT_EQ(error, "");
    Options options;
    options.mode = Options::Mode::kForward;
    options.servers = {dns_.server()};
    options.validation = Options::Validation::kOff;
    options.timeout = 2000ms;
    options.now = [this] { return clock_.now(); };
    auto created = create_resolver(options);
    ASSERT_TRUE(created.has_value()) << created.error();
    resolver_ = std::move(created).value();
  }

  AnswerPtr ask(std::string_view name, Type type) {
    return resolver_->lookup_and_wait(name, type, 5000ms);
  }

  // How many queries for name dnsmasq has logged ("query[TXT] multi.test from ...").
  int queries_for(std::string_view name) const {
    std::string log = dns_.log();
    std::string needle = "] " + std::string(name) + " from";
    int count = 0;
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1))
      ++count;
    return count;
  }

  FakeClock clock_;
  Dnsmasq dns_;
  std::unique_ptr<Resolver> resolver_;
};

TEST_F(UnboundResolverTest, TxtStringsOfOneRecordAreJoined) {
  AnswerPtr answer = ask("multi.test", Type::kTxt);
  ASSERT_EQ(answer->status, Status::kOk) << answer->detail << "\n" << dns_.log();
  std::vector<std::string> texts = answer->texts;
  std::sort(texts.begin(), texts.end());
  EXPECT_EQ(texts, (std::vector<std::string>{"second record", "v=spf1 ip4:192.0.2.0/24 -all"}));
  EXPECT_FALSE(answer->secure);
}

TEST_F(UnboundResolverTest, MxRecordsWithPreferencesAndNullMx) {
  AnswerPtr answer = ask("MAIL.test.", Type::kMx);
  ASSERT_EQ(answer->status, Status::kOk) << answer->detail;
  ASSERT_EQ(answer->mx.size(), 2u);
  std::vector<MxRecord> mx = answer->mx;
  std::sort(mx.begin(), mx.end(), [](auto& a, auto& b) { return a.preference < b.preference; });
  EXPECT_EQ(mx[0].preference, 10);
  EXPECT_EQ(mx[0].exchange, "mx1.mail.test");
  EXPECT_EQ(mx[1].exchange, "mx2.mail.test");
  AnswerPtr null_mx = ask("nomail.test", Type::kMx);
  ASSERT_EQ(null_mx->status, Status::kOk) << null_mx->detail;
  ASSERT_EQ(null_mx->mx.size(), 1u);
  EXPECT_EQ(null_mx->mx[0].exchange, "");
}

TEST_F(UnboundResolverTest, AddressesAsIpLiterals) {
  AnswerPtr a = ask("mx1.mail.test", Type::kA);
  ASSERT_EQ(a->status, Status::kOk) << a->detail;
  EXPECT_EQ(a->addresses, std::vector<std::string>{"192.0.2.1"});
  AnswerPtr aaaa = ask("mx1.mail.test", Type::kAaaa);
  ASSERT_EQ(aaaa->status, Status::kOk) << aaaa->detail;
  EXPECT_EQ(aaaa->addresses, std::vector<std::string>{"2001:db8::1"});
}

TEST_F(UnboundResolverTest, NxdomainAndNodata) {
  EXPECT_EQ(ask("missing.test", Type::kTxt)->status, Status::kNxDomain);
  AnswerPtr nodata = ask("textonly.test", Type::kMx);
  EXPECT_EQ(nodata->status, Status::kNoData) << nodata->detail;
}

TEST_F(UnboundResolverTest, RefusedIsTemporary) {
  // dnsmasq has no upstream: a name outside .test is refused.
  EXPECT_EQ(ask("example.org", Type::kA)->status, Status::kTemporary);
}

TEST_F(UnboundResolverTest, CacheAnswersUntilTheTtlEnds) {
  ASSERT_EQ(ask("multi.test", Type::kTxt)->status, Status::kOk);
  ASSERT_EQ(queries_for("multi.test"), 1) << dns_.log();
  // Again, in another case: from the cache, at once on this thread, no query.
  bool called = false;
  resolver_->lookup("Multi.Test", Type::kTxt, [&](AnswerPtr answer) {
    called = true;
    EXPECT_EQ(answer->status, Status::kOk);
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(queries_for("multi.test"), 1);
  // dnsmasq's TTL is 0, kept for the cache's minimum (5 s): after it, asked again.
  clock_.advance(6s);
  ASSERT_EQ(ask("multi.test", Type::kTxt)->status, Status::kOk);
  EXPECT_EQ(queries_for("multi.test"), 2) << dns_.log();
}

TEST_F(UnboundResolverTest, NegativeAnswersAreCachedToo) {
  ASSERT_EQ(ask("missing.test", Type::kA)->status, Status::kNxDomain);
  ASSERT_EQ(ask("missing.test", Type::kA)->status, Status::kNxDomain);
  EXPECT_EQ(queries_for("missing.test"), 1) << dns_.log();
}

TEST_F(UnboundResolverTest, LookupsAndAnswersAreCounted) {
  obs::Registry& registry = obs::metrics();
  auto& from_cache = registry.counter("smtpsd_dns_lookups_total", "", {{"source", "cache"}});
  auto& queried = registry.counter("smtpsd_dns_lookups_total", "", {{"source", "query"}});
  auto& nxdomain = registry.counter("smtpsd_dns_answers_total", "", {{"status", "nxdomain"}});
  const auto cache_before = from_cache.value();
  const auto query_before = queried.value();
  const auto nxdomain_before = nxdomain.value();
  ASSERT_EQ(ask("counted.test", Type::kA)->status, Status::kNxDomain);
  ASSERT_EQ(ask("counted.test", Type::kA)->status, Status::kNxDomain);
  EXPECT_EQ(queried.value() - query_before, 1u);
  EXPECT_EQ(from_cache.value() - cache_before, 1u);
  EXPECT_EQ(nxdomain.value() - nxdomain_before, 1u);
  EXPECT_NE(registry.render().find("smtpsd_dns_lookups_total{source=\"cache\"}"),
            std::string::npos);
}

TEST_F(UnboundResolverTest, IdenticalLookupsInFlightShareOneQuery) {
  std::mutex mutex;
  std::condition_variable done;
  int answers = 0;
  for (int i = 0; i < 5; ++i) {
    resolver_->lookup("mail.test", Type::kMx, [&](AnswerPtr answer) {
      EXPECT_EQ(answer->status, Status::kOk);
      std::lock_guard lock(mutex);
      ++answers;
      done.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  ASSERT_TRUE(done.wait_for(lock, 5s, [&] { return answers == 5; }));
  EXPECT_EQ(queries_for("mail.test"), 1) << dns_.log();
}

std::unique_ptr<Resolver> forward_to(base::HostPort server, std::chrono::milliseconds timeout) {
  Options options;
  options.mode = Options::Mode::kForward;
  options.servers = {std::move(server)};
  options.validation = Options::Validation::kOff;
  options.timeout = timeout;
  auto created = create_resolver(options);
  EXPECT_TRUE(created.has_value()) << created.error();
  return created ? std::move(created).value() : nullptr;
}

TEST(UnboundResolverNoServer, ClosedPortFailsFast) {
  auto resolver =
      forward_to({"127.0.0.1", static_cast<std::uint16_t>(test_support::free_port())}, 5000ms);
  ASSERT_NE(resolver, nullptr);
  auto start = std::chrono::steady_clock::now();
  AnswerPtr answer = resolver->lookup_and_wait("example.test", Type::kTxt, 10s);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(answer->status, Status::kTemporary) << answer->detail;
  // The port is closed (ICMP port unreachable): no waiting for the timeout.
  EXPECT_LT(elapsed, 1s) << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
}

TEST(UnboundResolverNoServer, SilentServerEndsAtTheTimeout) {
  int sock = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto resolver = forward_to({"127.0.0.1", ntohs(address.sin_port)}, 300ms);
  ASSERT_NE(resolver, nullptr);
  auto start = std::chrono::steady_clock::now();
  AnswerPtr answer = resolver->lookup_and_wait("example.test", Type::kTxt, 10s);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ::close(sock);
  EXPECT_EQ(answer->status, Status::kTemporary);
  EXPECT_EQ(answer->detail, "timed out");
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 1s);
}

TEST(UnboundResolverNoServer, AServerThatStopsListeningIsNoticedLater) {
  int sock = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto resolver = forward_to({"127.0.0.1", ntohs(address.sin_port)}, 400ms);
  ASSERT_NE(resolver, nullptr);
  // Silent: the lookup ends at its timeout.
  EXPECT_EQ(resolver->lookup_and_wait("first.test", Type::kA, 5s)->detail, "timed out");
  ::close(sock);  // now the port is closed
  std::this_thread::sleep_for(1100ms);
  auto start = std::chrono::steady_clock::now();
  AnswerPtr answer = resolver->lookup_and_wait("second.test", Type::kA, 5s);
  EXPECT_EQ(answer->detail, "DNS server unreachable (connection refused)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 400ms);
}

TEST(UnboundResolverNoServer, DestroyedWithLookupsInFlightCallsEachBack) {
  int sock = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto resolver = forward_to({"127.0.0.1", ntohs(address.sin_port)}, 5000ms);
  ASSERT_NE(resolver, nullptr);
  std::atomic<int> calls{0};
  for (int i = 0; i < 3; ++i) {
    resolver->lookup("n" + std::to_string(i) + ".test", Type::kA, [&](AnswerPtr answer) {
      EXPECT_EQ(answer->status, Status::kTemporary);
      ++calls;
    });
  }
  resolver.reset();
  ::close(sock);
  EXPECT_EQ(calls.load(), 3);
}

TEST(UnboundResolverOptions, BadOptionsAreRefused) {
  Options options;
  options.mode = Options::Mode::kForward;
  options.validation = Options::Validation::kOff;
  EXPECT_FALSE(create_resolver(options).has_value());  // no server
  options.servers = {{"not an address", 53}};
  EXPECT_FALSE(create_resolver(options).has_value());
  options.servers = {{"127.0.0.1", 53}};
  options.timeout = 0ms;
  EXPECT_FALSE(create_resolver(options).has_value());
  options.timeout = 100ms;
  options.validation = Options::Validation::kOn;
  options.trust_anchor = "/nonexistent/root.key";
  EXPECT_FALSE(create_resolver(options).has_value());
}

}  // namespace
}  // namespace dns
