// Tests for acme/client.cpp against a scripted CA (no network): the whole conversation of
// RFC 8555, badNonce retried with the error's nonce (§6.5), Retry-After honoured while
// polling and handed back with a rate limit (§6.6), malformed answers and failed challenges
// reported with their step.
#include "acme/client.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <deque>
#include <map>
#include <string>
#include <vector>
#include "support/base64url.h"

namespace {

constexpr const char* kToken = "abcdefghijklmnopqrstuvwxyz0123456789_-AB";

// A CA whose answers a test may replace per URL (a queue of canned responses first).
class ScriptedCa : public acme::HttpTransport {
 public:
  std::map<std::string, std::deque<acme::HttpResponse>> canned;
  std::vector<std::string> log;  // "METHOD URL"
  std::vector<std::string> nonces_used;
  std::vector<std::string> kids;
  std::string authorization_status = "valid";  // after the challenge is answered
  std::string challenge_error;
  int nonce_counter = 0;

  acme::HttpResponse json(long status, std::string body, std::string location = "") {
    acme::HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.location = std::move(location);
    r.replay_nonce = "n" + std::to_string(++nonce_counter);
    return r;
  }

  base::Expected<acme::HttpResponse, std::string> request(std::string_view method,
                                                          const std::string& url,
                                                          std::string_view body) override {
    log.push_back(std::string(method) + " " + url);
    if (method == "POST") {
      auto jws = acme::parse_json(body);
      auto header = acme::parse_json(test_support::decode_base64url(jws->string_at("protected")));
      nonces_used.push_back(header->string_at("nonce"));
      kids.push_back(header->string_at("kid"));
      last_payload = test_support::decode_base64url(jws->string_at("payload"));
      payloads[url] = last_payload;
    }
    if (auto found = canned.find(url); found != canned.end() && !found->second.empty()) {
      acme::HttpResponse r = found->second.front();
      found->second.pop_front();
      return r;
    }
    if (url == "https://ca/dir")
      return json(200, R"({"newNonce":"https://ca/nonce","newAccount":"https://ca/acct",
                          "newOrder":"https://ca/order"})");
    if (url == "https://ca/nonce") return json(200, "");
    if (url == "https://ca/acct") return json(201, R"({"status":"valid"})", "https://ca/acct/1");
    if (url == "https://ca/order")
      return json(201,
                  R"({"status":"pending","authorizations":["https://ca/authz/1"],
                      "finalize":"https://ca/finalize/1"})",
                  "https://ca/order/1");
    if (url == "https://ca/authz/1") {
      const std::string status = answered ? authorization_status : "pending";
      std::string error = challenge_error.empty() ? "" : R"(,"error":)" + challenge_error;
      return json(200, R"({"status":")" + status +
                           R"(","identifier":{"type":"dns","value":"mx.example.org"},
                           "challenges":[{"type":"tls-alpn-01","url":"https://ca/chall/2","token":"x"},
                           {"type":"http-01","url":"https://ca/chall/1","token":")" +
                           kToken + "\"" + error + "}]}");
    }
    if (url == "https://ca/chall/1") {
      answered = true;
      return json(200, R"({"status":"processing"})");
    }
    if (url == "https://ca/order/1")
      return json(200, finalized ? R"({"status":"valid","certificate":"https://ca/cert/1"})"
                                 : R"({"status":"ready","finalize":"https://ca/finalize/1"})");
    if (url == "https://ca/finalize/1") {
      finalized = true;
      return json(200, R"({"status":"processing"})");
    }
    if (url == "https://ca/cert/1") return json(200, "-----BEGIN CERTIFICATE-----\n...");
    return json(404, R"({"type":"urn:ietf:params:acme:error:malformed","detail":"no such URL"})");
  }

  std::string last_payload;
  std::map<std::string, std::string> payloads;  // the last one per URL
  bool answered = false;
  bool finalized = false;
};

class RecordingPublisher : public acme::ChallengePublisher {
 public:
  std::map<std::string, std::string> published;
  std::vector<std::string> history;
  base::Expected<base::Ok, std::string> publish(const std::string& token,
                                                const std::string& authorization) override {
    published[token] = authorization;
    history.push_back("publish " + token);
    if (!refusal.empty()) return base::unexpected(refusal);
    return base::Ok{};
  }
  std::string refusal;  // set: publish() fails with it (a dns-01 hook that failed)
  void withdraw(const std::string& token) override {
    published.erase(token);
    history.push_back("withdraw " + token);
  }
};

