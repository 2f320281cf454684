// Tests for acme/renewal.cpp: when each certificate is due (two thirds of its lifetime, or
// renew_before ahead of its end; a placeholder at once), what `smtpsctl cert status` shows,
// and a failure logged as an error once less than a sixth of the lifetime is left.
#include "acme/renewal.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/file_write.h"
#include "support/base64url.h"
#include "tls/spki_digest.h"

namespace {

class NoPublisher : public acme::ChallengePublisher {
 public:
  base::Expected<base::Ok, std::string> publish(const std::string&, const std::string&) override {
    return base::Ok{};
  }
  void withdraw(const std::string&) override {}
};

// RFC 9773 §4.1's example: this keyIdentifier and serial number give this identifier.
constexpr unsigned char kExampleKeyId[] = {0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40,
                                           0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
                                           0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
constexpr const char* kExampleId = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

// A certificate for key, issued by a separate test CA (so not self-signed), valid from
// now + start_days to now + end_days, with the example's serial and authority key id.
std::string issued_chain(EVP_PKEY* key, long start_days, long end_days,
                         const char* names = "DNS:mx.example.org") {
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
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, names);
  X509_add_ext(certificate.get(), san, -1);
  X509_EXTENSION_free(san);
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
  std::string directory_retry_after;  // set: the directory fails with 503 and this
  std::vector<std::string> asked;
  base::Expected<acme::HttpResponse, std::string> request(std::string_view method,
                                                          const std::string& url,
                                                          std::string_view) override {
    asked.push_back(std::string(method) + " " + url);
    acme::HttpResponse r;
    r.status = 200;
    r.replay_nonce = "n";
    if (url == "https://ca/dir" && !directory_retry_after.empty()) {
      r.status = 503;
      r.retry_after = directory_retry_after;
      r.body = R"({"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down"})";
    } else if (url == "https://ca/dir") {
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
  std::int64_t write_ecdsa(long start_days, long end_days,
                           const char* names = "DNS:mx.example.org") {
    const std::string chain = issued_chain(key_.get(), start_days, end_days, names);
    EXPECT_TRUE(base::write_file_atomically(dir_ + "/ecdsa.crt", chain, 0644));
    auto info = acme::inspect_chain(chain, key_.get());
    not_before_ = info->not_before;
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
  std::int64_t not_before_ = 0;
  std::int64_t not_after_ = 0;
  NoPublisher publisher_;
  // The next attempt of the ECDSA key, as `smtpsctl cert status` says it.
  static std::string next_attempt(const std::string& status) {
    const std::size_t at = status.find("ecdsa:");
    const std::size_t next = status.find("next_attempt=", at);
    return next == std::string::npos ? "" : status.substr(next + 13, 20);
  }
};

// <data_dir>/acme replaced by a link (to /etc, say): nothing is made or changed there.
TEST_F(RenewalTest, PrepareRefusesALinkInPlaceOfTheDirectory) {
  const std::string target = dir_ + "/elsewhere";
  std::filesystem::create_directories(target);
  ::chmod(target.c_str(), 0755);
  std::filesystem::create_directory_symlink(target, dir_ + "/acme");
  auto prepared = acme::prepare_files(dir_ + "/acme", {"mx.example.org"});
  ASSERT_FALSE(prepared.has_value());
  EXPECT_NE(prepared.error().find("is a symbolic link"), std::string::npos) << prepared.error();
  struct stat info {};
  ASSERT_EQ(::stat(target.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0755u);
  EXPECT_TRUE(std::filesystem::is_empty(target));
}

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

// A renew_before as long as the certificate (30 days for a 6-day one) would make every new
// certificate due at once: back-to-back orders until the CA's rate limit. Half the lifetime
// is the earliest.
TEST_F(RenewalTest, RenewBeforeLongerThanTheLifetimeWaitsForHalfOfIt) {
  write_ecdsa(-1, 5);
  acme::RenewalOptions o = options();
  o.renew_before = std::chrono::hours(24 * 30);
  acme::Renewer renewer(o, nullptr, publisher_);
  EXPECT_EQ(next_attempt(renewer.status()), when(not_before_ + 3 * 86400)) << renewer.status();
  acme::ChainInfo info;
  info.not_before = 0;
  info.not_after = 6 * 86400;
  EXPECT_EQ(acme::due_by_lifetime(info, std::chrono::hours(24 * 30)), 3 * 86400);
  EXPECT_EQ(acme::due_by_lifetime(info, std::chrono::hours(24)), 5 * 86400);
  EXPECT_EQ(acme::due_by_lifetime(info, std::nullopt), 4 * 86400);
  // Saturating: an absurd renew_before is still half the lifetime.
  EXPECT_EQ(acme::due_by_lifetime(info, std::chrono::seconds(INT64_MAX)), 3 * 86400);
}

// A name added to [acme] names is not in the certificate: due now, not at the next renewal.
TEST_F(RenewalTest, ANameNotInTheCertificateMakesItDueNow) {
  write_ecdsa(-10, 80);
  acme::RenewalOptions o = options();
  o.names = {"mx.example.org", "mail.example.org"};
  const std::int64_t before = base::unix_now();
  acme::Renewer renewer(o, nullptr, publisher_);
  const std::string next = next_attempt(renewer.status());
  EXPECT_GE(next, when(before)) << renewer.status();
  EXPECT_LE(next, when(base::unix_now())) << renewer.status();
  // The same names in another order and case: not due.
  write_ecdsa(-10, 80, "DNS:MX.example.org,DNS:mail.example.org");
  o.names = {"mail.example.org", "mx.example.org"};
  acme::Renewer same(o, nullptr, publisher_);
  EXPECT_EQ(next_attempt(same.status()), when(not_before_ + (not_after_ - not_before_) * 2 / 3))
      << same.status();
}

// A CA's Retry-After of 2^63 / 1000 seconds: bounded to a day, not an overflow into a due
// time in the past (a tight loop) or the far future (no renewal ever).
TEST_F(RenewalTest, AHugeRetryAfterIsBoundedToADay) {
  write_ecdsa(-80, 10);
  auto ca = std::make_shared<WindowCa>();
  ca->retry_after = "9223372036854775";
  ca->directory_retry_after = "9223372036854775";
  acme::RenewalOptions o = options();
  o.client.directory_url = "https://ca/dir";
  o.transport = ca;
  o.retry_min = std::chrono::milliseconds(10);
  o.retry_max = std::chrono::milliseconds(20);
  acme::Renewer renewer(o, nullptr, publisher_);
  ::testing::internal::CaptureStderr();
  const std::int64_t before = base::unix_now();
  renewer.start();
  for (int i = 0; i < 1000 && renewer.status().find("retry at") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  renewer.stop();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("event=acme_failed key=ecdsa step=directory"), std::string::npos) << log;
  EXPECT_NE(log.find("retry_in_ms=86400000"), std::string::npos) << log;
  const std::string next = next_attempt(renewer.status());
  EXPECT_GE(next, when(before + 86400)) << renewer.status();
  EXPECT_LE(next, when(base::unix_now() + 86400)) << renewer.status();
  EXPECT_EQ(acme::parse_retry_after("9223372036854775", 0), acme::kRetryAfterLimit);
  EXPECT_EQ(acme::parse_retry_after("99999999999999999999999", 0), acme::kRetryAfterLimit);
}

// The CA's window is not trusted blindly: one after the certificate's end leaves the
// lifetime's rule in charge; one that ends late is cut at a sixth of the lifetime before it.
TEST_F(RenewalTest, AWindowPastTheEndIsNotTrusted) {
  const std::int64_t due = write_ecdsa(-10, 80);
  const std::int64_t now = base::unix_now();
  auto ca = std::make_shared<WindowCa>();
  ca->window_body = R"({"suggestedWindow":{"start":")" + when(now + 100 * 86400) + R"(","end":")" +
                    when(now + 400 * 86400) + R"("}})";
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
  EXPECT_EQ(next_attempt(renewer.status()), when(due)) << renewer.status() << log;
}

TEST_F(RenewalTest, AWindowThatEndsLateIsCut) {
  write_ecdsa(-10, 80);
  const std::int64_t now = base::unix_now();
  auto ca = std::make_shared<WindowCa>();
  // From day 60 to day 100 of a certificate that ends on day 80: only days 60 to 65 are left
  // (a sixth of its 90 days before the end).
  ca->window_body = R"({"suggestedWindow":{"start":")" + when(now + 60 * 86400) + R"(","end":")" +
                    when(now + 100 * 86400) + R"("}})";
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
  const std::string next = next_attempt(renewer.status());
  EXPECT_GE(next, when(now + 60 * 86400)) << renewer.status() << log;
  EXPECT_LE(next, when(not_after_ - 15 * 86400)) << renewer.status() << log;
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

