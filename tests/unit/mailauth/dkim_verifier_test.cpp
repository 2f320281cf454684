// dkim_verifier_test.cpp — RFC 6376 §6.1 verification decisions, on signatures written by
// hand here (so that each tag can be set): l=, x=, t=, rsa-sha1, b= not last with simple
// folding, the key record checks, the key answers, RSA under 1024 bits, and the bounds.
#include "mailauth/dkim_verifier.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <functional>

#include "base/base64.h"
#include "dkim_test_keys.h"
#include "mailauth/dkim_canonicalization.h"
#include "mailauth/dkim_crypto.h"

namespace mailauth {
namespace {

using testing::test_key;
using testing::txt_answer;
using testing::verify_message;

constexpr std::int64_t kVerifyNow = 1796472000;
const std::string kFrom = "From: Alice <alice@example.com>\r\n";
const std::string kBody = "Hello,\r\n\r\n  a body  line\r\n\r\n";

std::string body_hash(Canonicalization canon, std::string_view body,
                      std::optional<std::size_t> limit = std::nullopt) {
  struct Collect final : BodySink {
    void write(std::string_view octets) override { text.append(octets); }
    std::string text;
  } sink;
  BodyCanonicalizer canonicalizer(canon, sink);
  canonicalizer.feed(body);
  canonicalizer.finish();
  if (limit) sink.text.resize(*limit);
  return base::to_base64(sha256(sink.text));
}

// A message whose one signature is "DKIM-Signature: " + before + "b=<sig>" + after, over
// h=from (the one From field), canonicalized with `canon` for the header.
std::string hand_signed(const std::string& before, const std::string& after, Canonicalization canon,
                        const std::string& body,
                        const std::function<std::string(std::string_view)>& sign) {
  std::string data;
  append_canonical_header(canon, kFrom, data);
  append_canonical_header(canon, "DKIM-Signature: " + before + "b=" + after, data);
  return "DKIM-Signature: " + before + "b=" + base::to_base64(sign(data)) + after + "\r\n" + kFrom +
         "To: bob@example.org\r\n\r\n" + body;
}

std::string rsa_tags(const std::string& extra) {
  return "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=r1; h=from; " + extra +
         "bh=" + body_hash(Canonicalization::kRelaxed, kBody) + "; ";
}

std::string sign_with(const std::string& algorithm, const std::string& selector,
                      std::string_view data) {
  return *test_key(algorithm, selector)->sign(data);
}
auto rsa_signer = [](std::string_view data) { return sign_with("rsa", "r1", data); };

std::map<std::string, dns::Answer> rsa_record(const std::string& record) {
  return {{"r1._domainkey.example.com", txt_answer({record})}};
}
std::map<std::string, dns::Answer> rsa_key() {
  return rsa_record(test_key("rsa", "r1")->dns_record());
}

DkimOutcome only(const std::vector<DkimOutcome>& outcomes) {
  EXPECT_EQ(outcomes.size(), 1u);
  return outcomes.empty() ? DkimOutcome{} : outcomes[0];
}

TEST(DkimVerifier, HandSignedRelaxedPasses) {
  auto outcome = only(
      verify_message(hand_signed(rsa_tags(""), "", Canonicalization::kRelaxed, kBody, rsa_signer),
                     rsa_key(), kVerifyNow));
  EXPECT_EQ(outcome.result, DkimResult::kPass) << outcome.problem;
  EXPECT_EQ(outcome.identity, "@example.com");
}

TEST(DkimVerifier, SimpleKeepsFoldingAndEmptiesBEvenWhenNotLast) {
  const std::string before =
      "v=1; a=ed25519-sha256; c=simple/simple; d=example.com;\r\n\t s=e1; h=from;\r\n  ";
  const std::string after = "; bh=\r\n\t" + body_hash(Canonicalization::kSimple, kBody);
  auto ed_signer = [](std::string_view data) { return sign_with("ed25519", "e1", data); };
  std::string message = hand_signed(before, after, Canonicalization::kSimple, kBody, ed_signer);
  std::map<std::string, dns::Answer> keys{
      {"e1._domainkey.example.com", txt_answer({test_key("ed25519", "e1")->dns_record()})}};
  EXPECT_EQ(only(verify_message(message, keys, kVerifyNow)).result, DkimResult::kPass);
  // simple: refolding the signature field itself breaks it.
  std::string refolded = message;
  refolded.replace(refolded.find("\r\n\t s=e1"), 4, " ");
  EXPECT_EQ(only(verify_message(refolded, keys, kVerifyNow)).result, DkimResult::kFail);
}

TEST(DkimVerifier, LengthTagIgnoresWhatFollowsAndFailsAShorterBody) {
  const std::size_t length = 20;
  const std::string tags =
      "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=r1; h=from; "
      "l=20; bh=" +
      body_hash(Canonicalization::kRelaxed, kBody, length) + "; ";
  std::string message = hand_signed(tags, "", Canonicalization::kRelaxed, kBody, rsa_signer);
  EXPECT_EQ(only(verify_message(message, rsa_key(), kVerifyNow)).result, DkimResult::kPass);
  EXPECT_EQ(only(verify_message(message + "appended by a list\r\n", rsa_key(), kVerifyNow)).result,
            DkimResult::kPass);
  std::string changed = message;
  changed.replace(changed.find("Hello"), 5, "Jello");
  EXPECT_EQ(only(verify_message(changed, rsa_key(), kVerifyNow)).result, DkimResult::kFail);
  std::string cut = message.substr(0, message.find("\r\n\r\n") + 4) + "Hello\r\n";
  auto outcome = only(verify_message(cut, rsa_key(), kVerifyNow));
  EXPECT_EQ(outcome.result, DkimResult::kFail);
  EXPECT_EQ(outcome.problem, "body shorter than l=");
}

TEST(DkimVerifier, ExpiredAndFutureSignaturesFail) {
  std::string message = hand_signed(rsa_tags("t=" + std::to_string(kVerifyNow) +
                                             "; x=" + std::to_string(kVerifyNow + 100) + "; "),
                                    "", Canonicalization::kRelaxed, kBody, rsa_signer);
  EXPECT_EQ(only(verify_message(message, rsa_key(), kVerifyNow + 100)).result, DkimResult::kPass);
  auto expired = only(verify_message(message, rsa_key(), kVerifyNow + 101));
  EXPECT_EQ(expired.result, DkimResult::kFail);
  EXPECT_EQ(expired.problem, "signature expired (x=)");
  EXPECT_EQ(only(verify_message(message, rsa_key(), kVerifyNow - kFutureTolerance)).result,
            DkimResult::kPass);
  auto future = only(verify_message(message, rsa_key(), kVerifyNow - kFutureTolerance - 1));
  EXPECT_EQ(future.result, DkimResult::kFail);
}

TEST(DkimVerifier, RsaSha1FailsAndMalformedIsPermerror) {
  std::string message =
      hand_signed("v=1; a=rsa-sha1; c=relaxed/relaxed; d=example.com; s=r1; h=from; bh=AAAA; ", "",
                  Canonicalization::kRelaxed, kBody, rsa_signer);
  auto outcome = only(verify_message(message, rsa_key(), kVerifyNow));
  EXPECT_EQ(outcome.result, DkimResult::kFail);
  EXPECT_NE(outcome.problem.find("rsa-sha1"), std::string::npos);

  DkimVerifier verifier;
  verifier.header_section("DKIM-Signature: v=1; a=rsa-sha256; a=rsa-sha256\r\n" + kFrom + "\r\n");
  verifier.end_of_body();
  ASSERT_EQ(verifier.signature_count(), 1u);
  EXPECT_EQ(verifier.key_name(0), "");
  EXPECT_EQ(verifier.verify(0, txt_answer({}), kVerifyNow).result, DkimResult::kPermError);
}

TEST(DkimVerifier, KeyAnswersAndRecordChecks) {
  std::string message =
      hand_signed(rsa_tags(""), "", Canonicalization::kRelaxed, kBody, rsa_signer);
  const std::string record = test_key("rsa", "r1")->dns_record();
  const std::string p = record.substr(record.find("p="));
  struct Case {
    std::vector<std::string> texts;
    DkimResult expected;
  };
  const Case cases[] = {
      {{"v=DKIM1; " + p}, DkimResult::kPass},
      {{"v=spf1 -all", record}, DkimResult::kPass},  // the first record that parses
      {{"v=spf1 -all"}, DkimResult::kPermError},
      {{"v=DKIM1; p="}, DkimResult::kFail},  // revoked
      {{"v=DKIM1; k=ed25519; " + p}, DkimResult::kPermError},
      {{"v=DKIM1; h=sha1; " + p}, DkimResult::kPermError},
      {{"v=DKIM1; h=sha1:sha256; " + p}, DkimResult::kPass},
      {{"v=DKIM1; s=other; " + p}, DkimResult::kPermError},
      {{"v=DKIM1; s=email; " + p}, DkimResult::kPass},
      {{"v=DKIM1; p=AAAA"}, DkimResult::kPermError},  // not a key
      {{"v=DKIM1; " + test_key("ed25519", "x")->dns_record().substr(19)}, DkimResult::kPermError},
  };
  for (const auto& c : cases) {
    std::map<std::string, dns::Answer> keys{{"r1._domainkey.example.com", txt_answer(c.texts)}};
    EXPECT_EQ(only(verify_message(message, keys, kVerifyNow)).result, c.expected) << c.texts.back();
  }
  for (auto [status, expected] : {std::pair{dns::Status::kTemporary, DkimResult::kTempError},
                                  std::pair{dns::Status::kBogus, DkimResult::kTempError},
                                  std::pair{dns::Status::kNoData, DkimResult::kPermError},
                                  std::pair{dns::Status::kNxDomain, DkimResult::kPermError}}) {
    dns::Answer answer;
    answer.status = status;
    auto outcome =
        only(verify_message(message, {{"r1._domainkey.example.com", answer}}, kVerifyNow));
    EXPECT_EQ(outcome.result, expected);
  }
}

TEST(DkimVerifier, StrictIdentityRefusesASubdomain) {
  const std::string strict =
      "v=DKIM1; t=s; " +
      test_key("rsa", "r1")->dns_record().substr(std::string("v=DKIM1; ").size());
  std::string sub = hand_signed(rsa_tags("i=alice@mail.example.com; "), "",
                                Canonicalization::kRelaxed, kBody, rsa_signer);
  std::string same = hand_signed(rsa_tags("i=alice@example.com; "), "", Canonicalization::kRelaxed,
                                 kBody, rsa_signer);
  EXPECT_EQ(only(verify_message(sub, rsa_key(), kVerifyNow)).result, DkimResult::kPass);
  EXPECT_EQ(only(verify_message(sub, rsa_record(strict), kVerifyNow)).result, DkimResult::kFail);
  EXPECT_EQ(only(verify_message(same, rsa_record(strict), kVerifyNow)).result, DkimResult::kPass);
}

TEST(DkimVerifier, RsaUnder1024BitsIsPolicyNotPass) {
  Pkey small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{512}));
  ASSERT_TRUE(small);
  auto small_signer = [&](std::string_view data) {
    return *sign_dkim_data(DkimKeyType::kRsa, small, data);
  };
  std::string message =
      hand_signed(rsa_tags(""), "", Canonicalization::kRelaxed, kBody, small_signer);
  auto record = "v=DKIM1; p=" + base::to_base64(*public_key_for_record(DkimKeyType::kRsa, small));
  auto outcome = only(verify_message(message, rsa_record(record), kVerifyNow));
  EXPECT_EQ(outcome.result, DkimResult::kPolicy);
  EXPECT_EQ(outcome.key_bits, 512u);
}

