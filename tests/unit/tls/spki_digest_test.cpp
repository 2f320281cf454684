#include "tls/spki_digest.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace {

// A P-256 self-signed certificate; its SPKI digest from the command line:
// openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum
constexpr char kSpkiTestCertificate[] = R"(-----BEGIN CERTIFICATE-----
MIIBfjCCASOgAwIBAgIUTn5v4ggfEPpsiujwXL+tzWDXlnQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJc3BraS50ZXN0MB4XDTI2MTIwNjAxMDYzNloXDTM2MTIwMzAx
MDYzNlowFDESMBAGA1UEAwwJc3BraS50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEYsbjVe/M+W4hjCqPDJbDDhuxBuDWywhNGigN2tUVIB9ZbH2VZHb/bbQI
BBjaQFC1l5tnQfUOVLUW/kREXQI4WqNTMFEwHQYDVR0OBBYEFOKTr5v9TqmGQsWU
N7/Y0PUGOmiaMB8GA1UdIwQYMBaAFOKTr5v9TqmGQsWUN7/Y0PUGOmiaMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAJSqvK3irzo7W06hla3F7GfT
Ox953Z5qQ/DBc4/o6H/9AiEA06u0+wd/C7mCs+ydDolUHIszPC7XhZuMVyiBqDuY
4ko=
-----END CERTIFICATE-----
)";
constexpr char kSpkiTestDigest[] =
    "8f3cf7c7b73ec8b7b01ab712a24a62a8c39857b1b72a56d5834d433c628541b4";

std::unique_ptr<X509, void (*)(X509*)> spki_test_certificate() {
  std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new_mem_buf(kSpkiTestCertificate, -1), &BIO_free);
  return {PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free};
}

TEST(SpkiDigestTest, OfACertificateIsSha256OfItsDerSubjectPublicKeyInfo) {
  auto certificate = spki_test_certificate();
  ASSERT_NE(certificate, nullptr);
  auto hex = tls::spki_sha256_hex(certificate.get());
  ASSERT_TRUE(hex) << hex.error();
  EXPECT_EQ(*hex, kSpkiTestDigest);

  // Not X509_pubkey_digest(): that hashes the key's BIT STRING only, without the algorithm,
  // and matches no TLSA "3 1 1" record.
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  ASSERT_EQ(X509_pubkey_digest(certificate.get(), EVP_sha256(), digest, &length), 1);
  ASSERT_EQ(length, 32u);
  std::string bit_string_hex;
  for (unsigned int i = 0; i < length; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    bit_string_hex += kHex[digest[i] >> 4];
    bit_string_hex += kHex[digest[i] & 0xF];
  }
  EXPECT_NE(*hex, bit_string_hex);
}

TEST(SpkiDigestTest, OfAPemFileIsTheSameAndErrorsNameTheFile) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "smtpsd-spki-digest-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path directory = pattern;
  const std::filesystem::path path = directory / "certificate.pem";
  {
    std::ofstream out(path);
    out << kSpkiTestCertificate;
  }
  auto hex = tls::spki_sha256_hex(path.string());
  ASSERT_TRUE(hex) << hex.error();
  EXPECT_EQ(*hex, kSpkiTestDigest);
  {
    std::ofstream out(path, std::ios::trunc);
    out << "not a certificate\n";
  }
  auto bad = tls::spki_sha256_hex(path.string());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), path.string() + ": no PEM certificate");
  std::filesystem::remove_all(directory);
  auto missing = tls::spki_sha256_hex(path.string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), path.string() + ": cannot open");
}

}  // namespace
