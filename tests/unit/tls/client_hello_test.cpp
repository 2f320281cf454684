// client_hello_test.cpp — the hand-built ClientHello (tls/client_hello.h): its record and
// handshake framing, the offered suites and extensions; the reader of the server's first
// answer on ServerHellos, alerts, split records and what is not TLS; the registry classes
// the probe judges suites by. The handshake against real servers: test_probe*.py.
#include "tls/client_hello.h"

#include <gtest/gtest.h>

#include <string>

namespace tls {
namespace {

unsigned at(const std::string& bytes, std::size_t i) {
  return static_cast<unsigned char>(bytes[i]);
}

std::string record(unsigned type, const std::string& body) {
  std::string out;
  out.push_back(static_cast<char>(type));
  out += std::string("\x03\x03", 2);
  out.push_back(static_cast<char>(body.size() >> 8));
  out.push_back(static_cast<char>(body.size() & 0xFF));
  return out + body;
}

// A ServerHello handshake message: version, cipher, compression, with renegotiation_info.
std::string server_hello(unsigned version, unsigned cipher, unsigned compression = 0,
                         bool renegotiation = true) {
  std::string hello;
  hello.push_back(static_cast<char>(version >> 8));
  hello.push_back(static_cast<char>(version & 0xFF));
  hello += std::string(32, 'r');
  hello.push_back(4);
  hello += "sess";
  hello.push_back(static_cast<char>(cipher >> 8));
  hello.push_back(static_cast<char>(cipher & 0xFF));
  hello.push_back(static_cast<char>(compression));
  std::string extensions;
  if (renegotiation) extensions += std::string("\xff\x01\x00\x01\x00", 5);
  extensions += std::string("\x00\x0b\x00\x02\x01\x00", 6);
  hello.push_back(static_cast<char>(extensions.size() >> 8));
  hello.push_back(static_cast<char>(extensions.size() & 0xFF));
  hello += extensions;
  std::string message;
  message.push_back(2);
  message.push_back(0);
  message.push_back(static_cast<char>(hello.size() >> 8));
  message.push_back(static_cast<char>(hello.size() & 0xFF));
  return message + hello;
}

TEST(ClientHelloTest, OneHandshakeRecordWithTheSuitesAndExtensionsAsked) {
  HelloOptions options;
  options.version = kTls12;
  options.ciphers = {0x003B, 0xC02F};
  options.server_name = "mx.example.org";
  const std::string hello = client_hello(options);
  ASSERT_GE(hello.size(), 5u);
  EXPECT_EQ(at(hello, 0), 22u);                          // handshake
  EXPECT_EQ(at(hello, 1) << 8 | at(hello, 2), 0x0301u);  // record version TLS 1.0
  EXPECT_EQ(at(hello, 3) << 8 | at(hello, 4), hello.size() - 5);
  EXPECT_EQ(at(hello, 5), 1u);                            // client_hello
  EXPECT_EQ(at(hello, 9) << 8 | at(hello, 10), 0x0303u);  // client_version
  // random (32), session id length 0, then the suites.
  EXPECT_EQ(at(hello, 43), 0u);
  EXPECT_EQ(at(hello, 44) << 8 | at(hello, 45), 4u);
  EXPECT_EQ(at(hello, 46) << 8 | at(hello, 47), 0x003Bu);
  EXPECT_EQ(at(hello, 48) << 8 | at(hello, 49), 0xC02Fu);
  EXPECT_NE(hello.find("mx.example.org"), std::string::npos);  // SNI
  EXPECT_NE(hello.find(std::string("\xff\x01\x00\x01\x00", 5)), std::string::npos);

  HelloOptions fallback = options;
  fallback.fallback_scsv = true;  // RFC 7507: 0x5600 after the suites
  const std::string flagged = client_hello(fallback);
  EXPECT_EQ(at(flagged, 44) << 8 | at(flagged, 45), 6u);
  EXPECT_EQ(at(flagged, 50) << 8 | at(flagged, 51), 0x5600u);

  options.server_name = "192.0.2.1";  // RFC 6066 §3: no IP literal in SNI
  EXPECT_EQ(client_hello(options).find("192.0.2.1"), std::string::npos);
  options.version = kSsl3;  // SSL 3.0: no extensions at all
  const std::string ssl3 = client_hello(options);
  EXPECT_EQ(at(ssl3, 1) << 8 | at(ssl3, 2), 0x0300u);
  EXPECT_EQ(ssl3.size(), 5u + 4 + 2 + 32 + 1 + 2 + 4 + 2);
}

TEST(ClientHelloTest, TheOfferCoversTheRegistryRangesButNoScsv) {
  const std::vector<std::uint16_t> codes = cipher_codes_before_tls13();
  auto offers = [&](std::uint16_t code) {
    return std::find(codes.begin(), codes.end(), code) != codes.end();
  };
  EXPECT_TRUE(offers(0x0001));   // TLS_RSA_WITH_NULL_MD5
  EXPECT_TRUE(offers(0x0003));   // an export suite
  EXPECT_TRUE(offers(0xC006));   // TLS_ECDHE_ECDSA_WITH_NULL_SHA
  EXPECT_TRUE(offers(0xCCA8));   // ECDHE-RSA-CHACHA20-POLY1305
  EXPECT_FALSE(offers(0x00FF));  // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
  EXPECT_FALSE(offers(0x5600));  // TLS_FALLBACK_SCSV
  EXPECT_FALSE(offers(0x1301));  // TLS 1.3 suites go their own way
  EXPECT_LT(codes.size() * 2 + 200, 16384u);
}

TEST(ClientHelloTest, ReadsTheServerHelloEvenSplitAcrossRecords) {
  const std::string message = server_hello(0x0303, 0xC006);
  ServerAnswer whole = read_answer(record(22, message));
  ASSERT_EQ(whole.kind, ServerAnswer::Kind::kServerHello);
  EXPECT_EQ(whole.version, 0x0303);
  EXPECT_EQ(whole.cipher, 0xC006);
  EXPECT_EQ(whole.compression, 0);
  EXPECT_TRUE(whole.secure_renegotiation);

  const std::string split = record(22, message.substr(0, 10)) + record(22, message.substr(10));
  for (std::size_t cut = 0; cut < split.size(); ++cut)
    EXPECT_EQ(read_answer(split.substr(0, cut)).kind, ServerAnswer::Kind::kIncomplete) << cut;
  EXPECT_EQ(read_answer(split).cipher, 0xC006);

  ServerAnswer old = read_answer(record(22, server_hello(0x0301, 0x0005, 1, false)));
  EXPECT_EQ(old.version, 0x0301);
  EXPECT_EQ(old.compression, 1);  // DEFLATE: CRIME
  EXPECT_FALSE(old.secure_renegotiation);
}

TEST(ClientHelloTest, AlertsAndWhatIsNotTlsAreToldApart) {
  ServerAnswer alert = read_answer(record(21, std::string("\x02\x28", 2)));
  ASSERT_EQ(alert.kind, ServerAnswer::Kind::kAlert);
  EXPECT_EQ(alert.alert_level, 2);
  EXPECT_EQ(alert.alert_description, 40);  // handshake_failure
  EXPECT_EQ(read_answer("454 4.7.0 TLS not available\r\n").kind, ServerAnswer::Kind::kMalformed);
  EXPECT_EQ(read_answer(record(22, std::string("\x0b\x00\x00\x01\x00", 5))).kind,
            ServerAnswer::Kind::kMalformed);  // a Certificate first
  // A ServerHello whose session id runs past its end.
  std::string lying = server_hello(0x0303, 0xC02F);
  lying[4 + 2 + 32] = static_cast<char>(200);
  EXPECT_EQ(read_answer(record(22, lying)).kind, ServerAnswer::Kind::kMalformed);
  EXPECT_EQ(read_answer("").kind, ServerAnswer::Kind::kIncomplete);
}

TEST(ClientHelloTest, SuitesAreJudgedByTheirRegistryNames) {
  EXPECT_EQ(legacy_suite_name(0x0003), "TLS_RSA_EXPORT_WITH_RC4_40_MD5");
  EXPECT_EQ(legacy_suite_name(0xC02F), "");
  EXPECT_NE(classify_suite("TLS_RSA_WITH_NULL_SHA256").broken.find("NULL"), std::string::npos);
  EXPECT_NE(classify_suite("TLS_RSA_EXPORT_WITH_RC4_40_MD5").broken.find("export"),
            std::string::npos);
  EXPECT_NE(classify_suite("TLS_RSA_WITH_RC4_128_SHA").broken.find("RC4"), std::string::npos);
  EXPECT_NE(classify_suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA").broken.find("SWEET32"),
            std::string::npos);
  EXPECT_NE(classify_suite("TLS_DHE_RSA_WITH_DES_CBC_SHA").broken.find("single DES"),
            std::string::npos);
  const SuiteClass anonymous = classify_suite("TLS_DH_anon_WITH_AES_256_GCM_SHA384");
  EXPECT_TRUE(anonymous.anonymous);
  EXPECT_TRUE(anonymous.broken.empty());
  const SuiteClass good = classify_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
  EXPECT_TRUE(good.broken.empty());
  EXPECT_TRUE(good.forward_secret);
  EXPECT_FALSE(good.cbc);
  const SuiteClass cbc = classify_suite("TLS_RSA_WITH_AES_128_CBC_SHA");
  EXPECT_TRUE(cbc.cbc);
  EXPECT_FALSE(cbc.forward_secret);
}

}  // namespace
}  // namespace tls
