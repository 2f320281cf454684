// client_hello_test.cpp — the hand-built ClientHello (tls/client_hello.h): its record and
// handshake framing, the offered suites and extensions; the reader of the server's first
// answer on ServerHellos, alerts, split records and what is not TLS; the registry classes
// the probe judges suites by. The handshake against real servers: test_probe*.py.
#include "tls/client_hello.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// A handshake message: type, 24-bit length, body.
std::string message(unsigned type, const std::string& body) {
  std::string out;
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(body.size() >> 16));
  out.push_back(static_cast<char>((body.size() >> 8) & 0xFF));
  out.push_back(static_cast<char>(body.size() & 0xFF));
  return out + body;
}

// A Certificate message's body (RFC 5246 §7.4.2): the list's length, then each
// certificate with its own.
std::string certificate_list(const std::vector<std::string>& certificates) {
  std::string list;
  for (const std::string& certificate : certificates) {
    list.push_back(static_cast<char>(certificate.size() >> 16));
    list.push_back(static_cast<char>((certificate.size() >> 8) & 0xFF));
    list.push_back(static_cast<char>(certificate.size() & 0xFF));
    list += certificate;
  }
  std::string body;
  body.push_back(static_cast<char>(list.size() >> 16));
  body.push_back(static_cast<char>((list.size() >> 8) & 0xFF));
  body.push_back(static_cast<char>(list.size() & 0xFF));
  return body + list;
}

// ServerKeyExchange bodies: DHE (p, g, Ys, then a signature) and ECDHE (named curve).
std::string dhe_parameters(std::size_t prime_bytes, unsigned char top) {
  std::string p(prime_bytes, '\xff');
  p[0] = static_cast<char>(top);
  std::string body;
  body.push_back(static_cast<char>(p.size() >> 8));
  body.push_back(static_cast<char>(p.size() & 0xFF));
  body += p;
  body += std::string("\x00\x01\x02\x00\x01\x07", 6);  // g = 2, Ys = 7
  return body + std::string("\x04\x01\x00\x02sg", 6);
}
std::string ecdhe_parameters(unsigned group) {
  std::string body = "\x03";
  body.push_back(static_cast<char>(group >> 8));
  body.push_back(static_cast<char>(group & 0xFF));
  return body + std::string("\x01\x04", 2);
}

TEST(ClientHelloTest, Tls13HelloAsksForAHelloRetryWithTheGroupsGiven) {
  HelloOptions options;
  options.version = kTls13;
  options.ciphers = tls13_cipher_codes();
  options.groups = {0x0017};
  const std::string hello = client_hello(options);
  EXPECT_EQ(at(hello, 9) << 8 | at(hello, 10), 0x0303u);  // legacy_version
  EXPECT_NE(hello.find(std::string("\x00\x2b\x00\x03\x02\x03\x04", 7)), std::string::npos);
  EXPECT_NE(hello.find(std::string("\x00\x33\x00\x02\x00\x00", 6)), std::string::npos);
  EXPECT_NE(hello.find(std::string("\x00\x0a\x00\x04\x00\x02\x00\x17", 8)), std::string::npos);
  EXPECT_EQ(hello.find(std::string("\x00\x0f\x00\x01\x01", 5)), std::string::npos);
  options.version = kTls12;
  options.heartbeat = true;
  EXPECT_NE(client_hello(options).find(std::string("\x00\x0f\x00\x01\x01", 5)), std::string::npos);

  // The HelloRetryRequest: the magic random, supported_versions and the chosen group.
  std::string retry = std::string("\x03\x03", 2);
  retry += std::string(
      "\xCF\x21\xAD\x74\xE5\x9A\x61\x11\xBE\x1D\x8C\x02\x1E\x65\xB8\x91\xC2\xA2\x11\x16\x7A\xBB"
      "\x8C\x5E\x07\x9E\x09\xE2\xC8\xA8\x33\x9C",
      32);
  retry += std::string("\x00\x13\x02\x00", 4);  // no session id, TLS_AES_256_GCM, null
  retry += std::string("\x00\x0c\x00\x2b\x00\x02\x03\x04\x00\x33\x00\x02\x00\x17", 14);
  const ServerAnswer answer = read_answer(record(22, message(2, retry)));
  ASSERT_EQ(answer.kind, ServerAnswer::Kind::kServerHello);
  EXPECT_TRUE(answer.hello_retry);
  EXPECT_EQ(answer.selected_version, kTls13);
  EXPECT_EQ(answer.key_share_group, 0x0017);
  EXPECT_FALSE(read_answer(record(22, server_hello(0x0303, 0xC02F))).hello_retry);
  EXPECT_EQ(find_named_group(0x001d)->name, "x25519");
  EXPECT_EQ(find_named_group(0x0013)->bits, 192u);
  EXPECT_EQ(find_named_group(0x7777), nullptr);
}

