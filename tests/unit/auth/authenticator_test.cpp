// authenticator_test.cpp — auth::Authenticator driven like the host drives it, one AUTH
// exchange at a time with a clock the test moves: PLAIN success and failures (RFC 4954 §6:
// the same 535 5.7.8 for an unknown user and a wrong password), malformed 501 (counted),
// the bounded verification queue (454 4.7.0 when full), unknown
// mechanism 504, lockouts (454 4.7.0) of an address before the exchange and of a user even
// with the right password, the verified-password cache, EXTERNAL with and without a
// verified certificate, and a SCRAM-SHA-256 round trip (RFC 5802 §3). The log lines are
// read back from stderr: `auth_failed` is what fail2ban matches, byte for byte.
#include "auth/authenticator.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <filesystem>
#include <map>
#include <string>

#include "auth/crypto_primitives.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace auth {
namespace {

namespace fs = std::filesystem;
using Kind = Outcome::Kind;
using std::chrono::milliseconds;

constexpr std::string_view kAlicePassword = "correct horse";

std::string plain(std::string_view user, std::string_view password) {
  std::string out;
  out += '\0';
  out += user;
  out += '\0';
  out += password;
  return out;
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "smtpsd-authenticator-XXXXXX").string();
    directory_path_ = ::mkdtemp(pattern.data());
    UserStore store;
    ASSERT_TRUE(store.set_password("alice@example.org", kAlicePassword, test_argon2()));
    ASSERT_TRUE(store.set_password("bob@example.org", "battery staple", test_argon2()));
    ASSERT_TRUE(store.save(directory_path_ + "/users"));
    users_ = std::make_unique<UserDirectory>(directory_path_ + "/users");
    FailureLimiterOptions options;
    options.per_user_ip_max_failures = 3;
    options.per_ip_max_failures = 5;
    options.window = std::chrono::minutes(15);
    auto limiter = FailureLimiter::create(options);
    ASSERT_TRUE(limiter);
    limiter_ = std::move(limiter.value());
    cache_ = std::make_unique<VerifiedCache>(std::chrono::seconds(60));
    obs::set_output(nullptr);
    obs::set_format(obs::Format::kKeyValue);
    obs::set_min_level(obs::Level::kInfo);
    ::testing::internal::CaptureStderr();
    capturing_ = true;
  }
  void TearDown() override {
    if (capturing_) ::testing::internal::GetCapturedStderr();
    fs::remove_all(directory_path_);
  }

  // Everything logged since SetUp (call once).
  std::string logged() {
    capturing_ = false;
    return ::testing::internal::GetCapturedStderr();
  }

  std::unique_ptr<Authenticator> authenticator(std::string client = "192.0.2.7",
                                               ClientCertificate certificate = {},
                                               std::string exporter = {}) {
    return std::make_unique<Authenticator>(
        AuthServices{users_.get(), limiter_.get(), cache_.get()},
        AuthConnection{std::move(client), "s1", std::move(exporter), std::move(certificate)});
  }

  // What the host does with kVerifyPassword (there on the worker pool).
  Outcome verify(Authenticator& exchange, const Outcome& outcome) {
    ++verifications_;
    return exchange.password_verified(verify_password(outcome.check.user, outcome.check.password),
                                      now_);
  }

  // A whole PLAIN exchange with the initial response, verifying when asked.
  Outcome login(std::string_view user, std::string_view password,
                std::string client = "192.0.2.7") {
    auto exchange = authenticator(std::move(client));
    if (auto refused = exchange->start("PLAIN", now_)) return *refused;
    Outcome outcome = exchange->step(plain(user, password), true, now_);
    if (outcome.kind == Kind::kVerifyPassword) outcome = verify(*exchange, outcome);
    return outcome;
  }

  std::string directory_path_;
  std::unique_ptr<UserDirectory> users_;
  std::unique_ptr<FailureLimiter> limiter_;
  std::unique_ptr<VerifiedCache> cache_;
  FailureLimiter::TimePoint now_ = FailureLimiter::TimePoint{} + std::chrono::hours(1000);
  int verifications_ = 0;
  bool capturing_ = false;
};

