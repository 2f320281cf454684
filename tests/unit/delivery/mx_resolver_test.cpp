// mx_resolver_test.cpp — delivery::MxResolver over dns::Resolver against a real DNS server: a
// dnsmasq that each test starts on a free 127.0.0.1 port with the zone below (no upstream, so no
// query ever leaves the loopback interface). Covers RFC 5321 §5.1 ordering and the implicit MX, RFC
// 7505 null MX, NXDOMAIN, unusable MX records, CNAMEs, domain literals (§4.1.3), and that a
// dead or silent server gives kTemporary within the deadline.
#include "delivery/mx_resolver.h"

#include "dns/unbound_resolver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/dnsmasq.h"

namespace delivery {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using test_support::Dnsmasq;
using test_support::find_dnsmasq;

// The server's resolver, forwarding to server without DNSSEC validation.
std::shared_ptr<dns::Resolver> forward_to(base::HostPort server,
                                          std::chrono::milliseconds timeout) {
  dns::Options options;
  options.mode = dns::Options::Mode::kForward;
  options.servers = {std::move(server)};
  options.validation = dns::Options::Validation::kOff;
  options.timeout = timeout;
  auto created = dns::create_resolver(options);
  EXPECT_TRUE(created.has_value()) << created.error();
  if (!created) return nullptr;
  return std::move(created).value();
}
using test_support::free_port;

// The zone every test sees (names under .test only; the addresses are never connected to).
std::vector<std::string> zone() {
  std::vector<std::string> records = {
      // example.test: four MX hosts, two of them at preference 20.
      "--mx-host=example.test,mx10.example.test,10", "--mx-host=example.test,mx20a.example.test,20",
      "--mx-host=example.test,mx20b.example.test,20", "--mx-host=example.test,mx30.example.test,30",
      "--host-record=mx10.example.test,192.0.2.10", "--host-record=mx10.example.test,2001:db8::10",
      "--host-record=mx20a.example.test,192.0.2.21", "--host-record=mx20b.example.test,192.0.2.22",
      "--host-record=mx30.example.test,2001:db8::30",
      // implicit.test: no MX, its own A and AAAA.
      "--host-record=implicit.test,192.0.2.50", "--host-record=implicit.test,2001:db8::50",
      // nomail.test: null MX (RFC 7505).
      "--mx-host=nomail.test,.,0",
      // empty.test: exists (a TXT record) but has no MX, A or AAAA.
      "--txt-record=empty.test,hello",
      // literalmx.test: its only MX is an IP address; mixedmx.test has a good one too.
      "--mx-host=literalmx.test,192.0.2.7,10", "--mx-host=mixedmx.test,192.0.2.7,10",
      "--mx-host=mixedmx.test,mx10.example.test,20",
      // deadmx.test: its only MX host does not exist; partmx.test has a good one too.
      "--mx-host=deadmx.test,missing.test,10", "--mx-host=partmx.test,missing.test,10",
      "--mx-host=partmx.test,mx20a.example.test,20",
      // selfmx.test: the MX is the domain itself.
      "--mx-host=selfmx.test,selfmx.test,5", "--host-record=selfmx.test,192.0.2.60",
      // alias.test: a CNAME to an MX host (no MX of its own).
      "--cname=alias.test,mx10.example.test",
      // many.test: more MX hosts than kMaxMxTargets; wide.test: more addresses than allowed.
  };
  for (int i = 0; i < 12; ++i) {
    records.push_back("--mx-host=many.test,mx" + std::to_string(i) + ".many.test," +
                      std::to_string(i));
    records.push_back("--host-record=mx" + std::to_string(i) + ".many.test,192.0.2." +
                      std::to_string(100 + i));
  }
  for (int i = 0; i < 12; ++i) {
    records.push_back("--host-record=wide.test,198.51.100." + std::to_string(i + 1));
  }
  return records;
}

std::vector<std::string> hosts(const MxAnswer& answer) {
  std::vector<std::string> names;
  for (const auto& target : answer.targets)
    names.push_back(target.host);
  return names;
}

class MxResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(find_dnsmasq().empty())
        << "dnsmasq not found: run scripts/install-deps.sh (Debian package dnsmasq-base)";
    std::string error = dns_.start(zone());
    ASSERT_EQ(error, "");
    auto dns = forward_to(dns_.server(), 2000ms);
    ASSERT_NE(dns, nullptr);
    resolver_ = std::make_unique<MxResolver>(std::move(dns), 4000ms);
  }

  std::string context(const MxAnswer& answer) const {
    return "status=" + std::string(to_string(answer.status)) + " detail=" + answer.detail + "\n" +
           dns_.describe() + "; its log:\n" + dns_.log();
  }

  Dnsmasq dns_;
  std::unique_ptr<MxResolver> resolver_;
};

