// mta_sts_test.cpp — MTA-STS discovery and its cache (delivery/mta_sts.h) with a fetcher and
// a clock of the test's own: when the TXT id changes, when the cache serves, when it expires,
// and that a failure or a vanished record leaves an unexpired policy in force (RFC 8461
// §3.3, §5.1).
#include "delivery/mta_sts.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace delivery {
namespace {

using namespace std::chrono_literals;

// TXT records by name, changed by the test between lookups.
class TxtZone : public dns::Resolver {
 public:
  void lookup(std::string_view name, dns::Type type, Callback callback) override {
    auto answer = std::make_shared<dns::Answer>();
    answer->status = dns::Status::kNxDomain;
    if (temporary) {
      answer->status = dns::Status::kTemporary;
      answer->detail = "timed out";
    } else if (auto found = texts.find(std::string(name));
               found != texts.end() && type == dns::Type::kTxt) {
      answer->status = dns::Status::kOk;
      answer->texts = found->second;
    }
    callback(answer);
  }
  bool validates() const override { return false; }
  std::string describe() const override { return "zone"; }

  std::map<std::string, std::vector<std::string>> texts;
  bool temporary = false;
};

constexpr const char* kPolicy =
    "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 1000\n";

class MtaStsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory = std::filesystem::temp_directory_path() /
                ("mta-sts-test-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(directory);
    zone = std::make_shared<TxtZone>();
    zone->texts["_mta-sts.example.org"] = {"v=STSv1; id=one"};
  }
  void TearDown() override { std::filesystem::remove_all(directory); }

  std::unique_ptr<MtaSts> make() {
    MtaStsOptions options;
    options.cache_directory = (directory / "mta-sts").string();
    std::filesystem::create_directories(directory);
    auto made = MtaSts::create(
        zone, options,
        [this](const std::string& domain, std::chrono::steady_clock::time_point) {
          ++fetches;
          last_domain = domain;
          return body;
        },
        [this] { return now; });
    EXPECT_TRUE(made) << made.error();
    return std::move(*made);
  }
  PolicyLookup lookup(MtaSts& sts, std::string_view domain = "example.org") {
    return sts.policy_for(domain, std::chrono::steady_clock::now() + 5s);
  }

  std::filesystem::path directory;
  std::shared_ptr<TxtZone> zone;
  base::Expected<std::string, StsFetchError> body = std::string(kPolicy);
  int fetches = 0;
  std::string last_domain;
  std::int64_t now = 1'700'000'000;
};

