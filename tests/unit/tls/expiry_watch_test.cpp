// expiry_watch_test.cpp — tls::ExpiryWatch: warnings at 30, 14, 7, 3 and 1 days, once each,
// the nearest only; expired once a day; a renewed certificate starts afresh.
#include "tls/expiry_watch.h"

#include <gtest/gtest.h>

namespace tls {
namespace {

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kNow = 1'800'000'000;

CertificateDetails certificate(std::int64_t not_after, const std::string& fingerprint = "aa") {
  CertificateDetails details;
  details.file = "/etc/smtpsd/cert.pem";
  details.subject_names = {"mail.example.com"};
  details.not_after = not_after;
  details.fingerprint = fingerprint;
  return details;
}

TEST(ExpiryWatch, FarFromExpiryNothing) {
  ExpiryWatch watch;
  EXPECT_TRUE(watch.check({certificate(kNow + 31 * kDay)}, kNow).empty());
}

TEST(ExpiryWatch, NearestThresholdOnlyAndOnce) {
  ExpiryWatch watch;
  const CertificateDetails five_days = certificate(kNow + 5 * kDay + 60);
  auto notices = watch.check({five_days}, kNow);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].threshold_days, 7);
  EXPECT_EQ(notices[0].days_left, 5);
  EXPECT_FALSE(notices[0].expired);
  EXPECT_TRUE(watch.check({five_days}, kNow + 3600).empty());  // hourly check: said already
  // Crossing 3 days, then 1 day: one notice each.
  notices = watch.check({five_days}, kNow + 2 * kDay + 120);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].threshold_days, 3);
  EXPECT_EQ(notices[0].days_left, 2);
  EXPECT_TRUE(watch.check({five_days}, kNow + 3 * kDay).empty());
  notices = watch.check({five_days}, kNow + 4 * kDay + 120);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].threshold_days, 1);
  EXPECT_EQ(notices[0].days_left, 0);
}

TEST(ExpiryWatch, EveryThreshold) {
  ExpiryWatch watch;
  const CertificateDetails c = certificate(kNow + 40 * kDay);
  std::vector<int> seen;
  for (std::int64_t t = kNow; t < c.not_after; t += 3600) {
    for (const ExpiryNotice& notice : watch.check({c}, t))
      seen.push_back(notice.threshold_days);
  }
  EXPECT_EQ(seen, (std::vector<int>{30, 14, 7, 3, 1}));
}

TEST(ExpiryWatch, ExpiredOnceADay) {
  ExpiryWatch watch;
  const CertificateDetails c = certificate(kNow - 10);
  auto notices = watch.check({c}, kNow);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_TRUE(notices[0].expired);
  EXPECT_EQ(notices[0].seconds_left, -10);
  EXPECT_EQ(notices[0].days_left, -1);
  EXPECT_TRUE(watch.check({c}, kNow + 3600).empty());
  EXPECT_EQ(watch.check({c}, kNow + kDay).size(), 1u);
}

TEST(ExpiryWatch, RenewedCertificateStartsAfresh) {
  ExpiryWatch watch;
  EXPECT_EQ(watch.check({certificate(kNow + 2 * kDay, "old")}, kNow).size(), 1u);
  // Renewed: far away, nothing; a later short one (another fingerprint) warns again.
  EXPECT_TRUE(watch.check({certificate(kNow + 90 * kDay, "new")}, kNow).empty());
  auto notices = watch.check({certificate(kNow + 2 * kDay, "third")}, kNow);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].threshold_days, 3);
}

}  // namespace
}  // namespace tls
