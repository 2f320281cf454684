// dkim_signature_test.cpp — the DKIM-Signature and key record parsers (RFC 6376 §3.2,
// §3.5, §3.6.1): what they accept, and every malformed or oversized input they refuse.
#include "mailauth/dkim_signature.h"

#include "mailauth/dkim_crypto.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>

namespace mailauth {
namespace {

const std::string kGood =
    "v=1; a=rsa-sha256; c=relaxed/simple; d=Example.COM; s=sel;\r\n"
    "\tt=1700000000; x=1800000000; h=From : To:\r\n\tSubject; l=42;\r\n"
    "\tbh=MTIz\r\n\t NDU2; b=YWJj\r\n\tZGVm";

TEST(DkimSignature, ParsesEveryTagAndUnfoldsBase64) {
  auto parsed = parse_dkim_signature(kGood);
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->algorithm, "rsa-sha256");
  EXPECT_EQ(parsed->domain, "example.com");
  EXPECT_EQ(parsed->selector, "sel");
  EXPECT_EQ(parsed->identity, "@example.com");
  EXPECT_EQ(parsed->signed_headers, (std::vector<std::string>{"From", "To", "Subject"}));
  EXPECT_EQ(parsed->header_canon, "relaxed");
  EXPECT_EQ(parsed->body_canon, "simple");
  EXPECT_EQ(parsed->length, 42u);
  EXPECT_EQ(parsed->timestamp, 1700000000);
  EXPECT_EQ(parsed->expiration, 1800000000);
  EXPECT_EQ(parsed->body_hash, "123456");
  EXPECT_EQ(parsed->signature, "abcdef");
  EXPECT_EQ(parsed->b_text, "YWJjZGVm");
}

TEST(DkimSignature, DefaultsToSimpleSimpleAndBodyCanonOnlyForms) {
  auto parsed = parse_dkim_signature("v=1; a=ed25519-sha256; d=a.b; s=s; h=from; bh=AA==; b=AA==");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->header_canon, "simple");
  EXPECT_EQ(parsed->body_canon, "simple");
  parsed =
      parse_dkim_signature("v=1; a=rsa-sha256; c=relaxed; d=a.b; s=s; h=from; bh=AA==; b=AA==;");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->header_canon, "relaxed");
  EXPECT_EQ(parsed->body_canon, "simple");
}

TEST(DkimSignature, RsaSha1ParsesSoThatTheVerifierCanSayFail) {
  EXPECT_TRUE(parse_dkim_signature("v=1; a=rsa-sha1; d=a.b; s=s; h=from; bh=AA==; b=AA=="));
}

TEST(DkimSignature, RefusesMalformedInput) {
  const std::string base = "v=1; d=a.b; s=s; h=from; bh=AA==; b=AA==; ";
  for (const std::string& bad : std::vector<std::string>{
           base + "a=rsa-sha512",                // unknown algorithm
           base + "a=rsa-sha256; a=rsa-sha256",  // duplicate tag
           base + "a=rsa-sha256; d=c.d",         // duplicate d=
           base + "a=rsa-sha256; c=fancy/simple",
           base + "a=rsa-sha256; l=12a",
           base + "a=rsa-sha256; l=" + std::string(77, '9'),
           base + "a=rsa-sha256; t=-5",
           base + "a=rsa-sha256; t=20; x=10",  // x= not after t=
           base + "a=rsa-sha256; q=http/get",
           base + "a=rsa-sha256; i=user@other.example",
           base + "a=rsa-sha256; i=user@xa.b",  // not a subdomain, only a suffix
           base + "a=rsa-sha256; 1x=y",         // tag name must start with a letter
           base + "a=rsa-sha256; junk",         // no '='
           base + "a=rsa-sha256;; z=1",         // an empty tag-spec inside the list
           base + "a=rsa-sha256; z=a\rb",       // a bare CR
           "v=1; a=rsa-sha256; d=a.b; s=s; h=to:subject; bh=AA==; b=AA==",  // From unsigned
           "v=2; a=rsa-sha256; d=a.b; s=s; h=from; bh=AA==; b=AA==",
           "v=1; a=rsa-sha256; d=a.b; s=s; h=from; bh=AA==; b=A*A=",
           "v=1; a=rsa-sha256; d=a..b; s=s; h=from; bh=AA==; b=AA==",
           "v=1; a=rsa-sha256; s=s; h=from; bh=AA==; b=AA==",  // no d=
           "v=1; a=rsa-sha256; d=a.b; s=s; h=from; bh=AA==",   // no b=
           "",
           ";",
           "=",
           std::string(3, '\0')}) {
    EXPECT_FALSE(parse_dkim_signature(bad)) << bad;
  }
  EXPECT_NE(parse_dkim_signature(base + "a=rsa-sha256; a=rsa-sha256").error().find("duplicate"),
            std::string::npos);
}

