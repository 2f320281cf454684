// renewal.h — keeps the ACME certificates current: at start-up, the keys (made once, kept
// across renewals so a TLSA "3 1 1" record stays valid) and a self-signed placeholder where
// no certificate exists yet; then a thread that renews each certificate (ECDSA P-256 and
// RSA-2048, side by side) when it is due, writes the new chain beside its key (atomically:
// the TLS layer's hot reload puts it in service, connections stay open), and retries failures
// with backoff.
//
// When a certificate is due: a placeholder, or a certificate whose DNS names differ from the
// configured names (a name added to [acme] names), at once; else, when the CA offers ACME
// Renewal Information (RFC 9773), at a uniformly random time inside the window it suggests,
// but no later than a sixth of the lifetime before not_after (a window beyond that is ignored:
// the lifetime rule decides) (asked again after its Retry-After, 6 hours without one, and the
// new order "replaces" the old certificate); else at two thirds of its lifetime (not_before +
// 2/3 of not_after - not_before), or renew_before ahead of not_after when that is set, but never
// before half of the lifetime (a renew_before as long as the certificate would make each new
// certificate due at once: back-to-back orders). A failure is retried after retry_min,
// doubling up to retry_max, never sooner than the CA's Retry-After (itself at most a day); all
// due-time arithmetic saturates. While the time left is under a sixth of the lifetime each
// failure is logged as an error (the hourly expiry warning of the TLS layer says it too).
//
// Logs (one key=value line per step): acme_order (names, key), acme_challenge, acme_bad_nonce,
// acme_revoked (key, serial, reason), acme_revoke_failed (key, step, error), acme_key_replaced
// (key, tlsa),
// acme_renewal_info (key, window_start, window_end, renew_at), acme_renewal_info_failed,
// acme_renewed (key, not_after, days_left, issuer), acme_failed (key, step, error, retry_in),
// acme_key_staged (key, tlsa), acme_key_rollover (key, step=waiting|visible|switching|switched).
//
// A key change that keeps DANE working (RFC 7671 §8.1): "smtpsctl cert rollover" stages a next
// key (<type>.next.key, 0600) and logs its TLSA record, to be published beside the current one
// (smtpsctl dane tlsa --next). The thread then asks the DNS (dane_rollover.h) every retry_min
// (at most 5 minutes): once every authoritative server and our validating resolver show the
// record, it waits twice the RRset's TTL (caches that hold the old RRset let it go), then
// orders a certificate for the next key and puts the pair in service: the chain is written as
// <type>.next.crt, the key renamed over <type>.key, the chain over <type>.crt (prepare_files
// finishes the last rename after a crash between the two). When no name has a DNSSEC-signed
// TLSA RRset, the key changes at the next round; with force, at once. A revocation uses the
// staged key when there is one (its record may already be published).
// Metrics: smtpsd_acme_certificate_days_left{key}, smtpsd_acme_renewals_total{key,result}.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "acme/certificate_files.h"
#include "acme/client.h"
#include "acme/dane_rollover.h"
#include "base/expected.h"
#include "dns/resolver.h"