TEST(ClientHelloTest, ReadsTheWholeFlightAndItsKeyExchange) {
  const std::string flight_bytes = server_hello(0x0303, 0x009E) +
                                   message(11, certificate_list({"leaf", "ca"})) +
                                   message(12, dhe_parameters(128, 0x80)) + message(14, "");
  // In one record, and split at every byte across two: kIncomplete until the end.
  const std::string one = record(22, flight_bytes);
  const ServerFlight flight = read_flight(one + "after");
  ASSERT_EQ(flight.kind, ServerFlight::Kind::kDone);
  EXPECT_EQ(flight.hello.cipher, 0x009E);
  EXPECT_EQ(flight.certificate, "leaf");  // the leaf only, as sent (ROBOT encrypts to it)
  EXPECT_EQ(flight.consumed, one.size());
  const KeyExchange dh = read_key_exchange(flight.key_exchange, false);
  ASSERT_TRUE(dh.valid);
  EXPECT_EQ(dh.dh_prime_bits, 1024u);
  for (std::size_t cut = 1; cut < flight_bytes.size(); cut += 7) {
    const std::string two =
        record(22, flight_bytes.substr(0, cut)) + record(22, flight_bytes.substr(cut));
    for (std::size_t prefix : {cut, two.size() - 1})
      EXPECT_EQ(read_flight(two.substr(0, prefix)).kind, ServerFlight::Kind::kIncomplete);
    EXPECT_EQ(read_flight(two).kind, ServerFlight::Kind::kDone) << cut;
  }
  // The prime's size counts bits, not bytes: 0x7f.. over 128 bytes is 1023 bits; leading
  // zero bytes do not count.
  EXPECT_EQ(read_key_exchange(dhe_parameters(128, 0x7f), false).dh_prime_bits, 1023u);
  EXPECT_EQ(read_key_exchange(dhe_parameters(256, 0x00), false).dh_prime_bits, 2040u);
  EXPECT_EQ(read_key_exchange(dhe_parameters(64, 0x01), false).dh_prime_bits, 505u);
  EXPECT_FALSE(read_key_exchange(std::string("\x01\x00\xff", 3), false).valid);  // p runs out
  EXPECT_FALSE(read_key_exchange("", false).valid);
  const KeyExchange ec = read_key_exchange(ecdhe_parameters(0x0013), true);
  ASSERT_TRUE(ec.valid);
  EXPECT_EQ(ec.group, 0x0013);
  EXPECT_FALSE(read_key_exchange(std::string("\x01\x00\x13", 3), true).valid);  // explicit

  // An alert instead; a flight with a message out of place; a TLS 1.3 ServerHello ends it.
  EXPECT_EQ(read_flight(record(21, std::string("\x02\x28", 2))).kind, ServerFlight::Kind::kAlert);
  EXPECT_EQ(read_flight(record(22, message(11, certificate_list({"leaf"})))).kind,
            ServerFlight::Kind::kMalformed);
  // A certificate list whose lengths do not add up; two Certificate messages; an empty list
  // (anonymous suites) is no certificate.
  for (const std::string& certificates :
       {std::string("\x00\x00\x05\x00\x00\x01x", 7), std::string("\x00\x00\x04\x00\x00\x02x", 7),
        std::string("\x00\x00\x03\x00\x00\x00", 6), std::string("\x00\x00", 2)}) {
    EXPECT_EQ(read_flight(record(22, server_hello(0x0303, 0x009C) + message(11, certificates) +
                                         message(14, "")))
                  .kind,
              ServerFlight::Kind::kMalformed);
  }
  EXPECT_EQ(
      read_flight(record(22, server_hello(0x0303, 0x009C) + message(11, certificate_list({"a"})) +
                                 message(11, certificate_list({"b"})) + message(14, "")))
          .kind,
      ServerFlight::Kind::kMalformed);
  const ServerFlight anonymous = read_flight(record(
      22, server_hello(0x0303, 0x0034) + message(11, certificate_list({})) + message(14, "")));
  EXPECT_EQ(anonymous.kind, ServerFlight::Kind::kDone);
  EXPECT_EQ(anonymous.certificate, "");
  EXPECT_EQ(read_flight(record(22, server_hello(0x0303, 0x009E) + message(2, "x"))).kind,
            ServerFlight::Kind::kMalformed);
  EXPECT_EQ(read_flight(record(22, server_hello(0x0303, 0x009E) + message(14, "") + "x")).kind,
            ServerFlight::Kind::kMalformed);
  EXPECT_EQ(read_flight("220 mail.example.org ESMTP\r\n").kind, ServerFlight::Kind::kMalformed);
}

