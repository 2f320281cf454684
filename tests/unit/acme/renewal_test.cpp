// Tests for acme/renewal.cpp: when each certificate is due (two thirds of its lifetime, or
// renew_before ahead of its end; a placeholder at once), what `smtpsctl cert status` shows,
// and a failure logged as an error once less than a sixth of the lifetime is left.
#include "acme/renewal.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/file_write.h"

namespace {

class NoPublisher : public acme::ChallengePublisher {
 public:
  void publish(const std::string&, const std::string&) override {}
  void withdraw(const std::string&) override {}
};

// RFC 9773 §4.1's example: this keyIdentifier and serial number give this identifier.
constexpr unsigned char kExampleKeyId[] = {0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40,
                                           0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
                                           0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
constexpr const char* kExampleId = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

// A certificate for key, issued by a separate test CA (so not self-signed), valid from
// now + start_days to now + end_days, with the example's serial and authority key id.
std::string issued_chain(EVP_PKEY* key, long start_days, long end_days) {
  tls::KeyPtr ca_key(EVP_EC_gen("P-256"));
  tls::X509Ptr certificate(X509_new());
  X509_set_version(certificate.get(), 2);
  BIGNUM* serial = nullptr;
  BN_hex2bn(&serial, "87654321");
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate.get()));
  BN_free(serial);
  AUTHORITY_KEYID* authority = AUTHORITY_KEYID_new();
  authority->keyid = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(authority->keyid, kExampleKeyId, sizeof(kExampleKeyId));
  X509_add1_ext_i2d(certificate.get(), NID_authority_key_identifier, authority, 0,
                    X509V3_ADD_DEFAULT);
  AUTHORITY_KEYID_free(authority);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), start_days * 86400);
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), end_days * 86400);
  X509_NAME* subject = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mx.example.org"), -1, -1, 0);
  X509_NAME* issuer = X509_NAME_new();
  X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Test CA"), -1, -1, 0);
  X509_set_issuer_name(certificate.get(), issuer);
  X509_NAME_free(issuer);
  X509_set_pubkey(certificate.get(), key);
  X509_sign(certificate.get(), ca_key.get(), EVP_sha256());
  tls::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), certificate.get());
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string when(std::int64_t unix_seconds) {
  return base::utc_text(unix_seconds, "%Y-%m-%dT%H:%M:%SZ");
}

// A CA that offers ARI (RFC 9773) and answers the window the test sets.
class WindowCa : public acme::HttpTransport {
 public:
  std::string window_body;
  std::string retry_after;
  std::vector<std::string> asked;
  base::Expected<acme::HttpResponse, std::string> request(std::string_view method,
                                                          const std::string& url,
                                                          std::string_view) override {
    asked.push_back(std::string(method) + " " + url);
    acme::HttpResponse r;
    r.status = 200;
    r.replay_nonce = "n";
    if (url == "https://ca/dir") {
      r.body = R"({"newNonce":"https://ca/nonce","newAccount":"https://ca/acct",
                   "newOrder":"https://ca/order","renewalInfo":"https://ca/renewal-info"})";
    } else if (url == std::string("https://ca/renewal-info/") + kExampleId) {
      r.body = window_body;
      r.retry_after = retry_after;
    } else {
      r.status = 503;  // no order in these tests
    }
    return r;
  }
};

TEST(AcmeCertificateIdTest, Rfc9773Example) {
  tls::KeyPtr key(EVP_EC_gen("P-256"));
  auto id = acme::certificate_id(issued_chain(key.get(), -1, 89));
  ASSERT_TRUE(id.has_value()) << id.error();
  EXPECT_EQ(id.value(), kExampleId);
  EXPECT_FALSE(acme::certificate_id("not a certificate").has_value());
}

TEST(AcmeCertificateIdTest, Rfc3339Times) {
  EXPECT_EQ(acme::parse_rfc3339("1970-01-02T00:00:00Z"), 86400);
  EXPECT_EQ(acme::parse_rfc3339("1970-01-02T00:00:00.123Z"), 86400);
  EXPECT_FALSE(acme::parse_rfc3339("1970-01-02T00:00:00").has_value());
  EXPECT_FALSE(acme::parse_rfc3339("1970-01-02T00:00:00+01:00").has_value());
  EXPECT_FALSE(acme::parse_rfc3339("yesterday").has_value());
}

class RenewalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("acme-renewal-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    key_ =
        std::move(acme::load_or_create_key(dir_ + "/ecdsa.key", acme::KeyType::kEcdsaP256).value());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Writes ecdsa.crt; returns the due time two thirds into its lifetime.
  std::int64_t write_ecdsa(long start_days, long end_days) {
    const std::string chain = issued_chain(key_.get(), start_days, end_days);
    EXPECT_TRUE(base::write_file_atomically(dir_ + "/ecdsa.crt", chain, 0644));
    auto info = acme::inspect_chain(chain, key_.get());
    not_after_ = info->not_after;
    return info->not_before + (info->not_after - info->not_before) * 2 / 3;
  }
  acme::RenewalOptions options() {
    acme::RenewalOptions o;
    o.acme_dir = dir_;
    o.names = {"mx.example.org"};
    o.client.directory_url = "https://127.0.0.1:1/dir";  // nothing listens there
    o.retry_min = std::chrono::hours(1);
    return o;
  }
  std::string dir_;
  tls::KeyPtr key_;
  std::int64_t not_after_ = 0;
  NoPublisher publisher_;
};

