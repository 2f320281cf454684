// Tests for app/local_recipients.cpp: which recipients are local, and the verdicts of a
// role that never relays.
#include "app/smtpsd/local_recipients.h"

#include <gtest/gtest.h>

namespace {

config::Config make_config() {
  config::Config c;
  c.domains.push_back({"example.org", {"Alice", "bob"}});
  c.domains.push_back({"example.net", {}});
  return c;
}

TEST(LocalRecipientsTest, CanonicalNames) {
  auto c = make_config();
  EXPECT_EQ(app::canonical_local_mailbox(c, "alice@EXAMPLE.org").value(), "Alice@example.org");
  EXPECT_EQ(app::canonical_local_mailbox(c, "bob@example.org").value(), "bob@example.org");
  EXPECT_EQ(app::canonical_local_mailbox(c, "Postmaster").value(), "postmaster@example.org");
  EXPECT_EQ(app::canonical_local_mailbox(c, "postmaster@example.net").value(),
            "postmaster@example.net");
  EXPECT_FALSE(app::canonical_local_mailbox(c, "carol@example.org"));
  EXPECT_FALSE(app::canonical_local_mailbox(c, "bob@example.com"));
}

TEST(LocalRecipientsTest, InboundVerdicts) {
  auto c = make_config();
  EXPECT_EQ(app::verdict_for_inbound(c, "bob@example.org"), smtp::RecipientVerdict::kAccept);
  EXPECT_EQ(app::verdict_for_inbound(c, "carol@example.org"), smtp::RecipientVerdict::kUnknownUser);
  EXPECT_EQ(app::verdict_for_inbound(c, "bob@example.com"), smtp::RecipientVerdict::kRelayDenied);
  EXPECT_EQ(app::verdict_for_inbound(c, "bob@example.org.evil.com"),
            smtp::RecipientVerdict::kRelayDenied);
}

}  // namespace