// A CA that revokes (or refuses to: revoke_status) and then cannot issue (503 on newOrder).
// The status line of one key once it holds text (or after 10 s).
std::string wait_for_status(acme::Renewer& renewer, const std::string& key,
                            const std::string& text) {
  std::string line;
  for (int i = 0; i < 1000; ++i) {
    const std::string status = renewer.status();
    const std::size_t at = status.find("\n" + key + ": ");
    line = at == std::string::npos ? "" : status.substr(at + 1, status.find('\n', at + 1) - at);
    if (line.find(text) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return line;
}

class RevokingCa : public acme::HttpTransport {
 public:
  long revoke_status = 200;
  std::vector<std::string> asked;
  std::string revoke_payload;
  base::Expected<acme::HttpResponse, std::string> request(std::string_view method,
                                                          const std::string& url,
                                                          std::string_view body) override {
    asked.push_back(std::string(method) + " " + url);
    acme::HttpResponse r;
    r.status = 200;
    r.replay_nonce = "n";
    if (url == "https://ca/dir") {
      r.body = R"({"newNonce":"https://ca/nonce","newAccount":"https://ca/acct",
                   "newOrder":"https://ca/order","revokeCert":"https://ca/revoke"})";
    } else if (url == "https://ca/acct") {
      r.status = 201;
      r.location = "https://ca/acct/1";
      r.body = R"({"status":"valid"})";
    } else if (url == "https://ca/revoke") {
      revoke_payload = std::string(body);
      r.status = revoke_status;
      if (r.status != 200)
        r.body = R"({"type":"urn:ietf:params:acme:error:alreadyRevoked","detail":"already"})";
    } else if (url != "https://ca/nonce") {
      r.status = 503;
    }
    return r;
  }
};