TEST(ClientHelloTest, HeartbeatAndChangeCipherSpecRecordsAndWhatComesBack) {
  EXPECT_EQ(heartbeat_request(0x0303, 0x4000), std::string("\x18\x03\x03\x00\x03\x01\x40\x00", 8));
  EXPECT_EQ(change_cipher_spec(0x0301), std::string("\x14\x03\x01\x00\x01\x01", 6));
  // A vulnerable server's answer: a heartbeat record far longer than the request.
  const std::string leak =
      record(24, std::string("\x02\x40\x00", 3) + std::string(16384 + 16, 'm'));
  NextRecord next = read_next_record(leak);
  ASSERT_EQ(next.kind, NextRecord::Kind::kHeartbeat);
  EXPECT_EQ(next.length, 16384u + 19);
  for (std::size_t cut = 0; cut < 6; ++cut)
    EXPECT_EQ(read_next_record(leak.substr(0, cut)).kind, NextRecord::Kind::kIncomplete);
  // Handshake records before it are skipped; an alert is read.
  next =
      read_next_record(record(22, message(4, "ticket")) + record(21, std::string("\x02\x0a", 2)));
  ASSERT_EQ(next.kind, NextRecord::Kind::kAlert);
  EXPECT_EQ(next.alert_description, 10);  // unexpected_message
  EXPECT_EQ(read_next_record(record(23, "data")).kind, NextRecord::Kind::kOther);
  EXPECT_EQ(read_next_record("\x80\x03xyz").kind, NextRecord::Kind::kMalformed);
  // A heartbeat record that is not a response (a request back) shows no leak; an empty
  // one is no record at all.
  EXPECT_EQ(
      read_next_record(record(24, std::string("\x01\x40\x00", 3) + std::string(64, 'm'))).kind,
      NextRecord::Kind::kOther);
  EXPECT_EQ(read_next_record(record(24, "")).kind, NextRecord::Kind::kMalformed);
}

