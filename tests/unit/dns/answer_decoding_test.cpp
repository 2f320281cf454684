// answer_decoding_test.cpp — dns::decode_answer: statuses from rcode and DNSSEC flags (RFC
// 2308, RFC 4035 §5.5) and the rdata of each type in wire format (RFC 1035 §3.3, RFC 3596,
// RFC 6698), malformed records included; and reverse_name, the PTR name of an address.
#include "dns/answer_decoding.h"
#include "dns/resolver.h"

#include <gtest/gtest.h>

namespace dns {
namespace {

using namespace std::string_literals;

RawResult raw(Type type, std::vector<std::string> rdata, int rcode = 0) {
  RawResult result;
  result.type = type;
  result.rcode = rcode;
  result.ttl = std::chrono::seconds(300);
  result.rdata = std::move(rdata);
  return result;
}

TEST(AnswerDecoding, TxtCharacterStringsJoinedPerRecord) {
  Answer answer = decode_answer(raw(Type::kTxt, {"\x07v=spf1 \x04-all"s, "\x02hi\x00"s, ""s}));
  EXPECT_EQ(answer.status, Status::kOk);
  EXPECT_EQ(answer.texts, (std::vector<std::string>{"v=spf1 -all", "hi", ""}));
  EXPECT_EQ(answer.ttl, std::chrono::seconds(300));
}

TEST(AnswerDecoding, TxtStringLongerThanItsRecordIsDropped) {
  Answer answer = decode_answer(raw(Type::kTxt, {"\x09short"s}));
  EXPECT_EQ(answer.status, Status::kNoData);
  EXPECT_NE(answer.detail.find("malformed"), std::string::npos);
}

TEST(AnswerDecoding, AddressesAsIpLiterals) {
  Answer a = decode_answer(raw(Type::kA, {"\xc0\x00\x02\x01"s, "\x7f\x00\x00"s}));
  EXPECT_EQ(a.addresses, std::vector<std::string>{"192.0.2.1"});  // the 3-octet one dropped
  Answer aaaa = decode_answer(
      raw(Type::kAaaa, {"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"s}));
  EXPECT_EQ(aaaa.addresses, std::vector<std::string>{"2001:db8::1"});
}

TEST(AnswerDecoding, MxNamesWithoutTrailingDotAndTheNullMx) {
  Answer answer = decode_answer(raw(Type::kMx, {"\x00\x0a\x02MX\x07"
                                                "Example\x03"
                                                "com\x00"s,
                                                "\x00\x00\x00"s}));
  ASSERT_EQ(answer.mx.size(), 2u);
  EXPECT_EQ(answer.mx[0].preference, 10);
  EXPECT_EQ(answer.mx[0].exchange, "mx.example.com");
  EXPECT_EQ(answer.mx[1].preference, 0);
  EXPECT_EQ(answer.mx[1].exchange, "");
}

TEST(AnswerDecoding, NamesWithOddBytesAreEscaped) {
  Answer answer = decode_answer(raw(Type::kPtr, {"\x03"
                                                 "a.b\x02\x20z\x00"s}));
  ASSERT_EQ(answer.names.size(), 1u);
  EXPECT_EQ(answer.names[0], "a\\.b.\\032z");
}

TEST(AnswerDecoding, MalformedNamesAreDropped) {
  // A compression pointer, a label past the end, trailing bytes after the root.
  Answer answer = decode_answer(raw(Type::kCname, {"\xc0\x0c"s,
                                                   "\x05"
                                                   "ab"s,
                                                   "\x01"
                                                   "a\x00z"s}));
  EXPECT_EQ(answer.status, Status::kNoData);
  EXPECT_TRUE(answer.names.empty());
}

TEST(AnswerDecoding, Tlsa) {
  Answer answer = decode_answer(raw(Type::kTlsa, {"\x03\x01\x01\xab\xcd"s}));
  ASSERT_EQ(answer.tlsa.size(), 1u);
  EXPECT_EQ(answer.tlsa[0].usage, 3);
  EXPECT_EQ(answer.tlsa[0].selector, 1);
  EXPECT_EQ(answer.tlsa[0].matching_type, 1);
  EXPECT_EQ(answer.tlsa[0].data, "\xab\xcd"s);
}

TEST(AnswerDecoding, Statuses) {
  EXPECT_EQ(decode_answer(raw(Type::kA, {})).status, Status::kNoData);
  EXPECT_EQ(decode_answer(raw(Type::kA, {}, 3)).status, Status::kNxDomain);
  Answer servfail = decode_answer(raw(Type::kA, {}, 2));
  EXPECT_EQ(servfail.status, Status::kTemporary);
  EXPECT_EQ(servfail.detail, "SERVFAIL");
  EXPECT_EQ(decode_answer(raw(Type::kA, {}, 5)).detail, "REFUSED");
}

TEST(AnswerDecoding, SecureAndBogus) {
  RawResult secure = raw(Type::kA, {"\xc0\x00\x02\x01"s});
  secure.secure = true;
  EXPECT_TRUE(decode_answer(secure).secure);
  RawResult bogus = secure;
  bogus.secure = false;
  bogus.bogus = true;
  bogus.why_bogus = "signature expired";
  Answer answer = decode_answer(bogus);
  EXPECT_EQ(answer.status, Status::kBogus);
  EXPECT_FALSE(answer.secure);
  EXPECT_TRUE(answer.addresses.empty());  // never data from a failed validation
  EXPECT_EQ(answer.detail, "DNSSEC bogus: signature expired");
}

// RFC 7672 §2.2.2 needs the target of a CNAME chain: kept when it differs from the name
// asked (case and the final dot aside).
TEST(AnswerDecoding, TheCanonicalNameIsKeptWhenACnameLedThere) {
  RawResult alias = raw(Type::kA, {"\xc0\x00\x02\x01"s});
  alias.query_name = "MX.Example.ORG.";
  alias.canonical_name = "Real.Example.org.";
  EXPECT_EQ(decode_answer(alias).canonical_name, "real.example.org");
  RawResult direct = alias;
  direct.canonical_name = "mx.example.org.";
  EXPECT_EQ(decode_answer(direct).canonical_name, "");
}

}  // namespace
}  // namespace dns

namespace dns {
namespace {

// PTR names (RFC 1035 §3.5, RFC 3596 §2.5), as `smtpsctl dns check` asks them.
TEST(ReverseNameTest, Ipv4OctetsAndIpv6NibblesReversedAndAnythingElseRefused) {
  EXPECT_EQ(reverse_name("192.0.2.10"), "10.2.0.192.in-addr.arpa");
  EXPECT_EQ(reverse_name("2001:db8::1"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  EXPECT_EQ(reverse_name("mx.example.com"), "");
  EXPECT_EQ(reverse_name("192.0.2"), "");
  EXPECT_EQ(reverse_name(""), "");
}

// The same labels without the arpa suffix: what DNS lists are asked under their zone.
TEST(ReverseNameTest, LabelsWithoutTheArpaSuffix) {
  EXPECT_EQ(reverse_labels("192.0.2.10"), "10.2.0.192.");
  EXPECT_EQ(reverse_labels("2001:db8::1"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.");
  EXPECT_EQ(reverse_labels("mx.example.com"), "");
  EXPECT_EQ(reverse_labels(""), "");
}

}  // namespace
}  // namespace dns
