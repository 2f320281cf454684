// mta_sts.h — MTA-STS (RFC 8461) discovery for delivery: the `_mta-sts` TXT record through
// the server's dns::Resolver, the policy over HTTPS (libcurl), and an on-disk cache per
// domain. The pure parts (policy file, TXT record, MX matching) are delivery/mta_sts_policy.h;
// docs/architecture.md "MTA-STS" says where this sits in delivery.
//
// Invariants:
// - policy_for() blocks (delivery worker threads only, never an I/O thread), is thread-safe,
//   and returns by `deadline`: every wait in it (the domain's lock, DNS, HTTPS) is bounded
//   by what is left of it.
// - The policy host is `mta-sts.<domain>`, its addresses come from our resolver only (A and
//   AAAA, pinned into libcurl), its certificate must verify for that name against
//   `ca_file` (or the system store); no redirect is followed, no proxy is used, the body is
//   bounded and must be served as text/plain (§3.3).
// - A policy is used from the cache until fetched_at + max_age; it is fetched again when the
//   TXT id differs from the cached one, and refreshed on use once half its max_age has passed
//   (§3.3, §10.2: refreshing before expiry keeps a downgrade at refresh time from removing
//   it). When the TXT record disappears, DNS fails or a fetch fails, an unexpired cached
//   policy stays in force (§5.1).
// - refresh_cache() does the same for every cached policy past half its max_age, mail or no
//   mail (§10.2: "senders SHOULD ... proactively refresh cached policies"); the daemon calls
//   it from its own thread every [delivery] mta_sts_refresh.
// - Cache files are written atomically (temporary file, fsync, rename, fsync of the
//   directory) in a directory of mode 0700; a damaged file is ignored as if absent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "delivery/mta_sts_policy.h"
#include "dns/resolver.h"

namespace delivery {

// Why a policy could not be fetched, in RFC 8460 §4.3.2.2's result types (TLS-RPT).
enum class StsFailure {
  kNone,
  kFetchError,  // "sts-policy-fetch-error": unreachable, timeout, HTTP status not 200, redirect
  kInvalid,     // "sts-policy-invalid": not text/plain, too large, does not parse
  kWebPki,      // "sts-webpki-invalid": the HTTPS certificate did not verify
};
std::string_view to_string(StsFailure failure);  // "", "sts-policy-fetch-error", ...

struct PolicyLookup {
  enum class Source { kNone, kFresh, kCache };
  Source source = Source::kNone;           // kNone: the domain has no policy we know of
  StsPolicy policy;                        // meaningful when source != kNone
  std::string id;                          // the TXT id the policy was fetched under
  std::int64_t fetched_at = 0;             // Unix seconds
  std::int64_t expires_at = 0;             // fetched_at + max_age
  StsFailure failure = StsFailure::kNone;  // a fetch failed (a cached policy may still apply)
  std::string detail;  // in words, for logs: why none, why the fetch failed, which TXT error

  bool has_policy() const { return source != Source::kNone; }
};
std::string_view to_string(PolicyLookup::Source source);  // "none", "fresh", "cache"

struct MtaStsOptions {
  std::string cache_directory;  // made (mode 0700) if missing: <data_dir>/mta-sts
  std::string ca_file;          // [delivery] ca_file; empty: the system store
  std::uint16_t https_port = 443;
  std::chrono::milliseconds fetch_timeout{20000};  // connect + transfer, also bounded by deadline
  std::size_t max_policy_bytes = kMaxPolicyBytes;
};

// A failed fetch: its RFC 8460 type and the reason in words.
struct StsFetchError {
  StsFailure failure = StsFailure::kFetchError;
  std::string detail;
};
// Fetches https://mta-sts.<domain>/.well-known/mta-sts.txt and returns the body.
using StsFetcher = std::function<base::Expected<std::string, StsFetchError>(
    const std::string& domain, std::chrono::steady_clock::time_point deadline)>;

// The real fetcher (libcurl), as MtaSts uses it: exposed for `smtpsctl mta-sts check`.
base::Expected<std::string, StsFetchError> fetch_sts_policy(
    dns::Resolver& resolver, const MtaStsOptions& options, const std::string& domain,
    std::chrono::steady_clock::time_point deadline);

class MtaSts {
 public:
  using UnixClock = std::function<std::int64_t()>;

  // Makes the cache directory (0700) if missing; initialises libcurl once per process.
  static base::Expected<std::unique_ptr<MtaSts>, std::string> create(
      std::shared_ptr<dns::Resolver> resolver, MtaStsOptions options);
  // For tests: another fetcher (no HTTPS) and clock.
  static base::Expected<std::unique_ptr<MtaSts>, std::string> create(
      std::shared_ptr<dns::Resolver> resolver, MtaStsOptions options, StsFetcher fetcher,
      UnixClock now);

  // The policy of `domain` (a recipient domain, A-labels) for delivery now. Blocking.
  PolicyLookup policy_for(std::string_view domain, std::chrono::steady_clock::time_point deadline);

  // Walks the on-disk cache: each policy past half its max_age is looked up again as
  // policy_for() does (a failed fetch keeps the cached one), each expired one is forgotten,
  // the others are left alone. One domain after the other, each bounded by per_domain.
  // Blocking; what happened to each domain looked at, for the caller's logs.
  struct Refreshed {
    std::string domain;
    PolicyLookup lookup;  // source kNone with detail "expired": forgotten
    std::int64_t previous_fetched_at = 0;
  };
  std::vector<Refreshed> refresh_cache(std::chrono::milliseconds per_domain);

 private:
  struct Cached {
    StsPolicy policy;
    std::string id;
    std::int64_t fetched_at = 0;
  };
  MtaSts(std::shared_ptr<dns::Resolver> resolver, MtaStsOptions options, StsFetcher fetcher,
         UnixClock now);
  std::optional<Cached> load(const std::string& domain);
  void store(const std::string& domain, const Cached& entry, std::string_view body);
  void forget(const std::string& domain);
  std::shared_ptr<std::timed_mutex> domain_lock(const std::string& domain);

  std::shared_ptr<dns::Resolver> resolver_;
  MtaStsOptions options_;
  StsFetcher fetcher_;
  UnixClock now_;
  std::mutex mutex_;                      // guards memory_ and domain_locks_
  std::map<std::string, Cached> memory_;  // bounded; the disk is the record
  std::map<std::string, std::shared_ptr<std::timed_mutex>> domain_locks_;
};

}  // namespace delivery