TEST(DkimVerifier, ConsidersAtMostMaxSignatures) {
  std::string header;
  for (int i = 0; i < 50; ++i)
    header += "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s" + std::to_string(i) +
              "; h=from; bh=AAAA; b=AAAA\r\n";
  header += kFrom + "\r\n";
  DkimVerifier verifier;
  verifier.header_section(header);
  verifier.body("x\r\n");
  verifier.end_of_body();
  EXPECT_EQ(verifier.signature_count(), 8u);
  EXPECT_EQ(verifier.ignored_signatures(), 42u);
  EXPECT_EQ(verifier.key_name(7), "s7._domainkey.example.com");
  for (std::size_t i = 0; i < verifier.signature_count(); ++i)
    EXPECT_EQ(verifier.verify(i, txt_answer({}), kVerifyNow).problem, "body hash did not verify");
  EXPECT_EQ(verifier.verify(8, txt_answer({}), kVerifyNow).result, DkimResult::kPermError);
}

// Each distinct (canonicalization, l=) is one more pass over the body on the I/O thread: a
// message gets four at most, the signatures past them are permerror, never hashed.
TEST(DkimVerifier, AtMostFourDistinctBodyHashes) {
  std::string header;
  for (int i = 1; i <= 6; ++i)
    header += "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s" + std::to_string(i) +
              "; h=from; l=" + std::to_string(i) + "; bh=AAAA; b=AAAA\r\n";
  header += kFrom + "\r\n";
  DkimVerifier verifier;
  verifier.header_section(header);
  verifier.body("a body line\r\n");
  verifier.end_of_body();
  ASSERT_EQ(verifier.signature_count(), 6u);
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_EQ(verifier.verify(i, txt_answer({}), kVerifyNow).problem, "body hash did not verify");
  for (std::size_t i = 4; i < 6; ++i) {
    DkimOutcome outcome = verifier.verify(i, txt_answer({}), kVerifyNow);
    EXPECT_EQ(outcome.result, DkimResult::kPermError);
    EXPECT_EQ(outcome.problem, "malformed signature: too many distinct body hashes (l=)");
  }
}

TEST(DkimVerifier, BodyHashNeedsNoKey) {
  std::string message =
      hand_signed(rsa_tags(""), "", Canonicalization::kRelaxed, kBody, rsa_signer);
  DkimVerifier verifier;
  std::size_t end = message.find("\r\n\r\n") + 4;
  verifier.header_section(message.substr(0, end));
  verifier.body(message.substr(end) + "more\r\n");
  verifier.end_of_body();
  auto early = verifier.outcome_without_key(0, kVerifyNow);
  ASSERT_TRUE(early);
  EXPECT_EQ(early->result, DkimResult::kFail);
}

}  // namespace
}  // namespace mailauth
