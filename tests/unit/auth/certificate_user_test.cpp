// certificate_user_test.cpp — which user a verified client certificate names: rfc822Name
// SANs first (case-insensitive, canonical name back), the commonName only without any
// rfc822Name, and never a name that is not a user of the store.
#include "auth/certificate_user.h"

#include <gtest/gtest.h>

#include "auth/user_store.h"

namespace auth {
namespace {

class CertificateUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(store_.set_password("demo@localhost", "pw", test_argon2()));
    ASSERT_TRUE(store_.set_password("Alice@Example.org", "pw", test_argon2()));
  }
  UserLookup lookup() const {
    return [this](std::string_view name) { return store_.find(name); };
  }
  UserStore store_;
};

TEST_F(CertificateUserTest, EmailSanNamesTheUser) {
  auto user = certificate_user({{"demo@localhost"}, "Demo Device"}, lookup());
  ASSERT_TRUE(user) << user.error();
  EXPECT_EQ(*user, "demo@localhost");
}

TEST_F(CertificateUserTest, ComparisonIgnoresCaseAndGivesTheCanonicalName) {
  auto user = certificate_user({{"alice@EXAMPLE.ORG"}, ""}, lookup());
  ASSERT_TRUE(user) << user.error();
  EXPECT_EQ(*user, "Alice@Example.org");
}

TEST_F(CertificateUserTest, FirstSanThatIsAUserWins) {
  auto user =
      certificate_user({{"not an address", "nobody@localhost", "demo@localhost"}, ""}, lookup());
  ASSERT_TRUE(user) << user.error();
  EXPECT_EQ(*user, "demo@localhost");
}

TEST_F(CertificateUserTest, CommonNameOnlyWithoutEmailSans) {
  auto from_cn = certificate_user({{}, "demo@localhost"}, lookup());
  ASSERT_TRUE(from_cn) << from_cn.error();
  EXPECT_EQ(*from_cn, "demo@localhost");
  // A certificate whose SANs name someone else does not fall back to its CN.
  EXPECT_FALSE(certificate_user({{"mallory@localhost"}, "demo@localhost"}, lookup()));
}

TEST_F(CertificateUserTest, NamesThatAreNoUserAreRefused) {
  EXPECT_FALSE(certificate_user({{"nobody@localhost"}, ""}, lookup()));
  EXPECT_FALSE(certificate_user({{}, "Demo Device"}, lookup()));
  EXPECT_FALSE(certificate_user({{}, "nobody@localhost"}, lookup()));
  EXPECT_FALSE(certificate_user({{}, ""}, lookup()));
  EXPECT_FALSE(certificate_user({{"demo@localhost"}, ""}, [](std::string_view) {
    return static_cast<const User*>(nullptr);
  })) << "the user must exist in the users file";
}

}  // namespace
}  // namespace auth
