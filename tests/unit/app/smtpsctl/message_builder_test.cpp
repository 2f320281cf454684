// message_builder_test.cpp — RFC 5322 dates, RFC 2047 encoded-words, mailboxes, address lists
// for `sendmail -t`, header reading (folding, mbox line, a body line where a header was
// expected), and that every written line ends with CRLF.
#include "app/smtpsctl/message_builder.h"

#include <sodium.h>

#include <sstream>

#include <gtest/gtest.h>

namespace app {
namespace {

std::string decode_word(const std::string& word) {
  // "=?UTF-8?B?...?="
  EXPECT_EQ(word.rfind("=?UTF-8?B?", 0), 0u) << word;
  std::string b64 = word.substr(10, word.size() - 12);
  std::string out(b64.size(), '\0');
  std::size_t length = 0;
  EXPECT_EQ(
      sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), b64.data(),
                        b64.size(), nullptr, &length, nullptr, sodium_base64_VARIANT_ORIGINAL),
      0);
  out.resize(length);
  return out;
}

std::vector<std::string> split(const std::string& text, const std::string& separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t at = text.find(separator, start);
    parts.push_back(text.substr(start, at - start));
    if (at == std::string::npos) return parts;
    start = at + separator.size();
  }
}

TEST(MessageBuilder, DateIsRfc5322WithZone) {
  EXPECT_EQ(format_date(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
  // 2026-11-24 07:47:03 UTC
  EXPECT_EQ(format_date(1795506423, 3600), "Tue, 24 Nov 2026 08:47:03 +0100");
  EXPECT_EQ(format_date(1795506423, -(5 * 3600 + 30 * 60)), "Tue, 24 Nov 2026 02:17:03 -0530");
}

TEST(MessageBuilder, MessageIdIsUniqueAndBracketed) {
  std::string a = new_message_id("example.org"), b = new_message_id("example.org");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.front(), '<');
  EXPECT_NE(a.find("@example.org>"), std::string::npos);
  EXPECT_NE(new_message_id("").find("@localhost>"), std::string::npos);
}

TEST(MessageBuilder, AsciiSubjectUnchanged) {
  EXPECT_EQ(encode_unstructured("Hello world", 9), "Hello world");
}

TEST(MessageBuilder, NonAsciiSubjectBecomesEncodedWords) {
  std::string subject = "Grüße aus Köln";
  std::string encoded = encode_unstructured(subject, 9);
  EXPECT_TRUE(is_ascii(encoded));
  EXPECT_EQ(decode_word(encoded), subject);
}

TEST(MessageBuilder, LongSubjectFoldsOnWholeCharacters) {
  std::string subject;
  for (int i = 0; i < 40; ++i)
    subject += "é€";  // 2 + 3 octets
  std::string encoded = encode_unstructured(subject, 9);
  std::string joined;
  auto words = split(encoded, "\r\n ");
  EXPECT_GT(words.size(), 1u);
  for (const std::string& word : words) {
    EXPECT_LE(word.size() + 9, 78u) << word;
    std::string piece = decode_word(word);
    // No word ends inside a character: each decodes to valid UTF-8 on its own.
    unsigned char last = static_cast<unsigned char>(piece.back());
    EXPECT_TRUE(last < 0x80 || (last & 0xC0) == 0x80);
    joined += piece;
  }
  EXPECT_EQ(joined, subject);
}

TEST(MessageBuilder, Mailboxes) {
  EXPECT_EQ(format_mailbox("", "a@example.org"), "a@example.org");
  EXPECT_EQ(format_mailbox("Cron Daemon", "a@example.org"), "Cron Daemon <a@example.org>");
  EXPECT_EQ(format_mailbox("Doe, John", "a@example.org"), "\"Doe, John\" <a@example.org>");
  EXPECT_EQ(format_mailbox("say \"hi\"", "a@b"), "\"say \\\"hi\\\"\" <a@b>");
  std::string name = format_mailbox("Jürgen", "j@example.org");
  EXPECT_EQ(name.rfind("=?UTF-8?B?", 0), 0u);
  EXPECT_EQ(decode_word(name.substr(0, name.find(' '))), "Jürgen");
}

TEST(MessageBuilder, AddressLists) {
  using V = std::vector<std::string>;
  EXPECT_EQ(parse_address_list("a@example.org"), V{"a@example.org"});
  EXPECT_EQ(parse_address_list("A <a@example.org>, b@example.org (Bee)"),
            (V{"a@example.org", "b@example.org"}));
  EXPECT_EQ(parse_address_list("\"Doe, John\" <j@example.org>,\"x\" <y@example.org>"),
            (V{"j@example.org", "y@example.org"}));
  EXPECT_EQ(parse_address_list("team: a@x.org, B <b@x.org>;, c@x.org"),
            (V{"a@x.org", "b@x.org", "c@x.org"}));
  EXPECT_EQ(parse_address_list("undisclosed-recipients:;"), V{});
  EXPECT_EQ(parse_address_list("(comment, with comma) a@x.org"), V{"a@x.org"});
  EXPECT_EQ(parse_address_list(""), V{});
}

TEST(MessageBuilder, ReadHeadUnfoldsAndKeepsBody) {
  std::istringstream in(
      "From nobody Mon Jan  1 00:00:00 2024\n"
      "To: a@x.org,\n"
      "  b@x.org\r\n"
      "Subject: hi\n"
      "\n"
      "body 1\n"
      "body 2\n");
  LineReader reader(in, false);
  auto head = read_head(reader);
  ASSERT_TRUE(head);
  ASSERT_EQ(head->fields.size(), 2u);
  EXPECT_EQ(head->values("to"), std::vector<std::string>{"a@x.org,  b@x.org"});
  EXPECT_TRUE(head->has("SUBJECT"));
  std::ostringstream out;
  auto written = write_message(*head, reader, out);
  ASSERT_TRUE(written);
  EXPECT_EQ(out.str(), "To: a@x.org,\r\n  b@x.org\r\nSubject: hi\r\n\r\nbody 1\r\nbody 2\r\n");
  EXPECT_EQ(written->size, out.str().size());
  EXPECT_FALSE(written->eight_bit);
}

TEST(MessageBuilder, NonHeaderLineStartsTheBody) {
  std::istringstream in("Subject: x\nthis is not a header\nmore\n");
  LineReader reader(in, false);
  auto head = read_head(reader);
  ASSERT_TRUE(head);
  std::ostringstream out;
  ASSERT_TRUE(write_message(*head, reader, out));
  EXPECT_EQ(out.str(), "Subject: x\r\n\r\nthis is not a header\r\nmore\r\n");
}

TEST(MessageBuilder, LoneDotEndsInputOnlyWhenAsked) {
  {
    std::istringstream in("Subject: x\n\nline\n.\nafter\n");
    LineReader reader(in, true);
    auto head = read_head(reader);
    std::ostringstream out;
    ASSERT_TRUE(write_message(*head, reader, out));
    EXPECT_EQ(out.str(), "Subject: x\r\n\r\nline\r\n");
  }
  {
    std::istringstream in("Subject: x\n\nline\n.\nafter\n");
    LineReader reader(in, false);  // -i
    auto head = read_head(reader);
    std::ostringstream out;
    ASSERT_TRUE(write_message(*head, reader, out));
    EXPECT_EQ(out.str(), "Subject: x\r\n\r\nline\r\n.\r\nafter\r\n");
  }
}

TEST(MessageBuilder, OverlongLineRefused) {
  std::istringstream in("Subject: x\n\n" + std::string(999, 'a') + "\n");
  LineReader reader(in, false);
  auto head = read_head(reader);
  std::ostringstream out;
  auto written = write_message(*head, reader, out);
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().find("998"), std::string::npos);
}

