// dev_pki_test.cpp — the development PKI: file set and modes, certificate profile (CA and
// leaves), chain verification with OpenSSL's own verifier, idempotence, and expiry days.
#include "tls/dev_pki.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "tls_test_support.h"

namespace tls {
namespace {

using testing::TempDir;

struct DevPkiX509Deleter {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using DevPkiX509Ptr = std::unique_ptr<X509, DevPkiX509Deleter>;

std::vector<DevPkiX509Ptr> read_certificates(const std::string& path) {
  std::vector<DevPkiX509Ptr> certificates;
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) return certificates;
  while (X509* certificate = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    certificates.emplace_back(certificate);
  }
  BIO_free(bio);
  ERR_clear_error();  // the PEM reader ends with "no start line"
  return certificates;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string fingerprint(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(certificate, EVP_sha256(), digest, &length);
  return std::string(reinterpret_cast<char*>(digest), length);
}

unsigned file_mode(const std::string& path) {
  struct stat status {};
  if (stat(path.c_str(), &status) != 0) return 0;
  return status.st_mode & 07777;
}

std::string common_name(X509* certificate) {
  char buffer[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, buffer,
                            sizeof buffer);
  return buffer;
}

// Verifies leaf (+ chain) against the CA alone, for the TLS server purpose.
int verify(X509* leaf, X509* ca) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* context = X509_STORE_CTX_new();
  X509_STORE_CTX_init(context, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(context, X509_PURPOSE_SSL_SERVER);
  const int ok = X509_verify_cert(context);
  const int error = X509_STORE_CTX_get_error(context);
  X509_STORE_CTX_free(context);
  X509_STORE_free(store);
  return ok == 1 ? X509_V_OK : error;
}

const std::vector<std::string> kNames = {"mail.test", "localhost", "127.0.0.1", "::1"};

TEST(DevPki, CreatesAllFilesWithPrivateKeyModes) {
  TempDir dir;
  const std::string nested = dir.file("a/b/pki");  // mkdir -p
  auto paths = ensure_dev_pki(nested, kNames);
  ASSERT_TRUE(paths) << paths.error();
  EXPECT_EQ(paths->ca_certificate, nested + "/ca.pem");
  EXPECT_EQ(paths->ca_key, nested + "/ca.key");
  EXPECT_EQ(paths->ecdsa_chain, nested + "/server-ecdsa.pem");
  EXPECT_EQ(paths->ecdsa_key, nested + "/server-ecdsa.key");
  EXPECT_EQ(paths->rsa_chain, nested + "/server-rsa.pem");
  EXPECT_EQ(paths->rsa_key, nested + "/server-rsa.key");
  for (const std::string& key : {paths->ca_key, paths->ecdsa_key, paths->rsa_key}) {
    EXPECT_EQ(file_mode(key), 0600u) << key;
  }
  for (const std::string& pem : {paths->ca_certificate, paths->ecdsa_chain, paths->rsa_chain}) {
    EXPECT_NE(file_mode(pem), 0u) << pem;
    EXPECT_EQ(file_mode(pem) & 0022, 0u) << pem;
  }
  // No temporary files left behind.
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(nested)) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << entry.path();
    ++entries;
  }
  EXPECT_EQ(entries, 6u);
}

TEST(DevPki, CertificateAuthorityProfile) {
  TempDir dir;
  auto paths = ensure_dev_pki(dir.path(), kNames);
  ASSERT_TRUE(paths) << paths.error();
  auto cas = read_certificates(paths->ca_certificate);
  ASSERT_EQ(cas.size(), 1u);
  X509* ca = cas[0].get();
  EXPECT_EQ(X509_check_ca(ca), 1);
  EXPECT_NE(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN, 0u);
  EXPECT_EQ(common_name(ca).rfind("smtpsd development CA ", 0), 0u) << common_name(ca);
  EXPECT_GT(common_name(ca).size(), std::string("smtpsd development CA ").size());
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(ca)), EVP_PKEY_EC);
  EXPECT_EQ(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_check_issued(ca, ca), X509_V_OK);  // self-signed
  EXPECT_NE(X509_get0_subject_key_id(ca), nullptr);
  auto days = days_until_expiry(paths->ca_certificate);
  ASSERT_TRUE(days) << days.error();
  EXPECT_GE(days.value(), 3640);
  EXPECT_LE(days.value(), 3660);
}