void expect_reply(const Outcome& outcome, int code, std::string_view enhanced,
                  std::string_view text) {
  EXPECT_EQ(outcome.kind, Kind::kFailed);
  EXPECT_EQ(outcome.reply.code, code);
  EXPECT_EQ(outcome.reply.enhanced, enhanced);
  EXPECT_EQ(outcome.reply.text, text);
}

TEST_F(AuthenticatorTest, PlainSuccessVerifiesOnThePoolAndLogsAuth) {
  auto exchange = authenticator();
  EXPECT_FALSE(exchange->start("PLAIN", now_));
  Outcome outcome = exchange->step(plain("Alice@Example.org", kAlicePassword), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kVerifyPassword);
  ASSERT_NE(outcome.check.user, nullptr);
  EXPECT_EQ(outcome.check.user->address, "alice@example.org");
  EXPECT_EQ(outcome.check.password, kAlicePassword);
  outcome = verify(*exchange, outcome);
  ASSERT_EQ(outcome.kind, Kind::kSucceeded);
  EXPECT_EQ(outcome.user, "alice@example.org");  // the canonical name
  EXPECT_NE(logged().find(" level=info event=auth session=s1 client=192.0.2.7 "
                          "user=alice@example.org mechanism=PLAIN\n"),
            std::string::npos);
}

TEST_F(AuthenticatorTest, PlainWithoutInitialResponseGetsAnEmptyChallenge) {
  auto exchange = authenticator();
  EXPECT_FALSE(exchange->start("PLAIN", now_));
  Outcome outcome = exchange->step("", false, now_);
  ASSERT_EQ(outcome.kind, Kind::kChallenge);
  EXPECT_EQ(outcome.challenge, "");
  outcome = exchange->step(plain("alice@example.org", kAlicePassword), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kVerifyPassword);
  EXPECT_EQ(verify(*exchange, outcome).kind, Kind::kSucceeded);
}

TEST_F(AuthenticatorTest, WrongPasswordIs535AfterTheLimitersDelay) {
  Outcome first = login("alice@example.org", "wrong one");
  expect_reply(first, 535, "5.7.8", "Authentication credentials invalid");
  EXPECT_EQ(first.delay, milliseconds(0));
  Outcome second = login("alice@example.org", "wrong two");
  expect_reply(second, 535, "5.7.8", "Authentication credentials invalid");
  EXPECT_EQ(second.delay, milliseconds(1000));
  EXPECT_EQ(verifications_, 2);
  const std::string log = logged();
  const std::string line =
      " level=warning event=auth_failed session=s1 client=192.0.2.7 user=alice@example.org "
      "mechanism=PLAIN reason=\"invalid credentials\"\n";
  ASSERT_NE(log.find(line), std::string::npos) << log;
  EXPECT_NE(log.find(line, log.find(line) + 1), std::string::npos) << log;
  EXPECT_EQ(log.find("wrong"), std::string::npos) << "a password in the log: " << log;
}

TEST_F(AuthenticatorTest, UnknownUserGetsTheSame535AfterTheSameSteps) {
  // Twice each, from two addresses: the second failure of each is delayed alike.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto exchange = authenticator("192.0.2.7");
    EXPECT_FALSE(exchange->start("PLAIN", now_));
    Outcome outcome = exchange->step(plain("nobody@example.org", "whatever"), true, now_);
    ASSERT_EQ(outcome.kind, Kind::kVerifyPassword);  // the dummy hash is verified all the same
    EXPECT_EQ(outcome.check.user, nullptr);
    // verify_password(nullptr, …) is false after a default_argon2() check; skip its 100 ms.
    Outcome unknown = exchange->password_verified(false, now_);
    Outcome wrong = login("alice@example.org", "wrong", "198.51.100.9");
    expect_reply(unknown, 535, "5.7.8", "Authentication credentials invalid");
    expect_reply(wrong, 535, "5.7.8", "Authentication credentials invalid");
    EXPECT_EQ(unknown.delay, milliseconds(attempt == 0 ? 0 : 1000));
    EXPECT_EQ(unknown.delay, wrong.delay);
  }
  EXPECT_NE(logged().find(" event=auth_failed session=s1 client=192.0.2.7 "
                          "user=nobody@example.org mechanism=PLAIN "
                          "reason=\"invalid credentials\"\n"),
            std::string::npos);
}

