// client.cpp — see client.h.
#include "acme/client.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <charconv>
#include <ctime>

#include "base/clock.h"
#include "base/json.h"
#include "obs/log.h"
#include "tls/openssl_ptr.h"

namespace acme {
namespace {

constexpr std::string_view kBadNonce = "urn:ietf:params:acme:error:badNonce";
constexpr std::string_view kEabHint =
    " (RFC 8555 §7.3.4: set [acme] eab_kid and eab_hmac_key_file to the key identifier and MAC "
    "key the CA gave)";

bool is_one_of(const std::string& value, const std::vector<std::string>& set) {
  return std::find(set.begin(), set.end(), value) != set.end();
}

// The CA's problem document in one line: "type: detail", subproblems left out.
std::string describe_problem(const Json& problem) {
  std::string type = problem.string_at("type");
  const std::string detail = problem.string_at("detail");
  if (type.starts_with("urn:ietf:params:acme:error:")) type.erase(0, 27);
  if (type.empty()) return detail;
  return detail.empty() ? type : type + ": " + detail;
}

}  // namespace

std::chrono::seconds parse_retry_after(std::string_view value, std::int64_t now_unix) {
  // The CA's word, bounded: a day at most (a larger or absurd value, such as 2^63 / 1000,
  // would overflow the conversion to milliseconds or stop the renewal for good).
  constexpr std::int64_t kLongest = kRetryAfterLimit.count();
  while (!value.empty() && value.back() == ' ')
    value.remove_suffix(1);
  if (value.empty()) return std::chrono::seconds(0);
  std::int64_t seconds = 0;
  auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (error == std::errc::result_out_of_range && end == value.data() + value.size())
    return value.front() == '-' ? std::chrono::seconds(0) : kRetryAfterLimit;
  if (error == std::errc() && end == value.data() + value.size())
    return std::chrono::seconds(std::clamp<std::int64_t>(seconds, 0, kLongest));
  // IMF-fixdate (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
  struct tm parts {};
  const std::string text(value);
  const char* parsed = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &parts);
  if (parsed == nullptr || *parsed != '\0') return std::chrono::seconds(0);
  const std::int64_t at = timegm(&parts);
  if (at <= now_unix) return std::chrono::seconds(0);
  return std::chrono::seconds(at - now_unix > kLongest ? kLongest : at - now_unix);
}

base::Expected<std::string, std::string> certificate_id(const std::string& chain_pem) {
  tls::BioPtr bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  tls::X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) return base::unexpected(std::string("no certificate"));
  const ASN1_OCTET_STRING* key_id = X509_get0_authority_key_id(leaf.get());
  if (key_id == nullptr) return base::unexpected(std::string("no authority key identifier"));
  // The serial's DER content octets: i2c of the INTEGER (with a leading 0 when the high bit
  // is set), not the ASN1_INTEGER's magnitude bytes.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf.get());
  unsigned char* der = nullptr;
  const int size = i2d_ASN1_INTEGER(serial, &der);
  if (size < 3) return base::unexpected(std::string("bad serial number"));
  // Tag and length: short form below 128 content bytes (a serial has at most 20).
  const std::string content(reinterpret_cast<const char*>(der) + 2,
                            static_cast<std::size_t>(size - 2));
  OPENSSL_free(der);
  return base64url(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(key_id)),
                                    static_cast<std::size_t>(ASN1_STRING_length(key_id)))) +
         "." + base64url(content);
}

std::optional<std::int64_t> parse_rfc3339(std::string_view text) {
  struct tm parts {};
  const std::string copy(text);
  const char* rest = strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%S", &parts);
  if (rest == nullptr) return std::nullopt;
  if (*rest == '.') {
    ++rest;
    while (*rest >= '0' && *rest <= '9')
      ++rest;
  }
  if ((*rest != 'Z' && *rest != 'z') || rest[1] != '\0') return std::nullopt;
  return static_cast<std::int64_t>(timegm(&parts));
}

Client::Client(HttpTransport& transport, const AccountKey& key, ChallengePublisher& publisher,
               ClientOptions options, Waiter waiter)
    : transport_(transport),
      key_(key),
      publisher_(publisher),
      options_(std::move(options)),
      waiter_(std::move(waiter)) {}

Failure Client::problem(const std::string& step, const HttpResponse& response) const {
  Failure failure{step, "HTTP " + std::to_string(response.status)};
  auto parsed = parse_json(response.body);
  if (parsed && parsed->kind == Json::Kind::kObject) {
    const std::string text = describe_problem(*parsed);
    if (!text.empty()) failure.message += " " + text;
  }
  failure.retry_after = parse_retry_after(response.retry_after, base::unix_now());
  return failure;
}

