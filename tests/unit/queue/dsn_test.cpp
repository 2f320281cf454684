// dsn_test.cpp — queue::build_dsn and queue::wants_notification: the report parses as
// RFC 6522 multipart/report with its parts in order, carries the RFC 3464 fields each
// action needs, returns the original as RFC 3461 §4.3 asks, and nothing from the request
// can forge a header line.
#include "queue/dsn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace queue {
namespace {

using namespace std::string_literals;

constexpr std::string_view kOriginal =
    "Received: from c.example by mx.example\r\n"
    "From: <alice@client.example>\r\n"
    "To: <bob@remote.example>\r\n"
    "Subject: Hello\r\n"
    "Message-ID: <m1@client.example>\r\n"
    "\r\n"
    "First body line.\r\n"
    "Second body line.\r\n";

constexpr std::string_view kOriginalHeaders =
    "Received: from c.example by mx.example\r\n"
    "From: <alice@client.example>\r\n"
    "To: <bob@remote.example>\r\n"
    "Subject: Hello\r\n"
    "Message-ID: <m1@client.example>\r\n";

DsnRecipient failed_recipient() {
  DsnRecipient recipient;
  recipient.final_recipient = "bob@remote.example";
  recipient.action = DsnAction::kFailed;
  recipient.status = "5.1.1";
  recipient.remote_mta = "mx.remote.example";
  recipient.diagnostic = "550 5.1.1 no such user";
  recipient.last_attempt_unix = 1700000100;
  return recipient;
}

DsnRequest failure_request() {
  DsnRequest request;
  request.reporting_mta = "mx.example";
  request.sender = "alice@client.example";
  request.arrival_unix = 1700000000;
  request.now_unix = 1700000200;
  request.recipients.push_back(failed_recipient());
  request.original = kOriginal;
  request.message_id = "Q1.dsn@mx.example";
  return request;
}

struct Part {
  std::string headers;  // header lines, each with CRLF
  std::string body;
};

struct Parsed {
  std::string headers;
  std::string boundary;
  std::vector<Part> parts;
  bool closed = false;  // the close-delimiter was found
};

// An unfolded header field value ("" if absent); names compared case-insensitively.
std::string field(const std::string& headers, std::string_view name) {
  std::string unfolded;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    if (headers.compare(i, 3, "\r\n\t") == 0 || headers.compare(i, 3, "\r\n ") == 0) {
      unfolded.push_back(' ');
      i += 2;
    } else {
      unfolded.push_back(headers[i]);
    }
  }
  std::size_t start = 0;
  while (start < unfolded.size()) {
    std::size_t end = unfolded.find("\r\n", start);
    if (end == std::string::npos) end = unfolded.size();
    std::string line = unfolded.substr(start, end - start);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      std::string value = line.substr(name.size() + 1);
      while (!value.empty() && value.front() == ' ')
        value.erase(0, 1);
      return value;
    }
    start = end + 2;
  }
  return "";
}

// A small MIME reader: the top-level header, the boundary parameter, and the parts between
// "CRLF--boundary" delimiters (RFC 2046 §5.1.1).
Parsed parse(const std::string& content) {
  Parsed parsed;
  std::size_t split = content.find("\r\n\r\n");
  if (split == std::string::npos) return parsed;
  parsed.headers = content.substr(0, split + 2);
  const std::string body = content.substr(split + 2);  // keeps the CRLF before a delimiter
  std::string type = field(parsed.headers, "Content-Type");
  std::size_t at = type.find("boundary=\"");
  if (at == std::string::npos) return parsed;
  std::size_t end = type.find('"', at + 10);
  parsed.boundary = type.substr(at + 10, end - at - 10);
  const std::string delimiter = "\r\n--" + parsed.boundary;
  std::size_t position = body.find(delimiter);
  while (position != std::string::npos) {
    std::size_t after = position + delimiter.size();
    if (body.compare(after, 4, "--\r\n") == 0) {
      parsed.closed = after + 4 == body.size();
      break;
    }
    if (body.compare(after, 2, "\r\n") != 0) break;
    std::size_t start = after + 2;
    std::size_t next = body.find(delimiter, start);
    if (next == std::string::npos) break;
    std::string text = body.substr(start, next - start);
    Part part;
    std::size_t blank = text.find("\r\n\r\n");
    if (blank == std::string::npos) {
      part.headers = text + "\r\n";  // a part with an empty body
    } else {
      part.headers = text.substr(0, blank + 2);
      part.body = text.substr(blank + 4);
    }
    parsed.parts.push_back(part);
    position = next;
  }
  return parsed;
}