// Garbage costs no argon2id; counted like a wrong password (for the address: no user name
// came through), it is delayed and then locked out, so a client cannot probe forever.
TEST_F(AuthenticatorTest, MalformedResponsesAre501AndCountedUntilTheAddressIsLockedOut) {
  std::vector<long long> delays;
  for (int i = 0; i < 5; ++i) {
    auto exchange = authenticator();
    ASSERT_FALSE(exchange->start("PLAIN", now_)) << i;
    Outcome outcome = exchange->step("alice@example.org", true, now_);  // no NULs
    expect_reply(outcome, 501, "5.5.2", "Malformed authentication response");
    delays.push_back(outcome.delay.count());
  }
  // The address bound (5 here) scaled to the pair's (3): the usual growing delay.
  EXPECT_EQ(delays, (std::vector<long long>{0, 1000, 1000, 2000, 2000}));
  auto refused = authenticator()->start("PLAIN", now_);
  ASSERT_TRUE(refused);
  expect_reply(*refused, 454, "4.7.0", "Too many authentication failures, try again later");
  EXPECT_EQ(login("bob@example.org", "battery staple", "198.51.100.1").kind, Kind::kSucceeded);
  EXPECT_NE(logged().find(" event=auth_failed session=s1 client=192.0.2.7 user=\"\" "
                          "mechanism=PLAIN "
                          "reason=\"PLAIN message needs exactly two NUL separators\"\n"),
            std::string::npos);
}

// The session refuses undecodable base64 itself (501 5.5.2) and tells the host, which
// counts it here: the same failure line, the same lockout.
TEST_F(AuthenticatorTest, UndecodableResponsesTheSessionRefusedAreCountedToo) {
  for (int i = 0; i < 5; ++i)
    authenticator()->malformed_response("LOGIN", now_);
  auto refused = authenticator()->start("PLAIN", now_);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->reply.code, 454);
  EXPECT_FALSE(authenticator("198.51.100.1")->start("PLAIN", now_));
  EXPECT_NE(logged().find(" level=warning event=auth_failed session=s1 client=192.0.2.7 "
                          "user=\"\" mechanism=LOGIN reason=\"undecodable response\"\n"),
            std::string::npos);
}

TEST_F(AuthenticatorTest, UnknownMechanismIs504WithoutALogLine) {
  auto cram = authenticator()->start("CRAM-MD5", now_);
  ASSERT_TRUE(cram);
  expect_reply(*cram, 504, "5.5.4", "Unrecognized authentication type");
  // -PLUS needs the tls-exporter value of the connection.
  auto plus = authenticator()->start("SCRAM-SHA-256-PLUS", now_);
  ASSERT_TRUE(plus);
  expect_reply(*plus, 504, "5.5.4", "Unrecognized authentication type");
  EXPECT_FALSE(
      authenticator("192.0.2.7", {}, std::string(32, 'x'))->start("SCRAM-SHA-256-PLUS", now_));
  EXPECT_EQ(logged().find("event=auth_failed"), std::string::npos);
}

TEST_F(AuthenticatorTest, LockedOutAddressGets454BeforeTheExchange) {
  for (int i = 0; i < 5; ++i) {  // five users from one address: the address bound
    auto exchange = authenticator();
    EXPECT_FALSE(exchange->start("PLAIN", now_));
    Outcome outcome =
        exchange->step(plain("guess" + std::to_string(i) + "@example.org", "x"), true, now_);
    ASSERT_EQ(outcome.kind, Kind::kVerifyPassword);
    expect_reply(exchange->password_verified(false, now_), 535, "5.7.8",
                 "Authentication credentials invalid");
  }
  auto refused = authenticator()->start("PLAIN", now_);
  ASSERT_TRUE(refused);
  expect_reply(*refused, 454, "4.7.0", "Too many authentication failures, try again later");
  EXPECT_EQ(refused->delay, milliseconds(0));
  // Another address is not concerned; the window passing lifts the lockout.
  EXPECT_EQ(login("bob@example.org", "battery staple", "198.51.100.1").kind, Kind::kSucceeded);
  now_ += std::chrono::minutes(16);
  EXPECT_EQ(login("bob@example.org", "battery staple").kind, Kind::kSucceeded);
  EXPECT_NE(logged().find(" level=warning event=auth_failed session=s1 client=192.0.2.7 "
                          "user=\"\" mechanism=PLAIN reason=\"locked out\"\n"),
            std::string::npos);
}