base::Expected<Json, Failure> Client::directory() {
  auto response = transport_.request("GET", options_.directory_url, "");
  if (!response) return base::unexpected(Failure{"directory", response.error()});
  if (response->status != 200) return base::unexpected(problem("directory", *response));
  auto parsed = parse_json(response->body);
  if (!parsed || parsed->kind != Json::Kind::kObject)
    return base::unexpected(
        Failure{"directory", "not a JSON object: " + (parsed ? std::string("") : parsed.error())});
  new_nonce_url_ = parsed->string_at("newNonce");
  new_account_url_ = parsed->string_at("newAccount");
  new_order_url_ = parsed->string_at("newOrder");
  renewal_info_url_ = parsed->string_at("renewalInfo");
  revoke_cert_url_ = parsed->string_at("revokeCert");
  if (const Json* meta = parsed->get("meta"); meta != nullptr) {
    const Json* required = meta->get("externalAccountRequired");
    external_account_required_ =
        required != nullptr && required->kind == Json::Kind::kBool && required->boolean;
  }
  if (new_nonce_url_.empty() || new_account_url_.empty() || new_order_url_.empty())
    return base::unexpected(
        Failure{"directory", "lacks newNonce, newAccount or newOrder (RFC 8555 §7.1.1)"});
  return std::move(parsed).value();
}

base::Expected<HttpResponse, Failure> Client::post(const std::string& step, const std::string& url,
                                                   const std::string& payload) {
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) {
      auto fresh = transport_.request("HEAD", new_nonce_url_, "");
      if (!fresh) return base::unexpected(Failure{"nonce", fresh.error()});
      if (fresh->replay_nonce.empty())
        return base::unexpected(Failure{"nonce", "the CA sent no Replay-Nonce"});
      nonce_ = fresh->replay_nonce;
    }
    const bool use_jwk = url == new_account_url_;
    auto body = key_.sign(payload, nonce_, url, use_jwk ? "" : account_url_);
    if (!body) return base::unexpected(Failure{step, body.error()});
    nonce_.clear();
    auto response = transport_.request("POST", url, body.value());
    if (!response) return base::unexpected(Failure{step, response.error()});
    nonce_ = response->replay_nonce;  // every response carries the next nonce (§6.5)
    if (response->status == 400) {
      auto parsed = parse_json(response->body);
      if (parsed && parsed->string_at("type") == kBadNonce &&
          attempt < options_.max_bad_nonce_retries) {
        // §6.5: retry with the nonce the error carries.
        obs::Log("acme_bad_nonce", obs::Level::kInfo).kv("step", step).kv("attempt", attempt + 1);
        continue;
      }
    }
    return std::move(response).value();
  }
}

base::Expected<Json, Failure> Client::post_json(const std::string& step, const std::string& url,
                                                const std::string& payload, HttpResponse* raw) {
  auto response = post(step, url, payload);
  if (!response) return base::unexpected(response.error());
  if (response->status < 200 || response->status > 299)
    return base::unexpected(problem(step, *response));
  auto parsed = parse_json(response->body);
  if (!parsed || parsed->kind != Json::Kind::kObject)
    return base::unexpected(Failure{
        step, "the CA's answer is not a JSON object" + (parsed ? "" : ": " + parsed.error())});
  if (raw != nullptr) *raw = std::move(response).value();
  return std::move(parsed).value();
}

base::Expected<std::string, Failure> Client::account() {
  if (new_account_url_.empty()) {
    auto listed = directory();
    if (!listed) return base::unexpected(listed.error());
  }
  // §7.3.4: a CA that requires a binding refuses the account without one; said before asking.
  if (external_account_required_ && options_.eab_kid.empty())
    return base::unexpected(
        Failure{"account", "the CA requires an External Account Binding" + std::string(kEabHint)});
  std::string payload = R"({"termsOfServiceAgreed":true)";
  if (!options_.contact.empty())
    payload += R"(,"contact":[)" + base::json_string("mailto:" + options_.contact) + "]";
  if (!options_.eab_kid.empty())
    payload +=
        R"(,"externalAccountBinding":)" +
        external_account_binding(key_, options_.eab_kid, options_.eab_hmac_key, new_account_url_);
  payload += "}";
  HttpResponse raw;
  auto created = post_json("account", new_account_url_, payload, &raw);
  if (!created) {
    Failure failure = created.error();
    if (failure.message.find("externalAccountRequired") != std::string::npos)
      failure.message += kEabHint;
    return base::unexpected(failure);
  }
  if (raw.location.empty())
    return base::unexpected(Failure{"account", "the CA sent no account URL (Location)"});
  const std::string status = created->string_at("status");
  if (status != "valid") return base::unexpected(Failure{"account", "the account is " + status});
  account_url_ = raw.location;
  return account_url_;
}