TEST(ClientHelloTest, RobotBlocksDifferOnlyWhereTheirPaddingIsWrong) {
  const std::vector<std::string> blocks = robot_blocks(256, 0x0303);
  ASSERT_EQ(blocks.size(), 5u);
  for (const std::string& block : blocks)
    EXPECT_EQ(block.size(), 256u);
  // Where the first 0x00 after the first two bytes is: the separator (RFC 8017 §7.2.1 step 3).
  auto separator = [](const std::string& block) { return block.find('\0', 2); };
  const std::string& correct = blocks[kRobotCorrect];
  EXPECT_EQ(correct.substr(0, 2), std::string("\x00\x02", 2));
  EXPECT_EQ(separator(correct), 256u - 49);            // 48 bytes of premaster after it
  EXPECT_GE(separator(correct), 10u);                  // at least 8 bytes of padding
  EXPECT_EQ(correct.substr(256 - 48, 2), "\x03\x03");  // the premaster's client_version
  EXPECT_EQ(blocks[kRobotWrongFirstBytes].substr(0, 2), "\x41\x17");
  EXPECT_EQ(blocks[kRobotWrongFirstBytes].substr(2), correct.substr(2));
  EXPECT_EQ(separator(blocks[kRobotMisplacedSeparator]), 256u - 49 - 8);
  EXPECT_EQ(separator(blocks[kRobotNoSeparator]), std::string::npos);
  EXPECT_EQ(blocks[kRobotWrongVersion].substr(0, 256 - 48), correct.substr(0, 256 - 48));
  EXPECT_EQ(blocks[kRobotWrongVersion].substr(256 - 48, 2), "\x02\x02");
  EXPECT_EQ(blocks[kRobotWrongVersion].substr(256 - 46), correct.substr(256 - 46));
  EXPECT_EQ(robot_blocks(128, 0x0301)[kRobotCorrect].substr(128 - 48, 2), "\x03\x01");
  EXPECT_TRUE(robot_blocks(60, 0x0303).empty());  // no room for padding and premaster

  // ClientKeyExchange with its length (none in SSL 3.0), ChangeCipherSpec, a garbage Finished.
  const std::string flight = robot_key_exchange_flight(0x0303, "ENC");
  EXPECT_EQ(flight.substr(0, 14), std::string("\x16\x03\x03\x00\x09\x10\x00\x00\x05\x00\x03"
                                              "ENC",
                                              14));
  EXPECT_EQ(flight.substr(14, 6), change_cipher_spec(0x0303));
  EXPECT_EQ(flight.substr(20, 5), std::string("\x16\x03\x03\x00\x30", 5));
  EXPECT_EQ(flight.size(), 25u + 48);
  EXPECT_EQ(robot_key_exchange_flight(kSsl3, "ENC").substr(0, 12),
            std::string("\x16\x03\x00\x00\x07\x10\x00\x00\x03"
                        "ENC",
                        12));
}

TEST(ClientHelloTest, Ssl2ClientHelloAndServerHello) {
  const std::string hello = ssl2_client_hello();
  ASSERT_GE(hello.size(), 2u);
  EXPECT_EQ(at(hello, 0) & 0x80u, 0x80u);  // two-byte header
  EXPECT_EQ((at(hello, 0) & 0x7F) << 8 | at(hello, 1), hello.size() - 2);
  EXPECT_EQ(at(hello, 2), 1u);                           // CLIENT-HELLO
  EXPECT_EQ(at(hello, 3) << 8 | at(hello, 4), 0x0002u);  // SSL 2.0
  EXPECT_EQ(at(hello, 5) << 8 | at(hello, 6), 21u);      // seven cipher specs

  // SERVER-HELLO: type 4, hit 0, X.509 (1), version 2, certificate, two ciphers, id.
  std::string body = std::string("\x04\x00\x01\x00\x02", 5);
  body += std::string("\x00\x04\x00\x06\x00\x10", 6);
  body += "CERT";
  body += std::string("\x01\x00\x80\x07\x00\xc0", 6);
  body += std::string(16, 'i');
  std::string answer;
  answer.push_back(static_cast<char>(0x80 | body.size() >> 8));
  answer.push_back(static_cast<char>(body.size() & 0xFF));
  answer += body;
  const Ssl2Answer server = read_ssl2_answer(answer);
  ASSERT_EQ(server.kind, Ssl2Answer::Kind::kServerHello);
  EXPECT_EQ(server.ciphers, 2u);
  EXPECT_EQ(server.certificate, "CERT");
  for (std::size_t cut = 0; cut < answer.size(); ++cut)
    EXPECT_EQ(read_ssl2_answer(answer.substr(0, cut)).kind, Ssl2Answer::Kind::kIncomplete);
  // A TLS alert, an SMTP reply, lengths that run past the message: not SSL 2.0.
  EXPECT_EQ(read_ssl2_answer(record(21, std::string("\x02\x46", 2))).kind,
            Ssl2Answer::Kind::kOther);
  EXPECT_EQ(read_ssl2_answer("554 no\r\n").kind, Ssl2Answer::Kind::kOther);
  std::string lying = answer;
  lying[2 + 6] = '\x7f';  // certificate length 0x7f04
  EXPECT_EQ(read_ssl2_answer(lying).kind, Ssl2Answer::Kind::kOther);
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