// The blocks of a delivery-status body: per-message fields first, then one per recipient.
std::vector<std::string> status_blocks(const std::string& body) {
  std::vector<std::string> blocks;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t end = body.find("\r\n\r\n", start);
    if (end == std::string::npos) {
      blocks.push_back(body.substr(start));
      break;
    }
    blocks.push_back(body.substr(start, end + 2 - start));
    start = end + 4;
  }
  return blocks;
}

void expect_well_formed_lines(const std::string& content) {
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\n') {
      ASSERT_GT(i, 0u);
      EXPECT_EQ(content[i - 1], '\r') << "bare LF at " << i;
      EXPECT_LE(i - 1 - line_start, 998u) << "line too long at " << line_start;
      line_start = i + 1;
    } else if (content[i] == '\r') {
      ASSERT_LT(i + 1, content.size());
      EXPECT_EQ(content[i + 1], '\n') << "bare CR at " << i;
    }
  }
  EXPECT_EQ(line_start, content.size()) << "content does not end in CRLF";
}

TEST(DsnTest, StructureParsesAsMime) {
  const DsnRequest request = failure_request();
  const DsnMessage dsn = build_dsn(request);
  expect_well_formed_lines(dsn.content);
  const Parsed parsed = parse(dsn.content);
  EXPECT_EQ(field(parsed.headers, "From"), "\"Mail Delivery System\" <MAILER-DAEMON@mx.example>");
  EXPECT_EQ(field(parsed.headers, "To"), "<alice@client.example>");
  EXPECT_EQ(field(parsed.headers, "Subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(field(parsed.headers, "Date"), "Tue, 14 Nov 2023 22:16:40 +0000");
  EXPECT_EQ(field(parsed.headers, "Message-ID"), "<Q1.dsn@mx.example>");
  EXPECT_EQ(field(parsed.headers, "Auto-Submitted"), "auto-replied");
  EXPECT_EQ(field(parsed.headers, "MIME-Version"), "1.0");
  EXPECT_EQ(field(parsed.headers, "Content-Type"),
            "multipart/report; report-type=delivery-status; boundary=\"" + parsed.boundary + "\"");
  EXPECT_EQ(field(parsed.headers, "Content-Transfer-Encoding"), "");
  ASSERT_FALSE(parsed.boundary.empty());
  EXPECT_TRUE(parsed.closed);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.parts[0].headers, "Content-Type"), "text/plain; charset=us-ascii");
  EXPECT_EQ(field(parsed.parts[1].headers, "Content-Type"), "message/delivery-status");
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "message/rfc822");
  EXPECT_EQ(parsed.parts[2].body, kOriginal);  // RET absent, a failure, small: all of it
  // The text names the recipient, what the remote said, and that it is not retried.
  const std::string& text = parsed.parts[0].body;
  EXPECT_NE(text.find("<bob@remote.example>"), std::string::npos);
  EXPECT_NE(text.find("mx.remote.example said:"), std::string::npos);
  EXPECT_NE(text.find("550 5.1.1 no such user"), std::string::npos);
  EXPECT_NE(text.find("will not be retried"), std::string::npos);
  // The DSN itself: null reverse-path, to the sender, nothing 8-bit.
  EXPECT_EQ(dsn.envelope.reverse_path, "");
  ASSERT_EQ(dsn.envelope.recipients.size(), 1u);
  EXPECT_EQ(dsn.envelope.recipients[0].address, "alice@client.example");
  EXPECT_EQ(dsn.envelope.body, smtp::BodyType::kUnspecified);
  EXPECT_FALSE(dsn.envelope.smtputf8);
  // Pure: the same request gives the same octets.
  EXPECT_EQ(build_dsn(request).content, dsn.content);
}

