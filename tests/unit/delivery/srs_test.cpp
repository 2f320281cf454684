// srs_test.cpp — delivery::Srs against addresses postsrsd 1.10 (Debian's, libsrs2's code)
// wrote and read back on one day (unix time 1796460991, stamp "JY") with the secrets
// "tops3cret" (first) and "old-secret", domain srs.example.net: forward SRS0 and SRS1,
// reverse with either secret, the hash in any case, the 21-day window, and refusals.
#include "delivery/srs.h"

#include <gtest/gtest.h>

namespace delivery {
namespace {

constexpr std::int64_t kNow = 1796460991;  // day 20792; 20792 % 1024 = 312 = "JY"
constexpr std::int64_t kDay = 86400;

Srs oracle_srs() {
  return Srs(SrsOptions{"srs.example.net", {"tops3cret", "old-secret"}, 21, 4});
}

TEST(SrsTest, TimestampIsTheDayModulo1024InBase32) {
  EXPECT_EQ(srs_timestamp(kNow), "JY");
  EXPECT_EQ(srs_timestamp(0), "AA");
  EXPECT_EQ(srs_timestamp(1023 * kDay), "77");
  EXPECT_EQ(srs_timestamp(1024 * kDay), "AA");
}

TEST(SrsTest, ForwardWritesWhatPostsrsdWrites) {
  Srs srs = oracle_srs();
  EXPECT_EQ(srs.forward("alice@origin.example", kNow),
            "SRS0=/Dmn=JY=origin.example=alice@srs.example.net");
  // The hash is over lower-cased data; the address keeps its spelling.
  EXPECT_EQ(srs.forward("Alice.Smith@Origin.Example", kNow),
            "SRS0=3oG7=JY=Origin.Example=Alice.Smith@srs.example.net");
}

TEST(SrsTest, ForwardingAnotherForwardersAddressGivesSrs1) {
  Srs srs = oracle_srs();
  EXPECT_EQ(srs.forward("SRS0=abcd=ZZ=orig.example=bob@fwd.example", kNow),
            "SRS1=4f3/=fwd.example==abcd=ZZ=orig.example=bob@srs.example.net");
  // An SRS1 address keeps its first forwarder and SRS0 part, signed by us.
  EXPECT_EQ(srs.forward("SRS1=XyZw=fwd.example==abcd=ZZ=orig.example=bob@other.example", kNow),
            "SRS1=4f3/=fwd.example==abcd=ZZ=orig.example=bob@srs.example.net");
}

TEST(SrsTest, SendersThatOnlyLookLikeSrsGetAnSrs0ThatComesBack) {
  // Found by tests/fuzz/srs_fuzz.cpp: an "SRS1=" without its SRS0 part, or a bare "SRS0=",
  // became an SRS1 that reverse() could not read, so a bounce to it was refused.
  Srs srs = oracle_srs();
  for (const char* sender : {"SRS1=abcd=first.example=y@other.example", "SRS0=@other.example"}) {
    const std::string forwarded = srs.forward(sender, kNow);
    EXPECT_TRUE(forwarded.starts_with("SRS0=")) << forwarded;
    auto back = srs.reverse(forwarded, kNow);
    ASSERT_TRUE(back) << forwarded;
    EXPECT_EQ(back.value(), sender);
  }
}

TEST(SrsTest, ForwardLeavesNullSenderAndOurOwnDomainAlone) {
  Srs srs = oracle_srs();
  EXPECT_EQ(srs.forward("", kNow), "");
  EXPECT_EQ(srs.forward("postmaster", kNow), "postmaster");
  EXPECT_EQ(srs.forward("SRS0=/Dmn=JY=origin.example=alice@SRS.example.net", kNow),
            "SRS0=/Dmn=JY=origin.example=alice@SRS.example.net");
}

TEST(SrsTest, ReverseTurnsSrs0BackToTheSender) {
  Srs srs = oracle_srs();
  auto original = srs.reverse("SRS0=/Dmn=JY=origin.example=alice@srs.example.net", kNow);
  ASSERT_TRUE(original) << to_string(original.error());
  EXPECT_EQ(*original, "alice@origin.example");
  // A relay may fold case: hash, stamp and domain are compared without it.
  original = srs.reverse("srs0=/dmn=jy=origin.example=alice@SRS.Example.Net", kNow);
  ASSERT_TRUE(original);
  EXPECT_EQ(*original, "alice@origin.example");
}

TEST(SrsTest, ReverseAcceptsEverySecretAndRoundTrips) {
  Srs srs = oracle_srs();
  // Signed with the second secret (postsrsd accepted it).
  auto original = srs.reverse("SRS0=CnFR=JY=origin.example=alice@srs.example.net", kNow);
  ASSERT_TRUE(original);
  EXPECT_EQ(*original, "alice@origin.example");
  for (std::string sender : {"a@b.example", "Weird=Local+x@Sub.Example.ORG", "x-y@z.example"}) {
    auto back = srs.reverse(srs.forward(sender, kNow), kNow + 3 * kDay);
    ASSERT_TRUE(back) << sender;
    EXPECT_EQ(*back, sender);
  }
}

TEST(SrsTest, ReverseOfSrs1GivesTheFirstForwardersAddress) {
  Srs srs = oracle_srs();
  auto first = srs.reverse("SRS1=4f3/=fwd.example==abcd=ZZ=orig.example=bob@srs.example.net", kNow);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, "SRS0=abcd=ZZ=orig.example=bob@fwd.example");
}

TEST(SrsTest, ReverseRefusesAForgedOrAlteredHash) {
  Srs srs = oracle_srs();
  // The hash postsrsd refused ("Hash invalid in SRS address").
  auto bad = srs.reverse("SRS0=/Dmx=JY=origin.example=alice@srs.example.net", kNow);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), SrsError::kBadHash);
  // The right hash for another sender.
  bad = srs.reverse("SRS0=/Dmn=JY=origin.example=mallory@srs.example.net", kNow);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), SrsError::kBadHash);
  // A secret we do not hold any more.
  Srs rotated(SrsOptions{"srs.example.net", {"new-secret"}, 21, 4});
  bad = rotated.reverse("SRS0=/Dmn=JY=origin.example=alice@srs.example.net", kNow);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), SrsError::kBadHash);
}