TEST_F(AuthenticatorTest, LockedOutUserGets454EvenWithTheRightPasswordAndNoCheck) {
  for (int i = 0; i < 3; ++i)
    expect_reply(login("alice@example.org", "wrong"), 535, "5.7.8",
                 "Authentication credentials invalid");
  const int before = verifications_;
  auto exchange = authenticator();
  EXPECT_FALSE(exchange->start("PLAIN", now_));  // the address as a whole is not locked
  Outcome outcome = exchange->step(plain("alice@example.org", kAlicePassword), true, now_);
  expect_reply(outcome, 454, "4.7.0", "Too many authentication failures, try again later");
  EXPECT_EQ(verifications_, before);  // refused before any argon2id
  EXPECT_EQ(login("bob@example.org", "battery staple").kind, Kind::kSucceeded);
  now_ += std::chrono::minutes(16);
  EXPECT_EQ(login("alice@example.org", kAlicePassword).kind, Kind::kSucceeded);
  EXPECT_NE(logged().find(" event=auth_failed session=s1 client=192.0.2.7 "
                          "user=alice@example.org mechanism=PLAIN reason=\"locked out\"\n"),
            std::string::npos);
}

std::uint64_t verifications_refused() {
  const std::string text = obs::metrics().render();
  const std::string name = "smtpsd_auth_verifications_refused_total ";
  std::size_t at = text.find("\n" + name);
  return at == std::string::npos ? 0 : std::stoull(text.substr(at + 1 + name.size()));
}