TEST_F(MxResolverTest, TargetsInPreferenceOrderWithAddressesIpv6First) {
  MxAnswer answer = resolver_->resolve("example.test");
  ASSERT_EQ(answer.status, MxStatus::kOk) << context(answer);
  ASSERT_EQ(answer.targets.size(), 4u) << context(answer);
  EXPECT_EQ(answer.targets[0].host, "mx10.example.test");
  EXPECT_EQ(answer.targets[0].preference, 10u);
  EXPECT_EQ(answer.targets[0].addresses, (std::vector<std::string>{"2001:db8::10", "192.0.2.10"}));
  EXPECT_FALSE(answer.targets[0].implicit);
  EXPECT_EQ(answer.targets[1].preference, 20u);
  EXPECT_EQ(answer.targets[2].preference, 20u);
  EXPECT_EQ(answer.targets[3].host, "mx30.example.test");
  EXPECT_EQ(answer.targets[3].addresses, (std::vector<std::string>{"2001:db8::30"}));
}

TEST_F(MxResolverTest, EqualPreferencesAreBothPresentInRandomOrder) {
  std::set<std::string> seen_first;
  for (int i = 0; i < 40; ++i) {
    MxAnswer answer = resolver_->resolve("example.test");
    ASSERT_EQ(answer.status, MxStatus::kOk) << context(answer);
    ASSERT_EQ(answer.targets.size(), 4u);
    std::set<std::string> middle = {answer.targets[1].host, answer.targets[2].host};
    EXPECT_EQ(middle, (std::set<std::string>{"mx20a.example.test", "mx20b.example.test"}));
    seen_first.insert(answer.targets[1].host);
  }
  // RFC 5321 §5.1: hosts of equal preference are tried in random order (2^-39 to fail).
  EXPECT_EQ(seen_first.size(), 2u);
}

TEST_F(MxResolverTest, TrailingDotAndCaseAreAccepted) {
  MxAnswer answer = resolver_->resolve("Example.TEST.");
  ASSERT_EQ(answer.status, MxStatus::kOk) << context(answer);
  EXPECT_EQ(answer.targets.size(), 4u);
}

TEST_F(MxResolverTest, NoMxMeansTheImplicitMxOfTheDomain) {
  MxAnswer answer = resolver_->resolve("implicit.test");
  ASSERT_EQ(answer.status, MxStatus::kOk) << context(answer);
  ASSERT_EQ(answer.targets.size(), 1u);
  EXPECT_EQ(answer.targets[0].host, "implicit.test");
  EXPECT_EQ(answer.targets[0].preference, 0u);
  EXPECT_TRUE(answer.targets[0].implicit);
  EXPECT_EQ(answer.targets[0].addresses, (std::vector<std::string>{"2001:db8::50", "192.0.2.50"}));
}

TEST_F(MxResolverTest, CnameIsFollowedForTheImplicitMx) {
  MxAnswer answer = resolver_->resolve("alias.test");
  ASSERT_EQ(answer.status, MxStatus::kOk) << context(answer);
  ASSERT_EQ(answer.targets.size(), 1u);
  EXPECT_TRUE(answer.targets[0].implicit);
  EXPECT_EQ(answer.targets[0].addresses, (std::vector<std::string>{"2001:db8::10", "192.0.2.10"}));
}

TEST_F(MxResolverTest, NullMxMeansNoMail) {
  MxAnswer answer = resolver_->resolve("nomail.test");
  EXPECT_EQ(answer.status, MxStatus::kNullMx) << context(answer);
  EXPECT_TRUE(answer.targets.empty());
  EXPECT_NE(answer.detail.find("null MX"), std::string::npos) << answer.detail;
}

TEST_F(MxResolverTest, NxdomainIsPermanent) {
  MxAnswer answer = resolver_->resolve("nx.test");
  EXPECT_EQ(answer.status, MxStatus::kNoDomain) << context(answer);
  EXPECT_NE(answer.detail.find("NXDOMAIN"), std::string::npos) << answer.detail;
}

