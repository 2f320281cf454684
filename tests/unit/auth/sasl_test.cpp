// sasl_test.cpp — the SASL mechanisms as pure state machines: PLAIN (RFC 4616) and LOGIN
// happy and malformed paths, SCRAM-SHA-256 against RFC 7677's test vector, wrong password
// and unknown user, the "y" downgrade rule (RFC 5802 §6), and SCRAM-SHA-256-PLUS with the
// tls-exporter binding (RFC 9266). The SCRAM client here is written from RFC 5802 §3 with
// OpenSSL directly, not with the server's helpers.
#include "auth/sasl.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <map>

#include <gtest/gtest.h>

#include "auth/crypto_primitives.h"

namespace auth {
namespace {

using Kind = SaslStep::Kind;

class SaslTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    store_ = new UserStore;
    ASSERT_TRUE(store_->set_password("alice@example.org", "correct horse", test_argon2()));
    // RFC 7677 §3's user, with the RFC's salt and iteration count.
    User user;
    user.address = "user";
    user.scram =
        derive_scram_credentials("pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
    rfc_user_ = new User(user);
  }
  static void TearDownTestSuite() {
    delete store_;
    delete rfc_user_;
  }

  static UserLookup lookup() {
    return [](std::string_view name) -> const User* {
      if (name == "user") return rfc_user_;
      return store_->find(name);
    };
  }