class AcmeClientTest : public ::testing::Test {
 protected:
  acme::ClientOptions options() {
    acme::ClientOptions o;
    o.directory_url = "https://ca/dir";
    o.contact = "postmaster@example.org";
    return o;
  }
  acme::Waiter waiter() {
    return [this](std::chrono::milliseconds wait) {
      waits.push_back(wait);
      return true;
    };
  }
  ScriptedCa ca;
  RecordingPublisher publisher;
  acme::AccountKey key{tls::KeyPtr(EVP_EC_gen("P-256"))};
  std::vector<std::chrono::milliseconds> waits;
};

TEST_F(AcmeClientTest, IssuesAfterTheWholeConversation) {
  acme::Client client(ca, key, publisher, options(), waiter());
  auto chain = client.issue({"mx.example.org"}, "DER");
  ASSERT_TRUE(chain.has_value()) << chain.error().step << ": " << chain.error().message;
  EXPECT_EQ(chain.value(), "-----BEGIN CERTIFICATE-----\n...");
  EXPECT_EQ(ca.log.front(), "GET https://ca/dir");
  EXPECT_EQ(ca.log[1], "HEAD https://ca/nonce");
  // The account first (with its JWK), then everything under its URL (kid).
  EXPECT_EQ(ca.log[2], "POST https://ca/acct");
  EXPECT_EQ(ca.kids[0], "");
  for (std::size_t i = 1; i < ca.kids.size(); ++i)
    EXPECT_EQ(ca.kids[i], "https://ca/acct/1");
  // Each response's nonce is used once, by the next request (no HEAD after the first).
  EXPECT_EQ(std::count(ca.log.begin(), ca.log.end(), "HEAD https://ca/nonce"), 1);
  for (std::size_t i = 1; i < ca.nonces_used.size(); ++i)
    EXPECT_NE(ca.nonces_used[i], ca.nonces_used[i - 1]);
  // http-01 chosen, published while the CA validates, withdrawn after.
  EXPECT_EQ(publisher.history, (std::vector<std::string>{std::string("publish ") + kToken,
                                                         std::string("withdraw ") + kToken}));
  EXPECT_TRUE(publisher.published.empty());
  EXPECT_EQ(std::count(ca.log.begin(), ca.log.end(), "POST https://ca/chall/2"), 0);
  EXPECT_EQ(ca.last_payload, "");  // the certificate by POST-as-GET
}

TEST_F(AcmeClientTest, ReplacesGoesOnlyToACaThatOffersAri) {
  {
    acme::Client client(ca, key, publisher, options(), waiter());
    ASSERT_TRUE(client.issue({"mx.example.org"}, "DER", "old.id").has_value());
    EXPECT_EQ(ca.payloads["https://ca/order"],
              R"({"identifiers":[{"type":"dns","value":"mx.example.org"}]})");
    EXPECT_EQ(client.offers_renewal_info().value(), false);
  }
  ScriptedCa ari;
  ari.canned["https://ca/dir"] = {ari.json(200, R"({"newNonce":"https://ca/nonce",
      "newAccount":"https://ca/acct","newOrder":"https://ca/order",
      "renewalInfo":"https://ca/ri"})")};
  acme::Client client(ari, key, publisher, options(), waiter());
  ASSERT_TRUE(client.issue({"mx.example.org"}, "DER", "old.id").has_value());
  EXPECT_EQ(ari.payloads["https://ca/order"],
            R"({"identifiers":[{"type":"dns","value":"mx.example.org"}],"replaces":"old.id"})");
  // The window: an unauthenticated GET of renewalInfo/<id>.
  acme::HttpResponse window = ari.json(
      200, R"({"suggestedWindow":{"start":"2030-01-01T00:00:00Z","end":"2030-01-02T00:00:00Z"}})");
  window.retry_after = "3600";
  ari.canned["https://ca/ri/old.id"] = {window, ari.json(200, R"({"suggestedWindow":{
      "start":"2030-01-02T00:00:00Z","end":"2030-01-01T00:00:00Z"}})")};
  auto got = client.renewal_info("old.id");
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->start, 1893456000);
  EXPECT_EQ(got->end, 1893456000 + 86400);
  EXPECT_EQ(got->retry_after, std::chrono::seconds(3600));
  EXPECT_EQ(ari.log.back(), "GET https://ca/ri/old.id");
  auto backwards = client.renewal_info("old.id");  // §4.2: end before start is invalid
  ASSERT_FALSE(backwards.has_value());
  EXPECT_EQ(backwards.error().message, "no valid suggestedWindow in the answer");
}

