// from_header_test.cpp — mailauth::from_domains: the RFC 5322 §3.6.2 From: field, with the
// obsolete forms of §4.4, groups, comments and encoded words.
#include <gtest/gtest.h>

#include "mailauth/from_header.h"

namespace {

using Domains = std::vector<std::string>;

mailauth::FromDomains parse(std::string_view from_value) {
  std::string section = "Subject: hi\r\nFrom:" + std::string(from_value) + "\r\nTo: x@y.z\r\n\r\n";
  return mailauth::from_domains(section);
}

TEST(FromHeaderTest, PlainAndDisplayNames) {
  EXPECT_EQ(parse(" user@Example.COM").domains, Domains{"example.com"});
  EXPECT_EQ(parse(" \"Doe, John\" <john@example.org>").domains, Domains{"example.org"});
  EXPECT_EQ(parse(" John Doe <john@example.org>").domains, Domains{"example.org"});
  EXPECT_EQ(parse(" =?utf-8?Q?J=C3=B6rg=2C_X?= <j@example.de>").domains, Domains{"example.de"});
  EXPECT_EQ(parse(" Jörg <jörg@bücher.example>").domains, Domains{"bücher.example"});
  EXPECT_EQ(parse(" \"quoted@local\"@example.net").domains, Domains{"example.net"});
}

TEST(FromHeaderTest, CommentsFoldingAndObsoleteForms) {
  EXPECT_EQ(parse(" (a (nested) comment, with comma) u@example.com (trailing)").domains,
            Domains{"example.com"});
  std::string folded = "Subject: x\r\nFrom: Someone\r\n  Else <s@example.com>\r\n\r\n";
  EXPECT_EQ(mailauth::from_domains(folded).domains, Domains{"example.com"});
  EXPECT_EQ(parse(" john . doe @ example . com").domains, Domains{"example.com"});
  EXPECT_EQ(parse(" <@relay.example,@other.example:u@example.com>").domains,
            Domains{"example.com"});
  EXPECT_EQ(parse(" a@one.example, , b@two.example").domains,
            (Domains{"one.example", "two.example"}));
  auto spaced = mailauth::from_domains("FROM : u@example.com\r\n\r\n");
  EXPECT_EQ(spaced.domains, Domains{"example.com"});
}

TEST(FromHeaderTest, SeveralMailboxesAndGroups) {
  EXPECT_EQ(parse(" a@one.example, \"B, Bee\" <b@two.example>").domains,
            (Domains{"one.example", "two.example"}));
  EXPECT_EQ(parse(" Team: a@one.example, b@two.example; , c@three.example").domains,
            (Domains{"one.example", "two.example", "three.example"}));
}

TEST(FromHeaderTest, TwoFromFieldsAreCounted) {
  auto two = mailauth::from_domains("From: a@one.example\r\nfrom: b@two.example\r\n\r\n");
  EXPECT_EQ(two.from_fields, 2u);
  EXPECT_EQ(two.domains, (Domains{"one.example", "two.example"}));
  // A From: in the body (after the empty line) is not a field.
  auto body = mailauth::from_domains("From: a@one.example\r\n\r\nFrom: b@two.example\r\n");
  EXPECT_EQ(body.from_fields, 1u);
  // Nor is a field whose name only starts with From.
  EXPECT_EQ(mailauth::from_domains("From-X: a@x.example\r\n\r\n").from_fields, 0u);
}

TEST(FromHeaderTest, UnparseableGivesNoDomains) {
  for (const char* value :
       {" nobody", " <>", " a@", " @example.com", " a@[192.0.2.1]", " \"unclosed@example.com",
        " (unclosed a@example.com", " <a@example.com", " a@example..com", " a@example.com.",
        " x <a@example.com> trailing", " Group: a@example.com", "  "}) {
    auto result = parse(value);
    EXPECT_TRUE(result.domains.empty()) << value;
    EXPECT_FALSE(result.problem.empty()) << value;
    EXPECT_EQ(result.from_fields, 1u);
  }
  auto none = mailauth::from_domains("Subject: x\r\n\r\n");
  EXPECT_EQ(none.from_fields, 0u);
  EXPECT_FALSE(none.problem.empty());
  // One good and one bad From field: the set is unusable.
  auto mixed = mailauth::from_domains("From: a@one.example\r\nFrom: broken\r\n\r\n");
  EXPECT_TRUE(mixed.domains.empty());
}

}  // namespace
