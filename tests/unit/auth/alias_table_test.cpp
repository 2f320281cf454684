// alias_table_test.cpp — auth::AliasTable: the aliases file's syntax (every refusal names
// file:line), serialize/parse round trip, edits, and AliasDirectory reloading a changed file.
#include "auth/alias_table.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace auth {
namespace {

std::string parse_error(std::string_view body) {
  auto parsed = AliasTable::parse(body, "/etc/smtpsd/aliases");
  EXPECT_FALSE(parsed) << body;
  return parsed ? std::string() : parsed.error();
}

TEST(AliasTableTest, ParsesAliasesCatchAllsAndComments) {
  auto parsed = AliasTable::parse(
      "# comment\n\nsmtpsd-aliases 1\n"
      "sales@example.org\talice@example.org,bob@example.org,partner@remote.test\n"
      "  # indented comment\n"
      "@example.org catch@example.org\n",
      "aliases");
  ASSERT_TRUE(parsed) << parsed.error();
  ASSERT_EQ(parsed->size(), 2u);
  const Alias* sales = parsed->find("SALES@example.org");
  ASSERT_NE(sales, nullptr);
  EXPECT_EQ(sales->targets.size(), 3u);
  EXPECT_EQ(sales->line, 4u);
  EXPECT_NE(parsed->find("@EXAMPLE.org"), nullptr);
  auto again = AliasTable::parse(parsed->serialize(), "aliases");
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(again->serialize(), parsed->serialize());
}

TEST(AliasTableTest, BadLinesNameFileAndLine) {
  const std::string head = "smtpsd-aliases 1\n";
  EXPECT_EQ(parse_error("a@example.org b@example.org\n"),
            "/etc/smtpsd/aliases:1: expected \"smtpsd-aliases 1\" before the first alias");
  EXPECT_EQ(parse_error("smtpsd-aliases 2\n"),
            "/etc/smtpsd/aliases:1: unsupported aliases file version 2");
  EXPECT_EQ(parse_error(head + "a@example.org\n"),
            "/etc/smtpsd/aliases:2: expected 2 fields: address target[,target]... (no blank "
            "after a comma)");
  EXPECT_EQ(parse_error(head + "a@example.org b@example.org, c@example.org\n").substr(0, 22),
            "/etc/smtpsd/aliases:2:");
  EXPECT_EQ(parse_error(head + "\n# x\nnot-an-address b@example.org\n"),
            "/etc/smtpsd/aliases:4: address must be local-part@domain");
  EXPECT_EQ(parse_error(head + "a@example.org b@example.org,,c@example.org\n"),
            "/etc/smtpsd/aliases:2: target '': address is empty");
  EXPECT_EQ(parse_error(head + "a@example.org b@example.org,B@example.org\n"),
            "/etc/smtpsd/aliases:2: target B@example.org listed twice");
  EXPECT_EQ(parse_error(head + "a@example.org a@example.org\n"),
            "/etc/smtpsd/aliases:2: alias a@example.org has itself as its only target (a loop)");
  EXPECT_EQ(parse_error(head + "a@example.org b@example.org\nA@example.org c@example.org\n"),
            "/etc/smtpsd/aliases:3: duplicate alias A@example.org");
  EXPECT_EQ(parse_error(head + "@ b@example.org\n"),
            "/etc/smtpsd/aliases:2: catch-all @: address must be local-part@domain");
  EXPECT_EQ(parse_error(head + "a@example.org b@example.org\r\n"),
            "/etc/smtpsd/aliases:2: control character in line");
}

TEST(AliasTableTest, AddAndRemove) {
  AliasTable table;
  ASSERT_TRUE(table.add("team@example.org", {"a@example.org"}));
  ASSERT_TRUE(table.add("Team@example.org", {"b@example.org"}));
  EXPECT_EQ(table.find("team@example.org")->targets.size(), 2u);
  EXPECT_FALSE(table.add("team@example.org", {"A@example.org"}));  // already a target
  EXPECT_FALSE(table.add("bad address", {"a@example.org"}));
  EXPECT_FALSE(table.add("x@example.org", {"not-an-address"}));
  EXPECT_FALSE(table.add("x@example.org", {}));
  EXPECT_TRUE(table.remove("team@example.org", "a@example.org"));
  EXPECT_FALSE(table.remove("team@example.org", "a@example.org"));
  EXPECT_TRUE(table.remove("team@example.org", "b@example.org"));  // the last one: alias gone
  EXPECT_EQ(table.find("team@example.org"), nullptr);
  EXPECT_FALSE(table.remove("team@example.org", ""));
}

TEST(AliasTableTest, SaveIsMode0600AndTheDirectoryReloadsAChangedFile) {
  char pattern[] = "/tmp/smtpsd-alias-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string path = std::string(pattern) + "/aliases";
  AliasDirectory directory(path);
  EXPECT_EQ(directory.current()->size(), 0u);  // missing file: empty
  AliasTable table;
  ASSERT_TRUE(table.add("team@example.org", {"a@example.org"}));
  ASSERT_TRUE(table.save(path));
  struct stat status {};
  ASSERT_EQ(::stat(path.c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 0777, 0600u);
  EXPECT_TRUE(directory.refresh());
  EXPECT_NE(directory.current()->find("team@example.org"), nullptr);
  // A broken file keeps the previous snapshot and says why.
  std::ofstream(path) << "smtpsd-aliases 1\nbroken\n";
  EXPECT_FALSE(directory.refresh());
  EXPECT_NE(directory.current()->find("team@example.org"), nullptr);
  EXPECT_EQ(directory.last_error(), path +
                                        ":2: expected 2 fields: address target[,target]... "
                                        "(no blank after a comma)");
  std::filesystem::remove_all(pattern);
}

}  // namespace
}  // namespace auth
