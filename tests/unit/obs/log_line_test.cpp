// log_line_test.cpp — obs::parse_log_line reads back what obs::Log writes (key=value), with
// each prefix a line may carry on its way to a file: our time stamp, the journal's "<N>", a
// syslog daemon's date, host and tag; and refuses what is not ours.
#include "obs/log_line.h"

#include <gtest/gtest.h>

#include <string>

#include "obs/log.h"

namespace obs {
namespace {

TEST(LogLineTest, ReadsOurStampLevelEventAndFieldsInOrder) {
  auto record = parse_log_line(
      "2026-12-05T18:00:00.123Z level=info event=accepted session=ab12 from=a@b.example "
      "recipients=1 size=1234\n",
      0);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->time_ms, 1796493600123);
  EXPECT_EQ(record->level, "info");
  EXPECT_EQ(record->event, "accepted");
  ASSERT_EQ(record->fields.size(), 4u);
  EXPECT_EQ(record->fields[0].first, "session");
  EXPECT_EQ(record->get("size"), "1234");
  EXPECT_EQ(record->get("nothing"), "");
}

TEST(LogLineTest, QuotedValuesComeBackAsTheWriterWroteThem) {
  // What append_value writes for a hostile value: quotes, backslashes, control bytes.
  std::string written = "level=warning event=auth_failed user=";
  append_value(written, std::string("we\"ird\\us\ter\x7f") + "=x");
  written += " reason=\"invalid credentials\"";
  auto record = parse_log_line(written, 0);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->get("user"), std::string("we\"ird\\us\ter\x7f") + "=x");
  EXPECT_EQ(record->get("reason"), "invalid credentials");
  EXPECT_FALSE(record->time_ms);
}

TEST(LogLineTest, JournalAndSyslogPrefixesAreSkippedAndTheirDateRead) {
  auto journal = parse_log_line("<4>level=warning event=failed id=x rcpt=a@b", 0);
  ASSERT_TRUE(journal);
  EXPECT_EQ(journal->event, "failed");
  EXPECT_FALSE(journal->time_ms);

  const std::time_t now = 1796493600;  // 2026-12-05T18:00:00Z
  auto filed = parse_log_line("Dec  5 06:00:01 mx smtpsd[42]: level=info event=tls version=x", now);
  ASSERT_TRUE(filed);
  EXPECT_EQ(filed->event, "tls");
  ASSERT_TRUE(filed->time_ms);
  std::tm local{};
  const std::time_t at = static_cast<std::time_t>(*filed->time_ms / 1000);
  ::localtime_r(&at, &local);
  EXPECT_EQ(local.tm_year + 1900, 2026);
  EXPECT_EQ(local.tm_mon, 11);
  EXPECT_EQ(local.tm_hour, 6);

  auto datagram = parse_log_line("<22>Dec 31 23:59:59 smtpsd[7]: level=info event=x", now);
  ASSERT_TRUE(datagram);
  ASSERT_TRUE(datagram->time_ms);
  std::tm last_year{};
  const std::time_t then = static_cast<std::time_t>(*datagram->time_ms / 1000);
  ::localtime_r(&then, &last_year);
  EXPECT_EQ(last_year.tm_year + 1900, 2025);  // December 31st is not in our future

  auto rfc3339 =
      parse_log_line("2026-12-05T19:00:00.5+01:00 mx smtpsd[42]: level=info event=started", now);
  ASSERT_TRUE(rfc3339);
  EXPECT_EQ(rfc3339->time_ms, 1796493600000);
}

TEST(LogLineTest, WhatIsNotOursGivesNothingAndABrokenValueEndsTheFields) {
  EXPECT_FALSE(parse_log_line("", 0));
  EXPECT_FALSE(parse_log_line("Dec  5 06:00:01 mx postfix/smtpd[1]: connect from x", 0));
  EXPECT_FALSE(parse_log_line("level=info session=x", 0));  // no event
  EXPECT_FALSE(parse_log_line("xlevel=info event=x", 0));
  auto broken = parse_log_line("level=info event=x a=1 b=\"unterminated c=3", 0);
  ASSERT_TRUE(broken);
  ASSERT_EQ(broken->fields.size(), 1u);
  EXPECT_EQ(broken->get("a"), "1");
  auto bad_escape = parse_log_line("level=info event=x a=\"\\q\" b=2", 0);
  ASSERT_TRUE(bad_escape);
  EXPECT_TRUE(bad_escape->fields.empty());
}

}  // namespace
}  // namespace obs