// The verification queue is bounded: with no place left the client gets 454 4.7.0 at once,
// no argon2id, no failure counted (the server's load is not the client's fault), and the
// line is `auth_busy`, not the `auth_failed` fail2ban bans for.
TEST_F(AuthenticatorTest, FullVerificationQueueIs454WithoutAPasswordCheck) {
  VerificationQueue queue(1);
  auto bounded = [&](std::string client) {
    return std::make_unique<Authenticator>(
        AuthServices{users_.get(), limiter_.get(), cache_.get(), &queue},
        AuthConnection{std::move(client), "s1", "", {}});
  };
  const std::uint64_t refused_before = verifications_refused();
  auto first = bounded("192.0.2.7");
  ASSERT_FALSE(first->start("PLAIN", now_));
  Outcome waiting = first->step(plain("alice@example.org", kAlicePassword), true, now_);
  ASSERT_EQ(waiting.kind, Kind::kVerifyPassword);
  EXPECT_EQ(queue.in_use(), 1u);
  for (int i = 0; i < 10; ++i) {  // more than any failure bound: none is counted
    auto second = bounded("198.51.100.1");
    ASSERT_FALSE(second->start("PLAIN", now_));
    Outcome busy = second->step(plain("bob@example.org", "battery staple"), true, now_);
    expect_reply(busy, 454, "4.7.0", "Temporary authentication failure");
  }
  EXPECT_EQ(verifications_refused(), refused_before + 10);
  EXPECT_EQ(verify(*first, waiting).kind, Kind::kSucceeded);
  EXPECT_EQ(queue.in_use(), 0u);  // the place is given back with the result
  auto third = bounded("198.51.100.1");
  ASSERT_FALSE(third->start("PLAIN", now_));
  Outcome outcome = third->step(plain("bob@example.org", "battery staple"), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kVerifyPassword);
  third.reset();  // a session that ends while its verification is out gives it back too
  EXPECT_EQ(queue.in_use(), 0u);
  const std::string log = logged();
  EXPECT_NE(log.find(" level=warning event=auth_busy session=s1 client=198.51.100.1 "
                     "user=bob@example.org mechanism=PLAIN reason=\"verification queue full\"\n"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("event=auth_failed"), std::string::npos) << log;
}

TEST_F(AuthenticatorTest, VerifiedCacheHitSkipsThePasswordCheck) {
  EXPECT_EQ(login("alice@example.org", kAlicePassword).kind, Kind::kSucceeded);
  EXPECT_EQ(verifications_, 1);
  auto exchange = authenticator();
  EXPECT_FALSE(exchange->start("PLAIN", now_));
  Outcome outcome = exchange->step(plain("alice@example.org", kAlicePassword), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kSucceeded);  // no kVerifyPassword
  EXPECT_EQ(outcome.user, "alice@example.org");
  // A wrong password is never answered from the cache.
  EXPECT_EQ(login("alice@example.org", "wrong").kind, Kind::kFailed);
  EXPECT_EQ(verifications_, 2);
  // Past the cache's ttl the password is verified again.
  now_ += std::chrono::seconds(61);
  EXPECT_EQ(login("alice@example.org", kAlicePassword).kind, Kind::kSucceeded);
  EXPECT_EQ(verifications_, 3);
}

ClientCertificate certificate(bool presented, bool verified, std::string error,
                              std::vector<std::string> emails) {
  return ClientCertificate{presented, verified, std::move(error),
                           CertificateNames{std::move(emails), ""}};
}

TEST_F(AuthenticatorTest, ExternalWithAVerifiedCertificateNamesItsUser) {
  auto exchange = authenticator("192.0.2.7", certificate(true, true, "", {"ALICE@example.org"}));
  EXPECT_FALSE(exchange->start("EXTERNAL", now_));
  Outcome outcome = exchange->step("", true, now_);  // "=": the certificate's identity
  ASSERT_EQ(outcome.kind, Kind::kSucceeded);
  EXPECT_EQ(outcome.user, "alice@example.org");
  EXPECT_EQ(verifications_, 0);
  EXPECT_NE(logged().find(" event=auth session=s1 client=192.0.2.7 user=alice@example.org "
                          "mechanism=EXTERNAL\n"),
            std::string::npos);
}

TEST_F(AuthenticatorTest, ExternalWithoutAVerifiedCertificateIs535WithTheReason) {
  struct Case {
    ClientCertificate certificate;
    std::string reason;
  } cases[] = {
      {certificate(true, false, "certificate has expired", {"alice@example.org"}),
       "reason=\"client certificate not verified: certificate has expired\"\n"},
      {certificate(false, false, "no client certificate", {}),
       "reason=\"no client certificate\"\n"},
      {certificate(true, true, "", {"mallory@example.org"}),
       "reason=\"no rfc822Name of the client certificate is a user\"\n"},
  };
  for (const Case& c : cases) {
    auto exchange = authenticator("192.0.2.7", c.certificate);
    EXPECT_FALSE(exchange->start("EXTERNAL", now_));
    expect_reply(exchange->step("", true, now_), 535, "5.7.8",
                 "Authentication credentials invalid");
  }
  const std::string log = logged();
  for (const Case& c : cases) {
    EXPECT_NE(log.find(" level=warning event=auth_failed session=s1 client=192.0.2.7 "
                       "user=\"\" mechanism=EXTERNAL " +
                       c.reason),
              std::string::npos)
        << c.reason << "\n"
        << log;
  }
}

// A SCRAM-SHA-256 client (RFC 5802 §3) with OpenSSL directly, not the server's helpers.
struct ScramClient {
  ScramClient(std::string user_name, std::string secret)
      : user(std::move(user_name)), password(std::move(secret)) {}
  std::string user;
  std::string password;
  std::string nonce = "rOprNGfwEbeRWgbNEkqO";
  std::string first_bare;
  std::string expected_server_final;

  std::string first() {
    first_bare = "n=" + user + ",r=" + nonce;
    return "n,," + first_bare;
  }
  static std::string hmac(const std::string& key, const std::string& data) {
    unsigned char out[32];
    unsigned length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
    return std::string(reinterpret_cast<char*>(out), length);
  }
  std::string final(const std::string& server_first) {
    std::map<char, std::string> attribute;
    for (std::size_t start = 0; start < server_first.size();) {
      std::size_t end = std::min(server_first.find(',', start), server_first.size());
      attribute[server_first[start]] = server_first.substr(start + 2, end - start - 2);
      start = end + 1;
    }
    const std::string salt = *base64_decode(attribute['s']);
    unsigned char salted[32];
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()),
                      static_cast<int>(salt.size()), std::stoi(attribute['i']), EVP_sha256(),
                      sizeof salted, salted);
    const std::string salted_password(reinterpret_cast<char*>(salted), sizeof salted);
    const std::string client_key = hmac(salted_password, "Client Key");
    unsigned char stored[32];
    SHA256(reinterpret_cast<const unsigned char*>(client_key.data()), client_key.size(), stored);
    const std::string without_proof = "c=biws,r=" + attribute['r'];
    const std::string auth_message = first_bare + "," + server_first + "," + without_proof;
    const std::string signature =
        hmac(std::string(reinterpret_cast<char*>(stored), sizeof stored), auth_message);
    std::string proof = client_key;
    for (std::size_t i = 0; i < proof.size(); ++i)
      proof[i] = static_cast<char>(proof[i] ^ signature[i]);
    expected_server_final =
        "v=" + base64_encode(hmac(hmac(salted_password, "Server Key"), auth_message));
    return without_proof + ",p=" + base64_encode(proof);
  }
};