TEST_F(AcmeClientTest, TheAccountCarriesTheContactAndAgreement) {
  acme::Client client(ca, key, publisher, options(), waiter());
  ASSERT_TRUE(client.account().has_value());
  EXPECT_EQ(ca.last_payload,
            R"({"termsOfServiceAgreed":true,"contact":["mailto:postmaster@example.org"]})");
}

// RFC 8555 §7.3.4: the binding is a JWS (HS256) over the account's JWK, with the CA's kid and
// the newAccount URL in its protected header, MACed with the key's raw bytes.
TEST_F(AcmeClientTest, TheAccountCarriesTheExternalAccountBinding) {
  acme::ClientOptions with_eab = options();
  with_eab.eab_kid = "kid-1";
  with_eab.eab_hmac_key = std::string("\x01\x02secret-mac-key\xff", 17);
  acme::Client client(ca, key, publisher, with_eab, waiter());
  ASSERT_TRUE(client.account().has_value());
  auto payload = acme::parse_json(ca.last_payload);
  ASSERT_TRUE(payload.has_value()) << ca.last_payload;
  const acme::Json* binding = payload->get("externalAccountBinding");
  ASSERT_NE(binding, nullptr) << ca.last_payload;
  EXPECT_EQ(test_support::decode_base64url(binding->string_at("protected")),
            R"({"alg":"HS256","kid":"kid-1","url":"https://ca/acct"})");
  EXPECT_EQ(test_support::decode_base64url(binding->string_at("payload")), key.jwk());
  const std::string input = binding->string_at("protected") + "." + binding->string_at("payload");
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), with_eab.eab_hmac_key.data(), static_cast<int>(with_eab.eab_hmac_key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &size);
  EXPECT_EQ(test_support::decode_base64url(binding->string_at("signature")),
            std::string(reinterpret_cast<const char*>(mac), size));
  // Nothing of the MAC key itself travels.
  EXPECT_EQ(ca.last_payload.find("secret-mac-key"), std::string::npos);
}

TEST_F(AcmeClientTest, ACaThatRequiresABindingIsToldWhatToConfigure) {
  // The directory says so (§7.1.1 meta.externalAccountRequired): no newAccount is sent.
  ca.canned["https://ca/dir"] = {ca.json(200, R"({"newNonce":"https://ca/nonce",
      "newAccount":"https://ca/acct","newOrder":"https://ca/order",
      "meta":{"externalAccountRequired":true}})")};
  acme::Client client(ca, key, publisher, options(), waiter());
  auto account = client.account();
  ASSERT_FALSE(account.has_value());
  EXPECT_EQ(account.error().step, "account");
  EXPECT_NE(account.error().message.find("requires an External Account Binding"), std::string::npos)
      << account.error().message;
  EXPECT_NE(account.error().message.find("eab_kid and eab_hmac_key_file"), std::string::npos);
  EXPECT_EQ(std::count(ca.log.begin(), ca.log.end(), "POST https://ca/acct"), 0);
  // A CA whose directory does not say it but refuses: its problem, with the same hint.
  ScriptedCa refusing;
  refusing.canned["https://ca/acct"] = {refusing.json(
      400, R"({"type":"urn:ietf:params:acme:error:externalAccountRequired","detail":"no"})")};
  acme::Client second(refusing, key, publisher, options(), waiter());
  account = second.account();
  ASSERT_FALSE(account.has_value());
  EXPECT_NE(account.error().message.find("HTTP 400 externalAccountRequired: no"), std::string::npos)
      << account.error().message;
  EXPECT_NE(account.error().message.find("eab_kid and eab_hmac_key_file"), std::string::npos);
}

TEST_F(AcmeClientTest, BadNonceIsRetriedWithTheNonceOfTheError) {
  acme::HttpResponse bad;
  bad.status = 400;
  bad.body =
      R"({"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"})";
  bad.replay_nonce = "fresh-from-the-error";
  ca.canned["https://ca/acct"] = {bad};
  acme::Client client(ca, key, publisher, options(), waiter());
  auto account = client.account();
  ASSERT_TRUE(account.has_value()) << account.error().message;
  ASSERT_EQ(ca.nonces_used.size(), 2u);
  EXPECT_EQ(ca.nonces_used[1], "fresh-from-the-error");
  EXPECT_EQ(std::count(ca.log.begin(), ca.log.end(), "HEAD https://ca/nonce"), 1);
}

