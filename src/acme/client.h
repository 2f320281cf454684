// client.h — one ACME conversation (RFC 8555) with the CA: the directory (§7.1.1), nonces
// (§7.2, badNonce retried with the error's Replay-Nonce, §6.5), the account (§7.3; found
// again by its key each time, "onlyReturnExisting" not needed: newAccount with a known key
// answers 200 and its URL; with an External Account Binding when configured, §7.3.4), an
// order for the names (§7.4), their authorizations by http-01 (§8.3) or tls-alpn-01 (RFC
// 8737), the finalization with a
// CSR and the certificate chain's download (§7.4.2); revocation (§7.6).
//
// Invariants: blocking, on the ACME thread only (the transport bounds each request; every
// wait goes through Waiter, which returns false when the server stops); nothing secret is
// in a Failure (no key, no nonce, no key authorization); a problem document's text comes from
// the network and is escaped by whoever prints it. Retry-After (RFC 9110 §10.2.3, seconds or
// an HTTP date) is honoured while polling and handed back with a rate-limit or unavailable
// failure (§6.6) for the renewal schedule.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "acme/https.h"
#include "acme/json.h"
#include "acme/jws.h"
#include "base/expected.h"

namespace acme {

// Where a key authorization is published while the CA validates; thread-safe. key is the
// challenge's token for http-01 (http01_responder.h), the name being validated for tls-alpn-01
// (tls_alpn_responder.h) and dns-01 (dns01_hook.h). publish() returns once the CA may look
// (dns-01: the record is visible), or says why it cannot.
class ChallengePublisher {
 public:
  virtual ~ChallengePublisher() = default;
  virtual base::Expected<base::Ok, std::string> publish(const std::string& key,
                                                        const std::string& key_authorization) = 0;
  virtual void withdraw(const std::string& key) = 0;
};

struct Failure {
  std::string step;     // "directory", "nonce", "account", "order", "challenge", "finalize", …
  std::string message;  // why, with the CA's problem type and detail when it sent one
  std::chrono::seconds retry_after{0};  // the CA's Retry-After, 0 when none
  bool stopped = false;                 // the server is stopping: not an error
};

struct ClientOptions {
  std::string directory_url;
  std::string contact;  // e-mail address, "" for none
  // External Account Binding (RFC 8555 §7.3.4): the key identifier and the MAC key (raw
  // bytes, never logged) the CA gave; both empty for none.
  std::string eab_kid;
  std::string eab_hmac_key;
  // The challenge answered: "http-01" (RFC 8555 §8.3), "tls-alpn-01" (RFC 8737) or "dns-01"
  // (RFC 8555 §8.4).
  std::string challenge = "http-01";
  // How long to wait for an authorization or order to change state, in all.
  std::chrono::milliseconds poll_limit{120'000};
  int max_bad_nonce_retries = 5;
};

// Sleeps for the duration; false when the wait was ended because the server stops.
using Waiter = std::function<bool(std::chrono::milliseconds)>;

// RFC 9773 §4.1: a certificate's ARI identifier, base64url(authorityKeyIdentifier's
// keyIdentifier) "." base64url(serial number's DER content octets), from its PEM chain (leaf
// first); an error when the leaf has no keyIdentifier.
base::Expected<std::string, std::string> certificate_id(const std::string& chain_pem);

// The CA's suggested renewal window (RFC 9773 §4.2), unix seconds, and how long to wait
// before asking again (its Retry-After; 0 when it sent none).
struct RenewalWindow {
  std::int64_t start = 0;
  std::int64_t end = 0;
  std::chrono::seconds retry_after{0};
};

// "2025-01-02T04:00:00Z" or with fractional seconds → unix seconds; nullopt otherwise.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

// Seconds from a Retry-After value (delay-seconds or an IMF-fixdate), 0 when empty or bad,
// never more than kRetryAfterLimit (a day).
inline constexpr std::chrono::seconds kRetryAfterLimit{86'400};
std::chrono::seconds parse_retry_after(std::string_view value, std::int64_t now_unix);

class Client {
 public:
  Client(HttpTransport& transport, const AccountKey& key, ChallengePublisher& publisher,
         ClientOptions options, Waiter waiter);

  // The account for the key: created when the CA does not know it (§7.3), else found.
  base::Expected<std::string, Failure> account();
  // Order, authorize, finalize with csr_der and download: the PEM chain (leaf first).
  // replaces: the ARI identifier of the certificate this one replaces (RFC 9773 §5), sent only
  // when the CA offers ARI; "" for none.
  base::Expected<std::string, Failure> issue(const std::vector<std::string>& names,
                                             const std::string& csr_der,
                                             const std::string& replaces = "");
  // Revokes the leaf of chain_pem (§7.6), signed with the account key (the account that
  // ordered it), with an RFC 5280 §5.3.1 reason code.
  base::Expected<base::Ok, Failure> revoke(const std::string& chain_pem, int reason);
  // Whether the directory offers renewalInfo (RFC 9773 §3), once the directory is read.
  base::Expected<bool, Failure> offers_renewal_info();
  // The CA's window for the certificate (RFC 9773 §4.2): an unauthenticated GET.
  base::Expected<RenewalWindow, Failure> renewal_info(const std::string& certificate_id);

 private:
  base::Expected<Json, Failure> directory();
  // A signed POST (payload "" is POST-as-GET), with badNonce retried.
  base::Expected<HttpResponse, Failure> post(const std::string& step, const std::string& url,
                                             const std::string& payload);
  base::Expected<Json, Failure> post_json(const std::string& step, const std::string& url,
                                          const std::string& payload, HttpResponse* raw = nullptr);
  // Polls url (POST-as-GET) until its "status" leaves the pending states.
  base::Expected<Json, Failure> poll(const std::string& step, const std::string& url,
                                     const std::vector<std::string>& pending);
  base::Expected<base::Ok, Failure> authorize(const std::string& authorization_url);
  Failure problem(const std::string& step, const HttpResponse& response) const;

  HttpTransport& transport_;
  const AccountKey& key_;
  ChallengePublisher& publisher_;
  ClientOptions options_;
  Waiter waiter_;
  std::string new_nonce_url_, new_account_url_, new_order_url_, renewal_info_url_, revoke_cert_url_;
  bool external_account_required_ = false;  // the directory's meta says so (§7.1.1)
  std::string nonce_;
  std::string account_url_;
};

}  // namespace acme