TEST_F(RenewalTest, DueAtTwoThirdsOfTheLifetime) {
  const std::int64_t due = write_ecdsa(-10, 80);  // 90 days: due on day 60, 50 days from now
  acme::Renewer renewer(options(), nullptr, publisher_);
  const std::string status = renewer.status();
  // 80 days left (79 once a second has passed since the certificate was made).
  EXPECT_NE(status.find("ecdsa: issuer=CN=Test CA not_after=" + when(not_after_) + " days_left="),
            std::string::npos)
      << status;
  EXPECT_NE(status.find(" next_attempt=" + when(due) + "\n"), std::string::npos) << status;
  // The RSA certificate is missing: due now.
  EXPECT_NE(status.find("rsa: no certificate ("), std::string::npos) << status;
}

TEST_F(RenewalTest, RenewBeforeMovesTheDate) {
  write_ecdsa(-10, 80);
  acme::RenewalOptions o = options();
  o.renew_before = std::chrono::hours(24 * 7);
  acme::Renewer renewer(o, nullptr, publisher_);
  EXPECT_NE(renewer.status().find("next_attempt=" + when(not_after_ - 7 * 86400)),
            std::string::npos)
      << renewer.status();
}

TEST_F(RenewalTest, TheCaSuggestedWindowDecides) {
  write_ecdsa(-10, 80);  // by its lifetime due in 50 days; the CA says in 10 to 11 days
  const std::int64_t now = base::unix_now();
  auto ca = std::make_shared<WindowCa>();
  ca->window_body = R"({"suggestedWindow":{"start":")" + when(now + 10 * 86400) + R"(","end":")" +
                    when(now + 11 * 86400) + R"("}})";
  ca->retry_after = "21600";
  acme::RenewalOptions o = options();
  o.client.directory_url = "https://ca/dir";
  o.transport = ca;
  acme::Renewer renewer(o, nullptr, publisher_);
  ::testing::internal::CaptureStderr();
  renewer.start();
  for (int i = 0; i < 500 && renewer.status().find("ari_window=") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  renewer.stop();
  const std::string log = ::testing::internal::GetCapturedStderr();
  const std::string status = renewer.status();
  EXPECT_NE(status.find("ari_window=" + when(now + 10 * 86400) + ".." + when(now + 11 * 86400)),
            std::string::npos)
      << status << log;
  // The attempt is at a time inside the window (§4.2), not on day 50.
  const std::size_t at = status.find("ecdsa:");
  const std::string next = status.substr(status.find("next_attempt=", at) + 13, 20);
  EXPECT_GE(next, when(now + 10 * 86400)) << status;
  EXPECT_LE(next, when(now + 11 * 86400)) << status;
  EXPECT_NE(log.find("event=acme_renewal_info key=ecdsa window_start="), std::string::npos) << log;
  EXPECT_NE(std::find(ca->asked.begin(), ca->asked.end(),
                      std::string("GET https://ca/renewal-info/") + kExampleId),
            ca->asked.end());
}

TEST_F(RenewalTest, AFailureNearTheEndIsAnErrorAndKeepsTheCertificate) {
  write_ecdsa(-80, 10);  // 10 of 90 days left: under a sixth
  const std::string before = acme::read_file(dir_ + "/ecdsa.crt").value();
  acme::Renewer renewer(options(), nullptr, publisher_);
  ::testing::internal::CaptureStderr();
  renewer.start();
  // The renewal thread tries at once (both are due); wait for both verdicts (a stop would
  // cancel a request under way, and a cancelled attempt is no failure).
  const auto failures = [&renewer] {
    const std::string status = renewer.status();
    std::size_t count = 0;
    for (std::size_t at = status.find("failed at"); at != std::string::npos;
         at = status.find("failed at", at + 1))
      ++count;
    return count;
  };
  for (int i = 0; i < 1000 && failures() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  renewer.stop();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("level=error event=acme_failed key=ecdsa step=directory"), std::string::npos)
      << log;
  // The placeholder-less RSA key (no certificate) fails as a warning.
  EXPECT_NE(log.find("level=warning event=acme_failed key=rsa"), std::string::npos) << log;
  EXPECT_NE(renewer.status().find("last=\"failed at directory: "), std::string::npos);
  EXPECT_EQ(acme::read_file(dir_ + "/ecdsa.crt").value(), before);
}

}  // namespace
