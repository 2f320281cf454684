// Tests for acme/jws.cpp: base64url, the JWK and its thumbprint (RFC 7638), and ES256
// signatures (RFC 7518 §3.4) that OpenSSL verifies with the account's public key.
#include "acme/jws.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include <string>

#include "acme/json.h"
#include "support/base64url.h"

namespace {

acme::AccountKey new_key() {
  return acme::AccountKey(tls::KeyPtr(EVP_EC_gen("P-256")));
}

TEST(AcmeJwsTest, Base64UrlHasNoPaddingAndTheUrlAlphabet) {
  EXPECT_EQ(acme::base64url(""), "");
  EXPECT_EQ(acme::base64url("f"), "Zg");
  EXPECT_EQ(acme::base64url("fo"), "Zm8");
  EXPECT_EQ(acme::base64url("foo"), "Zm9v");
  EXPECT_EQ(acme::base64url("foob"), "Zm9vYg");
  EXPECT_EQ(acme::base64url("\xfb\xff\xbf"), "-_-_");
}

TEST(AcmeJwsTest, JwkAndThumbprint) {
  acme::AccountKey key = new_key();
  auto jwk = acme::parse_json(key.jwk());
  ASSERT_TRUE(jwk.has_value());
  // RFC 7638 §3.2: the required members in lexicographic order, nothing else.
  EXPECT_EQ(key.jwk().rfind(R"({"crv":"P-256","kty":"EC","x":")", 0), 0u);
  EXPECT_EQ(test_support::decode_base64url(jwk->string_at("x")).size(), 32u);
  EXPECT_EQ(test_support::decode_base64url(jwk->string_at("y")).size(), 32u);
  unsigned char digest[32];
  unsigned int size = 0;
  EVP_Digest(key.jwk().data(), key.jwk().size(), digest, &size, EVP_sha256(), nullptr);
  EXPECT_EQ(key.thumbprint(),
            acme::base64url(std::string(reinterpret_cast<const char*>(digest), size)));
  EXPECT_EQ(key.key_authorization("tok"), "tok." + key.thumbprint());
}

TEST(AcmeJwsTest, SignaturesVerifyAndTheHeaderSaysWhatRfc8555Asks) {
  acme::AccountKey key = new_key();
  for (const std::string kid : {"", "https://ca/acct/1"}) {
    auto body = key.sign(R"({"a":1})", "nonce-1", "https://ca/new-order", kid);
    ASSERT_TRUE(body.has_value()) << body.error();
    auto jws = acme::parse_json(body.value());
    ASSERT_TRUE(jws.has_value());
    const std::string protected64 = jws->string_at("protected");
    auto header = acme::parse_json(test_support::decode_base64url(protected64));
    ASSERT_TRUE(header.has_value());
    EXPECT_EQ(header->string_at("alg"), "ES256");
    EXPECT_EQ(header->string_at("nonce"), "nonce-1");
    EXPECT_EQ(header->string_at("url"), "https://ca/new-order");
    if (kid.empty()) {
      EXPECT_NE(header->get("jwk"), nullptr);
      EXPECT_EQ(header->get("kid"), nullptr);
    } else {
      EXPECT_EQ(header->string_at("kid"), kid);
      EXPECT_EQ(header->get("jwk"), nullptr);
    }
    EXPECT_EQ(test_support::decode_base64url(jws->string_at("payload")), R"({"a":1})");
    // r || s → DER, verified with the public key.
    const std::string raw = test_support::decode_base64url(jws->string_at("signature"));
    ASSERT_EQ(raw.size(), 64u);
    ECDSA_SIG* signature = ECDSA_SIG_new();
    ECDSA_SIG_set0(signature,
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                   BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
    unsigned char* der = nullptr;
    const int der_size = i2d_ECDSA_SIG(signature, &der);
    ECDSA_SIG_free(signature);
    const std::string input = protected64 + "." + jws->string_at("payload");
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    ASSERT_EQ(EVP_DigestVerifyInit(context, nullptr, EVP_sha256(), nullptr, key.key()), 1);
    EXPECT_EQ(EVP_DigestVerify(context, der, static_cast<std::size_t>(der_size),
                               reinterpret_cast<const unsigned char*>(input.data()), input.size()),
              1);
    EVP_MD_CTX_free(context);
    OPENSSL_free(der);
  }
}

TEST(AcmeJwsTest, PostAsGetHasAnEmptyPayload) {
  acme::AccountKey key = new_key();
  auto body = key.sign("", "n", "https://ca/order/1", "https://ca/acct/1");
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(acme::parse_json(body.value())->string_at("payload"), "");
}

}  // namespace