TEST(DsnTest, FailedFields) {
  DsnRequest request = failure_request();
  DsnRecipient local;
  local.final_recipient = "carol@mx.example";
  local.action = DsnAction::kFailed;
  local.status = "5.2.2";
  local.diagnostic = "mailbox full";
  request.recipients.push_back(local);
  const Parsed parsed = parse(build_dsn(request).content);
  ASSERT_EQ(parsed.parts.size(), 3u);
  const std::vector<std::string> blocks = status_blocks(parsed.parts[1].body);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0],
            "Reporting-MTA: dns; mx.example\r\n"
            "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n");
  EXPECT_EQ(blocks[1],
            "Final-Recipient: rfc822; bob@remote.example\r\n"
            "Action: failed\r\n"
            "Status: 5.1.1\r\n"
            "Remote-MTA: dns; mx.remote.example\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
            "Last-Attempt-Date: Tue, 14 Nov 2023 22:15:00 +0000\r\n");
  // A local failure: no Remote-MTA, no dates we do not know.
  EXPECT_EQ(blocks[2],
            "Final-Recipient: rfc822; carol@mx.example\r\n"
            "Action: failed\r\n"
            "Status: 5.2.2\r\n"
            "Diagnostic-Code: smtp; mailbox full\r\n");
  EXPECT_NE(parsed.parts[0].body.find("<carol@mx.example>"), std::string::npos);
}

TEST(DsnTest, DelayedFieldsAndHeadersOnly) {
  DsnRequest request = failure_request();
  request.ret = smtp::DsnReturn::kFull;  // RET applies to failures only (RFC 3461 §4.3)
  request.recipients[0].action = DsnAction::kDelayed;
  request.recipients[0].status = "4.4.7";
  request.recipients[0].diagnostic = "451 4.4.7 try later";
  request.recipients[0].will_retry_until_unix = 1700400000;
  const DsnMessage dsn = build_dsn(request);
  const Parsed parsed = parse(dsn.content);
  EXPECT_EQ(field(parsed.headers, "Subject"), "Delayed Mail (still being retried)");
  ASSERT_EQ(parsed.parts.size(), 3u);
  const std::vector<std::string> blocks = status_blocks(parsed.parts[1].body);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(field(blocks[1], "Action"), "delayed");
  EXPECT_EQ(field(blocks[1], "Status"), "4.4.7");
  EXPECT_EQ(field(blocks[1], "Will-Retry-Until"), "Sun, 19 Nov 2023 13:20:00 +0000");
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(parsed.parts[2].body, kOriginalHeaders);
  EXPECT_NE(parsed.parts[0].body.find("will keep trying"), std::string::npos);
  EXPECT_NE(parsed.parts[0].body.find("Sun, 19 Nov 2023 13:20:00 +0000"), std::string::npos);
}

TEST(DsnTest, SuccessFieldsAndHeadersOnly) {
  DsnRequest request = failure_request();
  request.recipients[0].action = DsnAction::kDelivered;
  request.recipients[0].status = "2.0.0";
  request.recipients[0].diagnostic.clear();
  request.recipients[0].remote_mta.clear();
  request.recipients[0].will_retry_until_unix = 1700400000;  // ignored: not delayed
  DsnRecipient relayed;
  relayed.final_recipient = "dave@old.example";
  relayed.action = DsnAction::kRelayed;
  relayed.remote_mta = "mx.old.example";
  request.recipients.push_back(relayed);
  const Parsed parsed = parse(build_dsn(request).content);
  EXPECT_EQ(field(parsed.headers, "Subject"), "Successful Mail Delivery Report");
  ASSERT_EQ(parsed.parts.size(), 3u);
  const std::vector<std::string> blocks = status_blocks(parsed.parts[1].body);
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(field(blocks[1], "Action"), "delivered");
  EXPECT_EQ(field(blocks[1], "Status"), "2.0.0");
  EXPECT_EQ(field(blocks[1], "Will-Retry-Until"), "");
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code"), "");
  EXPECT_EQ(field(blocks[2], "Action"), "relayed");
  EXPECT_EQ(field(blocks[2], "Status"), "2.0.0");  // defaulted from the action
  EXPECT_EQ(field(blocks[2], "Remote-MTA"), "dns; mx.old.example");
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(parsed.parts[2].body, kOriginalHeaders);
}

