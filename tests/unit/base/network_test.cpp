// network_test.cpp — base/network.h: IP literals, CIDR networks, loopback, host:port.
#include "base/network.h"

#include <gtest/gtest.h>

namespace {

TEST(NetworkTest, AddressesSplitAndLoopbackIsRecognised) {
  std::string host;
  std::uint16_t port = 0;
  ASSERT_TRUE(base::split_host_port("127.0.0.1:9464", host, port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9464);
  ASSERT_TRUE(base::split_host_port("[::1]:0", host, port));
  EXPECT_EQ(host, "::1");
  EXPECT_FALSE(base::split_host_port("localhost:9464", host, port));  // numeric only
  EXPECT_FALSE(base::split_host_port("::1:9464", host, port));
  EXPECT_FALSE(base::split_host_port("127.0.0.1:70000", host, port));
  EXPECT_FALSE(base::split_host_port("127.0.0.1", host, port));
  EXPECT_TRUE(base::is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(base::is_loopback_address("127.8.9.10"));
  EXPECT_TRUE(base::is_loopback_address("::1"));
  EXPECT_FALSE(base::is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(base::is_loopback_address("192.0.2.1"));
  EXPECT_FALSE(base::is_loopback_address("::"));
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

}  // namespace
