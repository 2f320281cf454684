// probe_command_test.cpp — the parts of `smtpsctl probe` that need no server: HOST[:PORT]
// forms (names, IPv4, bracketed and bare IPv6), the options, and usage errors (exit 3).
// The probing itself is tested against smtpsd and a fake server in
// tests/integration/test_probe.py.
#include "app/smtpsctl/probe_command.h"

#include <sstream>

#include <gtest/gtest.h>

namespace app {
namespace {

TEST(ProbeCommand, Targets) {
  auto plain = parse_probe_arguments({"mail.example.net"});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->host, "mail.example.net");
  EXPECT_TRUE(plain->ports.empty());
  EXPECT_EQ(plain->name, "mail.example.net");
  auto with_port = parse_probe_arguments({"mail.example.net:2525"});
  ASSERT_TRUE(with_port);
  EXPECT_EQ(with_port->ports, std::vector<std::uint16_t>{2525});
  auto v6 = parse_probe_arguments({"[::1]:465"});
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->ports, std::vector<std::uint16_t>{465});
  auto bare_v6 = parse_probe_arguments({"2001:db8::25"});
  ASSERT_TRUE(bare_v6);
  EXPECT_EQ(bare_v6->host, "2001:db8::25");
  EXPECT_TRUE(bare_v6->ports.empty());
  auto ipv4 = parse_probe_arguments({"127.0.0.1:25"});
  ASSERT_TRUE(ipv4);
  EXPECT_EQ(ipv4->host, "127.0.0.1");
  EXPECT_EQ(ipv4->ports, std::vector<std::uint16_t>{25});
  // --port adds ports (DROWN is judged across the ports of one run); each once.
  auto several = parse_probe_arguments(
      {"mx.example.net:25", "--port", "465", "--port", "25", "--port", "587"});
  ASSERT_TRUE(several);
  EXPECT_EQ(several->ports, (std::vector<std::uint16_t>{25, 465, 587}));
}

TEST(ProbeCommand, Options) {
  auto parsed = parse_probe_arguments({"--json", "127.0.0.1:587", "--name", "mail.example.net",
                                       "--cafile", "ca.pem", "--timeout", "3"});
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->json);
  EXPECT_EQ(parsed->name, "mail.example.net");
  EXPECT_EQ(parsed->cafile, "ca.pem");
  EXPECT_EQ(parsed->timeout_seconds, 3);
  EXPECT_TRUE(parse_probe_arguments({"--help"})->help);
}

TEST(ProbeCommand, UsageErrors) {
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{},
                                             {"x:0"},
                                             {"x:65536"},
                                             {"x:"},
                                             {"x:port"},
                                             {"[::1"},
                                             {"[::1]25"},
                                             {":25"},
                                             {"a", "b"},
                                             {"x", "--timeout"},
                                             {"x", "--timeout", "0"},
                                             {"x", "--bogus"},
                                             {"x", "--port"},
                                             {"x", "--port", "0"},
                                             {"x", "--port", "65536"},
                                             {"x", "--port", "smtp"},
                                             {"x", "--max-connections"},
                                             {"x", "--max-connections", "0"},
                                             {"x", "--max-connections", "3x"}}) {
    EXPECT_FALSE(parse_probe_arguments(bad)) << (bad.empty() ? "(none)" : bad.front());
  }
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run_probe_command({}, out, err), 3);
  EXPECT_NE(err.str().find("usage: smtpsctl probe"), std::string::npos);
}

TEST(ProbeCommand, DomainMode) {
  auto parsed = parse_probe_arguments({"--domain", "Example.NET.", "--dns-server", "127.0.0.1:5353",
                                       "--dns-server", "[::1]", "--trust-anchor", "/k",
                                       "--mta-sts-port", "8443"});
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->domain, "example.net");
  EXPECT_EQ(parsed->host, "");
  EXPECT_EQ(parsed->ports, (std::vector<std::uint16_t>{25}));
  EXPECT_EQ(parsed->dns_servers, (std::vector<std::string>{"127.0.0.1:5353", "[::1]"}));
  EXPECT_EQ(parsed->trust_anchor, "/k");
  EXPECT_EQ(parsed->mta_sts_port, 8443);
  auto ports = parse_probe_arguments({"--domain", "example.net", "--port", "2525"});
  ASSERT_TRUE(ports);
  EXPECT_EQ(ports->ports, (std::vector<std::uint16_t>{2525}));
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--domain", "127.0.0.1"},
           {"--domain", "localhost"},
           {"--domain", "a..b"},
           {"--domain", "a_b.example"},
           {"--domain"},
           {"x", "--domain", "example.net"},
           {"--domain", "example.net", "--dns-server", "ns.example.net"},
           {"--domain", "example.net", "--mta-sts-port", "0"},
           {"x", "--dns-server", "127.0.0.1"}}) {
    EXPECT_FALSE(parse_probe_arguments(bad)) << bad.back();
  }
}

TEST(ProbeCommand, MaxConnectionsOption) {
  auto parsed = parse_probe_arguments({"x", "--max-connections", "7"});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->max_connections, 7);
  auto defaulted = parse_probe_arguments({"x"});
  ASSERT_TRUE(defaulted);
  EXPECT_EQ(defaulted->max_connections, kDefaultMaxConnections);
}

TEST(ProbeCommand, ParallelOption) {
  auto parsed = parse_probe_arguments({"x", "--parallel", "1"});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->parallel, 1);
  auto defaulted = parse_probe_arguments({"x"});
  ASSERT_TRUE(defaulted);
  EXPECT_EQ(defaulted->parallel, kDefaultParallel);
  for (const char* bad : {"0", "65", "-1", "two", ""}) {
    auto refused = parse_probe_arguments({"x", "--parallel", bad});
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error(), "--parallel: a number of connections from 1 to 64") << bad;
  }
}

// A known weakness fails even when the scan was cut; otherwise a cut scan is never a PASS
// or a WARN but INCONCLUSIVE, with its own exit code.
TEST(ProbeCommand, VerdictRule) {
  EXPECT_EQ(probe_verdict(false, false, false), ProbeVerdict::kPass);
  EXPECT_EQ(probe_verdict(false, true, false), ProbeVerdict::kWarn);
  EXPECT_EQ(probe_verdict(true, true, false), ProbeVerdict::kFail);
  EXPECT_EQ(probe_verdict(false, false, true), ProbeVerdict::kInconclusive);
  EXPECT_EQ(probe_verdict(false, true, true), ProbeVerdict::kInconclusive);
  EXPECT_EQ(probe_verdict(true, false, true), ProbeVerdict::kFail);
  EXPECT_EQ(probe_exit_code(ProbeVerdict::kPass), 0);
  EXPECT_EQ(probe_exit_code(ProbeVerdict::kWarn), 1);
  EXPECT_EQ(probe_exit_code(ProbeVerdict::kFail), 2);
  EXPECT_EQ(probe_exit_code(ProbeVerdict::kInconclusive), 4);
  EXPECT_STREQ(to_string(ProbeVerdict::kInconclusive), "INCONCLUSIVE");
}

}  // namespace
}  // namespace app