TEST(DevPki, LeavesAreFullChainsWithServerProfile) {
  TempDir dir;
  auto paths = ensure_dev_pki(dir.path(), kNames);
  ASSERT_TRUE(paths) << paths.error();
  auto cas = read_certificates(paths->ca_certificate);
  ASSERT_EQ(cas.size(), 1u);
  struct Leaf {
    std::string chain;
    int key_type;
    bool key_encipherment;
  };
  for (const Leaf& expected :
       {Leaf{paths->ecdsa_chain, EVP_PKEY_EC, false}, Leaf{paths->rsa_chain, EVP_PKEY_RSA, true}}) {
    SCOPED_TRACE(expected.chain);
    auto chain = read_certificates(expected.chain);
    ASSERT_EQ(chain.size(), 2u);  // leaf then CA
    X509* leaf = chain[0].get();
    EXPECT_EQ(fingerprint(chain[1].get()), fingerprint(cas[0].get()));
    EXPECT_EQ(verify(leaf, cas[0].get()), X509_V_OK);
    EXPECT_EQ(X509_check_ca(leaf), 0);
    EXPECT_EQ(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
    EXPECT_NE(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER, 0u);
    const uint32_t usage = X509_get_key_usage(leaf);
    EXPECT_NE(usage & KU_DIGITAL_SIGNATURE, 0u);
    EXPECT_EQ((usage & KU_KEY_ENCIPHERMENT) != 0, expected.key_encipherment);
    EXPECT_EQ(usage & KU_KEY_CERT_SIGN, 0u);
    EXPECT_EQ(common_name(leaf), "mail.test");
    EXPECT_EQ(X509_check_host(leaf, "mail.test", 0, 0, nullptr), 1);
    EXPECT_EQ(X509_check_host(leaf, "localhost", 0, 0, nullptr), 1);
    EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
    EXPECT_EQ(X509_check_ip_asc(leaf, "::1", 0), 1);
    EXPECT_EQ(X509_check_host(leaf, "example.com", 0, 0, nullptr), 0);
    EXPECT_EQ(X509_check_host(leaf, "127.0.0.1", 0, 0, nullptr), 0);  // IP is not a DNS SAN
    EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(leaf)), expected.key_type);
    if (expected.key_type == EVP_PKEY_RSA) {
      EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(leaf)), 2048);
    } else {
      char group[64] = {};
      size_t length = 0;
      EVP_PKEY_get_group_name(X509_get0_pubkey(leaf), group, sizeof group, &length);
      EXPECT_STREQ(group, "prime256v1");
    }
    EXPECT_EQ(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);  // signed by the EC CA
    EXPECT_NE(X509_get0_subject_key_id(leaf), nullptr);
    const ASN1_OCTET_STRING* authority_key = X509_get0_authority_key_id(leaf);
    ASSERT_NE(authority_key, nullptr);
    EXPECT_EQ(ASN1_OCTET_STRING_cmp(authority_key, X509_get0_subject_key_id(cas[0].get())), 0);
    // 128-bit random serial: 16 or 17 DER content octets, positive.
    const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf);
    EXPECT_GE(ASN1_STRING_length(serial), 15);
    EXPECT_LE(ASN1_STRING_length(serial), 17);
    EXPECT_NE(ASN1_STRING_type(serial), V_ASN1_NEG_INTEGER);
    // Backdated an hour for clients with a slow clock.
    int days = 0;
    int seconds = 0;
    ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(leaf), nullptr), 1);
    EXPECT_EQ(days, 0);
    EXPECT_GE(seconds, 3590);
    EXPECT_LE(seconds, 3700);
    auto remaining = days_until_expiry(expected.chain);
    ASSERT_TRUE(remaining) << remaining.error();
    EXPECT_GE(remaining.value(), 824);
    EXPECT_LE(remaining.value(), 825);
  }
  // Two leaves, two serials.
  auto ecdsa = read_certificates(paths->ecdsa_chain);
  auto rsa = read_certificates(paths->rsa_chain);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(ecdsa[0].get()),
                             X509_get0_serialNumber(rsa[0].get())),
            0);
}