TEST_F(MxResolverTest, NoMxAndNoAddressIsPermanent) {
  MxAnswer answer = resolver_->resolve("empty.test");
  EXPECT_EQ(answer.status, MxStatus::kNoDomain) << context(answer);
  EXPECT_EQ(answer.detail, "no MX or A/AAAA record for empty.test");
}

TEST_F(MxResolverTest, MxPointingToAnIpAddressIsSkipped) {
  MxAnswer only = resolver_->resolve("literalmx.test");
  EXPECT_EQ(only.status, MxStatus::kNoDomain) << context(only);
  EXPECT_NE(only.detail.find("192.0.2.7 is an IP address"), std::string::npos) << only.detail;

  MxAnswer mixed = resolver_->resolve("mixedmx.test");
  ASSERT_EQ(mixed.status, MxStatus::kOk) << context(mixed);
  EXPECT_EQ(hosts(mixed), (std::vector<std::string>{"mx10.example.test"}));
  EXPECT_NE(mixed.detail.find("192.0.2.7 is an IP address"), std::string::npos) << mixed.detail;
}

TEST_F(MxResolverTest, MxHostWithoutAddressIsDroppedUnlessAllAre) {
  MxAnswer part = resolver_->resolve("partmx.test");
  ASSERT_EQ(part.status, MxStatus::kOk) << context(part);
  EXPECT_EQ(hosts(part), (std::vector<std::string>{"mx20a.example.test"}));
  EXPECT_NE(part.detail.find("missing.test"), std::string::npos) << part.detail;

  MxAnswer dead = resolver_->resolve("deadmx.test");
  EXPECT_EQ(dead.status, MxStatus::kTemporary) << context(dead);
  ASSERT_EQ(hosts(dead), (std::vector<std::string>{"missing.test"}));
  EXPECT_TRUE(dead.targets[0].addresses.empty());
  EXPECT_NE(dead.detail.find("missing.test"), std::string::npos) << dead.detail;
}

TEST_F(MxResolverTest, MxNamingTheDomainItselfIsAnOrdinaryTarget) {
  MxAnswer answer = resolver_->resolve("selfmx.test");
  ASSERT_EQ(answer.status, MxStatus::kOk) << context(answer);
  ASSERT_EQ(answer.targets.size(), 1u);
  EXPECT_EQ(answer.targets[0].host, "selfmx.test");
  EXPECT_EQ(answer.targets[0].preference, 5u);
  EXPECT_FALSE(answer.targets[0].implicit);
  EXPECT_EQ(answer.targets[0].addresses, (std::vector<std::string>{"192.0.2.60"}));
}

TEST_F(MxResolverTest, TargetsAndAddressesAreBounded) {
  MxAnswer many = resolver_->resolve("many.test");
  ASSERT_EQ(many.status, MxStatus::kOk) << context(many);
  ASSERT_EQ(many.targets.size(), kMaxMxTargets);
  EXPECT_EQ(many.targets.front().host, "mx0.many.test");
  EXPECT_EQ(many.targets.back().host, "mx9.many.test");

  MxAnswer wide = resolver_->resolve("wide.test");  // no MX: the domain's own addresses
  ASSERT_EQ(wide.status, MxStatus::kOk) << context(wide);
  ASSERT_EQ(wide.targets.size(), 1u);
  EXPECT_EQ(wide.targets[0].addresses.size(), kMaxAddressesPerTarget);
}

TEST_F(MxResolverTest, RefusedIsTemporary) {
  // dnsmasq has no upstream: a name outside .test is REFUSED, which the resolver (libunbound)
  // reports as SERVFAIL, as a recursive resolver does (RFC 8914 §4.21 would tell more).
  MxAnswer answer = resolver_->resolve("example.org");
  EXPECT_EQ(answer.status, MxStatus::kTemporary) << context(answer);
  EXPECT_NE(answer.detail.find("SERVFAIL"), std::string::npos) << answer.detail;
}

