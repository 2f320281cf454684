// Tests for base/terminal_text.cpp: nothing a terminal acts on survives, and every such
// byte is still visible.
#include "base/terminal_text.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using base::terminal_safe;

// A C0 control, DEL, or a C1 control (U+0080–U+009F: 0xC2 then 0x80–0x9F).
bool has_raw_control(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) <= 0x9f)
      return true;
  }
  return false;
}

TEST(TerminalTextTest, PrintableAsciiAndUtf8StayAsTheyAre) {
  EXPECT_EQ(terminal_safe("250-mx.example.org ESMTP ready"), "250-mx.example.org ESMTP ready");
  EXPECT_EQ(terminal_safe("j\xc3\xb6rg@b\xc3\xbc"
                          "cher.example"),
            "j\xc3\xb6rg@b\xc3\xbc"
            "cher.example");
  EXPECT_EQ(terminal_safe("\xe2\x9c\x89 \xf0\x9f\x93\xa8"), "\xe2\x9c\x89 \xf0\x9f\x93\xa8");
  EXPECT_EQ(terminal_safe(""), "");
}

TEST(TerminalTextTest, ControlBytesBecomeVisibleEscapes) {
  EXPECT_EQ(terminal_safe("mx\x1b[2J ready"), "mx\\x1b[2J ready");  // clear screen
  EXPECT_EQ(terminal_safe("a\rb\nc\td"), "a\\rb\\nc\\td");
  EXPECT_EQ(terminal_safe(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(terminal_safe("bell\x07 del\x7f"), "bell\\x07 del\\x7f");
  EXPECT_EQ(terminal_safe("back\\slash"), "back\\\\slash");  // so escapes stay unambiguous
}

TEST(TerminalTextTest, C1ControlsAndBidiFormattingAreEscaped) {
  EXPECT_EQ(terminal_safe("x\xc2\x9b"
                          "2Jy"),
            "x\\xc2\\x9b2Jy");                         // CSI (U+009B)
  EXPECT_EQ(terminal_safe("\xc2\x85"), "\\xc2\\x85");  // NEL
  EXPECT_EQ(terminal_safe("\xc2\xa0"), "\xc2\xa0");    // NBSP is text
  EXPECT_EQ(terminal_safe("a\xe2\x80\xae"
                          "b"),
            "a\\xe2\\x80\\xaeb");                               // RLO
  EXPECT_EQ(terminal_safe("\xe2\x81\xa6"), "\\xe2\\x81\\xa6");  // LRI
  EXPECT_EQ(terminal_safe("\xe2\x80\xa8"), "\\xe2\\x80\\xa8");  // line separator
  EXPECT_EQ(terminal_safe("\xe2\x80\x94"), "\xe2\x80\x94");     // em dash is text
}

TEST(TerminalTextTest, BytesThatAreNotUtf8AreEscapedOneByOne) {
  EXPECT_EQ(terminal_safe("a\xff"
                          "b"),
            "a\\xffb");
  EXPECT_EQ(terminal_safe("\xc3"), "\\xc3");                    // truncated
  EXPECT_EQ(terminal_safe("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(terminal_safe("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(terminal_safe("\x9b"
                          "2J"),
            "\\x9b2J");  // a lone 8-bit CSI
}

TEST(TerminalTextTest, NoInputLeavesARawControl) {
  std::string all;
  for (int c = 0; c < 256; ++c) {
    all.push_back(static_cast<char>(c));
    all.append("\xc2");
    all.push_back(static_cast<char>(c));
  }
  EXPECT_FALSE(has_raw_control(terminal_safe(all)));
}

}  // namespace