TEST(DevPki, KeysMatchTheirCertificates) {
  TempDir dir;
  auto paths = ensure_dev_pki(dir.path(), {"localhost"});
  ASSERT_TRUE(paths) << paths.error();
  for (const auto& [certificate, key] : {std::pair{paths->ca_certificate, paths->ca_key},
                                         std::pair{paths->ecdsa_chain, paths->ecdsa_key},
                                         std::pair{paths->rsa_chain, paths->rsa_key}}) {
    auto certificates = read_certificates(certificate);
    ASSERT_FALSE(certificates.empty());
    BIO* bio = BIO_new_file(key.c_str(), "r");
    ASSERT_NE(bio, nullptr);
    EVP_PKEY* private_key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    ASSERT_NE(private_key, nullptr) << key;
    EXPECT_EQ(X509_check_private_key(certificates[0].get(), private_key), 1) << key;
    EVP_PKEY_free(private_key);
  }
}

TEST(DevPki, SecondRunKeepsEverything) {
  TempDir dir;
  auto first = ensure_dev_pki(dir.path(), kNames);
  ASSERT_TRUE(first) << first.error();
  const std::string ca = read_file(first->ca_certificate);
  const std::string ca_key = read_file(first->ca_key);
  const std::string ecdsa = read_file(first->ecdsa_chain);
  const std::string rsa_key = read_file(first->rsa_key);
  const std::string ca_fingerprint = fingerprint(read_certificates(first->ca_certificate)[0].get());

  auto second = ensure_dev_pki(dir.path(), {"other.test"});  // names only matter for new leaves
  ASSERT_TRUE(second) << second.error();
  EXPECT_EQ(fingerprint(read_certificates(second->ca_certificate)[0].get()), ca_fingerprint);
  EXPECT_EQ(read_file(second->ca_certificate), ca);
  EXPECT_EQ(read_file(second->ca_key), ca_key);
  EXPECT_EQ(read_file(second->ecdsa_chain), ecdsa);
  EXPECT_EQ(read_file(second->rsa_key), rsa_key);
}

TEST(DevPki, MissingLeafIsSignedByExistingCa) {
  TempDir dir;
  auto first = ensure_dev_pki(dir.path(), kNames);
  ASSERT_TRUE(first) << first.error();
  const std::string ecdsa = read_file(first->ecdsa_chain);
  const std::string old_rsa = read_file(first->rsa_chain);
  std::filesystem::remove(first->rsa_chain);
  std::filesystem::remove(first->rsa_key);

  auto second = ensure_dev_pki(dir.path(), {"new.test"});
  ASSERT_TRUE(second) << second.error();
  EXPECT_EQ(read_file(second->ecdsa_chain), ecdsa);
  EXPECT_NE(read_file(second->rsa_chain), old_rsa);
  EXPECT_EQ(file_mode(second->rsa_key), 0600u);
  auto ca = read_certificates(second->ca_certificate);
  auto chain = read_certificates(second->rsa_chain);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(verify(chain[0].get(), ca[0].get()), X509_V_OK);
  EXPECT_EQ(common_name(chain[0].get()), "new.test");
}

