// JSON strings and the UTF-8 validator behind them.
#include "base/json.h"

#include <gtest/gtest.h>

#include "base/utf8.h"

namespace base {
namespace {

TEST(JsonString, EscapesQuotesBackslashAndControls) {
  EXPECT_EQ(json_string("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_string("l1\r\nl2\t"), R"("l1\r\nl2\t")");
  EXPECT_EQ(json_string(std::string("\x01\x7f", 2)), R"("\u0001\u007f")");
  EXPECT_EQ(json_string(""), R"("")");
}

// A remote greeting or a client's name can hold any byte; JSON text must be UTF-8.
TEST(JsonString, KeepsUtf8AndReplacesWhatIsNot) {
  EXPECT_EQ(json_string("caf\xc3\xa9 \xf0\x9f\x93\xa7"), "\"caf\xc3\xa9 \xf0\x9f\x93\xa7\"");
  EXPECT_EQ(json_string("a\xff"
                        "b"),
            R"("a\ufffdb")");
  EXPECT_EQ(json_string("\xc3"), R"("\ufffd")");            // cut short
  EXPECT_EQ(json_string("\xc0\xaf"), R"("\ufffd\ufffd")");  // overlong '/'
}

// U+009B is CSI to a terminal, like ESC [: JSON shown on a terminal must not carry it raw.
TEST(JsonString, EscapesC1Controls) {
  EXPECT_EQ(json_string("a\xc2\x9b"
                        "2J\xc2\x85"
                        "b"),
            "\"a\\u009b2J\\u0085b\"");
  EXPECT_EQ(json_string("\xc2\x80\xc2\x9f\xc2\xa0"), "\"\\u0080\\u009f\xc2\xa0\"");
}

TEST(Utf8, SequenceLengths) {
  EXPECT_EQ(utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(utf8_sequence_length("\xc3\xa9", 0), 2u);
  EXPECT_EQ(utf8_sequence_length("\xe2\x82\xac", 0), 3u);
  EXPECT_EQ(utf8_sequence_length("\xf0\x9f\x93\xa7", 0), 4u);
  EXPECT_EQ(utf8_sequence_length("\xed\xa0\x80", 0), 0u);      // a surrogate
  EXPECT_EQ(utf8_sequence_length("\xf4\x90\x80\x80", 0), 0u);  // past U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xe0\x80\xaf", 0), 0u);      // overlong
  EXPECT_EQ(utf8_sequence_length("ab", 2), 0u);                // past the end
}

}  // namespace
}  // namespace base