TEST(MessageBuilder, ComposeHeadersAscii) {
  Composition parts{"me@example.org", "", {"a@x.org", "b@x.org"}, "Hi", "DATE", "<id@x>"};
  auto head = compose_head(parts, true);
  ASSERT_TRUE(head);
  std::istringstream body("Hello\n");
  LineReader reader(body, false);
  std::ostringstream out;
  ASSERT_TRUE(write_message(*head, reader, out));
  EXPECT_EQ(out.str(),
            "From: me@example.org\r\nTo: a@x.org,\r\n b@x.org\r\nSubject: Hi\r\nDate: DATE\r\n"
            "Message-ID: <id@x>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "\r\nHello\r\n");
}

TEST(MessageBuilder, ComposeUtf8BodyAndSubject) {
  Composition parts{"me@example.org", "", {"a@x.org"}, "Grüße", "DATE", "<id@x>"};
  auto head = compose_head(parts, false);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->values("Content-Transfer-Encoding"), std::vector<std::string>{"8bit"});
  std::string subject = head->values("Subject").at(0);
  EXPECT_EQ(decode_word(subject), "Grüße");
  std::istringstream body("Schöne Grüße\r\n");
  LineReader reader(body, false);
  std::ostringstream out;
  auto written = write_message(*head, reader, out);
  ASSERT_TRUE(written);
  EXPECT_TRUE(written->eight_bit);
  // Every line ends with CRLF, no bare LF or CR anywhere.
  std::string text = out.str();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      EXPECT_TRUE(i > 0 && text[i - 1] == '\r') << i;
    }
    if (text[i] == '\r') {
      EXPECT_TRUE(i + 1 < text.size() && text[i + 1] == '\n') << i;
    }
  }
}

TEST(MessageBuilder, ComposeRefusesHeaderInjection) {
  Composition parts{"me@example.org", "", {"a@x.org"}, "Hi\r\nBcc: evil@x.org", "D", "<i@x>"};
  EXPECT_FALSE(compose_head(parts, true));
  Composition bad_to{"me@example.org", "", {"a@x.org\nBcc: e@x"}, "Hi", "D", "<i@x>"};
  EXPECT_FALSE(compose_head(bad_to, true));
}

TEST(MessageBuilder, CompleteAddsOnlyWhatIsMissing) {
  std::istringstream in("From: Someone <s@x.org>\nSubject: x\n\nb\n");
  LineReader reader(in, false);
  auto head = read_head(reader);
  ASSERT_TRUE(head);
  complete_head(*head, "robot@x.org", "Robot", "DATE", "<id@x>");
  EXPECT_EQ(head->values("From"), std::vector<std::string>{"Someone <s@x.org>"});
  EXPECT_EQ(head->values("Date"), std::vector<std::string>{"DATE"});
  EXPECT_EQ(head->values("Message-ID"), std::vector<std::string>{"<id@x>"});

  MessageHead empty;
  complete_head(empty, "robot@x.org", "Cron Daemon", "DATE", "<id@x>");
  EXPECT_EQ(empty.values("From"), std::vector<std::string>{"Cron Daemon <robot@x.org>"});
}

}  // namespace
}  // namespace app