// RFC 3461 §5.2.7: an alias expanded to several addresses reports "expanded", asked for by
// SUCCESS.
TEST(DsnTest, AnExpandedAliasIsReportedAsExpanded) {
  DsnRequest request = failure_request();
  request.recipients.resize(1);
  request.recipients[0].final_recipient = "sales@example.org";
  request.recipients[0].action = DsnAction::kExpanded;
  request.recipients[0].status.clear();
  request.recipients[0].diagnostic.clear();
  request.recipients[0].remote_mta.clear();
  const Parsed parsed = parse(build_dsn(request).content);
  EXPECT_EQ(field(parsed.headers, "Subject"), "Successful Mail Delivery Report");
  const std::vector<std::string> blocks = status_blocks(parsed.parts[1].body);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(field(blocks[1], "Action"), "expanded");
  EXPECT_EQ(field(blocks[1], "Status"), "2.0.0");
  EXPECT_NE(parsed.parts[0].body.find("expanded to several addresses"), std::string::npos);
  smtp::Recipient asked{"sales@example.org", "SUCCESS", ""};
  EXPECT_TRUE(wants_notification(asked, DsnAction::kExpanded));
  asked.notify = "FAILURE";
  EXPECT_FALSE(wants_notification(asked, DsnAction::kExpanded));
}

TEST(DsnTest, ASuccessNoticeAnyoneCouldAskForCarriesNothingOfTheMessage) {
  DsnRequest request = failure_request();
  request.recipients[0].action = DsnAction::kDelivered;
  request.recipients[0].status = "2.0.0";
  request.omit_original = true;
  const std::string content = build_dsn(request).content;
  const Parsed parsed = parse(content);
  ASSERT_EQ(parsed.parts.size(), 2u);  // the text and the report, no third part
  EXPECT_EQ(field(parsed.parts[1].headers, "Content-Type"), "message/delivery-status");
  EXPECT_EQ(content.find(kOriginalHeaders), std::string::npos);
}

TEST(DsnTest, MixedFailureAndDelayIsAFailureReport) {
  DsnRequest request = failure_request();
  DsnRecipient delayed;
  delayed.final_recipient = "erin@slow.example";
  delayed.action = DsnAction::kDelayed;
  delayed.status = "not a status";
  request.recipients.push_back(delayed);
  const Parsed parsed = parse(build_dsn(request).content);
  EXPECT_EQ(field(parsed.headers, "Subject"), "Undelivered Mail Returned to Sender");
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(status_blocks(parsed.parts[1].body)[2], "Status"), "4.0.0");
  EXPECT_NE(parsed.parts[0].body.find("delivery delayed, will be retried"), std::string::npos);
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "message/rfc822");
}

TEST(DsnTest, RetHeadersReturnsHeadersOnly) {
  DsnRequest request = failure_request();
  request.ret = smtp::DsnReturn::kHeaders;
  const Parsed parsed = parse(build_dsn(request).content);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(parsed.parts[2].body, kOriginalHeaders);
  EXPECT_EQ(parsed.parts[2].body.find("First body line"), std::string::npos);
  request.ret = smtp::DsnReturn::kFull;
  EXPECT_EQ(parse(build_dsn(request).content).parts[2].body, kOriginal);
}

// RFC 8689 §5: the notice of a REQUIRETLS message returns the headers only, even with
// RET=FULL, and is sent with REQUIRETLS itself.
TEST(DsnTest, ARequireTlsMessageGetsHeadersOnlyAndARequireTlsNotice) {
  DsnRequest request = failure_request();
  request.ret = smtp::DsnReturn::kFull;
  request.require_tls = true;
  const DsnMessage dsn = build_dsn(request);
  const Parsed parsed = parse(dsn.content);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(parsed.parts[2].body, kOriginalHeaders);
  EXPECT_TRUE(dsn.envelope.require_tls);
  EXPECT_EQ(dsn.envelope.reverse_path, "");
  request.require_tls = false;
  const DsnMessage plain = build_dsn(request);
  EXPECT_EQ(parse(plain.content).parts[2].body, kOriginal);
  EXPECT_FALSE(plain.envelope.require_tls);
}

