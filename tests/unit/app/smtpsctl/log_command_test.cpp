// log_command_test.cpp — `smtpsctl log summary` on input no server wrote: a line far longer
// than any of ours is skipped without being held whole, and past the bound on distinct keys
// the rest count together as "(others)"; the counts stay right either way; a refused
// connection line counts as many refusals as it says; a copy made right after the reply counts
// in the delays even when its line comes before "accepted". The summary of
// a real server's log: tests/integration/test_logs.py.
#include "app/smtpsctl/log_command.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace app {
namespace {

std::string summary(const std::string& input) {
  std::istringstream in(input);
  std::ostringstream out, err;
  EXPECT_EQ(run_log_command({"summary"}, in, out, err, 0), 0) << err.str();
  return out.str();
}

TEST(LogSummaryTest, AHugeLineIsSkippedAndTheLinesAroundItCount) {
  const std::string accepted = "level=info event=accepted id=a from=x@example.org size=10\n";
  const std::string huge = "level=info event=accepted from=" + std::string(1 << 20, 'y') + "\n";
  const std::string text = summary(accepted + huge + accepted);
  EXPECT_NE(text.find("(2 of 3 lines are smtpsd's;"), std::string::npos) << text;
  EXPECT_NE(text.find("received                  2"), std::string::npos) << text;
  EXPECT_EQ(text.find("yyyy"), std::string::npos);
}

TEST(LogSummaryTest, PastTheBoundOnDistinctSendersTheRestCountAsOthers) {
  std::string input;
  for (int i = 0; i < 100005; ++i)
    input += "level=info event=accepted from=s" + std::to_string(i) + "@example.org size=1\n";
  const std::string text = summary(input);
  EXPECT_NE(text.find("received             100005"), std::string::npos) << text.substr(0, 400);
  EXPECT_NE(text.find("(others)"), std::string::npos);
}

TEST(LogSummaryTest, ARefusedConnectionLineCountsTheRefusalsItSpeaksFor) {
  // One line a second at most, saying how many were refused since the last, itself included.
  const std::string text = summary(
      "level=warning event=connection_refused limit=per_ip refused_since_last_line=1\n"
      "level=warning event=connection_refused limit=rate refused_since_last_line=17\n"
      "level=warning event=connection_refused limit=rate\n");
  EXPECT_NE(text.find("  connections              19   per_ip 1, rate 18\n"), std::string::npos)
      << text;
}

TEST(LogSummaryTest, ACopyMadeAfterTheReplyCountsItsDelayWhicheverLineComesFirst) {
  // reply_after = "log": the copy's line may come before the session's "accepted".
  const std::string text = summary(
      "2026-12-07T08:00:00.010Z level=info event=delivered id=a rcpt=demo@localhost "
      "to=maildir at=after_reply\n"
      "2026-12-07T08:00:00.011Z level=info event=accepted id=a from=x@example.org size=10\n"
      "2026-12-07T08:00:01.000Z level=info event=accepted id=b from=x@example.org size=10\n"
      "2026-12-07T08:00:01.250Z level=info event=delivered id=b rcpt=demo@localhost "
      "to=maildir at=after_reply\n"
      // Its "accepted" not in what was read: left out, as any other delivery.
      "2026-12-07T08:00:02.000Z level=info event=delivered id=c rcpt=demo@localhost "
      "to=maildir at=after_reply\n");
  EXPECT_NE(text.find("Delivery delays (accepted to delivered, 2 deliveries)\n"
                      "  min 0.00 s, median 0.25 s"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("max 0.25 s"), std::string::npos) << text;
}

}  // namespace
}  // namespace app