TEST_F(AcmeClientTest, BadNonceForeverGivesUp) {
  acme::HttpResponse bad;
  bad.status = 400;
  bad.body = R"({"type":"urn:ietf:params:acme:error:badNonce"})";
  bad.replay_nonce = "again";
  ca.canned["https://ca/acct"] = {bad, bad, bad, bad, bad, bad, bad, bad};
  acme::Client client(ca, key, publisher, options(), waiter());
  auto account = client.account();
  ASSERT_FALSE(account.has_value());
  EXPECT_EQ(account.error().step, "account");
  EXPECT_EQ(account.error().message, "HTTP 400 badNonce");
  EXPECT_EQ(ca.nonces_used.size(), 6u);  // the first try and five retries
}

TEST_F(AcmeClientTest, RateLimitHandsBackRetryAfter) {
  acme::HttpResponse limited;
  limited.status = 429;
  limited.body = R"({"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many orders"})";
  limited.retry_after = "120";
  limited.replay_nonce = "n-limit";
  ca.canned["https://ca/order"] = {limited};
  acme::Client client(ca, key, publisher, options(), waiter());
  auto chain = client.issue({"mx.example.org"}, "DER");
  ASSERT_FALSE(chain.has_value());
  EXPECT_EQ(chain.error().step, "order");
  EXPECT_EQ(chain.error().message, "HTTP 429 rateLimited: too many orders");
  EXPECT_EQ(chain.error().retry_after, std::chrono::seconds(120));
}

TEST_F(AcmeClientTest, PollingHonoursRetryAfter) {
  acme::HttpResponse pending = ca.json(200, R"({"status":"pending"})");
  pending.retry_after = "3";
  ca.canned["https://ca/order/1"] = {ca.json(200, R"({"status":"pending"})"), pending};
  acme::Client client(ca, key, publisher, options(), waiter());
  ASSERT_TRUE(client.issue({"mx.example.org"}, "DER").has_value());
  // Without Retry-After 100 ms doubling; with it, what the CA said.
  ASSERT_GE(waits.size(), 2u);
  EXPECT_NE(std::find(waits.begin(), waits.end(), std::chrono::milliseconds(3000)), waits.end());
  EXPECT_EQ(waits.front(), std::chrono::milliseconds(100));
}

TEST_F(AcmeClientTest, AFailedChallengeSaysWhy) {
  ca.authorization_status = "invalid";
  ca.challenge_error =
      R"({"type":"urn:ietf:params:acme:error:connection","detail":"connection refused"})";
  acme::Client client(ca, key, publisher, options(), waiter());
  auto chain = client.issue({"mx.example.org"}, "DER");
  ASSERT_FALSE(chain.has_value());
  EXPECT_EQ(chain.error().step, "challenge");
  EXPECT_EQ(chain.error().message, "mx.example.org is invalid: connection: connection refused");
  EXPECT_TRUE(publisher.published.empty());  // withdrawn on failure too
}

TEST_F(AcmeClientTest, MalformedAnswersAreErrorsOfTheirStep) {
  acme::HttpResponse garbage = ca.json(201, "{not json", "https://ca/order/1");
  ca.canned["https://ca/order"] = {garbage};
  acme::Client client(ca, key, publisher, options(), waiter());
  auto chain = client.issue({"mx.example.org"}, "DER");
  ASSERT_FALSE(chain.has_value());
  EXPECT_EQ(chain.error().step, "order");
  EXPECT_NE(chain.error().message.find("not a JSON object"), std::string::npos);

  ScriptedCa other;
  other.canned["https://ca/dir"] = {other.json(200, R"({"newNonce":"https://ca/nonce"})")};
  acme::Client second(other, key, publisher, options(), waiter());
  auto account = second.account();
  ASSERT_FALSE(account.has_value());
  EXPECT_EQ(account.error().step, "directory");
}

TEST_F(AcmeClientTest, AStopEndsThePolling) {
  ca.authorization_status = "pending";
  acme::Client client(ca, key, publisher, options(),
                      [](std::chrono::milliseconds) { return false; });
  auto chain = client.issue({"mx.example.org"}, "DER");
  ASSERT_FALSE(chain.has_value());
  EXPECT_TRUE(chain.error().stopped);
}

TEST(AcmeRetryAfterTest, SecondsOrAnHttpDate) {
  EXPECT_EQ(acme::parse_retry_after("", 0), std::chrono::seconds(0));
  EXPECT_EQ(acme::parse_retry_after("120", 0), std::chrono::seconds(120));
  EXPECT_EQ(acme::parse_retry_after("soon", 0), std::chrono::seconds(0));
  // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7).
  EXPECT_EQ(acme::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 60),
            std::chrono::seconds(60));
  EXPECT_EQ(acme::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 60),
            std::chrono::seconds(0));
}

}  // namespace
