// dkim_public_key_cache_test.cpp — public_key_from_record (mailauth/dkim_crypto.h): a key
// decoded once is shared by later verifications of the same record (the decoding costs
// several times the verification), a different record is never confused with it, and a
// refused key (an RSA public exponent over 2^32) is refused every time, never cached.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "mailauth/dkim_crypto.h"

namespace mailauth {
namespace {

TEST(DkimPublicKeyCache, ASecondDecodingOfARecordSharesTheFirstKey) {
  auto private_key = generate_key(DkimKeyType::kRsa);
  ASSERT_TRUE(private_key);
  auto p = public_key_for_record(DkimKeyType::kRsa, private_key.value());
  ASSERT_TRUE(p);
  auto first = public_key_from_record(DkimKeyType::kRsa, p.value());
  auto second = public_key_from_record(DkimKeyType::kRsa, p.value());
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first.value().get(), second.value().get());
  auto signature = sign_dkim_data(DkimKeyType::kRsa, private_key.value(), "data");
  ASSERT_TRUE(signature);
  EXPECT_TRUE(verify_dkim_data(DkimKeyType::kRsa, second.value(), "data", signature.value()));
  first.value().reset();  // the cache's reference keeps the key alive for the next one
  auto third = public_key_from_record(DkimKeyType::kRsa, p.value());
  ASSERT_TRUE(third);
  EXPECT_TRUE(verify_dkim_data(DkimKeyType::kRsa, third.value(), "data", signature.value()));

  auto other = generate_key(DkimKeyType::kRsa);
  ASSERT_TRUE(other);
  auto other_p = public_key_for_record(DkimKeyType::kRsa, other.value());
  ASSERT_TRUE(other_p);
  auto other_key = public_key_from_record(DkimKeyType::kRsa, other_p.value());
  ASSERT_TRUE(other_key);
  EXPECT_NE(other_key.value().get(), second.value().get());
  EXPECT_FALSE(verify_dkim_data(DkimKeyType::kRsa, other_key.value(), "data", signature.value()));
}

TEST(DkimPublicKeyCache, AnRsaExponentOver2To32IsRefusedEveryTime) {
  // e = 2^33 + 1: odd, so a valid RSA key, but one verification would cost like a signature.
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr);
  ASSERT_NE(context, nullptr);
  BIGNUM* exponent = BN_new();
  BN_set_word(exponent, (1ULL << 33) + 1);
  EVP_PKEY* raw = nullptr;
  ASSERT_EQ(EVP_PKEY_keygen_init(context), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_keygen_bits(context, 1024), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(context, exponent), 1);
  ASSERT_EQ(EVP_PKEY_keygen(context, &raw), 1);
  BN_free(exponent);
  EVP_PKEY_CTX_free(context);
  Pkey key(raw);
  auto p = public_key_for_record(DkimKeyType::kRsa, key);
  ASSERT_TRUE(p);
  for (int i = 0; i < 2; ++i) {
    auto decoded = public_key_from_record(DkimKeyType::kRsa, p.value());
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error(), "RSA public exponent over 2^32");
  }
}

}  // namespace
}  // namespace mailauth