TEST(DkimSignature, IdentityInASubdomainIsAccepted) {
  auto parsed = parse_dkim_signature(
      "v=1; a=rsa-sha256; d=example.com; i=user@mail.Example.com; s=s; h=from; bh=AA==; b=AA==");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->identity, "user@mail.Example.com");
}

TEST(DkimSignature, BoundsTheValueAndTheHeaderList) {
  std::string names = "from";
  for (int i = 1; i < 64; ++i)
    names += ":x-h" + std::to_string(i);
  const std::string prefix = "v=1; a=rsa-sha256; d=a.b; s=s; bh=AA==; b=AA==; h=";
  EXPECT_TRUE(parse_dkim_signature(prefix + names));
  EXPECT_FALSE(parse_dkim_signature(prefix + names + ":one-more"));
  std::string huge = prefix + "from; z=" + std::string(kMaxSignatureValue, 'a');
  auto parsed = parse_dkim_signature(huge);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().find("8192"), std::string::npos);
}

TEST(DkimKeyRecord, ParsesTagsAndDefaults) {
  auto parsed = parse_dkim_key_record("p=AAEC");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->key_type, "rsa");
  EXPECT_EQ(parsed->public_key, std::string("\0\1\2", 3));
  EXPECT_TRUE(parsed->hashes.empty());
  EXPECT_FALSE(parsed->testing);
  parsed = parse_dkim_key_record("v=DKIM1; k=ed25519; h=sha256; s=email; t=y:s; n=hi; p=AA ==");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->key_type, "ed25519");
  EXPECT_EQ(parsed->hashes, std::vector<std::string>{"sha256"});
  EXPECT_EQ(parsed->services, std::vector<std::string>{"email"});
  EXPECT_TRUE(parsed->testing);
  EXPECT_TRUE(parsed->strict_identity);
  parsed = parse_dkim_key_record("v=DKIM1; p=");
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_TRUE(parsed->public_key.empty());  // revoked
}

TEST(DkimKeyRecord, RefusesMalformedRecords) {
  for (const std::string& bad : std::vector<std::string>{
           "k=rsa", "p=AA==; p=AA==", "k=rsa; v=DKIM1; p=AA==", "v=DKIM2; p=AA==", "p=A",
           "v=spf1 -all", "", std::string(kMaxKeyRecord + 1, 'a')}) {
    EXPECT_FALSE(parse_dkim_key_record(bad)) << bad;
  }
}

}  // namespace
}  // namespace mailauth

// A sender's broken key leaves nothing in OpenSSL's per-thread error queue, where the next
// failure of anything else on the thread (a TLS handshake) would find it as its cause.
TEST(DkimKeyErrors, LeaveOpensslsErrorQueueEmpty) {
  ERR_clear_error();
  EXPECT_FALSE(mailauth::public_key_from_record(mailauth::DkimKeyType::kRsa, "not a key"));
  EXPECT_FALSE(mailauth::public_key_from_record(mailauth::DkimKeyType::kEd25519, "short"));
  EXPECT_FALSE(mailauth::private_key_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}