namespace acme {

struct RenewalOptions {
  std::string acme_dir;  // <data_dir>/acme
  std::vector<std::string> names;
  ClientOptions client;
  std::string ca_file;  // trust for the CA's HTTPS; "" the system store
  std::chrono::milliseconds request_timeout{30'000};
  std::optional<std::chrono::seconds> renew_before;  // none: at two thirds of the lifetime
  std::chrono::milliseconds retry_min{60'000};
  std::chrono::milliseconds retry_max{6 * 3'600'000};
  // The CA's transport; null: HTTPS with libcurl (CurlTransport). Tests give a scripted CA.
  std::shared_ptr<HttpTransport> transport = nullptr;
  // A key rollover asks each authoritative nameserver through these (dane_rollover.h); null:
  // it cannot, and waits for force.
  AuthoritativeResolvers authoritative = nullptr;
};

// Start-up, before the certificates are read: the directory (0700), the account key and
// each certificate key (made when missing, 0600), and a placeholder chain where none is.
base::Expected<base::Ok, std::string> prepare_files(const std::string& acme_dir,
                                                    const std::vector<std::string>& names);

// The due time (unix seconds) of a certificate by its dates alone, as described above.
std::int64_t due_by_lifetime(const ChainInfo& info,
                             std::optional<std::chrono::seconds> renew_before);
// Whether the leaf's DNS names are the configured ones (as sets, case ignored).
bool names_match(const ChainInfo& info, const std::vector<std::string>& names);
// The latest time (unix seconds) a CA's window may put the renewal at: not_after minus a
// sixth of the lifetime.
std::int64_t latest_renewal(const ChainInfo& info);

class Renewer {
 public:
  Renewer(RenewalOptions options, std::shared_ptr<dns::Resolver> resolver,
          ChallengePublisher& publisher);
  ~Renewer();
  void start();
  void stop();
  // Renews every certificate now, whatever its dates ("smtpsctl cert renew"); the result
  // shows in status() and the log.
  void renew_now();
  // "smtpsctl cert revoke": revokes the certificate of the key type (both when none) with the
  // RFC 5280 §5.3.1 reason, on the renewal thread. A revoked certificate's key may be
  // compromised: once the CA confirms, a NEW key replaces it (with a placeholder until its
  // certificate comes, in the same round), and the log says the TLSA "3 1 1" record must
  // change (acme_key_replaced, with the new record's data).
  void revoke_now(std::optional<KeyType> type, int reason);
  // "smtpsctl cert rollover": stages a next key for the type (both when none) when none is
  // staged, and changes to it as described above; force: without waiting for the DNS.
  void rollover_now(std::optional<KeyType> type, bool force);
  // What "smtpsctl cert status" prints: per key, the certificate on disk and the schedule.
  std::string status() const;

 private:
  struct KeyState {
    CertificatePaths paths;
    std::int64_t due_ms = 0;  // next attempt, unix milliseconds
    std::chrono::milliseconds backoff{0};
    int failures = 0;
    std::string last_result = {};  // "renewed …" or "failed at STEP: …"
    std::int64_t last_attempt_unix = 0;
    // RFC 9773: when to ask the CA for the window again, and the window last given.
    std::int64_t renewal_info_next_ms = 0;
    std::optional<RenewalWindow> window = std::nullopt;
    std::optional<int> revoke_reason = std::nullopt;  // a revocation asked for
    // A key rollover: asked for (stage a key), forced, when the DNS is asked next, since when
    // the record has been visible (0: not), and what the last check said.
    bool rollover_asked = false;
    bool rollover_force = false;
    bool rollover_staged = false;  // <type>.next.key exists
    std::int64_t rollover_check_ms = 0;
    std::int64_t rollover_switch_ms = 0;
    std::string rollover_status = {};
  };
  void run();
  void schedule(KeyState& state, std::int64_t now_ms) const;  // from the chain on disk
  // next_key: order for the staged key and put it in service with its certificate.
  void attempt(KeyState& state, Client& client, const AccountKey& account, bool next_key = false);
  // The rollover's step for one key: stage, ask the DNS, switch (see rollover_now).
  void roll(KeyState& state, Client& client, const AccountKey& account);
  bool rollover_due(const KeyState& state, std::int64_t now) const;
  static void end_rollover(KeyState& state);  // under mutex_: no rollover under way
  // Revokes the certificate in service, then replaces its key (see revoke_now).
  void revoke(KeyState& state, Client& client);
  void update_metrics(const KeyState& state) const;
  // Asks the CA for the window of each certificate in service whose answer is stale (RFC
  // 9773 §4.2) and moves its due time into a new window. Called without mutex_.
  void refresh_renewal_info(Client& client);

  RenewalOptions options_;
  std::shared_ptr<dns::Resolver> resolver_;
  ChallengePublisher& publisher_;
  std::thread thread_;
  mutable std::mutex mutex_;  // guards what follows
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};  // set by stop(): ends a request to the CA under way
  bool forced_ = false;
  std::vector<KeyState> keys_;
};

}  // namespace acme