TEST_F(MxResolverTest, ConcurrentCallsFromSeveralThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 15; ++i) {
        if (resolver_->resolve("example.test").targets.size() != 4) ++failures;
        if (resolver_->resolve("nomail.test").status != MxStatus::kNullMx) ++failures;
        if (resolver_->resolve("implicit.test").status != MxStatus::kOk) ++failures;
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// The tests below need no server that answers: a resolver pointed at a closed port.
std::unique_ptr<MxResolver> resolver_at_closed_port(std::chrono::milliseconds timeout) {
  int port = free_port();
  auto dns = forward_to(base::HostPort{"127.0.0.1", static_cast<std::uint16_t>(port)}, timeout);
  return dns != nullptr ? std::make_unique<MxResolver>(std::move(dns), 2 * timeout) : nullptr;
}

TEST(MxResolverNoServer, ClosedPortIsTemporaryWithinTheDeadline) {
  auto resolver = resolver_at_closed_port(300ms);
  ASSERT_NE(resolver, nullptr);
  auto start = std::chrono::steady_clock::now();
  MxAnswer answer = resolver->resolve("example.test");
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(answer.status, MxStatus::kTemporary) << answer.detail;
  EXPECT_LE(elapsed, resolver->deadline() + 500ms);
}

TEST(MxResolverNoServer, SilentServerTimesOutWithinTheDeadline) {
  // A UDP socket that receives queries and never answers.
  int sock = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::getsockname(sock, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto dns = forward_to(base::HostPort{"127.0.0.1", ntohs(address.sin_port)}, 100ms);
  ASSERT_NE(dns, nullptr);
  auto resolver = std::make_unique<MxResolver>(std::move(dns), 200ms);
  auto start = std::chrono::steady_clock::now();
  MxAnswer answer = resolver->resolve("example.test");
  auto elapsed = std::chrono::steady_clock::now() - start;
  ::close(sock);
  EXPECT_EQ(answer.status, MxStatus::kTemporary);
  EXPECT_NE(answer.detail.find("timeout"), std::string::npos) << answer.detail;
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LE(elapsed, resolver->deadline() + 500ms);
}

TEST(MxResolverNoServer, DomainLiteralNeedsNoDns) {
  auto resolver = resolver_at_closed_port(200ms);
  ASSERT_NE(resolver, nullptr);
  MxAnswer v4 = resolver->resolve("[192.0.2.1]");
  ASSERT_EQ(v4.status, MxStatus::kOk) << v4.detail;
  ASSERT_EQ(v4.targets.size(), 1u);
  EXPECT_EQ(v4.targets[0].host, "[192.0.2.1]");
  EXPECT_EQ(v4.targets[0].addresses, (std::vector<std::string>{"192.0.2.1"}));

  MxAnswer v6 = resolver->resolve("[IPv6:::1]");
  ASSERT_EQ(v6.status, MxStatus::kOk) << v6.detail;
  EXPECT_EQ(v6.targets[0].addresses, (std::vector<std::string>{"::1"}));
  MxAnswer v6_long = resolver->resolve("[ipv6:2001:DB8:0:0::1]");
  ASSERT_EQ(v6_long.status, MxStatus::kOk) << v6_long.detail;
  EXPECT_EQ(v6_long.targets[0].addresses, (std::vector<std::string>{"2001:db8::1"}));

  for (const char* bad :
       {"[300.1.1.1]", "[IPv6:192.0.2.1x]", "[::1]", "[tag:content]", "[]", "[192.0.2.1"}) {
    EXPECT_EQ(resolver->resolve(bad).status, MxStatus::kNoDomain) << bad;
  }
}

TEST(MxResolverNoServer, InvalidNamesArePermanentWithoutAQuery) {
  auto resolver = resolver_at_closed_port(200ms);
  ASSERT_NE(resolver, nullptr);
  for (const std::string& bad : std::vector<std::string>{
           "", ".", "a..b", "exa mple.test", "bücher.test", "a/b.test",
           std::string(64, 'a') + ".test", std::string(250, 'a') + ".b.test"}) {
    MxAnswer answer = resolver->resolve(bad);
    EXPECT_EQ(answer.status, MxStatus::kNoDomain) << bad << ": " << answer.detail;
  }
  // The detail goes into logs and DSNs: no line break from a peer's text gets there.
  MxAnswer injected = resolver->resolve("a.test\r\nX-Injected: 1");
  EXPECT_EQ(injected.status, MxStatus::kNoDomain);
  EXPECT_EQ(injected.detail.find_first_of("\r\n"), std::string::npos) << injected.detail;
}

}  // namespace
}  // namespace delivery
