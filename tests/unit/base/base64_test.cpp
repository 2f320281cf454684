// base64_test.cpp — strict RFC 4648 base64 (src/base/base64.h): the test vectors of
// RFC 4648 §10 both ways, and every non-canonical form refused.
#include "base/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace base {
namespace {

using namespace std::string_literals;

std::string encode(std::string_view raw) {
  std::string out;
  append_base64(out, raw);
  return out;
}

bool decodes_to(std::string_view text, std::string_view expected) {
  std::string out;
  return decode_base64(text, out) && out == expected;
}

bool refused(std::string_view text) {
  std::string out;
  return !decode_base64(text, out);
}

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [raw, text] : vectors) {
    EXPECT_EQ(encode(raw), text);
    EXPECT_TRUE(decodes_to(text, raw)) << text;
  }
}

TEST(Base64Test, BinaryRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all.push_back(static_cast<char>(i));
  for (std::size_t length = 0; length <= all.size(); length += 37) {
    std::string raw = all.substr(0, length);
    EXPECT_TRUE(decodes_to(encode(raw), raw)) << length;
  }
  EXPECT_TRUE(decodes_to("AGRlbW8Ac2VjcmV0", "\0demo\0secret"s));
  EXPECT_EQ(encode("+/\xFB\xFF"), "Ky/7/w==");
}

TEST(Base64Test, AppendsToWhatIsThere) {
  std::string out = "334 ";
  append_base64(out, "Username:");
  EXPECT_EQ(out, "334 VXNlcm5hbWU6");
  std::string decoded = "x";
  EXPECT_TRUE(decode_base64("eQ==", decoded));
  EXPECT_EQ(decoded, "xy");
}

TEST(Base64Test, NonCanonicalFormsAreRefused) {
  for (std::string_view text : {"Zg", "Zg=", "Zm9", "Zg==Zg==", "Z===", "=Zg=", "Zm 9v", "Zm9v\r\n",
                                "Zm9v\n", "Zh==", "Zm9=", "Zm-v", "Zm_v", "Zm9v=", "====", "*"}) {
    EXPECT_TRUE(refused(text)) << text;
  }
}

// RFC 4648 §5 without padding (ACME's External Account Binding keys).
TEST(Base64Test, Base64urlDecodesTheUrlSafeAlphabetWithoutPadding) {
  std::string out;
  EXPECT_TRUE(decode_base64url("-_8", out));
  EXPECT_EQ(out, "\xfb\xff");
  out.clear();
  EXPECT_TRUE(decode_base64url("Zm9vYg", out));
  EXPECT_EQ(out, "foob");
  for (std::string_view text : {"+/8", "Zm9vYg==", "Zm9vY", "Zh", "Zm9v Yg", "Zm9v\n"}) {
    std::string refused_out;
    EXPECT_FALSE(decode_base64url(text, refused_out)) << text;
  }
}

}  // namespace
}  // namespace base
