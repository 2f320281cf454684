// jws.cpp — see jws.h.
#include "acme/jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <memory>

#include "base/json.h"
#include "tls/openssl_error.h"

namespace acme {
namespace {

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string coordinate(EVP_PKEY* key, const char* name) {
  BIGNUM* number = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &number) != 1) return {};
  std::string out(32, '\0');
  BN_bn2binpad(number, reinterpret_cast<unsigned char*>(out.data()), 32);
  BN_free(number);
  return out;
}

}  // namespace

std::string base64url(std::string_view raw) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < raw.size(); i += 3) {
    const std::uint32_t n = (static_cast<unsigned char>(raw[i]) << 16) |
                            (static_cast<unsigned char>(raw[i + 1]) << 8) |
                            static_cast<unsigned char>(raw[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == raw.size()) {
    const std::uint32_t n = static_cast<unsigned char>(raw[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
  } else if (i + 2 == raw.size()) {
    const std::uint32_t n =
        (static_cast<unsigned char>(raw[i]) << 16) | (static_cast<unsigned char>(raw[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

AccountKey::AccountKey(tls::KeyPtr key) : key_(std::move(key)) {
  // RFC 7638 §3.2: the required members only, in lexicographic order, no white space.
  jwk_ = R"({"crv":"P-256","kty":"EC","x":")" +
         base64url(coordinate(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X)) + R"(","y":")" +
         base64url(coordinate(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y)) + R"("})";
  thumbprint_ = base64url(sha256(jwk_));
}

base::Expected<std::string, std::string> AccountKey::sign(std::string_view payload,
                                                          std::string_view nonce,
                                                          std::string_view url,
                                                          std::string_view kid) const {
  std::string header = R"({"alg":"ES256",)";
  if (kid.empty()) {
    header += R"("jwk":)" + jwk_;
  } else {
    header += R"("kid":)" + base::json_string(kid);
  }
  header += R"(,"nonce":)" + base::json_string(nonce) + R"(,"url":)" + base::json_string(url) + "}";
  const std::string protected64 = base64url(header);
  const std::string payload64 = base64url(payload);
  const std::string signing_input = protected64 + "." + payload64;

  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  EVP_MD_CTX_free);
  std::size_t size = 0;
  if (!context ||
      EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(context.get(), nullptr, &size,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return base::unexpected("cannot sign: " + tls::last_error_reason());
  }
  std::string der(size, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(der.data()), &size,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return base::unexpected("cannot sign: " + tls::last_error_reason());
  }
  // RFC 7518 §3.4: not DER but r and s, each left-padded to 32 bytes.
  const unsigned char* cursor = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* signature = d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(size));
  if (signature == nullptr) return base::unexpected(std::string("cannot decode the signature"));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(signature), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(signature), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(signature);
  return R"({"protected":")" + protected64 + R"(","payload":")" + payload64 + R"(","signature":")" +
         base64url(raw) + R"("})";
}

std::string external_account_binding(const AccountKey& account, std::string_view kid,
                                     std::string_view hmac_key, std::string_view url) {
  const std::string protected64 = base64url(R"({"alg":"HS256","kid":)" + base::json_string(kid) +
                                            R"(,"url":)" + base::json_string(url) + "}");
  const std::string payload64 = base64url(account.jwk());
  const std::string signing_input = protected64 + "." + payload64;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), hmac_key.data(), static_cast<int>(hmac_key.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &size);
  return R"({"protected":")" + protected64 + R"(","payload":")" + payload64 + R"(","signature":")" +
         base64url(std::string_view(reinterpret_cast<const char*>(mac), size)) + R"("})";
}

}  // namespace acme
