// network_test.cpp — base/network.h: IP literals, CIDR networks, loopback.
#include "base/network.h"

#include <gtest/gtest.h>

namespace {

TEST(NetworkTest, LoopbackIsRecognised) {
  EXPECT_TRUE(base::is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(base::is_loopback_address("127.8.9.10"));
  EXPECT_TRUE(base::is_loopback_address("::1"));
  EXPECT_FALSE(base::is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(base::is_loopback_address("192.0.2.1"));
  EXPECT_FALSE(base::is_loopback_address("::"));
}

TEST(NetworkTest, Ipv4IsHeldIpv4Mapped) {
  EXPECT_TRUE(base::is_ipv4_mapped(base::parse_ip("192.0.2.1").value()));
  EXPECT_TRUE(base::is_ipv4_mapped(base::parse_ip("::ffff:192.0.2.1").value()));
  EXPECT_FALSE(base::is_ipv4_mapped(base::parse_ip("::192.0.2.1").value()));
  EXPECT_FALSE(base::is_ipv4_mapped(base::parse_ip("2001:db8::1").value()));
  EXPECT_FALSE(base::is_ipv4_mapped(base::parse_ip("::1").value()));
}

TEST(NetworkTest, NetworksContainTheirAddressesInBothFamilies) {
  auto v4 = base::parse_network("192.0.2.0/24");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->contains(*base::parse_ip("192.0.2.200")));
  EXPECT_FALSE(v4->contains(*base::parse_ip("192.0.3.1")));
  auto v6 = base::parse_network("2001:db8::/33");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(*base::parse_ip("2001:db8:7fff::1")));
  EXPECT_FALSE(v6->contains(*base::parse_ip("2001:db8:8000::1")));
  auto single = base::parse_network("198.51.100.7");
  ASSERT_TRUE(single);
  EXPECT_EQ(single->prefix_length, 128u);
  EXPECT_FALSE(base::parse_network("192.0.2.0/33"));
  EXPECT_FALSE(base::parse_network("192.0.2.0/"));
  EXPECT_FALSE(base::parse_network("example.com/24"));
  EXPECT_FALSE(base::parse_ip(""));
  EXPECT_FALSE(base::parse_ip("::ffff:1.2.3.4.5"));
}

TEST(NetworkTest, AddressesAndNetworksPrintAsWritten) {
  EXPECT_EQ(base::format_ip(*base::parse_ip("192.0.2.1")), "192.0.2.1");
  EXPECT_EQ(base::format_ip(*base::parse_ip("0:0::0")), "::");
  EXPECT_EQ(base::format_ip(*base::parse_ip("2001:DB8::1")), "2001:db8::1");
  for (const char* text : {"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"}) {
    EXPECT_EQ(base::to_string(*base::parse_network(text)), text);
  }
}

// Every per-client limit keys on client_network(): IPv4 as the /32 (also IPv4-mapped),
// IPv6 as its prefix, so that a host cannot escape a limit by changing its low 64 bits.
TEST(NetworkTest, ClientNetworkIsTheIpv4AddressOrTheIpv6Prefix) {
  EXPECT_EQ(base::client_key("2001:db8:1:2::1", 64), "2001:db8:1:2::/64");
  EXPECT_EQ(base::client_key("2001:db8:1:2:ffff:ffff:ffff:ffff", 64), "2001:db8:1:2::/64");
  EXPECT_EQ(base::client_key("2001:db8:1:3::1", 64), "2001:db8:1:3::/64");
  EXPECT_EQ(base::client_key("2001:db8:1:2:80::1", 56), "2001:db8:1::/56");
  EXPECT_EQ(base::client_key("2001:db8:1:ff:80::1", 57), "2001:db8:1:80::/57");
  EXPECT_EQ(base::client_key("2001:db8::7", 128), "2001:db8::7/128");
  EXPECT_EQ(base::client_key("192.0.2.7", 64), "192.0.2.7");
  EXPECT_EQ(base::client_key("::ffff:192.0.2.7", 64), "192.0.2.7");  // IPv4-mapped
  EXPECT_EQ(base::client_key("::FFFF:192.0.2.7", 32), "192.0.2.7");
  EXPECT_EQ(base::client_key("unknown", 64), "unknown");
  // Out-of-range prefixes are clamped, never a shift past the 16 bytes.
  EXPECT_EQ(base::client_key("2001:db8:1:2::1", 0), "2001:db8::/32");
  EXPECT_EQ(base::client_key("2001:db8:1:2::1", 500), "2001:db8:1:2::1/128");

  auto same = base::client_network("2001:db8:1:2::1", 64);
  auto other = base::client_network("2001:db8:1:2:abcd::9", 64);
  ASSERT_TRUE(same && other);
  EXPECT_EQ(*same, *other);
  EXPECT_EQ(same->prefix_length, 64u);
  EXPECT_TRUE(same->contains(*base::parse_ip("2001:db8:1:2::ffff")));
  auto v4 = base::client_network("::ffff:192.0.2.7", 64);
  ASSERT_TRUE(v4);
  EXPECT_EQ(*v4, *base::client_network("192.0.2.7", 64));
  EXPECT_EQ(base::to_string(*v4), "192.0.2.7/32");
  EXPECT_FALSE(base::client_network("example.com", 64));
}

}  // namespace
