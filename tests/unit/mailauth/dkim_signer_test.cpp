// dkim_signer_test.cpp — DKIM signing (RFC 6376 §5, RFC 8463): keys and their records, the
// folded field, over-signing, and the round trip through our verifier for both algorithms.
#include "mailauth/dkim_signer.h"

#include <gtest/gtest.h>

#include "dkim_test_keys.h"
#include "mailauth/dkim_signature.h"

namespace mailauth {
namespace {

using testing::sign_message;
using testing::test_key;
using testing::txt_answer;
using testing::verify_message;

constexpr std::int64_t kNow = 1796472000;
const std::string kSignedMessage =
    "Received: from x by y; Sat, 5 Dec 2026 12:00:00 +0000\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.org\r\n"
    "Subject: hello\r\n  world\r\n"
    "Date: Sat, 5 Dec 2026 12:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "\r\n"
    "Hello Bob,\r\n\r\nsee you  \r\n\r\n";

std::map<std::string, dns::Answer> both_records() {
  return {{"r1._domainkey.example.com", txt_answer({test_key("rsa", "r1")->dns_record()})},
          {"e1._domainkey.example.com", txt_answer({test_key("ed25519", "e1")->dns_record()})}};
}

std::string signed_by_both() {
  return sign_message(kSignedMessage, {test_key("rsa", "r1"), test_key("ed25519", "e1")}, kNow);
}

TEST(DkimSigningKey, LoadsPemAndPublishesItsRecord) {
  auto rsa = test_key("rsa", "R1");
  EXPECT_EQ(rsa->algorithm(), "rsa-sha256");
  EXPECT_EQ(rsa->selector(), "r1");
  EXPECT_EQ(rsa->bits(), 2048u);
  auto record = parse_dkim_key_record(rsa->dns_record());
  ASSERT_TRUE(record);
  EXPECT_EQ(record->key_type, "rsa");
  auto ed = test_key("ed25519", "e1");
  EXPECT_EQ(ed->algorithm(), "ed25519-sha256");
  EXPECT_TRUE(ed->dns_record().starts_with("v=DKIM1; k=ed25519; p="));
  record = parse_dkim_key_record(ed->dns_record());
  ASSERT_TRUE(record);
  EXPECT_EQ(record->public_key.size(), 32u);  // RFC 8463 §4.2: the raw key, not SPKI
}

TEST(DkimSigningKey, RefusesWhatIsNotAUsableKey) {
  EXPECT_FALSE(DkimSigningKey::load("not a key", "example.com", "s"));
  auto pem = generate_dkim_key("ed25519")->private_pem;
  EXPECT_FALSE(DkimSigningKey::load(pem, "exa mple.com", "s"));
  EXPECT_FALSE(DkimSigningKey::load(pem, "example.com", ""));
  EXPECT_FALSE(generate_dkim_key("dsa"));
}

TEST(DkimSigner, FoldsEveryLineWithin78Octets) {
  std::string signed_message = signed_by_both();
  std::string header = signed_message.substr(0, signed_message.find("\r\n\r\n"));
  for (std::size_t start = 0; start < header.size();) {
    std::size_t end = header.find("\r\n", start);
    if (end == std::string::npos) end = header.size();
    EXPECT_LE(end - start, 78u) << header.substr(start, end - start);
    start = end + 2;
  }
}

TEST(DkimSigner, OverSignsFromSubjectAndTheOthers) {
  std::string value = signed_by_both().substr(16);
  value = value.substr(0, value.find("\r\nDKIM-Signature"));
  auto parsed = parse_dkim_signature(value);
  ASSERT_TRUE(parsed) << parsed.error();
  auto count = [&](const std::string& name) {
    return std::count(parsed->signed_headers.begin(), parsed->signed_headers.end(), name);
  };
  EXPECT_EQ(count("From"), 2);
  EXPECT_EQ(count("Subject"), 2);
  EXPECT_EQ(count("Cc"), 1);        // absent: listed once, so none can be added
  EXPECT_EQ(count("Received"), 0);  // trace fields are not signed (RFC 6376 §5.4.1)
  EXPECT_EQ(parsed->timestamp, kNow);
  EXPECT_EQ(parsed->header_canon, "relaxed");
  EXPECT_EQ(parsed->body_canon, "relaxed");
}

TEST(DkimSigner, RoundTripPassesForRsaAndEd25519) {
  auto outcomes = verify_message(signed_by_both(), both_records(), kNow + 10);
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].result, DkimResult::kPass) << outcomes[0].problem;
  EXPECT_EQ(outcomes[0].algorithm, "rsa-sha256");
  EXPECT_EQ(outcomes[0].key_bits, 2048u);
  EXPECT_EQ(outcomes[1].result, DkimResult::kPass) << outcomes[1].problem;
  EXPECT_EQ(outcomes[1].algorithm, "ed25519-sha256");
  EXPECT_GE(outcomes[1].b_prefix.size(), 8u);
  // The body fed one octet at a time gives the same verdicts.
  for (const auto& outcome : verify_message(signed_by_both(), both_records(), kNow + 10, 1))
    EXPECT_EQ(outcome.result, DkimResult::kPass) << outcome.problem;
}

TEST(DkimSigner, TamperedBodyOrSignedHeaderFails) {
  const std::string good = signed_by_both();
  std::string body_changed = good;
  body_changed.replace(body_changed.find("Hello Bob"), 9, "Hello Rob");
  for (const auto& outcome : verify_message(body_changed, both_records(), kNow)) {
    EXPECT_EQ(outcome.result, DkimResult::kFail);
    EXPECT_EQ(outcome.problem, "body hash did not verify");
  }
  std::string header_changed = good;
  header_changed.replace(header_changed.find("Subject: hello"), 14, "Subject: jello");
  for (const auto& outcome : verify_message(header_changed, both_records(), kNow)) {
    EXPECT_EQ(outcome.result, DkimResult::kFail);
    EXPECT_EQ(outcome.problem, "signature did not verify");
  }
}

TEST(DkimSigner, AddedUnsignedHeaderPassesAddedOverSignedHeaderFails) {
  const std::string good = signed_by_both();
  for (const auto& outcome :
       verify_message("X-Spam: no\r\nReceived: by z\r\n" + good, both_records(), kNow))
    EXPECT_EQ(outcome.result, DkimResult::kPass) << outcome.problem;
  for (const std::string added : {"Subject: buy now\r\n", "Cc: eve@example.net\r\n"}) {
    for (const auto& outcome : verify_message(added + good, both_records(), kNow))
      EXPECT_EQ(outcome.result, DkimResult::kFail) << added;
  }
}

TEST(DkimSigner, RelaxedSurvivesRefoldingAndWhiteSpaceChanges) {
  std::string changed = signed_by_both();
  changed.replace(changed.find("Subject: hello\r\n  world"), 23, "Subject:   hello  world ");
  changed.replace(changed.find("see you  \r\n"), 11, "see\t you\r\n");
  for (const auto& outcome : verify_message(changed, both_records(), kNow))
    EXPECT_EQ(outcome.result, DkimResult::kPass) << outcome.problem;
}

}  // namespace
}  // namespace mailauth