TEST_F(MtaStsTest, FetchesOnceThenServesFromTheCacheUntilHalfItsAge) {
  auto sts = make();
  PolicyLookup first = lookup(*sts, "Example.ORG.");
  ASSERT_EQ(first.source, PolicyLookup::Source::kFresh) << first.detail;
  EXPECT_EQ(last_domain, "example.org");
  EXPECT_EQ(first.policy.mode, StsMode::kEnforce);
  EXPECT_EQ(first.id, "one");
  EXPECT_EQ(first.expires_at, now + 1000);
  EXPECT_TRUE(matches(first.policy, "MX.example.org."));

  now += 499;
  body = base::unexpected(StsFetchError{StsFailure::kFetchError, "down"});
  PolicyLookup second = lookup(*sts);
  EXPECT_EQ(second.source, PolicyLookup::Source::kCache);
  EXPECT_EQ(second.failure, StsFailure::kNone);
  EXPECT_EQ(fetches, 1);

  // Past half its age, a refresh is tried; it fails, the cached policy stays in force.
  now += 2;
  PolicyLookup third = lookup(*sts);
  EXPECT_EQ(fetches, 2);
  EXPECT_EQ(third.source, PolicyLookup::Source::kCache);
  EXPECT_EQ(third.failure, StsFailure::kFetchError);
  EXPECT_EQ(third.detail, "down");
  EXPECT_EQ(third.expires_at, 1'700'000'000 + 1000);
}

TEST_F(MtaStsTest, TheDiskCacheServesANewInstanceAndIsPrivate) {
  lookup(*make());
  struct stat status {};
  ASSERT_EQ(::stat((directory / "mta-sts").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((directory / "mta-sts" / "example.org").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 0777, 0600u);
  auto again = make();  // a restart: nothing in memory
  PolicyLookup cached = lookup(*again);
  EXPECT_EQ(cached.source, PolicyLookup::Source::kCache);
  EXPECT_EQ(cached.id, "one");
  EXPECT_EQ(cached.policy.mx, std::vector<std::string>{"mx.example.org"});
  EXPECT_EQ(fetches, 1);
}

TEST_F(MtaStsTest, ANewIdFetchesAgain) {
  auto sts = make();
  lookup(*sts);
  zone->texts["_mta-sts.example.org"] = {"v=STSv1; id=two"};
  body = std::string("version: STSv1\nmode: testing\nmx: *.example.org\nmax_age: 50\n");
  PolicyLookup changed = lookup(*sts);
  EXPECT_EQ(fetches, 2);
  EXPECT_EQ(changed.source, PolicyLookup::Source::kFresh);
  EXPECT_EQ(changed.id, "two");
  EXPECT_EQ(changed.policy.mode, StsMode::kTesting);
}

TEST_F(MtaStsTest, AVanishedRecordOrDnsFailureKeepsTheCachedPolicyUntilItExpires) {
  auto sts = make();
  lookup(*sts);
  zone->texts.clear();
  EXPECT_EQ(lookup(*sts).source, PolicyLookup::Source::kCache);
  zone->temporary = true;
  EXPECT_EQ(lookup(*sts).source, PolicyLookup::Source::kCache);
  now += 1000;  // max_age has run out
  PolicyLookup expired = lookup(*sts);
  EXPECT_EQ(expired.source, PolicyLookup::Source::kNone);
  EXPECT_FALSE(std::filesystem::exists(directory / "mta-sts" / "example.org"));
  EXPECT_EQ(fetches, 1);
}

TEST_F(MtaStsTest, TheBackgroundRefreshFetchesOnlyPoliciesPastHalfTheirAge) {
  auto sts = make();
  zone->texts["_mta-sts.example.net"] = {"v=STSv1; id=n1"};
  lookup(*sts);  // example.org, max_age 1000, fetched at t0
  now += 300;
  lookup(*sts, "example.net");  // fetched at t0 + 300
  ASSERT_EQ(fetches, 2);
  // Nothing is half its age yet: no lookup at all.
  EXPECT_TRUE(sts->refresh_cache(5s).empty());
  EXPECT_EQ(fetches, 2);

  // example.org is (t0 + 600), example.net is not: only example.org is fetched, and a failure
  // keeps its policy, with its fetch time.
  now += 300;
  body = base::unexpected(StsFetchError{StsFailure::kFetchError, "down"});
  auto failed = sts->refresh_cache(5s);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].domain, "example.org");
  EXPECT_EQ(failed[0].lookup.failure, StsFailure::kFetchError);
  EXPECT_EQ(failed[0].lookup.source, PolicyLookup::Source::kCache);
  EXPECT_EQ(failed[0].lookup.fetched_at, 1'700'000'000);
  EXPECT_EQ(fetches, 3);
  EXPECT_EQ(last_domain, "example.org");

  // It comes back: fetched again, the new fetch time on disk for a new instance too.
  body = std::string(kPolicy);
  auto refreshed = sts->refresh_cache(5s);
  ASSERT_EQ(refreshed.size(), 1u);
  EXPECT_EQ(refreshed[0].lookup.source, PolicyLookup::Source::kFresh);
  EXPECT_EQ(refreshed[0].previous_fetched_at, 1'700'000'000);
  EXPECT_EQ(refreshed[0].lookup.fetched_at, now);
  EXPECT_EQ(make()->policy_for("example.org", std::chrono::steady_clock::now() + 5s).fetched_at,
            now);

  // Past their max_age (a refresh that never succeeded), policies are forgotten.
  zone->texts.clear();
  now += 1000;
  auto expired = sts->refresh_cache(5s);
  ASSERT_EQ(expired.size(), 2u);
  for (const auto& entry : expired) {
    EXPECT_EQ(entry.lookup.source, PolicyLookup::Source::kNone) << entry.domain;
    EXPECT_EQ(entry.lookup.detail, "expired");
  }
  EXPECT_FALSE(std::filesystem::exists(directory / "mta-sts" / "example.net"));
}

TEST_F(MtaStsTest, NoRecordOrTwoRecordsIsNoPolicyAndNoFetch) {
  auto sts = make();
  zone->texts["_mta-sts.example.org"] = {"v=STSv1; id=a", "v=STSv1; id=b"};
  PolicyLookup two = lookup(*sts);
  EXPECT_EQ(two.source, PolicyLookup::Source::kNone);
  EXPECT_EQ(two.detail, "_mta-sts.example.org TXT: 2 v=STSv1 records (exactly one is allowed)");
  EXPECT_EQ(lookup(*sts, "other.example").source, PolicyLookup::Source::kNone);
  EXPECT_EQ(lookup(*sts, "not a domain").detail, "not a domain name");
  EXPECT_EQ(fetches, 0);
}

TEST_F(MtaStsTest, AnInvalidPolicyIsAFailureAndNotCached) {
  auto sts = make();
  body = std::string("<html>hello</html>\n");
  PolicyLookup invalid = lookup(*sts);
  EXPECT_EQ(invalid.source, PolicyLookup::Source::kNone);
  EXPECT_EQ(invalid.failure, StsFailure::kInvalid);
  EXPECT_EQ(to_string(invalid.failure), "sts-policy-invalid");
  EXPECT_EQ(invalid.detail,
            "https://mta-sts.example.org/.well-known/mta-sts.txt: line 1: not a \"key: value\" "
            "line");
  EXPECT_FALSE(std::filesystem::exists(directory / "mta-sts" / "example.org"));
}

TEST_F(MtaStsTest, ADamagedCacheFileIsIgnored) {
  auto sts = make();
  {
    std::ofstream file(directory / "mta-sts" / "example.org");
    file << "smtpsd mta-sts cache 1\nid one\nfetched xyz\n\n" << kPolicy;
  }
  EXPECT_EQ(lookup(*sts).source, PolicyLookup::Source::kFresh);
  EXPECT_EQ(fetches, 1);
}

}  // namespace
}  // namespace delivery