base::Expected<Json, Failure> Client::poll(const std::string& step, const std::string& url,
                                           const std::vector<std::string>& pending) {
  const auto limit = std::chrono::steady_clock::now() + options_.poll_limit;
  std::chrono::milliseconds pause(100);
  while (true) {
    HttpResponse raw;
    auto state = post_json(step, url, "", &raw);
    if (!state) return state;
    if (!is_one_of(state->string_at("status"), pending)) return state;
    // Retry-After when the CA says (§7.5.1, §7.4), else 100 ms doubling up to 5 s.
    std::chrono::milliseconds wait = pause;
    if (auto after = parse_retry_after(raw.retry_after, base::unix_now()); after.count() > 0)
      wait = std::min<std::chrono::milliseconds>(after, std::chrono::seconds(60));
    pause = std::min<std::chrono::milliseconds>(pause * 2, std::chrono::seconds(5));
    if (std::chrono::steady_clock::now() + wait > limit)
      return base::unexpected(Failure{step, "still " + state->string_at("status") + " after " +
                                                std::to_string(options_.poll_limit.count()) +
                                                " ms"});
    if (!waiter_(wait)) return base::unexpected(Failure{step, "stopping", {}, true});
  }
}

base::Expected<base::Ok, Failure> Client::authorize(const std::string& authorization_url) {
  auto authorization = post_json("authorization", authorization_url, "");
  if (!authorization) return base::unexpected(authorization.error());
  const std::string status = authorization->string_at("status");
  const Json* identifier = authorization->get("identifier");
  const std::string name = identifier ? identifier->string_at("value") : "";
  if (status == "valid") return base::Ok{};
  if (status != "pending")
    return base::unexpected(Failure{"authorization", name + " is " + status});
  const Json* challenges = authorization->get("challenges");
  const Json* chosen = nullptr;
  const std::string& type = options_.challenge;
  if (challenges != nullptr && challenges->kind == Json::Kind::kArray) {
    for (const Json& challenge : challenges->items)
      if (challenge.string_at("type") == type) chosen = &challenge;
  }
  if (chosen == nullptr)
    return base::unexpected(
        Failure{"challenge", name + ": the CA offers no " + type + " challenge"});
  const std::string token = chosen->string_at("token");
  const std::string challenge_url = chosen->string_at("url");
  // §8.3: the token is base64url, at least 128 bits; anything else never reaches a path.
  if (token.size() < 22 || token.size() > 256 ||
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
          std::string::npos ||
      challenge_url.empty()) {
    return base::unexpected(Failure{"challenge", name + ": bad " + type + " token or URL"});
  }
  // http-01 serves the key authorization under the token; tls-alpn-01 in a certificate for
  // the name (RFC 8737 §3); dns-01 in a TXT record of the name (§8.4).
  const std::string published = type == "http-01" ? token : name;
  obs::Log("acme_challenge").kv("name", name).kv("type", type);
  if (auto ready = publisher_.publish(published, key_.key_authorization(token)); !ready) {
    publisher_.withdraw(published);
    return base::unexpected(Failure{"challenge", name + ": " + ready.error()});
  }
  auto answered = post_json("challenge", challenge_url, "{}");
  base::Expected<Json, Failure> done =
      answered ? poll("authorization", authorization_url, {"pending", "processing"})
               : base::Expected<Json, Failure>(base::unexpected(answered.error()));
  publisher_.withdraw(published);
  if (!done) return base::unexpected(done.error());
  if (done->string_at("status") != "valid") {
    std::string why;
    if (const Json* list = done->get("challenges"); list && list->kind == Json::Kind::kArray) {
      for (const Json& challenge : list->items) {
        if (const Json* error = challenge.get("error");
            error && challenge.string_at("type") == type)
          why = describe_problem(*error);
      }
    }
    return base::unexpected(Failure{
        "challenge", name + " is " + done->string_at("status") + (why.empty() ? "" : ": " + why)});
  }
  return base::Ok{};
}

base::Expected<base::Ok, Failure> Client::revoke(const std::string& chain_pem, int reason) {
  if (account_url_.empty()) {
    auto known = account();
    if (!known) return base::unexpected(known.error());
  }
  if (revoke_cert_url_.empty())
    return base::unexpected(Failure{"revoke", "the CA's directory has no revokeCert"});
  tls::BioPtr bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  tls::X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  unsigned char* der = nullptr;
  const int size = leaf ? i2d_X509(leaf.get(), &der) : -1;
  if (size <= 0) return base::unexpected(Failure{"revoke", "no certificate to revoke"});
  const std::string certificate(reinterpret_cast<const char*>(der), static_cast<std::size_t>(size));
  OPENSSL_free(der);
  // §7.6: the certificate's DER in base64url, and the reason when it is not 0 (unspecified).
  std::string payload = R"({"certificate":")" + base64url(certificate) + "\"";
  if (reason != 0) payload += R"(,"reason":)" + std::to_string(reason);
  payload += "}";
  auto response = post("revoke", revoke_cert_url_, payload);
  if (!response) return base::unexpected(response.error());
  if (response->status != 200) return base::unexpected(problem("revoke", *response));
  return base::Ok{};
}

