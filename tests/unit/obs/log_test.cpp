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