TEST(DsnTest, OversizedReturnsHeadersOnly) {
  DsnRequest request = failure_request();
  request.ret = smtp::DsnReturn::kFull;
  request.max_returned = kOriginal.size();
  EXPECT_EQ(parse(build_dsn(request).content).parts[2].body, kOriginal);  // at the limit
  request.max_returned = kOriginal.size() - 1;
  const Parsed parsed = parse(build_dsn(request).content);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(parsed.parts[2].body, kOriginalHeaders);
  EXPECT_NE(parsed.parts[0].body.find("header of the message is attached"), std::string::npos);
}

TEST(DsnTest, OriginalThatCannotTravelAs8BitMimeReturnsHeadersOnly) {
  for (std::string body : {"bare\nLF\r\n"s, "a NUL \0 here\r\n"s, std::string(999, 'x') + "\r\n"}) {
    const std::string original = "Subject: x\r\n\r\n" + body;
    DsnRequest request = failure_request();
    request.original = original;
    const Parsed parsed = parse(build_dsn(request).content);
    ASSERT_EQ(parsed.parts.size(), 3u);
    EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "text/rfc822-headers");
    EXPECT_EQ(parsed.parts[2].body, "Subject: x\r\n");
  }
  // Headers alone with bare line ends and NUL come back as clean CRLF lines.
  DsnRequest request = failure_request();
  const std::string original = "A: 1\nB: \0\r2\r\n\r\nbody\r\n"s;
  request.original = original;
  const DsnMessage dsn = build_dsn(request);
  expect_well_formed_lines(dsn.content);
  EXPECT_EQ(parse(dsn.content).parts[2].body, "A: 1\r\nB:   2\r\n");
}

TEST(DsnTest, EnvidAndOrcptEchoed) {
  DsnRequest request = failure_request();
  request.envelope_id = "QQ314159";
  request.recipients[0].original_recipient = "rfc822;Bob@Remote.Example";
  Parsed parsed = parse(build_dsn(request).content);
  ASSERT_EQ(parsed.parts.size(), 3u);
  std::vector<std::string> blocks = status_blocks(parsed.parts[1].body);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(field(blocks[0], "Original-Envelope-Id"), "QQ314159");
  EXPECT_TRUE(
      blocks[1].starts_with("Original-Recipient: rfc822;Bob@Remote.Example\r\n"
                            "Final-Recipient: rfc822; bob@remote.example\r\n"));
  // Absent parameters give absent fields.
  parsed = parse(build_dsn(failure_request()).content);
  blocks = status_blocks(parsed.parts[1].body);
  EXPECT_EQ(field(blocks[0], "Original-Envelope-Id"), "");
  EXPECT_EQ(field(blocks[1], "Original-Recipient"), "");
}

smtp::Recipient with_notify(std::string notify) {
  smtp::Recipient recipient;
  recipient.address = "bob@remote.example";
  recipient.notify = std::move(notify);
  return recipient;
}