base::Expected<bool, Failure> Client::offers_renewal_info() {
  if (new_account_url_.empty()) {
    auto listed = directory();
    if (!listed) return base::unexpected(listed.error());
  }
  return !renewal_info_url_.empty();
}

base::Expected<RenewalWindow, Failure> Client::renewal_info(const std::string& certificate_id) {
  auto offered = offers_renewal_info();
  if (!offered) return base::unexpected(offered.error());
  if (!offered.value()) return base::unexpected(Failure{"renewal_info", "not offered by the CA"});
  std::string url = renewal_info_url_;
  if (url.empty() || url.back() != '/') url += '/';
  auto response = transport_.request("GET", url + certificate_id, "");
  if (!response) return base::unexpected(Failure{"renewal_info", response.error()});
  if (response->status != 200) return base::unexpected(problem("renewal_info", *response));
  auto parsed = parse_json(response->body);
  const Json* window = parsed ? parsed->get("suggestedWindow") : nullptr;
  std::optional<std::int64_t> start, end;
  if (window != nullptr) {
    start = parse_rfc3339(window->string_at("start"));
    end = parse_rfc3339(window->string_at("end"));
  }
  // §4.2: a window whose end is not after its start is invalid.
  if (!start || !end || *end <= *start)
    return base::unexpected(Failure{"renewal_info", "no valid suggestedWindow in the answer"});
  return RenewalWindow{*start, *end, parse_retry_after(response->retry_after, base::unix_now())};
}

base::Expected<std::string, Failure> Client::issue(const std::vector<std::string>& names,
                                                   const std::string& csr_der,
                                                   const std::string& replaces) {
  if (account_url_.empty()) {
    auto known = account();
    if (!known) return base::unexpected(known.error());
  }
  std::string identifiers;
  for (const std::string& name : names)
    identifiers += std::string(identifiers.empty() ? "" : ",") + R"({"type":"dns","value":)" +
                   base::json_string(name) + "}";
  HttpResponse raw;
  std::string payload = R"({"identifiers":[)" + identifiers + "]";
  // RFC 9773 §5: "replaces" only to a CA that offers ARI (others may refuse the field).
  if (!replaces.empty() && !renewal_info_url_.empty())
    payload += R"(,"replaces":)" + base::json_string(replaces);
  payload += "}";
  auto order = post_json("order", new_order_url_, payload, &raw);
  if (!order) return base::unexpected(order.error());
  const std::string order_url = raw.location;
  if (order_url.empty()) return base::unexpected(Failure{"order", "the CA sent no order URL"});
  if (const Json* authorizations = order->get("authorizations");
      authorizations && authorizations->kind == Json::Kind::kArray) {
    for (const Json& url : authorizations->items) {
      if (url.kind != Json::Kind::kString)
        return base::unexpected(Failure{"order", "an authorization URL is not a string"});
      auto authorized = authorize(url.text);
      if (!authorized) return base::unexpected(authorized.error());
    }
  }
  auto ready = poll("order", order_url, {"pending"});
  if (!ready) return base::unexpected(ready.error());
  if (ready->string_at("status") == "ready") {
    const std::string finalize_url = ready->string_at("finalize");
    if (finalize_url.empty()) return base::unexpected(Failure{"finalize", "no finalize URL"});
    auto finalized =
        post_json("finalize", finalize_url, R"({"csr":")" + base64url(csr_der) + R"("})");
    if (!finalized) return base::unexpected(finalized.error());
    ready = poll("order", order_url, {"ready", "processing"});
    if (!ready) return base::unexpected(ready.error());
  }
  if (ready->string_at("status") != "valid") {
    const Json* error = ready->get("error");
    return base::unexpected(Failure{"order", "the order is " + ready->string_at("status") +
                                                 (error ? ": " + describe_problem(*error) : "")});
  }
  const std::string certificate_url = ready->string_at("certificate");
  if (certificate_url.empty())
    return base::unexpected(Failure{"certificate", "a valid order without a certificate URL"});
  auto chain = post("certificate", certificate_url, "");
  if (!chain) return base::unexpected(chain.error());
  if (chain->status != 200) return base::unexpected(problem("certificate", *chain));
  return std::move(chain->body);
}

}  // namespace acme