TEST_F(AuthenticatorTest, ScramRoundTripNeedsNoPasswordCheck) {
  auto exchange = authenticator();
  EXPECT_FALSE(exchange->start("SCRAM-SHA-256", now_));
  ScramClient client{"alice@example.org", std::string(kAlicePassword)};
  Outcome outcome = exchange->step(client.first(), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kChallenge);
  EXPECT_TRUE(outcome.challenge.starts_with("r=" + client.nonce)) << outcome.challenge;
  outcome = exchange->step(client.final(outcome.challenge), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kChallenge);
  EXPECT_EQ(outcome.challenge, client.expected_server_final);
  outcome = exchange->step("", true, now_);
  ASSERT_EQ(outcome.kind, Kind::kSucceeded);
  EXPECT_EQ(outcome.user, "alice@example.org");
  EXPECT_EQ(verifications_, 0);
  EXPECT_NE(logged().find(" event=auth session=s1 client=192.0.2.7 user=alice@example.org "
                          "mechanism=SCRAM-SHA-256\n"),
            std::string::npos);
}

// SCRAM proves the password without a check by the host: the lockout is applied at the end.
TEST_F(AuthenticatorTest, ScramWithTheRightPasswordIsRefusedDuringALockout) {
  for (int i = 0; i < 3; ++i)
    login("alice@example.org", "wrong");
  auto exchange = authenticator();
  EXPECT_FALSE(exchange->start("SCRAM-SHA-256", now_));
  ScramClient client{"alice@example.org", std::string(kAlicePassword)};
  Outcome outcome = exchange->step(client.first(), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kChallenge);
  outcome = exchange->step(client.final(outcome.challenge), true, now_);
  ASSERT_EQ(outcome.kind, Kind::kChallenge);
  expect_reply(exchange->step("", true, now_), 454, "4.7.0",
               "Too many authentication failures, try again later");
}

TEST_F(AuthenticatorTest, StepsAfterTheEndAreRefused) {
  auto exchange = authenticator();
  expect_reply(exchange->step("x", true, now_), 454, "4.7.0",
               "Temporary authentication failure");  // never started
  EXPECT_FALSE(exchange->start("PLAIN", now_));
  Outcome outcome = exchange->step(plain("alice@example.org", kAlicePassword), true, now_);
  ASSERT_EQ(verify(*exchange, outcome).kind, Kind::kSucceeded);
  expect_reply(exchange->step("again", true, now_), 454, "4.7.0",
               "Temporary authentication failure");
  expect_reply(exchange->password_verified(true, now_), 454, "4.7.0",
               "Temporary authentication failure");
}

}  // namespace
}  // namespace auth