  static inline UserStore* store_ = nullptr;
  static inline User* rfc_user_ = nullptr;
};

std::string exporter(char fill) {
  return std::string(32, fill);
}

// --- PLAIN ------------------------------------------------------------------------------

TEST_F(SaslTest, PlainWithInitialResponse) {
  auto server = make_sasl_server("PLAIN", lookup(), "");
  ASSERT_NE(server, nullptr);
  SaslStep step = server->step(std::string("\0Alice@example.org\0correct horse", 32));
  ASSERT_EQ(step.kind, Kind::kVerifyPassword);
  EXPECT_EQ(step.user, "Alice@example.org");
  EXPECT_EQ(step.password, "correct horse");
  step = server->password_verified(true);
  ASSERT_EQ(step.kind, Kind::kSuccess);
  EXPECT_EQ(step.user, "alice@example.org");          // canonical spelling from the store
  EXPECT_EQ(server->step("x").kind, Kind::kFailure);  // finished
}

TEST_F(SaslTest, PlainWithoutInitialResponseSendsEmptyChallenge) {
  auto server = make_sasl_server("plain", lookup(), "");
  SaslStep step = server->step("", false);
  ASSERT_EQ(step.kind, Kind::kChallenge);
  EXPECT_EQ(step.challenge, "");
  step = server->step(std::string("alice@example.org\0alice@example.org\0pw", 38));
  ASSERT_EQ(step.kind, Kind::kVerifyPassword);
  EXPECT_EQ(step.password, "pw");
  step = server->password_verified(false);
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
  EXPECT_EQ(step.user, "alice@example.org");  // named for the log line and the limiter
}

TEST_F(SaslTest, PlainMalformedAndForeignAuthzid) {
  struct Case {
    std::string message;
    bool malformed;
  };
  std::vector<Case> cases = {
      {"", true},
      {"no nuls", true},
      {std::string("\0only-one", 9), true},
      {std::string("\0\0pw", 4), true},                                    // empty authcid
      {std::string("\0alice@example.org\0", 19), true},                    // empty password
      {std::string("\0a@b\0pw\0extra", 13), true},                         // three NULs
      {std::string("bob@example.org\0alice@example.org\0pw", 36), false},  // authzid differs
  };
  for (const auto& c : cases) {
    auto server = make_sasl_server("PLAIN", lookup(), "");
    SaslStep step = server->step(c.message);
    ASSERT_EQ(step.kind, Kind::kFailure) << c.message.size();
    EXPECT_EQ(step.malformed, c.malformed) << step.failure;
    EXPECT_EQ(step.password, "");
    EXPECT_FALSE(step.failure.empty());
  }
}

TEST_F(SaslTest, ResponsesOverTheBoundAreRefused) {
  for (const char* mechanism : {"PLAIN", "LOGIN", "SCRAM-SHA-256"}) {
    auto server = make_sasl_server(mechanism, lookup(), "");
    SaslStep step = server->step(std::string(kMaxSaslResponse + 1, 'a'));
    EXPECT_EQ(step.kind, Kind::kFailure) << mechanism;
    EXPECT_TRUE(step.malformed);
  }
}

TEST_F(SaslTest, PasswordVerifiedOutOfTurnFails) {
  auto server = make_sasl_server("PLAIN", lookup(), "");
  EXPECT_EQ(server->password_verified(true).kind, Kind::kFailure);
  EXPECT_EQ(server->step(std::string("\0a@b\0c", 6)).kind, Kind::kFailure);  // done
}

// --- LOGIN ------------------------------------------------------------------------------

TEST_F(SaslTest, LoginWithChallenges) {
  auto server = make_sasl_server("LOGIN", lookup(), "");
  SaslStep step = server->step("", false);
  ASSERT_EQ(step.kind, Kind::kChallenge);
  EXPECT_EQ(step.challenge, "Username:");
  step = server->step("alice@example.org");
  ASSERT_EQ(step.kind, Kind::kChallenge);
  EXPECT_EQ(step.challenge, "Password:");
  step = server->step("correct horse");
  ASSERT_EQ(step.kind, Kind::kVerifyPassword);
  EXPECT_EQ(step.user, "alice@example.org");
  EXPECT_EQ(step.password, "correct horse");
  EXPECT_EQ(server->password_verified(true).kind, Kind::kSuccess);
}

TEST_F(SaslTest, LoginWithInitialUsername) {
  auto server = make_sasl_server("LOGIN", lookup(), "");
  SaslStep step = server->step("alice@example.org");
  ASSERT_EQ(step.kind, Kind::kChallenge);
  EXPECT_EQ(step.challenge, "Password:");
  step = server->step("wrong");
  ASSERT_EQ(step.kind, Kind::kVerifyPassword);
  step = server->password_verified(false);
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
  EXPECT_EQ(step.user, "alice@example.org");  // named for the log line and the limiter
}

TEST_F(SaslTest, LoginMalformed) {
  auto empty_user = make_sasl_server("LOGIN", lookup(), "");
  empty_user->step("", false);
  SaslStep step = empty_user->step("");
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_TRUE(step.malformed);

  auto empty_password = make_sasl_server("LOGIN", lookup(), "");
  empty_password->step("alice@example.org");
  step = empty_password->step("");
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_TRUE(step.malformed);

  auto nul = make_sasl_server("LOGIN", lookup(), "");
  step = nul->step(std::string("a\0b", 3));
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_TRUE(step.malformed);
}

TEST_F(SaslTest, UnknownMechanismsAndOffers) {
  EXPECT_EQ(make_sasl_server("CRAM-MD5", lookup(), ""), nullptr);
  EXPECT_EQ(make_sasl_server("SCRAM-SHA-1", lookup(), ""), nullptr);
  EXPECT_EQ(make_sasl_server("SCRAM-SHA-256-PLUS", lookup(), ""), nullptr);  // no exporter
  EXPECT_NE(make_sasl_server("scram-sha-256-plus", lookup(), exporter('x')), nullptr);
  EXPECT_EQ(mechanisms_offered(false),
            (std::vector<std::string>{"SCRAM-SHA-256", "PLAIN", "LOGIN"}));
  EXPECT_EQ(mechanisms_offered(true),
            (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"}));
  EXPECT_EQ(mechanisms_offered(true, /*offer_external=*/true),
            (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN",
                                      "EXTERNAL"}));
}

// --- EXTERNAL (RFC 4422 Appendix A) -----------------------------------------------------

TEST_F(SaslTest, ExternalEmptyAuthzidIsTheCertificateUser) {
  // "AUTH EXTERNAL =": an initial response of zero length.
  auto server = make_sasl_server("external", lookup(), "", "alice@example.org");
  ASSERT_NE(server, nullptr);
  SaslStep step = server->step("");
  EXPECT_EQ(step.kind, Kind::kSuccess);
  EXPECT_EQ(step.user, "alice@example.org");
  EXPECT_EQ(server->step("").kind, Kind::kFailure) << "one exchange only";
}

TEST_F(SaslTest, ExternalAuthzidMustBeTheCertificateUser) {
  auto same = make_sasl_server("EXTERNAL", lookup(), "", "alice@example.org");
  SaslStep step = same->step("ALICE@Example.ORG");
  EXPECT_EQ(step.kind, Kind::kSuccess);
  EXPECT_EQ(step.user, "alice@example.org");

  auto other = make_sasl_server("EXTERNAL", lookup(), "", "alice@example.org");
  step = other->step("bob@example.org");
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed) << "a refused identity is a 535, not a 501";
  EXPECT_EQ(step.user, "bob@example.org") << "the user as given, for the log";
}

TEST_F(SaslTest, ExternalWithoutCertificateUserFails) {
  auto server = make_sasl_server("EXTERNAL", lookup(), "");
  ASSERT_NE(server, nullptr) << "offered or not is the session's business (504 there)";
  SaslStep step = server->step("");
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
  auto named = make_sasl_server("EXTERNAL", lookup(), "");
  step = named->step("alice@example.org");
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
}

TEST_F(SaslTest, ExternalWithoutInitialResponseSendsEmptyChallenge) {
  auto server = make_sasl_server("EXTERNAL", lookup(), "", "alice@example.org");
  SaslStep step = server->step("", /*has_response=*/false);
  EXPECT_EQ(step.kind, Kind::kChallenge);
  EXPECT_EQ(step.challenge, "");
  step = server->step("");
  EXPECT_EQ(step.kind, Kind::kSuccess);
  EXPECT_EQ(step.user, "alice@example.org");
}

TEST_F(SaslTest, ExternalMalformedResponses) {
  auto nul = make_sasl_server("EXTERNAL", lookup(), "", "alice@example.org");
  SaslStep step = nul->step(std::string("alice@example.org\0x", 19));
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_TRUE(step.malformed);
  auto long_one = make_sasl_server("EXTERNAL", lookup(), "", "alice@example.org");
  step = long_one->step(std::string(kMaxSaslResponse + 1, 'a'));
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_TRUE(step.malformed);
  auto twice = make_sasl_server("EXTERNAL", lookup(), "", "alice@example.org");
  twice->step("", false);
  step = twice->step("", false);
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_TRUE(step.malformed);
  auto password = make_sasl_server("EXTERNAL", lookup(), "", "alice@example.org");
  EXPECT_EQ(password->password_verified(true).kind, Kind::kFailure);
}

// --- SCRAM ------------------------------------------------------------------------------

TEST_F(SaslTest, ScramRfc7677TestVector) {
  auto server = make_scram_server(false, lookup(), "", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  SaslStep step = server->step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  ASSERT_EQ(step.kind, Kind::kChallenge) << step.failure;
  EXPECT_EQ(step.challenge,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
            "i=4096");
  step = server->step(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  ASSERT_EQ(step.kind, Kind::kChallenge) << step.failure;
  EXPECT_EQ(step.challenge, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  step = server->step("");
  ASSERT_EQ(step.kind, Kind::kSuccess);
  EXPECT_EQ(step.user, "user");
}

TEST_F(SaslTest, ScramWithoutInitialResponse) {
  auto server = make_scram_server(false, lookup(), "", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  SaslStep step = server->step("", false);
  ASSERT_EQ(step.kind, Kind::kChallenge);
  EXPECT_EQ(step.challenge, "");
  step = server->step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  ASSERT_EQ(step.kind, Kind::kChallenge);
  EXPECT_EQ(step.challenge.substr(0, 2), "r=");
}

TEST_F(SaslTest, ScramRfcVectorWithChangedProofFails) {
  auto server = make_scram_server(false, lookup(), "", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  server->step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  SaslStep step = server->step(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVM=");
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
}

// A SCRAM-SHA-256 client (RFC 5802 §3), OpenSSL only.
struct ScramClient {
  ScramClient(std::string user_name, std::string secret)
      : user(std::move(user_name)), password(std::move(secret)) {}
  std::string user;
  std::string password;
  std::string gs2_header = "n,,";
  std::string binding_data;  // appended to gs2_header in c= (RFC 9266)
  std::string client_nonce = "fyko+d2lbbFgONRv9qkxdawL";
  std::string client_first_bare;
  std::string server_signature_b64;

  std::string first() {
    client_first_bare = "n=" + user + ",r=" + client_nonce;
    return gs2_header + client_first_bare;
  }

  static std::string hmac(const std::string& key, const std::string& data) {
    unsigned char out[32];
    unsigned length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
    return std::string(reinterpret_cast<char*>(out), length);
  }

  std::string final(const std::string& server_first) {
    std::map<char, std::string> attributes;
    std::size_t start = 0;
    while (start < server_first.size()) {
      std::size_t end = server_first.find(',', start);
      if (end == std::string::npos) end = server_first.size();
      attributes[server_first[start]] = server_first.substr(start + 2, end - start - 2);
      start = end + 1;
    }
    std::string salt = *base64_decode(attributes['s']);
    int iterations = std::stoi(attributes['i']);
    unsigned char salted[32];
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()),
                      static_cast<int>(salt.size()), iterations, EVP_sha256(), 32, salted);
    std::string salted_password(reinterpret_cast<char*>(salted), 32);
    std::string client_key = hmac(salted_password, "Client Key");
    unsigned char stored[32];
    SHA256(reinterpret_cast<const unsigned char*>(client_key.data()), client_key.size(), stored);
    std::string without_proof =
        "c=" + base64_encode(gs2_header + binding_data) + ",r=" + attributes['r'];
    std::string auth_message = client_first_bare + "," + server_first + "," + without_proof;
    std::string signature = hmac(std::string(reinterpret_cast<char*>(stored), 32), auth_message);
    std::string proof = client_key;
    for (std::size_t i = 0; i < proof.size(); ++i)
      proof[i] = static_cast<char>(proof[i] ^ signature[i]);
    server_signature_b64 = base64_encode(hmac(hmac(salted_password, "Server Key"), auth_message));
    return without_proof + ",p=" + base64_encode(proof);
  }
};

// Runs a whole exchange; returns the last step.
SaslStep run_scram(SaslServer& server, ScramClient& client) {
  SaslStep step = server.step(client.first());
  if (step.kind != Kind::kChallenge) return step;
  step = server.step(client.final(step.challenge));
  if (step.kind != Kind::kChallenge) return step;
  EXPECT_EQ(step.challenge, "v=" + client.server_signature_b64);
  return server.step("");
}

TEST_F(SaslTest, ScramWithStoreUserSucceeds) {
  auto server = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  ScramClient client{"alice@example.org", "correct horse"};
  SaslStep step = run_scram(*server, client);
  ASSERT_EQ(step.kind, Kind::kSuccess) << step.failure;
  EXPECT_EQ(step.user, "alice@example.org");
}

TEST_F(SaslTest, ScramWrongPasswordFails) {
  auto server = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  ScramClient client{"alice@example.org", "wrong horse"};
  SaslStep step = run_scram(*server, client);
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
  // The failure names the user, for the log line and the per-(address, user) limiter.
  EXPECT_EQ(step.user, "alice@example.org");
}

TEST_F(SaslTest, ScramUnknownUserGetsStableFakeSaltAndFailsAtTheProof) {
  auto first_server = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  ScramClient client{"nobody@example.org", "anything"};
  SaslStep first = first_server->step(client.first());
  ASSERT_EQ(first.kind, Kind::kChallenge);  // no early answer that reveals the user
  auto second_server = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  SaslStep second = second_server->step(client.first());
  auto salt_of = [](const std::string& message) {
    std::size_t s = message.find(",s=");
    return message.substr(s, message.find(",i=") - s);
  };
  EXPECT_EQ(salt_of(first.challenge), salt_of(second.challenge));
  EXPECT_TRUE(first.challenge.ends_with(",i=" + std::to_string(kDefaultScramIterations)))
      << first.challenge;
  // Real users' salts are 16 bytes as well: the salt length reveals nothing.
  EXPECT_EQ(base64_decode(salt_of(first.challenge).substr(3))->size(), kScramSaltSize);
  SaslStep last = first_server->step(client.final(first.challenge));
  EXPECT_EQ(last.kind, Kind::kFailure);
  EXPECT_FALSE(last.malformed);
}

TEST_F(SaslTest, ScramUnknownUserIsToldTheCountTheCallerGives) {
  // The authenticator passes the store's typical count: an unknown user must not stand out
  // from users whose keys were made with another count than the default.
  auto server = make_sasl_server("SCRAM-SHA-256", lookup(), "", "", 12345);
  SaslStep step = server->step(ScramClient{"nobody@example.org", "x"}.first());
  ASSERT_EQ(step.kind, Kind::kChallenge);
  EXPECT_TRUE(step.challenge.ends_with(",i=12345")) << step.challenge;
}

TEST_F(SaslTest, ScramYFlagIsADowngradeWhenPlusIsOffered) {
  // RFC 5802 §6: "y" while the server supports channel binding → fail.
  auto server = make_sasl_server("SCRAM-SHA-256", lookup(), exporter('e'));
  ScramClient client{"alice@example.org", "correct horse"};
  client.gs2_header = "y,,";
  SaslStep step = server->step(client.first());
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
  EXPECT_NE(step.failure.find("downgrade"), std::string::npos);

  // Without an exporter the server does not support channel binding: "y" is fine.
  auto plain_server = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  ScramClient y_client{"alice@example.org", "correct horse"};
  y_client.gs2_header = "y,,";
  EXPECT_EQ(run_scram(*plain_server, y_client).kind, Kind::kSuccess);
}

TEST_F(SaslTest, ScramChannelBindingFlagMustMatchTheMechanism) {
  auto server = make_sasl_server("SCRAM-SHA-256", lookup(), exporter('e'));
  ScramClient p_client{"alice@example.org", "correct horse"};
  p_client.gs2_header = "p=tls-exporter,,";
  EXPECT_EQ(server->step(p_client.first()).kind, Kind::kFailure);

  auto plus = make_sasl_server("SCRAM-SHA-256-PLUS", lookup(), exporter('e'));
  ScramClient n_client{"alice@example.org", "correct horse"};
  EXPECT_EQ(plus->step(n_client.first()).kind, Kind::kFailure);

  auto unique = make_sasl_server("SCRAM-SHA-256-PLUS", lookup(), exporter('e'));
  ScramClient unique_client{"alice@example.org", "correct horse"};
  unique_client.gs2_header = "p=tls-unique,,";
  SaslStep step = unique->step(unique_client.first());
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_NE(step.failure.find("tls-unique"), std::string::npos);
}

TEST_F(SaslTest, ScramPlusWithMatchingExporter) {
  auto server = make_sasl_server("SCRAM-SHA-256-PLUS", lookup(), exporter('e'));
  ScramClient client{"alice@example.org", "correct horse"};
  client.gs2_header = "p=tls-exporter,,";
  client.binding_data = exporter('e');
  SaslStep step = run_scram(*server, client);
  ASSERT_EQ(step.kind, Kind::kSuccess) << step.failure;
  EXPECT_EQ(step.user, "alice@example.org");
}

TEST_F(SaslTest, ScramPlusWithMismatchingExporterFails) {
  // A man in the middle terminates TLS: the client's exporter value differs from ours.
  auto server = make_sasl_server("SCRAM-SHA-256-PLUS", lookup(), exporter('e'));
  ScramClient client{"alice@example.org", "correct horse"};
  client.gs2_header = "p=tls-exporter,,";
  client.binding_data = exporter('m');
  SaslStep step = run_scram(*server, client);
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_NE(step.failure.find("channel binding"), std::string::npos);

  // c= must carry the exporter; the bare header (as for "n") is not enough.
  auto bare = make_sasl_server("SCRAM-SHA-256-PLUS", lookup(), exporter('e'));
  ScramClient bare_client{"alice@example.org", "correct horse"};
  bare_client.gs2_header = "p=tls-exporter,,";
  EXPECT_EQ(run_scram(*bare, bare_client).kind, Kind::kFailure);
}

TEST_F(SaslTest, ScramAuthzid) {
  auto same = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  ScramClient client{"alice@example.org", "correct horse"};
  client.gs2_header = "n,a=Alice@example.org,";
  EXPECT_EQ(run_scram(*same, client).kind, Kind::kSuccess);

  auto other = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  ScramClient other_client{"alice@example.org", "correct horse"};
  other_client.gs2_header = "n,a=bob@example.org,";
  SaslStep step = other->step(other_client.first());
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_FALSE(step.malformed);
}

TEST_F(SaslTest, ScramUsernameEscapes) {
  // "=2C" is ',' and "=3D" is '='; any other '=' fails (RFC 5802 §5.1).
  UserLookup seen_lookup = [](std::string_view name) -> const User* {
    EXPECT_EQ(name, "a,b=c@example.org");
    return nullptr;
  };
  auto server = make_sasl_server("SCRAM-SHA-256", seen_lookup, "");
  EXPECT_EQ(server->step("n,,n=a=2Cb=3Dc@example.org,r=abc").kind, Kind::kChallenge);
  auto bad = make_sasl_server("SCRAM-SHA-256", lookup(), "");
  SaslStep step = bad->step("n,,n=a=2Db@example.org,r=abc");
  EXPECT_EQ(step.kind, Kind::kFailure);
  EXPECT_TRUE(step.malformed);
}

TEST_F(SaslTest, ScramMalformedMessages) {
  for (std::string first :
       {"", "x,,n=user,r=abc", "n,n=user,r=abc", "n,,m=ext,n=user,r=abc", "n,,r=abc,n=user",
        "n,,n=user", "n,,n=,r=abc", "n,,n=user,r=", "n,,n=user,r=a\x01", "p=,,n=user,r=abc",
        "p=tls exporter,,n=u,r=a", "n,b=x,n=user,r=abc"}) {
    auto server = make_sasl_server("SCRAM-SHA-256", lookup(), "");
    SaslStep step = server->step(first);
    EXPECT_EQ(step.kind, Kind::kFailure) << first;
    EXPECT_TRUE(step.malformed) << first;
  }
  const std::string nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const std::string combined = "rOprNGfwEbeRWgbNEkqO" + nonce;
  for (std::string final :
       {std::string(""), "c=biws,r=" + combined, "c=biws,r=" + combined + ",p=short",
        std::string("c=biws,r=wrong,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
        "r=" + combined + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=!!!!,r=" + combined + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="}) {
    auto server = make_scram_server(false, lookup(), "", nonce);
    ASSERT_EQ(server->step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO").kind, Kind::kChallenge);
    SaslStep step = server->step(final);
    EXPECT_EQ(step.kind, Kind::kFailure) << final;
    EXPECT_TRUE(step.malformed) << final;
  }
  // The empty response after v= must be empty.
  auto server = make_scram_server(false, lookup(), "", nonce);
  server->step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  server->step("c=biws,r=" + combined + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  EXPECT_EQ(server->step("extra").kind, Kind::kFailure);
}

TEST_F(SaslTest, ScramIgnoresOptionalExtensions) {
  auto server = make_scram_server(false, lookup(), "", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  SaslStep step = server->step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO,x=future");
  ASSERT_EQ(step.kind, Kind::kChallenge) << step.failure;
}

}  // namespace
}  // namespace auth
