// Tests for acme/json.cpp: what ACME servers send parses into the tree, and anything that is
// not RFC 8259 JSON is refused with a reason.
#include "acme/json.h"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(AcmeJsonTest, ReadsAnOrder) {
  auto order = acme::parse_json(R"({
    "status": "pending", "expires": "2026-12-31T00:00:00Z",
    "identifiers": [{"type": "dns", "value": "mx.example.org"}],
    "authorizations": ["https://ca/authz/1", "https://ca/authz/2"],
    "finalize": "https://ca/finalize/1", "n": -1.5e3, "ok": true, "none": null})");
  ASSERT_TRUE(order.has_value()) << order.error();
  EXPECT_EQ(order->string_at("status"), "pending");
  EXPECT_EQ(order->string_at("finalize"), "https://ca/finalize/1");
  EXPECT_EQ(order->string_at("missing"), "");
  EXPECT_EQ(order->string_at("ok"), "");  // not a string
  const acme::Json* list = order->get("authorizations");
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[1].text, "https://ca/authz/2");
  EXPECT_EQ(order->get("identifiers")->items[0].string_at("value"), "mx.example.org");
  EXPECT_DOUBLE_EQ(order->get("n")->number, -1500);
  EXPECT_TRUE(order->get("ok")->boolean);
  EXPECT_EQ(order->get("none")->kind, acme::Json::Kind::kNull);
}

TEST(AcmeJsonTest, DecodesEscapes) {
  auto text = acme::parse_json(R"(["a\"b\\c\/d\n", "\u00e9\u20ac", "\ud83d\ude00"])");
  ASSERT_TRUE(text.has_value()) << text.error();
  EXPECT_EQ(text->items[0].text, "a\"b\\c/d\n");
  EXPECT_EQ(text->items[1].text, "\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(text->items[2].text, "\xf0\x9f\x98\x80");
}

TEST(AcmeJsonTest, RefusesWhatIsNotJson) {
  for (const char* bad :
       {"",         "{",   "{\"a\":}", "{\"a\" 1}",      "[1,]",    "[1 2]",       "{\"a\":1,}",
        "01",       "1.",  "-",        "\"unterminated", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"",
        "\"\x01\"", "tru", "nul",      "{} {}",          "[1]]",    "{'a':1}",     "\"\\u12\""}) {
    auto parsed = acme::parse_json(bad);
    EXPECT_FALSE(parsed.has_value()) << bad;
    if (!parsed) {
      EXPECT_NE(parsed.error().find(" at byte "), std::string::npos) << parsed.error();
    }
  }
}

TEST(AcmeJsonTest, BoundsDepthAndSize) {
  std::string deep(acme::kMaxJsonDepth + 2, '[');
  deep += std::string(acme::kMaxJsonDepth + 2, ']');
  auto parsed = acme::parse_json(deep);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().find("nested too deeply"), std::string::npos);
  std::string fine(acme::kMaxJsonDepth, '[');
  fine += std::string(acme::kMaxJsonDepth, ']');
  EXPECT_TRUE(acme::parse_json(fine).has_value());
  std::string large = "\"" + std::string(acme::kMaxJsonBytes, 'a') + "\"";
  parsed = acme::parse_json(large);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().find("too large"), std::string::npos);
}

// A hostile answer under the size bound: half a million tiny values in 1 MiB would make a
// tree of a hundred megabytes; the count of values is bounded instead.
TEST(AcmeJsonTest, BoundsTheNumberOfValues) {
  const auto array_of = [](std::size_t count) {
    std::string text = "[0";
    for (std::size_t i = 1; i < count; ++i)
      text += ",0";
    return text + "]";
  };
  // The array itself is a value too.
  EXPECT_TRUE(acme::parse_json(array_of(acme::kMaxJsonNodes - 1)).has_value());
  auto parsed = acme::parse_json(array_of(acme::kMaxJsonNodes));
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().find("more than 10000 values"), std::string::npos) << parsed.error();
  std::string hostile = "[";
  while (hostile.size() + 3 < acme::kMaxJsonBytes)
    hostile += "[],";
  hostile += "0]";
  parsed = acme::parse_json(hostile);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().find("values"), std::string::npos) << parsed.error();
}

}  // namespace
