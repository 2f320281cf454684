// proxy_protocol_test.cpp — the PROXY protocol parser (src/net/proxy_protocol.h): v1 and v2
// headers fed whole and byte by byte, truncated, oversize, garbage, LOCAL/UNKNOWN.
#include "net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace net::proxy_protocol {
namespace {

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2(unsigned char command, unsigned char family, std::string block) {
  std::string out = kSignature;
  out += static_cast<char>(0x20 | command);
  out += static_cast<char>(family);
  out += static_cast<char>((block.size() >> 8) & 0xff);
  out += static_cast<char>(block.size() & 0xff);
  return out + block;
}

std::string v2_inet(std::string tlvs = "") {
  // 192.0.2.7:40000 → 198.51.100.1:465
  std::string block("\xc0\x00\x02\x07\xc6\x33\x64\x01\x9c\x40\x01\xd1", 12);
  return v2(1, 0x11, block + tlvs);
}

// Every strict prefix needs more; the whole gives kDone with the whole length.
void expect_prefixes_need_more(const std::string& header) {
  for (std::size_t n = 0; n < header.size(); ++n) {
    Result partial = parse(std::string_view(header).substr(0, n));
    ASSERT_EQ(partial.status, Status::kNeedMore) << "prefix of " << n << " bytes";
  }
}

// The connection most tests describe: 192.0.2.7:40000 to 198.51.100.1:465.
void expect_client_192_0_2_7(const Header& header, int version) {
  EXPECT_EQ(header.version, version);
  EXPECT_FALSE(header.use_socket_address);
  EXPECT_EQ(header.source_address, "192.0.2.7");
  EXPECT_EQ(header.source_port, 40000);
  EXPECT_EQ(header.destination_address, "198.51.100.1");
  EXPECT_EQ(header.destination_port, 465);
}

TEST(ProxyProtocolTest, V1Tcp4) {
  std::string header = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 465\r\n";
  expect_prefixes_need_more(header);
  Result result = parse(header + "\x16\x03\x01");  // a ClientHello follows
  ASSERT_EQ(result.status, Status::kDone) << result.error;
  EXPECT_EQ(result.length, header.size());
  expect_client_192_0_2_7(result.header, 1);
}

TEST(ProxyProtocolTest, V1Tcp6) {
  std::string header = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n";
  Result result = parse(header);
  ASSERT_EQ(result.status, Status::kDone) << result.error;
  EXPECT_EQ(result.header.source_address, "2001:db8::7");
  EXPECT_EQ(result.header.source_port, 65535);
  EXPECT_EQ(result.header.destination_port, 0);
}

TEST(ProxyProtocolTest, V1MappedIpv4IsWrittenAsIpv4) {
  Result result = parse("PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n");
  ASSERT_EQ(result.status, Status::kDone) << result.error;
  EXPECT_EQ(result.header.source_address, "192.0.2.7");
}

TEST(ProxyProtocolTest, V1UnknownUsesSocketAddress) {
  for (std::string header :
       {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"}) {
    Result result = parse(header);
    ASSERT_EQ(result.status, Status::kDone) << header;
    EXPECT_TRUE(result.header.use_socket_address);
    EXPECT_EQ(result.length, header.size());
  }
}

TEST(ProxyProtocolTest, V1LongestValidHeaderFitsAndOneMoreByteDoesNot) {
  std::string longest =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 65535\r\n";
  EXPECT_EQ(longest.size(), 104u);
  EXPECT_EQ(parse(longest).status, Status::kDone);
  std::string unknown = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  ASSERT_EQ(unknown.size(), 107u);
  EXPECT_EQ(parse(unknown).status, Status::kDone);
  std::string too_long = "PROXY UNKNOWN " + std::string(92, 'x') + "\r\n";
  EXPECT_EQ(parse(too_long).status, Status::kInvalid);
  // No CRLF within 107 bytes: refused without waiting for more.
  EXPECT_EQ(parse("PROXY UNKNOWN " + std::string(200, 'x')).status, Status::kInvalid);
  EXPECT_EQ(parse("PROXY UNKNOWN " + std::string(93, 'x')).status, Status::kInvalid);
}

TEST(ProxyProtocolTest, V1Malformed) {
  for (std::string header : {
           "PROXY TCP4 192.0.2.7 198.51.100.1 40000 465\n",    // bare LF
           "PROXY TCP4 192.0.2.7 198.51.100.1 40000 465\rX",   // CR without LF
           "PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",      // family mismatch
           "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",         // family mismatch
           "PROXY TCP4 192.0.2.7 198.51.100.1 65536 465\r\n",  // port range
           "PROXY TCP4 192.0.2.7 198.51.100.1 040 465\r\n",    // leading zero
           "PROXY TCP4 192.0.2.7 198.51.100.1 -1 465\r\n",
           "PROXY TCP4 192.0.2.7  198.51.100.1 1 465\r\n",  // two spaces
           "PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",       // missing port
           "PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n",   // extra field
           "PROXY TCP4 192.0.2.7 198.51.100.1 1 2 \r\n",
           "PROXY TCP4\r\n",
           "PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
           "PROXY tcp4 192.0.2.7 198.51.100.1 1 2\r\n",
           "PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",
           "proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
           "PROXYTCP4 192.0.2.7 198.51.100.1 1 2\r\n",
       }) {
    EXPECT_EQ(parse(header).status, Status::kInvalid) << header;
  }
}

TEST(ProxyProtocolTest, GarbageIsRefusedFromTheFirstWrongByte) {
  EXPECT_EQ(parse("EHLO client.example\r\n").status, Status::kInvalid);
  EXPECT_EQ(parse("\x16\x03\x01\x02\x00").status, Status::kInvalid);  // a bare ClientHello
  EXPECT_EQ(parse("PRO").status, Status::kNeedMore);
  EXPECT_EQ(parse("PROX!").status, Status::kInvalid);
  EXPECT_EQ(parse(std::string_view("\r\n\r\n\0\r\nQUIT!", 12)).status, Status::kInvalid);
  EXPECT_EQ(parse(std::string_view("\r\n\r\n\0", 5)).status, Status::kNeedMore);
  EXPECT_EQ(parse("").status, Status::kNeedMore);
}

TEST(ProxyProtocolTest, V2Inet) {
  std::string header = v2_inet();
  expect_prefixes_need_more(header);
  Result result = parse(header + "EHLO x\r\n");
  ASSERT_EQ(result.status, Status::kDone) << result.error;
  EXPECT_EQ(result.length, 28u);
  expect_client_192_0_2_7(result.header, 2);
}

TEST(ProxyProtocolTest, V2InetWithTlvsSkipsThem) {
  std::string tlvs("\x04\x00\x03xyz\x01\x00\x08smtp/1.0", 17);  // NOOP, ALPN
  std::string header = v2_inet(tlvs);
  Result result = parse(header);
  ASSERT_EQ(result.status, Status::kDone) << result.error;
  EXPECT_EQ(result.length, header.size());
  EXPECT_EQ(result.header.source_address, "192.0.2.7");
}

TEST(ProxyProtocolTest, V2Inet6) {
  std::string block(36, '\0');
  block[0] = '\x20';
  block[1] = '\x01';
  block[2] = '\x0d';
  block[3] = '\xb8';
  block[15] = '\x07';
  block[16] = '\x20';
  block[17] = '\x01';
  block[18] = '\x0d';
  block[19] = '\xb8';
  block[31] = '\x01';
  block[32] = '\x01';
  block[33] = '\x02';
  block[34] = '\x02';
  block[35] = '\x4b';
  Result result = parse(v2(1, 0x21, block));
  ASSERT_EQ(result.status, Status::kDone) << result.error;
  EXPECT_EQ(result.header.source_address, "2001:db8::7");
  EXPECT_EQ(result.header.destination_address, "2001:db8::1");
  EXPECT_EQ(result.header.source_port, 258);
  EXPECT_EQ(result.header.destination_port, 587);
}

TEST(ProxyProtocolTest, V2LocalAndUnspecUseSocketAddress) {
  Result local = parse(v2(0, 0x00, ""));
  ASSERT_EQ(local.status, Status::kDone);
  EXPECT_TRUE(local.header.use_socket_address);
  EXPECT_EQ(local.length, 16u);
  // LOCAL ignores whatever block follows (a health check may still send one).
  Result local_with_block = parse(v2(0, 0x11, std::string(12, 'x')));
  ASSERT_EQ(local_with_block.status, Status::kDone);
  EXPECT_TRUE(local_with_block.header.use_socket_address);
  EXPECT_EQ(local_with_block.length, 28u);
  Result unspec = parse(v2(1, 0x00, ""));
  ASSERT_EQ(unspec.status, Status::kDone);
  EXPECT_TRUE(unspec.header.use_socket_address);
  Result unix_socket = parse(v2(1, 0x31, std::string(216, '\0')));
  ASSERT_EQ(unix_socket.status, Status::kDone);
  EXPECT_TRUE(unix_socket.header.use_socket_address);
}

TEST(ProxyProtocolTest, V2Malformed) {
  std::string bad_version = v2_inet();
  bad_version[12] = '\x11';
  EXPECT_EQ(parse(bad_version).status, Status::kInvalid);
  EXPECT_EQ(parse(bad_version.substr(0, 13)).status, Status::kInvalid);  // known at byte 13
  EXPECT_EQ(parse(v2(2, 0x11, std::string(12, '\0'))).status, Status::kInvalid);  // command
  EXPECT_EQ(parse(v2(1, 0x12, std::string(12, '\0'))).status, Status::kInvalid);  // UDP
  EXPECT_EQ(parse(v2(1, 0x41, std::string(12, '\0'))).status, Status::kInvalid);  // family
  EXPECT_EQ(parse(v2(1, 0x11, std::string(11, '\0'))).status, Status::kInvalid);  // short
  EXPECT_EQ(parse(v2(1, 0x21, std::string(35, '\0'))).status, Status::kInvalid);  // short
}

TEST(ProxyProtocolTest, V2OversizeIsRefusedFromTheLengthField) {
  std::string header = kSignature + "\x21\x11" + std::string("\x08\x01", 2);  // 2049
  Result result = parse(header);
  EXPECT_EQ(result.status, Status::kInvalid);
  std::string largest = v2(1, 0x11, std::string(kMaxV2Payload, '\0'));
  Result ok = parse(largest);
  ASSERT_EQ(ok.status, Status::kDone);
  EXPECT_EQ(ok.length, kMaxV2Length);
}

TEST(ProxyProtocolTest, TruncatedV2WaitsForTheDeclaredLength) {
  std::string header = v2_inet();
  EXPECT_EQ(parse(header.substr(0, 16)).status, Status::kNeedMore);
  EXPECT_EQ(parse(header.substr(0, 27)).status, Status::kNeedMore);
  EXPECT_EQ(parse(header).status, Status::kDone);
}

}  // namespace
}  // namespace net::proxy_protocol