// smtpsctl cert revoke: the CA revokes, then a NEW key replaces the old one (with a placeholder
// until its certificate comes) and the log gives the TLSA record to publish; a refusal by the
// CA changes nothing.
TEST_F(RenewalTest, ARevocationReplacesTheKeyAndARefusalChangesNothing) {
  write_ecdsa(-10, 80);
  const std::string chain_before = acme::read_file(dir_ + "/ecdsa.crt").value();
  const std::string key_before = acme::read_file(dir_ + "/ecdsa.key").value();
  const std::string spki_before = tls::spki_sha256_hex(key_.get());
  auto ca = std::make_shared<RevokingCa>();
  ca->revoke_status = 400;
  acme::RenewalOptions o = options();
  o.client.directory_url = "https://ca/dir";
  o.transport = ca;
  {
    ::testing::internal::CaptureStderr();
    acme::Renewer renewer(o, nullptr, publisher_);
    renewer.start();
    // The RSA key (no certificate) is due at once and fails (503); then the ECDSA revocation.
    wait_for_status(renewer, "rsa", "failed at order");
    renewer.revoke_now(acme::KeyType::kEcdsaP256, 1);
    const std::string status = wait_for_status(renewer, "ecdsa", "revocation failed");
    renewer.stop();
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(status.find("last=\"revocation failed at revoke: HTTP 400 alreadyRevoked"),
              std::string::npos)
        << status;
    EXPECT_NE(log.find("level=warning event=acme_revoke_failed key=ecdsa step=revoke"),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("acme_key_replaced"), std::string::npos) << log;
    EXPECT_EQ(acme::read_file(dir_ + "/ecdsa.crt").value(), chain_before);
    EXPECT_EQ(acme::read_file(dir_ + "/ecdsa.key").value(), key_before);
  }
  ca->revoke_status = 200;
  ::testing::internal::CaptureStderr();
  acme::Renewer renewer(o, nullptr, publisher_);
  renewer.start();
  // Revoked, the new key's certificate ordered at once (the order fails here: 503).
  wait_for_status(renewer, "rsa", "failed at order");
  renewer.revoke_now(acme::KeyType::kEcdsaP256, 1);
  const std::string status = wait_for_status(renewer, "ecdsa", "failed at order");
  renewer.stop();
  const std::string log = ::testing::internal::GetCapturedStderr();
  // §7.6: the leaf's DER and the reason, signed by the account (kid, not the JWK).
  auto jws = acme::parse_json(ca->revoke_payload);
  ASSERT_TRUE(jws.has_value());
  const std::string header = test_support::decode_base64url(jws->string_at("protected"));
  EXPECT_NE(header.find(R"("kid":"https://ca/acct/1")"), std::string::npos) << header;
  const std::string payload = test_support::decode_base64url(jws->string_at("payload"));
  EXPECT_NE(payload.find(R"(,"reason":1})"), std::string::npos) << payload;
  EXPECT_NE(log.find("level=warning event=acme_revoked key=ecdsa serial=87654321 reason=1"),
            std::string::npos)
      << log;
  auto key_after = acme::load_or_create_key(dir_ + "/ecdsa.key", acme::KeyType::kEcdsaP256);
  ASSERT_TRUE(key_after.has_value());
  const std::string spki_after = tls::spki_sha256_hex(key_after->get());
  EXPECT_NE(spki_after, spki_before);
  EXPECT_NE(
      log.find("level=warning event=acme_key_replaced key=ecdsa tlsa=\"3 1 1 " + spki_after + "\""),
      std::string::npos)
      << log;
  // The placeholder belongs to the new key; the next attempt orders for it.
  auto placeholder =
      acme::inspect_chain(acme::read_file(dir_ + "/ecdsa.crt").value(), key_after->get());
  ASSERT_TRUE(placeholder.has_value()) << placeholder.error();
  EXPECT_TRUE(placeholder->self_signed);
  EXPECT_NE(log.find("event=acme_failed key=ecdsa step=order"), std::string::npos) << log;
  EXPECT_NE(status.find("ecdsa: placeholder"), std::string::npos) << status;
  struct stat info {};
  ASSERT_EQ(::stat((dir_ + "/ecdsa.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

}  // namespace

namespace {

// A DNS whose answers the test sets: (name, type) to an answer; anything else NXDOMAIN.
class ScriptedDns : public dns::Resolver {
 public:
  explicit ScriptedDns(bool validating = true) : validating_(validating) {}
  void set(const std::string& name, dns::Type type, dns::Answer answer) {
    std::lock_guard lock(mutex_);
    answers_[name + "/" + std::string(dns::to_string(type))] =
        std::make_shared<dns::Answer>(std::move(answer));
  }
  void lookup(std::string_view name, dns::Type type, Callback callback) override {
    dns::AnswerPtr answer;
    {
      std::lock_guard lock(mutex_);
      asked_.push_back(std::string(name) + "/" + std::string(dns::to_string(type)));
      auto it = answers_.find(std::string(name) + "/" + std::string(dns::to_string(type)));
      if (it != answers_.end()) answer = it->second;
    }
    if (!answer) {
      auto nx = std::make_shared<dns::Answer>();
      nx->status = dns::Status::kNxDomain;
      answer = nx;
    }
    callback(answer);
  }
  bool validates() const override { return validating_; }
  std::string describe() const override { return "scripted"; }

 private:
  bool validating_;
  std::mutex mutex_;
  std::map<std::string, dns::AnswerPtr> answers_;
  std::vector<std::string> asked_;
};

dns::Answer tlsa_answer(const std::vector<std::string>& digests, long ttl, bool secure = true) {
  dns::Answer answer;
  answer.status = dns::Status::kOk;
  answer.secure = secure;
  answer.ttl = std::chrono::seconds(ttl);
  for (const std::string& digest : digests)
    answer.tlsa.push_back(dns::TlsaRecord{3, 1, 1, digest});
  return answer;
}

dns::Answer records(dns::Status status, std::vector<std::string> names = {},
                    std::vector<std::string> addresses = {}) {
  dns::Answer answer;
  answer.status = status;
  answer.secure = true;
  answer.names = std::move(names);
  answer.addresses = std::move(addresses);
  return answer;
}

}  // namespace

// smtpsctl cert rollover: a next key is staged and its record logged; the key does not change
// while our resolver lacks the record, nor while one authoritative nameserver lacks it; once
// every one serves it, the switch waits twice the TTL, then orders for the NEXT key (the
// scripted CA refuses the order: the pair in service stays, the next key stays staged).
TEST_F(RenewalTest, AKeyRolloverWaitsForEveryNameserverAndTwiceTheTtl) {
  write_ecdsa(-10, 80);
  const std::string key_before = acme::read_file(dir_ + "/ecdsa.key").value();
  const std::string chain_before = acme::read_file(dir_ + "/ecdsa.crt").value();
  const std::string current = tls::spki_sha256(key_.get());
  const std::string owner = "_25._tcp.mx.example.org";
  auto dns = std::make_shared<ScriptedDns>();
  dns->set(owner, dns::Type::kTlsa, tlsa_answer({current}, 300));
  dns->set("_tcp.mx.example.org", dns::Type::kNs, records(dns::Status::kNxDomain));
  dns->set("mx.example.org", dns::Type::kNs, records(dns::Status::kNoData));
  dns->set("example.org", dns::Type::kNs,
           records(dns::Status::kOk, {"ns1.example.org", "ns2.example.org"}));
  dns->set("ns1.example.org", dns::Type::kA, records(dns::Status::kOk, {}, {"192.0.2.1"}));
  dns->set("ns2.example.org", dns::Type::kA, records(dns::Status::kOk, {}, {"192.0.2.2"}));
  dns->set("ns2.example.org", dns::Type::kAaaa, records(dns::Status::kOk, {}, {"2001:db8::2"}));
  std::map<std::string, std::shared_ptr<ScriptedDns>> servers;
  for (const char* ip : {"192.0.2.1", "192.0.2.2", "2001:db8::2"})
    servers[ip] = std::make_shared<ScriptedDns>(false);
  std::mutex servers_mutex;
  std::vector<std::string> asked_servers;
  auto ca = std::make_shared<RevokingCa>();
  acme::RenewalOptions o = options();
  o.client.directory_url = "https://ca/dir";
  o.transport = ca;
  o.retry_min = std::chrono::milliseconds(50);
  o.authoritative = [&](const std::string& ip) -> std::shared_ptr<dns::Resolver> {
    std::lock_guard lock(servers_mutex);
    asked_servers.push_back(ip);
    return servers.at(ip);
  };
  ::testing::internal::CaptureStderr();
  acme::Renewer renewer(o, dns, publisher_);
  renewer.start();
  renewer.rollover_now(acme::KeyType::kEcdsaP256, false);
  std::string status = wait_for_status(renewer, "ecdsa", "not published yet");
  EXPECT_NE(status.find("rollover=\"waiting: " + owner +
                        " TLSA: the next key's record is not published yet (resolver)\""),
            std::string::npos)
      << status;
  auto next = acme::load_or_create_key(dir_ + "/ecdsa.next.key", acme::KeyType::kEcdsaP256);
  ASSERT_TRUE(next.has_value());
  const std::string next_digest = tls::spki_sha256(next->get());
  EXPECT_NE(status.find("next_key=\"3 1 1 " + tls::spki_sha256_hex(next->get()) + "\""),
            std::string::npos)
      << status;
  struct stat info {};
  ASSERT_EQ(::stat((dir_ + "/ecdsa.next.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  // Our resolver has it; ns1 too, ns2 (by either address) not yet.
  dns->set(owner, dns::Type::kTlsa, tlsa_answer({current, next_digest}, 250));
  servers["192.0.2.1"]->set(owner, dns::Type::kTlsa, tlsa_answer({current, next_digest}, 1));
  servers["192.0.2.2"]->set(owner, dns::Type::kTlsa, tlsa_answer({current}, 1));
  auto timeout = records(dns::Status::kTemporary);
  timeout.detail = "timed out";
  servers["2001:db8::2"]->set(owner, dns::Type::kTlsa, timeout);
  status = wait_for_status(renewer, "ecdsa", "ns2.example.org");
  EXPECT_NE(status.find("nameserver ns2.example.org (192.0.2.2) does not serve the next key's "
                        "record yet"),
            std::string::npos)
      << status;
  EXPECT_EQ(acme::read_file(dir_ + "/ecdsa.key").value(), key_before);

  // ns2 serves it at one address (the other does not answer): visible; the TTL is the
  // largest seen (our resolver's 250 s here would hold the switch four minutes: the test
  // uses 1 s everywhere).
  dns->set(owner, dns::Type::kTlsa, tlsa_answer({current, next_digest}, 1));
  servers["192.0.2.2"]->set(owner, dns::Type::kTlsa, tlsa_answer({next_digest, current}, 1));
  const auto visible = std::chrono::steady_clock::now();
  status = wait_for_status(renewer, "ecdsa", "switch failed");
  const auto switched = std::chrono::steady_clock::now();
  renewer.stop();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(status.find("switch failed"), std::string::npos) << status;
  EXPECT_NE(log.find("level=warning event=acme_key_staged key=ecdsa tlsa=\"3 1 1 " +
                     tls::spki_sha256_hex(next->get()) + "\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("event=acme_key_rollover key=ecdsa step=visible ttl=1 switch_at="),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("event=acme_key_rollover key=ecdsa step=switching reason=\"the record has "
                     "been visible for twice its TTL\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("event=acme_order key=ecdsa names=mx.example.org key_file=" + dir_ +
                     "/ecdsa.next.key"),
            std::string::npos)
      << log;
  EXPECT_GE(switched - visible, std::chrono::milliseconds(1900));
  // The order failed: the pair in service and the staged key stay.
  EXPECT_EQ(acme::read_file(dir_ + "/ecdsa.key").value(), key_before);
  EXPECT_EQ(acme::read_file(dir_ + "/ecdsa.crt").value(), chain_before);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/ecdsa.next.key"));
  std::lock_guard lock(servers_mutex);
  EXPECT_NE(std::find(asked_servers.begin(), asked_servers.end(), "2001:db8::2"),
            asked_servers.end());
}

// Without a DNSSEC-signed TLSA record for the name (none at all, or an unsigned one) DANE binds
// nothing: the key changes at the next round. A resolver that does not validate cannot tell,
// so the change waits (for --force).
TEST_F(RenewalTest, WithoutASignedTlsaRecordTheKeyChangesAtOnceUnlessNobodyCanTell) {
  write_ecdsa(-10, 80);
  const std::string owner = "_25._tcp.mx.example.org";
  for (bool validating : {true, false}) {
    std::filesystem::remove(dir_ + "/ecdsa.next.key");
    auto dns = std::make_shared<ScriptedDns>(validating);
    dns->set(owner, dns::Type::kTlsa,
             tlsa_answer({tls::spki_sha256(key_.get())}, 300, /*secure=*/false));
    acme::RenewalOptions o = options();
    o.client.directory_url = "https://ca/dir";
    o.transport = std::make_shared<RevokingCa>();
    o.retry_min = std::chrono::milliseconds(50);
    o.authoritative = [](const std::string&) { return nullptr; };
    ::testing::internal::CaptureStderr();
    acme::Renewer renewer(o, dns, publisher_);
    renewer.start();
    renewer.rollover_now(acme::KeyType::kEcdsaP256, false);
    const std::string status =
        wait_for_status(renewer, "ecdsa", validating ? "switch failed" : "does not validate");
    renewer.stop();
    const std::string log = ::testing::internal::GetCapturedStderr();
    if (validating) {
      EXPECT_NE(log.find("step=switching reason=\"no name has a DNSSEC-signed TLSA record\""),
                std::string::npos)
          << log;
    } else {
      EXPECT_NE(status.find("the resolver does not validate DNSSEC"), std::string::npos) << status;
      EXPECT_EQ(log.find("step=switching"), std::string::npos) << log;
    }
  }
}
