// dkim_canonicalization_test.cpp — RFC 6376 §3.4: the examples of §3.4.5, the empty body
// and missing final CRLF cases, and streaming (whole and byte by byte give the same octets).
#include "mailauth/dkim_canonicalization.h"

#include <gtest/gtest.h>

#include <string>

namespace mailauth {
namespace {

struct StringSink final : BodySink {
  void write(std::string_view octets) override { text.append(octets); }
  std::string text;
};

std::string canonical_body(Canonicalization canon, std::string_view body, std::size_t chunk) {
  StringSink sink;
  BodyCanonicalizer canonicalizer(canon, sink);
  for (std::size_t i = 0; i < body.size(); i += chunk)
    canonicalizer.feed(body.substr(i, chunk));
  canonicalizer.finish();
  return sink.text;
}

std::string canonical_headers(Canonicalization canon, std::string_view section) {
  std::string out;
  for (const auto& field : split_header_section(section))
    append_canonical_header(canon, field.text, out);
  return out;
}

// RFC 6376 §3.4.5.
const std::string kExampleHeader = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n";
const std::string kExampleBody = " C \r\nD \t E\r\n\r\n\r\n";

TEST(DkimCanonicalization, Rfc6376Section345Relaxed) {
  EXPECT_EQ(canonical_headers(Canonicalization::kRelaxed, kExampleHeader), "a:X\r\nb:Y Z\r\n");
  EXPECT_EQ(canonical_body(Canonicalization::kRelaxed, kExampleBody, 1000), " C\r\nD E\r\n");
}

TEST(DkimCanonicalization, Rfc6376Section345Simple) {
  EXPECT_EQ(canonical_headers(Canonicalization::kSimple, kExampleHeader),
            "A: X\r\nB : Y\t\r\n\tZ  \r\n");
  EXPECT_EQ(canonical_body(Canonicalization::kSimple, kExampleBody, 1000), " C \r\nD \t E\r\n");
}

TEST(DkimCanonicalization, EmptyBodyAndMissingFinalCrlf) {
  EXPECT_EQ(canonical_body(Canonicalization::kSimple, "", 1), "\r\n");
  EXPECT_EQ(canonical_body(Canonicalization::kRelaxed, "", 1), "");
  EXPECT_EQ(canonical_body(Canonicalization::kSimple, "\r\n\r\n", 1), "\r\n");
  EXPECT_EQ(canonical_body(Canonicalization::kRelaxed, "  \r\n\r\n", 1), "");
  EXPECT_EQ(canonical_body(Canonicalization::kSimple, "abc", 1), "abc\r\n");
  EXPECT_EQ(canonical_body(Canonicalization::kRelaxed, "abc  ", 1), "abc\r\n");
  EXPECT_EQ(canonical_body(Canonicalization::kSimple, "a\rb\nc\r", 1), "a\rb\nc\r\r\n");
}

TEST(DkimCanonicalization, WholeAndByteByByteAgree) {
  const std::string bodies[] = {kExampleBody, "x\r\n\r\n\r\ny  \t\r\n z\r", "\r\r\n\r\n \t",
                                std::string(3000, ' ') + "\r\n" + std::string(100, '\n')};
  for (const auto& body : bodies) {
    for (auto canon : {Canonicalization::kSimple, Canonicalization::kRelaxed}) {
      const std::string whole = canonical_body(canon, body, body.size() + 1);
      for (std::size_t chunk : {1, 2, 3, 7})
        EXPECT_EQ(canonical_body(canon, body, chunk), whole) << chunk;
    }
  }
}

TEST(DkimCanonicalization, SplitsFoldedFieldsAndStopsAtTheEmptyLine) {
  auto fields = split_header_section("From: a\r\nSubject: b\r\n c\r\nTo : d\r\n\r\nBody: no\r\n");
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[1].name, "Subject");
  EXPECT_EQ(fields[1].text, "Subject: b\r\n c\r\n");
  EXPECT_EQ(fields[2].name, "To");
}

}  // namespace
}  // namespace mailauth
