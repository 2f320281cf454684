// Tests for obs/log.cpp: values that could break the key=value format are quoted.
#include "obs/log.h"

#include <gtest/gtest.h>

namespace {

std::string value(std::string_view v) {
  std::string out;
  obs::append_value(out, v);
  return out;
}

TEST(LogTest, PlainValuesStayPlain) {
  EXPECT_EQ(value("TLSv1.3"), "TLSv1.3");
  EXPECT_EQ(value("192.0.2.7"), "192.0.2.7");
}

TEST(LogTest, ValuesThatCouldForgeKeysAreQuoted) {
  EXPECT_EQ(value("a b"), "\"a b\"");
  EXPECT_EQ(value("x=1"), "\"x=1\"");
  EXPECT_EQ(value(""), "\"\"");
  EXPECT_EQ(value("say \"hi\""), "\"say \\\"hi\\\"\"");
  // A CR/LF in a client-supplied value must not start a new log line.
  EXPECT_EQ(value("evil\r\nevent=forged"), "\"evil\\x0d\\x0aevent=forged\"");
}

}  // namespace

namespace {

std::string json(std::string_view v) {
  std::string out;
  obs::append_json_string(out, v);
  return out;
}

TEST(LogJsonTest, StringsAreEscapedPerRfc8259) {
  EXPECT_EQ(json("plain"), "\"plain\"");
  EXPECT_EQ(json("say \"hi\" \\ back"), "\"say \\\"hi\\\" \\\\ back\"");
  EXPECT_EQ(json("a\r\nb\tc"), "\"a\\r\\nb\\tc\"");
  EXPECT_EQ(json(std::string_view("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(json("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\"");  // UTF-8 kept
}

TEST(LogJsonTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  EXPECT_EQ(json("a\xff"
                 "b"),
            "\"a\\ufffdb\"");
  EXPECT_EQ(json("\xc3"), "\"\\ufffd\"");                        // truncated sequence
  EXPECT_EQ(json("\xc0\xaf"), "\"\\ufffd\\ufffd\"");             // overlong '/'
  EXPECT_EQ(json("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // surrogate
}

TEST(LogJsonTest, KeyValueLinesBecomeJsonMembers) {
  std::string out;
  obs::append_key_values_as_json(
      out, "event=deferred id=abc rcpt=\"a b@example.org\" detail=\"x\\\"y\\x0d\\x0az\"");
  EXPECT_EQ(out,
            ",\"event\":\"deferred\",\"id\":\"abc\",\"rcpt\":\"a b@example.org\","
            "\"detail\":\"x\\\"y\\r\\nz\"");
}

TEST(LogJsonTest, KeyValueRoundTripsThroughAppendValue) {
  for (std::string_view v : {"simple", "with space", "q\"uote", "back\\slash", "ctl\x01"}) {
    std::string line = "k=";
    obs::append_value(line, v);
    std::string out;
    obs::append_key_values_as_json(out, line);
    EXPECT_EQ(out, ",\"k\":" + json(v)) << v;
  }
}

}  // namespace