TEST(DsnTest, WantsNotificationTruthTable) {
  struct Row {
    std::string notify;
    bool failed, delayed, delivered, relayed;
  };
  const Row rows[] = {
      {"", true, true, false, false},
      {"NEVER", false, false, false, false},
      {"never", false, false, false, false},
      {"SUCCESS", false, false, true, true},
      {"FAILURE", true, false, false, false},
      {"DELAY", false, true, false, false},
      {"SUCCESS,FAILURE", true, false, true, true},
      {"FAILURE,DELAY", true, true, false, false},
      {"SUCCESS,DELAY", false, true, true, true},
      {"DELAY,SUCCESS,FAILURE", true, true, true, true},
      {"success,Failure,dElAy", true, true, true, true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE("NOTIFY=" + row.notify);
    const smtp::Recipient recipient = with_notify(row.notify);
    EXPECT_EQ(wants_notification(recipient, DsnAction::kFailed), row.failed);
    EXPECT_EQ(wants_notification(recipient, DsnAction::kDelayed), row.delayed);
    EXPECT_EQ(wants_notification(recipient, DsnAction::kDelivered), row.delivered);
    EXPECT_EQ(wants_notification(recipient, DsnAction::kRelayed), row.relayed);
  }
}

TEST(DsnTest, EightBitOriginalGives8BitMime) {
  const std::string original =
      "Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9f"
      "e\r\n";
  DsnRequest request = failure_request();
  request.original = original;
  DsnMessage dsn = build_dsn(request);
  EXPECT_EQ(dsn.envelope.body, smtp::BodyType::k8BitMime);
  EXPECT_FALSE(dsn.envelope.smtputf8);
  Parsed parsed = parse(dsn.content);
  EXPECT_EQ(field(parsed.headers, "Content-Transfer-Encoding"), "8bit");
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "message/rfc822");
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(parsed.parts[2].body, original);
  // Headers only: the 8-bit body stays behind, and so does 8BITMIME.
  request.ret = smtp::DsnReturn::kHeaders;
  dsn = build_dsn(request);
  EXPECT_EQ(dsn.envelope.body, smtp::BodyType::kUnspecified);
  EXPECT_EQ(field(parse(dsn.content).headers, "Content-Transfer-Encoding"), "");
}

TEST(DsnTest, InternationalisedAddressesUseTheGlobalTypes) {
  DsnRequest request = failure_request();
  request.recipients[0].final_recipient =
      "j\xc3\xbcrgen@b\xc3\xbc"
      "cher.example";
  request.recipients[0].diagnostic = "550 5.1.1 unbekannt: j\xc3\xbcrgen";
  DsnMessage dsn = build_dsn(request);
  // The sender is ASCII: our own header is ASCII, so no SMTPUTF8, but 8-bit parts.
  EXPECT_FALSE(dsn.envelope.smtputf8);
  EXPECT_EQ(dsn.envelope.body, smtp::BodyType::k8BitMime);
  Parsed parsed = parse(dsn.content);
  EXPECT_NE(field(parsed.headers, "Content-Type").find("report-type=global-delivery-status"),
            std::string::npos);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.parts[0].headers, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(field(parsed.parts[1].headers, "Content-Type"), "message/global-delivery-status");
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "message/global");
  const std::vector<std::string> blocks = status_blocks(parsed.parts[1].body);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(field(blocks[1], "Final-Recipient"),
            "utf-8; j\xc3\xbcrgen@b\xc3\xbc"
            "cher.example");
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code"), "smtp; 550 5.1.1 unbekannt: j\xc3\xbcrgen");
  // A UTF-8 sender is in our To: field: SMTPUTF8 (RFC 6531 §3.4).
  request.sender = "\xc3\xa5sa@client.example";
  dsn = build_dsn(request);
  EXPECT_TRUE(dsn.envelope.smtputf8);
  EXPECT_EQ(field(parse(dsn.content).headers, "To"), "<\xc3\xa5sa@client.example>");
  EXPECT_EQ(dsn.envelope.recipients[0].address, request.sender);
  // ASCII report: a remote's non-ASCII (or broken) octets become '?'.
  request = failure_request();
  request.recipients[0].diagnostic = "550 caf\xc3\xa9 \xff";
  parsed = parse(build_dsn(request).content);
  EXPECT_EQ(field(status_blocks(parsed.parts[1].body)[1], "Diagnostic-Code"), "smtp; 550 caf?? ?");
  // A Unicode header in the original returns it as message/global-headers.
  request.ret = smtp::DsnReturn::kHeaders;
  const std::string original =
      "Subject: Gr\xc3\xbc\xc3\x9f"
      "e\r\n\r\nbody\r\n";
  request.original = original;
  parsed = parse(build_dsn(request).content);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.parts[2].headers, "Content-Type"), "message/global-headers");
}

