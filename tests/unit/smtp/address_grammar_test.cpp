// address_grammar_test.cpp — RFC 5321 §4.1.2 paths and mailboxes, RFC 6531 UTF-8.
#include "smtp/address_grammar.h"

#include <gtest/gtest.h>

#include <string>

namespace smtp {
namespace {

TEST(AddressGrammarTest, ValidMailboxes) {
  const std::string long_label(63, 'a');
  const std::string local64(64, 'l');
  const char* const valid[] = {
      "user@example.com",
      "first.last@example.com",
      "a!#$%&'*+-/=?^_`{|}~z@example.com",
      "\"quoted local\"@example.com",
      "\"with \\\"escape\\\"\"@example.com",
      "\"a@b\"@example.com",
      "user@[192.0.2.1]",
      "user@[IPv6:2001:db8::1]",
      "user@[IPv6:::1]",
      "user@[ipv6:2001:db8:0:0:0:0:0:1]",
      "user@[IPv6:::ffff:192.0.2.1]",
      "user@localhost",
      "user@x-y.example",
      "1@2.3",
  };
  for (const char* address : valid) {
    EXPECT_TRUE(validate_mailbox(address, false).has_value()) << address;
  }
  EXPECT_TRUE(validate_mailbox("u@" + long_label + ".example", false).has_value());
  EXPECT_TRUE(validate_mailbox(local64 + "@example.com", false).has_value());
}

struct Invalid {
  std::string address;
  std::string_view reason;
};

TEST(AddressGrammarTest, InvalidMailboxesSayWhy) {
  const std::string long_label(64, 'a');
  std::string long_domain;
  for (int i = 0; i < 64; ++i)
    long_domain += "abc.";
  long_domain += "com";  // 259 octets
  const Invalid invalid[] = {
      {"", "empty address"},
      {"user", "missing '@domain'"},
      {"@example.com", "empty local part"},
      {"user@", "empty domain"},
      {".user@example.com", "empty atom in local part (misplaced '.')"},
      {"user.@example.com", "empty atom in local part (misplaced '.')"},
      {"us..er@example.com", "empty atom in local part (misplaced '.')"},
      {"us er@example.com", "invalid character in local part"},
      {"us(er@example.com", "invalid character in local part"},
      {"a@b@example.com", "invalid character in local part"},
      {std::string(65, 'l') + "@example.com", "local part longer than 64 octets"},
      {"\"unterminated@example.com", "unterminated quoted local part"},
      {"\"a\"b@example.com", "missing '@' after quoted local part"},
      {"user@-example.com", "domain label starts or ends with '-'"},
      {"user@example-.com", "domain label starts or ends with '-'"},
      {"user@example..com", "empty domain label (misplaced '.')"},
      {"user@example.com.", "empty domain label (misplaced '.')"},
      {"user@exa_mple.com", "invalid character in domain"},
      {"user@" + long_label + ".com", "domain label longer than 63 octets"},
      {"user@" + long_domain, "domain longer than 255 octets"},
      {"user@[192.0.2.256]", "invalid IPv4 address literal"},
      {"user@[192.0.2]", "invalid IPv4 address literal"},
      {"user@[1.2.3.4.5]", "invalid IPv4 address literal"},
      {"user@[IPv6:2001:db8::1::2]", "invalid IPv6 address literal"},
      {"user@[IPv6:1:2:3:4:5:6:7]", "invalid IPv6 address literal"},
      {"user@[IPv6:1:2:3:4:5:6:7:8:9]", "invalid IPv6 address literal"},
      {"user@[IPv6:12345::1]", "invalid IPv6 address literal"},
      {"user@[IPv6:1:2:3:4:5:6:7::]", "invalid IPv6 address literal"},
      {"user@[x-tag:abc]", "unsupported address literal tag"},
      {"user@[192.0.2.1", "unterminated address literal"},
  };
  for (const Invalid& entry : invalid) {
    auto result = validate_mailbox(entry.address, false);
    ASSERT_FALSE(result.has_value()) << entry.address;
    EXPECT_EQ(result.error().kind, AddressErrorKind::kSyntax) << entry.address;
    EXPECT_EQ(result.error().reason, entry.reason) << entry.address;
  }
}

TEST(AddressGrammarTest, Utf8NeedsSmtputf8) {
  const char* const utf8[] = {"jörg@example.de", "user@bücher.example", "\"jö rg\"@example.de",
                              "用户@例子.广告"};
  for (const char* address : utf8) {
    auto without = validate_mailbox(address, false);
    ASSERT_FALSE(without.has_value()) << address;
    EXPECT_EQ(without.error().kind, AddressErrorKind::kUtf8NotDeclared) << address;
    EXPECT_TRUE(validate_mailbox(address, true).has_value()) << address;
  }
}

TEST(AddressGrammarTest, MalformedUtf8IsSyntax) {
  const std::string malformed[] = {
      "j\xC3@example.de",          // truncated
      "j\xC0\xAF@example.de",      // overlong
      "j\xED\xA0\x80@example.de",  // surrogate
      "j\xF5\x80\x80\x80@example.de",
      "j\xFF@example.de",
  };
  for (const std::string& address : malformed) {
    auto result = validate_mailbox(address, true);
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().reason, "invalid UTF-8");
  }
}

TEST(AddressGrammarTest, Utf8SequenceLength) {
  EXPECT_EQ(utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(utf8_sequence_length("\xC3\xB6", 0), 2u);
  EXPECT_EQ(utf8_sequence_length("\xE2\x82\xAC", 0), 3u);
  EXPECT_EQ(utf8_sequence_length("\xF0\x9F\x98\x80", 0), 4u);
  EXPECT_EQ(utf8_sequence_length("\xF0\x9F\x98", 0), 0u);
  EXPECT_EQ(utf8_sequence_length("\xE0\x80\x80", 0), 0u);
  EXPECT_EQ(utf8_sequence_length("", 0), 0u);
}

TEST(AddressGrammarTest, SplitPathFindsTheClosingBracket) {
  auto simple = split_path("<a@b.example> SIZE=10  BODY=8BITMIME");
  ASSERT_TRUE(simple.has_value());
  EXPECT_EQ(simple->path, "<a@b.example>");
  EXPECT_EQ(simple->parameters, "SIZE=10  BODY=8BITMIME");
  auto quoted = split_path("<\"a>b\"@c.example>");
  ASSERT_TRUE(quoted.has_value());
  EXPECT_EQ(quoted->path, "<\"a>b\"@c.example>");
  EXPECT_EQ(quoted->parameters, "");
  EXPECT_FALSE(split_path("a@b.example").has_value());
  EXPECT_FALSE(split_path("<a@b.example").has_value());
  EXPECT_FALSE(split_path("<a@b.example>SIZE=1").has_value());
  EXPECT_FALSE(split_path("").has_value());
}

TEST(AddressGrammarTest, NullPathOnlyAsReversePath) {
  auto reverse = parse_path("<>", PathKind::kReversePath, false);
  ASSERT_TRUE(reverse.has_value());
  EXPECT_EQ(reverse->mailbox, "");
  EXPECT_FALSE(parse_path("<>", PathKind::kForwardPath, false).has_value());
}

TEST(AddressGrammarTest, PostmasterWithoutDomainOnlyAsForwardPath) {
  for (std::string_view path : {"<postmaster>", "<Postmaster>", "<POSTMASTER>"}) {
    auto forward = parse_path(path, PathKind::kForwardPath, false);
    ASSERT_TRUE(forward.has_value()) << path;
    EXPECT_TRUE(forward->is_postmaster);
    EXPECT_FALSE(parse_path(path, PathKind::kReversePath, false).has_value()) << path;
  }
  auto with_domain = parse_path("<postmaster@example.com>", PathKind::kForwardPath, false);
  ASSERT_TRUE(with_domain.has_value());
  EXPECT_FALSE(with_domain->is_postmaster);
}

TEST(AddressGrammarTest, SourceRouteIsAcceptedAndDropped) {
  auto routed = parse_path("<@a.example,@b.example:user@c.example>", PathKind::kForwardPath, false);
  ASSERT_TRUE(routed.has_value());
  EXPECT_EQ(routed->mailbox, "user@c.example");
  auto single = parse_path("<@a.example:user@c.example>", PathKind::kReversePath, false);
  ASSERT_TRUE(single.has_value());
  EXPECT_EQ(single->mailbox, "user@c.example");
  for (std::string_view bad : {"<@a.example user@c.example>", "<@a.example,:user@c.example>",
                               "<@a.example,b.example:user@c.example>", "<@-a:user@c.example>"}) {
    EXPECT_FALSE(parse_path(bad, PathKind::kForwardPath, false).has_value()) << bad;
  }
}

TEST(AddressGrammarTest, PathLengthLimit) {
  std::string local(64, 'l');
  std::string domain;
  while (domain.size() < 200)
    domain += "abcdefghi.";
  domain += "com";
  std::string path = "<" + local + "@" + domain + ">";
  ASSERT_GT(path.size(), 256u);
  auto result = parse_path(path, PathKind::kForwardPath, false);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().reason, "path longer than 256 octets");
}

TEST(AddressGrammarTest, DomainsAlone) {
  EXPECT_TRUE(validate_domain("mx.example", false).has_value());
  EXPECT_FALSE(validate_domain("mx example", false).has_value());
  EXPECT_TRUE(validate_address_literal("[127.0.0.1]").has_value());
  EXPECT_TRUE(validate_address_literal("[IPv6:::]").has_value());
  EXPECT_FALSE(validate_address_literal("[IPv6:]").has_value());
}

}  // namespace
}  // namespace smtp
