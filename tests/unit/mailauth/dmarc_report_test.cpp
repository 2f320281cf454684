// Tests of mailauth/dmarc_report: the record lines of each evaluation, the aggregate report
// (RFC 7489 §7.2, validated against the Appendix C schema by xmllint), its name, its gzip and
// the mail that carries it.
#include "mailauth/dmarc_report.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#ifndef SMTPSD_TEST_DATA_DIR
#error "SMTPSD_TEST_DATA_DIR must name tests/data"
#endif

namespace mailauth {
namespace {

DmarcEvaluation evaluation() {
  DmarcEvaluation e;
  e.time = 1764892800;
  e.source_ip = "192.0.2.7";
  e.header_from = "bank.example";
  e.envelope_from = "mail.bank.example";
  e.envelope_to = "localhost";
  e.policy_domain = "bank.example";
  e.strict_spf = true;
  e.policy = "reject";
  e.subdomain_policy = "quarantine";
  e.percent = 50;
  e.rua = {"mailto:dmarc@bank.example", "mailto:x@reports.example!10m"};
  e.disposition = "reject";
  e.dkim_aligned_pass = false;
  e.spf_aligned_pass = false;
  e.dkim = {{"bank.example", "s1", "fail"}, {"other.example", "", "pass"}};
  e.spf_domain = "mail.bank.example";
  e.spf_scope = "mfrom";
  e.spf_result = "pass";
  return e;
}

void expect_same(const DmarcEvaluation& a, const DmarcEvaluation& b) {
  EXPECT_EQ(record_line(a), record_line(b));
  EXPECT_EQ(a.time, b.time);
  EXPECT_EQ(a.rua, b.rua);
  ASSERT_EQ(a.dkim.size(), b.dkim.size());
  EXPECT_EQ(a.dkim[0].selector, b.dkim[0].selector);
}

TEST(DmarcRecordLine, RoundTrips) {
  const DmarcEvaluation e = evaluation();
  const std::string line = record_line(e);
  auto parsed = parse_record_line(line);
  ASSERT_TRUE(parsed) << line;
  expect_same(e, *parsed);
  DmarcEvaluation empty;
  auto none = parse_record_line(record_line(empty));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->dkim.empty());
  EXPECT_TRUE(none->rua.empty());
  // An override's comment (the ARC sealer) survives the line, spaces and all.
  DmarcEvaluation arc = evaluation();
  arc.override_reason = "local_policy";
  arc.override_comment = "arc=pass sealer=lists.example.org";
  auto with_comment = parse_record_line(record_line(arc));
  ASSERT_TRUE(with_comment) << record_line(arc);
  EXPECT_EQ(with_comment->override_comment, "arc=pass sealer=lists.example.org");
  EXPECT_EQ(record_line(e).find("override_comment"), std::string::npos);
}

// A From domain is network input: it can neither break the line nor add a field.
TEST(DmarcRecordLine, HostileValuesStayInTheirField) {
  DmarcEvaluation e = evaluation();
  e.header_from = "evil.example dis=none\nv=1 t=0";
  e.dkim[0].selector = "a:b,c";
  const std::string line = record_line(e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto parsed = parse_record_line(line);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->header_from, e.header_from);
  EXPECT_EQ(parsed->disposition, "reject");
  EXPECT_EQ(parsed->dkim[0].selector, "a:b,c");
}

TEST(DmarcRecordLine, RefusesWhatItDidNotWrite) {
  const std::string whole = record_line(evaluation());
  for (const std::string& bad :
       std::vector<std::string>{"", "v=2", "garbage", "v=1 t=x", "v=1 t=1 ip=%zz",
                                whole.substr(0, 40), whole + " extra", whole + " pct=1000"}) {
    EXPECT_FALSE(parse_record_line(bad)) << bad;
  }
}

ReportMetadata metadata() {
  ReportMetadata m;
  m.org_name = "Smtpsd Test <&>";
  m.email = "dmarc-reports@mx.example.org";
  m.receiver = "mx.example.org";
  m.report_id = "20261204.bank.example.1";
  m.begin = 1764806400;
  m.end = 1764892800;
  return m;
}

bool validates(const std::string& xml) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("smtpsd-dmarc-report-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "report.xml";
  std::ofstream(file) << xml;
  const std::string command = "xmllint --noout --schema " SMTPSD_TEST_DATA_DIR
                              "/rfc7489-aggregate-report.xsd " +
                              file.string() + " >/dev/null 2>&1";
  const int status = std::system(command.c_str());
  std::filesystem::remove_all(dir);
  return status == 0;
}

TEST(AggregateReport, GroupsIdenticalRowsAndValidatesAgainstTheSchema) {
  std::vector<DmarcEvaluation> list(3, evaluation());
  list[1].time += 100;  // the same row, later: counted, not repeated
  list[2].source_ip = "2001:db8::1";
  list[2].override_reason = "trusted_forwarder";
  list[2].disposition = "none";
  list.push_back(evaluation());
  list[3].source_ip = "198.51.100.1";
  list[3].override_reason = "local_policy";
  list[3].override_comment = "arc=pass sealer=lists.example.org";
  list[3].disposition = "none";
  const std::string xml = aggregate_report_xml(metadata(), list);
  EXPECT_NE(xml.find("<org_name>Smtpsd Test &lt;&amp;&gt;</org_name>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<count>2</count>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<count>1</count>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<type>trusted_forwarder</type>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<type>local_policy</type>\n          <comment>arc=pass "
                     "sealer=lists.example.org</comment>"),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("<aspf>s</aspf>"), std::string::npos);
  EXPECT_NE(xml.find("<pct>50</pct>"), std::string::npos);
  if (std::system("command -v xmllint >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "xmllint missing: scripts/install-deps.sh installs libxml2-utils";
  EXPECT_TRUE(validates(xml)) << xml;
  // The schema does catch a broken report (so the check above means something).
  std::string broken = xml;
  broken.replace(broken.find("<disposition>reject"), 22, "<disposition>dropped");
  EXPECT_FALSE(validates(broken));
}

TEST(AggregateReport, FileNameAndGzip) {
  EXPECT_EQ(report_file_name(metadata(), "bank.example"),
            "mx.example.org!bank.example!1764806400!1764892800.xml.gz");
  const std::string xml =
      aggregate_report_xml(metadata(), std::vector<DmarcEvaluation>{evaluation()});
  auto packed = gzip(xml);
  ASSERT_TRUE(packed) << packed.error();
  ASSERT_GE(packed->size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>((*packed)[0]), 0x1f);  // RFC 1952 §2.3.1 ID1 ID2
  EXPECT_EQ(static_cast<unsigned char>((*packed)[1]), 0x8b);
  std::string unpacked(xml.size() + 100, '\0');
  z_stream stream{};
  ASSERT_EQ(inflateInit2(&stream, 15 + 16), Z_OK);
  stream.next_in = reinterpret_cast<Bytef*>(packed->data());
  stream.avail_in = static_cast<uInt>(packed->size());
  stream.next_out = reinterpret_cast<Bytef*>(unpacked.data());
  stream.avail_out = static_cast<uInt>(unpacked.size());
  EXPECT_EQ(inflate(&stream, Z_FINISH), Z_STREAM_END);
  unpacked.resize(stream.total_out);
  inflateEnd(&stream);
  EXPECT_EQ(unpacked, xml);
}

TEST(AggregateReport, TheMailCarriesTheGzipAsAnAttachment) {
  const std::vector<std::string> to{"dmarc@bank.example"};
  const std::string message = report_message(metadata(), "bank.example", to, "\x1f\x8b gz", 0);
  EXPECT_NE(message.find("To: <dmarc@bank.example>\r\n"), std::string::npos);
  EXPECT_NE(message.find("Subject: Report Domain: bank.example Submitter: mx.example.org "
                         "Report-ID: <20261204.bank.example.1>\r\n"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("Content-Type: application/gzip"), std::string::npos);
  EXPECT_NE(message.find("filename=\"mx.example.org!bank.example!1764806400!1764892800.xml.gz\""),
            std::string::npos);
  EXPECT_NE(message.find("Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n"), std::string::npos);
  EXPECT_NE(message.find("\r\n\r\nH4sgZ3o=\r\n"), std::string::npos) << message;
}

TEST(RuaAddress, MailtoOnly) {
  EXPECT_EQ(rua_address("mailto:dmarc@bank.example"), "dmarc@bank.example");
  EXPECT_EQ(rua_address("MAILTO:dmarc@bank.example!10m"), "dmarc@bank.example");
  EXPECT_EQ(rua_address("https://bank.example/report"), "");
  EXPECT_EQ(rua_address("mailto:"), "");
  EXPECT_EQ(rua_address("mailto:@bank.example"), "");
  EXPECT_EQ(rua_address("mailto:a b@bank.example"), "");
  EXPECT_EQ(rua_address("mailto:a@"), "");
}

}  // namespace
}  // namespace mailauth
