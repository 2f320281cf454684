// dns_lists_test.cpp — filter/dns_lists.h: RFC 5782 query names (IPv4 reversed, IPv6 nibbles,
// IPv4-mapped asked as IPv4), what an answer counts for (any 127/8 answer, filtered answers
// with their own weights, provider error codes and answers outside 127/8 never listed,
// allowlists), the score, and TXT text made safe for a reply line.
#include "filter/dns_lists.h"

#include <gtest/gtest.h>

namespace filter {
namespace {

DnsList list_of(std::string zone, int weight,
                std::vector<std::pair<std::string, std::optional<int>>> answers = {}) {
  DnsList list{std::move(zone), weight, {}};
  for (auto& [text, w] : answers)
    list.answers.push_back(ListedAnswer{base::parse_network(text).value(), w});
  return list;
}

TEST(DnsListQueryName, Ipv4IsReversedOctets) {
  EXPECT_EQ(query_name("192.0.2.99", "bl.example"), "99.2.0.192.bl.example");
  EXPECT_EQ(query_name("127.0.0.2", "zen.spamhaus.org."), "2.0.0.127.zen.spamhaus.org");
}

TEST(DnsListQueryName, Ipv4MappedIsAskedAsIpv4) {
  EXPECT_EQ(query_name("::ffff:192.0.2.99", "bl.example"), "99.2.0.192.bl.example");
}

TEST(DnsListQueryName, Ipv6IsReversedNibbles) {
  // RFC 5782 §2.4's example: 2001:db8:1:2:3:4:567:89ab.
  EXPECT_EQ(query_name("2001:db8:1:2:3:4:567:89ab", "ugly.example.com"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com");
  EXPECT_EQ(query_name("::1", "bl.test"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test");
}

TEST(DnsListQueryName, NotAnAddressGivesNothing) {
  EXPECT_EQ(query_name("mail.example", "bl.example"), "");
  EXPECT_EQ(query_name("", "bl.example"), "");
}

TEST(DnsListAnswer, AnyLoopbackAnswerCountsWithTheListWeight) {
  ListResult r = evaluate_answer(list_of("bl.example", 2), {"127.0.0.2"});
  EXPECT_EQ(r.kind, ListResult::Kind::kListed);
  EXPECT_EQ(r.weight, 2);
  EXPECT_EQ(r.answer, "127.0.0.2");
  EXPECT_EQ(evaluate_answer(list_of("bl.example", 2), {}).kind, ListResult::Kind::kNotListed);
}

TEST(DnsListAnswer, ProviderErrorCodesAreNotListed) {
  for (const char* code : {"127.255.255.252", "127.255.255.254", "127.255.255.255"}) {
    ListResult r = evaluate_answer(list_of("bl.example", 1), {code});
    EXPECT_EQ(r.kind, ListResult::Kind::kError) << code;
    EXPECT_EQ(r.weight, 0) << code;
    EXPECT_EQ(r.answer, code);
  }
  // An answer outside 127.0.0.0/8 (a wildcard, a rewriting resolver) is not a listing either.
  EXPECT_EQ(evaluate_answer(list_of("bl.example", 1), {"192.0.2.1"}).kind,
            ListResult::Kind::kError);
  // A real listing beside an error code still counts.
  EXPECT_EQ(evaluate_answer(list_of("bl.example", 1), {"127.255.255.254", "127.0.0.2"}).kind,
            ListResult::Kind::kListed);
}

TEST(DnsListAnswer, FilteredAnswersWithTheirOwnWeights) {
  DnsList zen = list_of("zen.example", 1, {{"127.0.0.2", 3}, {"127.0.0.4/30", std::nullopt}});
  EXPECT_EQ(evaluate_answer(zen, {"127.0.0.2"}).weight, 3);
  EXPECT_EQ(evaluate_answer(zen, {"127.0.0.5"}).weight, 1);
  EXPECT_EQ(evaluate_answer(zen, {"127.0.0.5", "127.0.0.2"}).weight, 3);  // the largest
  EXPECT_EQ(evaluate_answer(zen, {"127.0.0.10"}).kind, ListResult::Kind::kNotListed);
}

TEST(DnsListAnswer, AllowlistTakesItsMostNegativeWeight) {
  DnsList wl = list_of("wl.example", -2, {{"127.0.2.0/24", std::nullopt}, {"127.0.2.3", -5}});
  EXPECT_EQ(evaluate_answer(wl, {"127.0.2.1", "127.0.2.3"}).weight, -5);
}

TEST(DnsListScore, SumsTheListedWeights) {
  std::vector<ListResult> results(4);
  results[0] = {ListResult::Kind::kListed, 2, "127.0.0.2"};
  results[1] = {ListResult::Kind::kListed, -5, "127.0.2.1"};
  results[2] = {ListResult::Kind::kError, 0, "127.255.255.254"};
  results[3] = {ListResult::Kind::kFailed, 0, ""};
  EXPECT_EQ(score_of(results), -3);
  EXPECT_EQ(score_of({}), 0);
}

TEST(DnsListReplyText, OnlyPrintableAsciiAndNoLineBreaks) {
  EXPECT_EQ(reply_safe_text("Listed; see https://example.org/q?ip=192.0.2.1"),
            "Listed; see https://example.org/q?ip=192.0.2.1");
  EXPECT_EQ(reply_safe_text("a\r\n250 forged\r\nb"), "a??250 forged??b");
  EXPECT_EQ(reply_safe_text("caf\xc3\xa9\x01"), "caf???");
  EXPECT_EQ(reply_safe_text("  many    spaces\t\there  "), "many spaces here");
}

TEST(DnsListReplyText, BoundedLength) {
  const std::string text = reply_safe_text(std::string(1000, 'x'), 50);
  EXPECT_EQ(text, std::string(50, 'x') + "...");
  EXPECT_EQ(reply_safe_text(std::string(50, 'x'), 50), std::string(50, 'x'));
}

TEST(DnsListRefusalText, NamesTheClientTheZoneAndTheReason) {
  EXPECT_EQ(refusal_text("192.0.2.1", "bl.example", "Listed\r\nsee x"),
            "Service unavailable; client [192.0.2.1] blocked using bl.example; Listed??see x");
  EXPECT_EQ(refusal_text("192.0.2.1", "bl.example", ""),
            "Service unavailable; client [192.0.2.1] blocked using bl.example");
  EXPECT_EQ(refusal_text("192.0.2.1", "bl.example", std::string(1000, 'x')),
            "Service unavailable; client [192.0.2.1] blocked using bl.example; " +
                std::string(200, 'x') + "...");
}

// RFC 5321 §4.5.3.1.5: the reply line, "550 5.7.1 " text CRLF, within 512 octets.
TEST(DnsListRefusalText, TheReplyLineStaysWithin512Octets) {
  std::string zone;
  while (zone.size() < 240)
    zone += "abcdefghijklmnopqrstuvwxyz012345678901234567890123456789abcdefg.";
  zone += "example";
  ASSERT_GE(zone.size(), 240u);
  const std::string client = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
  const std::string text = refusal_text(client, zone, std::string(1000, 'x'));
  EXPECT_EQ(text.size() + 12, 512u);
  EXPECT_TRUE(text.ends_with("xxx..."));
  EXPECT_NE(text.find("blocked using " + zone + "; x"), std::string::npos);
}

// At connect the refusal follows "554 <hostname> ": less room, and with a hostname and a
// zone near their 255 octets, no reason and the rest cut.
TEST(DnsListRefusalText, AtConnectTheHostnameTakesItsRoom) {
  EXPECT_EQ(connect_refusal_room(10), 512u - 4 - 10 - 1 - 2);
  EXPECT_EQ(connect_refusal_room(600), 0u);
  const std::string base = "Service unavailable; client [192.0.2.1] blocked using bl.example";
  // Room for "; ", the reason and a "..." should it be cut.
  EXPECT_EQ(refusal_text("192.0.2.1", "bl.example", "why", base.size() + 8), base + "; why");
  EXPECT_EQ(refusal_text("192.0.2.1", "bl.example", "why", base.size() + 5), base);
  EXPECT_EQ(refusal_text("192.0.2.1", "bl.example", "why", 20), base.substr(0, 20));
  EXPECT_EQ(refusal_text("192.0.2.1", "bl.example", "a longer reason", base.size() + 9),
            base + "; a lo...");
}

}  // namespace
}  // namespace filter
