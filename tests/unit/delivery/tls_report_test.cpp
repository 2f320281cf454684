// tls_report_test.cpp — SMTP TLS reporting's pure parts (delivery/tls_report.h): counting,
// the counts kept across a restart (hostile names cannot forge an entry), the JSON of RFC
// 8460 §4.4, the file name of §5.1 and the _smtp._tls record of §3. The report mail itself
// is checked by the integration test (tests/integration/test_dane.py) field by field.
#include "delivery/tls_report.h"

#include <gtest/gtest.h>

namespace delivery {
namespace {

const TlsrptPolicy kDane{"tlsa", "example.net", {"3 1 1 abcd", "2 0 1 ef01"}, "mx.example.net"};
const TlsrptPolicy kNone{"no-policy-found", "example.org", {}, {}};

TEST(TlsReportTest, SessionsAreCountedPerPolicyAndFailureKind) {
  TlsReportCounts counts;
  EXPECT_TRUE(counts.empty());
  counts.success(kDane);
  counts.success(kDane);
  counts.failure(kDane, {"validation-failure", "", "mx.example.net", "192.0.2.1"});
  counts.failure(kDane, {"validation-failure", "", "mx.example.net", "192.0.2.1"});
  counts.failure(kNone, {"starttls-not-supported", "", "mx.example.org", "192.0.2.9"});
  std::vector<TlsrptPolicyCounts> taken = counts.take();
  EXPECT_TRUE(counts.empty());
  ASSERT_EQ(taken.size(), 2u);
  const TlsrptPolicyCounts& dane = taken[0].policy == kDane ? taken[0] : taken[1];
  const TlsrptPolicyCounts& none = taken[0].policy == kDane ? taken[1] : taken[0];
  EXPECT_EQ(dane.successes, 2u);
  ASSERT_EQ(dane.failures.size(), 1u);
  EXPECT_EQ(dane.failures[0].second, 2u);
  EXPECT_EQ(none.successes, 0u);  // reported with its failures only
  ASSERT_EQ(none.failures.size(), 1u);
}

TEST(TlsReportTest, CountsSurviveARestartAndHostileNamesStayInTheirField) {
  TlsReportCounts counts;
  const TlsrptPolicy odd{"tlsa", "bad domain\nS x", {"3 1 1 a,b", ""}, "mx %41"};
  counts.success(kDane, 5);
  counts.failure(odd, {"dnssec-invalid", "", "mx\r\n", ""}, 3);
  const std::string lines = counts.lines();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 3) << lines;  // 2 S lines, 1 F line
  TlsReportCounts restored;
  restored.add_lines("B 1700000000\n" + lines + "garbage line\nS too few\nF 1 2 3\n");
  EXPECT_EQ(restored.lines(), lines);
  std::vector<TlsrptPolicyCounts> taken = restored.take();
  ASSERT_EQ(taken.size(), 2u);
  bool found = false;
  for (const TlsrptPolicyCounts& entry : taken) {
    if (entry.policy != odd) continue;
    found = true;
    ASSERT_EQ(entry.failures.size(), 1u);
    EXPECT_EQ(entry.failures[0].first.receiving_mx, "mx\r\n");
    EXPECT_EQ(entry.failures[0].second, 3u);
  }
  EXPECT_TRUE(found);
}

TEST(TlsReportTest, TheVersionMovesWithEveryCountAndTake) {
  TlsReportCounts counts;
  const std::uint64_t start = counts.version();
  counts.success(kNone);
  const std::uint64_t counted = counts.version();
  EXPECT_NE(counted, start);
  EXPECT_EQ(counts.version(), counted);  // reading changes nothing
  counts.failure(kNone, {"starttls-not-supported", "", "mx.example.org", ""});
  EXPECT_NE(counts.version(), counted);
  const std::uint64_t before_take = counts.version();
  counts.take();
  EXPECT_NE(counts.version(), before_take);
}

TEST(TlsReportTest, APendingPostIsReadBackAsWrittenAndDamageIsRefused) {
  PendingTlsReportPost post{
      "https://reports.example/tls rpt?a=b\n", "example.net", 7, 1000, 1060, 1,
      std::string("\x1f\x8b\0\n\nbinary", 11)};
  const std::string text = pending_post_text(post);
  // The URI cannot add a header line: it is percent-encoded.
  EXPECT_EQ(text.substr(0, text.find("\n\n")).find("tls rpt"), std::string::npos);
  auto read = parse_pending_post(text);
  ASSERT_TRUE(read);
  EXPECT_EQ(*read, post);
  EXPECT_FALSE(parse_pending_post(text.substr(0, 20)));
  EXPECT_FALSE(parse_pending_post("smtpsd tls report post 2" + text.substr(24)));
  std::string bad_number = text;
  bad_number.replace(bad_number.find("failures 1"), 10, "failures x");
  EXPECT_FALSE(parse_pending_post(bad_number));
}

TEST(TlsReportTest, PostRetriesBackOffAndStopGrowingAtSixtyTimesTheDelay) {
  EXPECT_EQ(post_retry_wait(1, 60), 60);
  EXPECT_EQ(post_retry_wait(2, 60), 300);
  EXPECT_EQ(post_retry_wait(3, 60), 1800);
  EXPECT_EQ(post_retry_wait(4, 60), 3600);
  EXPECT_EQ(post_retry_wait(40, 60), 3600);
  EXPECT_EQ(post_retry_wait(2, 1), 5);
}

TEST(TlsReportTest, TheJsonReportHasTheFieldsOfSection44) {
  TlsReportMetadata metadata{
      "Example \"Mail\"", "tlsrpt@example.org", "mx.example.org", "r-1", 1764892800, 1764979200};
  TlsrptPolicyCounts dane{
      kDane, 7, {{{"validation-failure", "", "mx.example.net", "192.0.2.1"}, 2}}};
  TlsrptPolicyCounts none{kNone, 3, {}};
  std::vector<TlsrptPolicyCounts> policies{dane, none};
  EXPECT_EQ(tls_report_json(metadata, policies),
            R"({"organization-name":"Example \"Mail\"","date-range":{"start-datetime":)"
            R"("2025-12-05T00:00:00Z","end-datetime":"2025-12-06T00:00:00Z"},"contact-info":)"
            R"("tlsrpt@example.org","report-id":"r-1","policies":[{"policy":{"policy-type":"tlsa",)"
            R"("policy-string":["3 1 1 abcd","2 0 1 ef01"],"policy-domain":"example.net",)"
            R"("mx-host":"mx.example.net"},"summary":{"total-successful-session-count":7,)"
            R"("total-failure-session-count":2},"failure-details":[{"result-type":)"
            R"("validation-failure","receiving-mx-hostname":"mx.example.net","receiving-ip":)"
            R"("192.0.2.1","failed-session-count":2}]},{"policy":{"policy-type":"no-policy-found",)"
            R"("policy-domain":"example.org"},"summary":{"total-successful-session-count":3,)"
            R"("total-failure-session-count":0}}]})");
  EXPECT_EQ(tls_report_file_name(metadata, "example.net"),
            "mx.example.org!example.net!1764892800!1764979200!r-1.json.gz");
}

TEST(TlsReportTest, OnlyATlsrptV1RecordWithRuaGivesAddresses) {
  auto rua = parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@example.net, https://r.example/x");
  ASSERT_TRUE(rua);
  EXPECT_EQ(*rua, (std::vector<std::string>{"mailto:a@example.net", "https://r.example/x"}));
  EXPECT_TRUE(parse_tlsrpt_record("v=TLSRPTv1;rua=mailto:a@b;"));
  EXPECT_FALSE(parse_tlsrpt_record("v=TLSRPTv2; rua=mailto:a@b"));
  EXPECT_FALSE(parse_tlsrpt_record("rua=mailto:a@b; v=TLSRPTv1"));
  EXPECT_FALSE(parse_tlsrpt_record("v=TLSRPTv1"));
  EXPECT_FALSE(parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@b; rua=mailto:c@d"));
  EXPECT_FALSE(parse_tlsrpt_record("v=TLSRPTv1; rua"));
}

}  // namespace
}  // namespace delivery