TEST(DsnTest, CrLfInjectionIsNeutralised) {
  const std::string evil = "x\r\nBcc: victim@example.org\r\n\r\nInjected: yes\nX-Bare: lf\r";
  DsnRequest request = failure_request();
  request.reporting_mta = "mx.example" + evil;
  request.sender = "alice@client.example" + evil;
  request.envelope_id = "ID" + evil;
  request.message_id = "Q1.dsn@mx.example" + evil;
  request.recipients[0].final_recipient = "bob@remote.example" + evil;
  request.recipients[0].original_recipient = "rfc822" + evil + ";bob@x" + evil;
  request.recipients[0].remote_mta = "mx.remote.example" + evil;
  request.recipients[0].diagnostic = "550-5.1.1 first\r\n550 5.1.1 second" + evil;
  request.recipients[0].status = "5.1.1" + evil;
  const DsnMessage dsn = build_dsn(request);
  expect_well_formed_lines(dsn.content);
  for (std::string_view forged : {"\r\nBcc:", "\r\nInjected:", "\r\nX-Bare:"}) {
    EXPECT_EQ(dsn.content.find(forged), std::string::npos) << forged;
  }
  const Parsed parsed = parse(dsn.content);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_EQ(field(parsed.headers, "Bcc"), "");
  const std::vector<std::string> blocks = status_blocks(parsed.parts[1].body);
  ASSERT_EQ(blocks.size(), 2u);  // no blank line forged into the report either
  EXPECT_EQ(field(blocks[1], "Status"), "5.0.0");
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code").substr(0, 38),
            "smtp; 550-5.1.1 first 550 5.1.1 second");
  // The DSN still goes to the address as given: the envelope is not a header.
  EXPECT_EQ(dsn.envelope.recipients[0].address, request.sender);
}

TEST(DsnTest, BoundaryNeverOccursInTheParts) {
  DsnRequest request = failure_request();
  const std::string first = parse(build_dsn(request).content).boundary;
  ASSERT_FALSE(first.empty());
  // Plant that boundary (as a delimiter and a close-delimiter) in the returned message.
  const std::string original = std::string(kOriginal) + "--" + first + "\r\n--" + first + "--\r\n";
  request.original = original;
  const DsnMessage dsn = build_dsn(request);
  const Parsed parsed = parse(dsn.content);
  EXPECT_NE(parsed.boundary, first);
  EXPECT_EQ(original.find(parsed.boundary), std::string::npos);
  ASSERT_EQ(parsed.parts.size(), 3u);
  EXPECT_TRUE(parsed.closed);
  EXPECT_EQ(parsed.parts[2].body, original);
}

TEST(DsnTest, MessageIdAndReportingMtaDefaults) {
  DsnRequest request = failure_request();
  request.message_id = "<Q2.dsn@mx.example>";  // brackets given anyway: not doubled
  EXPECT_EQ(field(parse(build_dsn(request).content).headers, "Message-ID"), "<Q2.dsn@mx.example>");
  request.message_id.clear();
  request.reporting_mta.clear();
  const Parsed parsed = parse(build_dsn(request).content);
  EXPECT_EQ(field(parsed.headers, "Message-ID"), "<1700000200.dsn@localhost>");
  EXPECT_EQ(field(parsed.headers, "From"), "\"Mail Delivery System\" <MAILER-DAEMON@localhost>");
}

TEST(DsnTest, LongValuesKeepLinesShort) {
  DsnRequest request = failure_request();
  request.recipients[0].diagnostic = "550 " + std::string(5000, 'z');
  request.recipients[0].final_recipient = std::string(3000, 'a') + "@remote.example";
  const DsnMessage dsn = build_dsn(request);
  expect_well_formed_lines(dsn.content);
  EXPECT_EQ(parse(dsn.content).parts.size(), 3u);
}

TEST(DsnTest, ActionNames) {
  EXPECT_EQ(to_string(DsnAction::kFailed), "failed");
  EXPECT_EQ(to_string(DsnAction::kDelayed), "delayed");
  EXPECT_EQ(to_string(DsnAction::kDelivered), "delivered");
  EXPECT_EQ(to_string(DsnAction::kRelayed), "relayed");
}

}  // namespace
}  // namespace queue