TEST(SrsTest, ReverseHonoursTheValidityWindow) {
  Srs srs = oracle_srs();
  // postsrsd: 21 days old accepted, 22 "Time stamp out of date".
  auto original = srs.reverse("SRS0=of00=JD=origin.example=alice@srs.example.net", kNow);
  ASSERT_TRUE(original);
  auto expired = srs.reverse("SRS0=eWa5=JC=origin.example=alice@srs.example.net", kNow);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error(), SrsError::kExpired);
  // A stamp from the future (beyond the window modulo 1024) is refused too.
  const std::string tomorrow = srs.forward("a@b.example", kNow + 2 * kDay);
  EXPECT_FALSE(srs.reverse(tomorrow, kNow));
}

TEST(SrsTest, ReverseSaysWhatIsNotSrsOrMalformed) {
  Srs srs = oracle_srs();
  EXPECT_EQ(srs.reverse("alice@srs.example.net", kNow).error(), SrsError::kNotSrs);
  EXPECT_EQ(srs.reverse("SRS0=/Dmn=JY=origin.example=alice@elsewhere.example", kNow).error(),
            SrsError::kNotSrs);
  EXPECT_EQ(srs.reverse("SRS0=/Dmn=JY=origin.example@srs.example.net", kNow).error(),
            SrsError::kMalformed);
  EXPECT_EQ(srs.reverse("SRS0=/Dmn=J1=origin.example=alice@srs.example.net", kNow).error(),
            SrsError::kMalformed);
  EXPECT_EQ(srs.reverse("SRS0=/Dmn=JY==alice@srs.example.net", kNow).error(), SrsError::kMalformed);
  EXPECT_EQ(srs.reverse("SRS1=4f3/=fwd.example@srs.example.net", kNow).error(),
            SrsError::kMalformed);
  EXPECT_EQ(srs.reverse("SRS0=@srs.example.net", kNow).error(), SrsError::kMalformed);
}

}  // namespace
}  // namespace delivery