TEST(DevPki, MissingCertificateReusesExistingKey) {
  TempDir dir;
  auto first = ensure_dev_pki(dir.path(), kNames);
  ASSERT_TRUE(first) << first.error();
  const std::string key = read_file(first->ecdsa_key);
  std::filesystem::remove(first->ecdsa_chain);
  auto second = ensure_dev_pki(dir.path(), kNames);
  ASSERT_TRUE(second) << second.error();
  EXPECT_EQ(read_file(second->ecdsa_key), key);
  EXPECT_EQ(read_certificates(second->ecdsa_chain).size(), 2u);
}

TEST(DevPki, CertificateWithoutKeyIsAnError) {
  TempDir dir;
  auto first = ensure_dev_pki(dir.path(), kNames);
  ASSERT_TRUE(first) << first.error();
  std::filesystem::remove(first->ecdsa_key);
  auto second = ensure_dev_pki(dir.path(), kNames);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().find(first->ecdsa_key), std::string::npos) << second.error();

  TempDir other;
  auto third = ensure_dev_pki(other.path(), kNames);
  ASSERT_TRUE(third) << third.error();
  std::filesystem::remove(third->ca_key);
  auto fourth = ensure_dev_pki(other.path(), kNames);
  ASSERT_FALSE(fourth);
  EXPECT_NE(fourth.error().find(third->ca_key), std::string::npos) << fourth.error();
}

TEST(DevPki, RefusesBadNames) {
  TempDir dir;
  EXPECT_FALSE(ensure_dev_pki(dir.path(), {}));
  for (const char* name : {"", "a b", "x,DNS:evil.test", "bad\nname", "a*.test"}) {
    auto refused = ensure_dev_pki(dir.path(), {"localhost", name});
    EXPECT_FALSE(refused) << name;
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  auto wildcard = ensure_dev_pki(dir.path(), {"*.mail.test", "localhost"});
  EXPECT_TRUE(wildcard) << wildcard.error();
}

TEST(DevPki, DirectoryThatCannotBeCreated) {
  TempDir dir;
  const std::string file = dir.file("plain");
  std::ofstream(file) << "not a directory";
  auto refused = ensure_dev_pki(file + "/pki", {"localhost"});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find(file), std::string::npos) << refused.error();
}

// A throwaway self-signed certificate valid until now + `seconds` (negative: expired).
std::string write_certificate_expiring_in(const TempDir& dir, long seconds) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* certificate = X509_new();
  X509_set_version(certificate, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate), 1);
  X509_gmtime_adj(X509_getm_notBefore(certificate), -10L * 24 * 3600);
  X509_gmtime_adj(X509_getm_notAfter(certificate), seconds);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(certificate), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("expiry.test"), -1, -1, 0);
  X509_set_issuer_name(certificate, X509_get_subject_name(certificate));
  X509_set_pubkey(certificate, key);
  X509_sign(certificate, key, EVP_sha256());
  const std::string path = dir.file("expiry-" + std::to_string(seconds) + ".pem");
  BIO* bio = BIO_new_file(path.c_str(), "w");
  PEM_write_bio_X509(bio, certificate);
  BIO_free(bio);
  X509_free(certificate);
  EVP_PKEY_free(key);
  return path;
}

TEST(DevPki, DaysUntilExpiryRoundsTowardThePast) {
  TempDir dir;
  const struct {
    long seconds;
    long days;
  } cases[] = {{-3600, -1}, {-36 * 3600, -2}, {3600, 0}, {36 * 3600, 1}, {-10L * 86400 + 60, -10}};
  for (const auto& c : cases) {
    auto days = days_until_expiry(write_certificate_expiring_in(dir, c.seconds));
    ASSERT_TRUE(days) << days.error();
    EXPECT_EQ(days.value(), c.days) << c.seconds;
  }
}

TEST(DevPki, DaysUntilExpiryErrors) {
  auto missing = days_until_expiry("/nonexistent/cert.pem");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("/nonexistent/cert.pem"), std::string::npos);
  TempDir dir;
  const std::string garbage = dir.file("garbage.pem");
  std::ofstream(garbage) << "hello";
  EXPECT_FALSE(days_until_expiry(garbage));
  EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left dirty";
}

}  // namespace
}  // namespace tls
