// tls_report.h — SMTP TLS Reporting (RFC 8460): what is counted of each outbound session,
// and the report a policy domain receives for a day of them.
//
// MX delivery counts every session (a connection that got as far as deciding its TLS) per
// policy — the DANE TLSA records of one MX host, or the MTA-STS policy, or "no policy
// found" — as a success or as a failure of one result type (§4.3). Once a day the reporter
// sends each policy domain that publishes `_smtp._tls` TXT "v=TLSRPTv1; rua=…" the JSON
// report of §4.4, gzipped and named as §5.1 says, by mail (§5.3) to its mailto: addresses.
// Everything here is pure but TlsReportCounts' mutex: files, DNS and the queue belong to
// the caller (app/smtpsd/tls_reporter.h).
//
// A report whose HTTPS POST failed is kept as a PendingTlsReportPost (its own file, written by
// the reporter) and tried again on a backoff schedule until its lifetime is over.
//
// Invariants: counts lines hold no space, CR or LF inside a field (percent-encoded), so a
// hostile host name cannot forge an entry; JSON strings are escaped (base/json.h); a report
// names one policy domain.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace delivery {

// One policy as §4.4's "policy" object: type "tlsa", "sts" or "no-policy-found".
struct TlsrptPolicy {
  std::string type;
  std::string domain;                // the recipient domain
  std::vector<std::string> strings;  // TLSA records ("3 1 1 ab…") or the STS policy lines
  std::string mx_host;               // the MX host the TLSA records are of ("" for the others)
  auto operator<=>(const TlsrptPolicy&) const = default;
};

// One kind of failure of a policy (§4.4 "failure-details"); result_type as §4.3 names it:
// "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
// "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
// "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid".
struct TlsrptFailure {
  std::string result_type;
  std::string sending_ip;  // may be empty (the kernel chose it)
  std::string receiving_mx;
  std::string receiving_ip;
  auto operator<=>(const TlsrptFailure&) const = default;
};

struct TlsrptPolicyCounts {
  TlsrptPolicy policy;
  std::uint64_t successes = 0;
  std::vector<std::pair<TlsrptFailure, std::uint64_t>> failures;
};

// The counts of a period, from any thread.
class TlsReportCounts {
 public:
  void success(const TlsrptPolicy& policy, std::uint64_t count = 1);
  void failure(const TlsrptPolicy& policy, const TlsrptFailure& failure, std::uint64_t count = 1);
  // Everything counted so far, grouped by policy (sorted), and the counts start again.
  std::vector<TlsrptPolicyCounts> take();
  bool empty() const;
  // Changes with every count added or taken: the reporter saves the counts when it moved.
  std::uint64_t version() const;

  // The counts as lines ("S …" a policy's successes, "F …" one failure kind), to keep them
  // across a restart; add_lines() adds what such lines hold and skips any other line.
  std::string lines() const;
  void add_lines(std::string_view text);

 private:
  mutable std::mutex mutex_;
  std::map<TlsrptPolicy, std::uint64_t> successes_;
  std::map<std::pair<TlsrptPolicy, TlsrptFailure>, std::uint64_t> failures_;
  std::uint64_t version_ = 0;
};

struct TlsReportMetadata {
  std::string org_name;   // "organization-name"
  std::string contact;    // "contact-info": our reporting address
  std::string submitter;  // our host name (file name, TLS-Report-Submitter)
  std::string report_id;
  std::int64_t begin = 0;  // the period, Unix time
  std::int64_t end = 0;
};

// The JSON report (§4.4) of one policy domain's counts.
std::string tls_report_json(const TlsReportMetadata& metadata,
                            std::span<const TlsrptPolicyCounts> policies);

// §5.1: "submitter!policy-domain!begin!end!report-id.json.gz".
std::string tls_report_file_name(const TlsReportMetadata& metadata, std::string_view policy_domain);

// §5.3: multipart/report; report-type="tlsrpt", TLS-Report-Domain and TLS-Report-Submitter,
// the gzipped report as application/tlsrpt+gzip.
std::string tls_report_message(const TlsReportMetadata& metadata, std::string_view policy_domain,
                               std::span<const std::string> recipients, std::string_view gzipped,
                               std::int64_t now);

// A report waiting to be POSTed again (§5.4 says nothing of retries; we retry a failed POST
// with backoff rather than lose the report, within a lifetime).
struct PendingTlsReportPost {
  std::string uri;  // https://…
  std::string domain;
  std::uint64_t sessions = 0;
  std::int64_t first_failure = 0;  // Unix time of the first failed POST
  std::int64_t next_attempt = 0;   // Unix time
  unsigned failures = 0;           // failed POSTs so far
  std::string gzipped;             // the report as POSTed
  bool operator==(const PendingTlsReportPost&) const = default;
};
// A header of "key value" lines (values percent-encoded), a blank line, then the report.
std::string pending_post_text(const PendingTlsReportPost& post);
// Nothing when the text is not what pending_post_text() writes.
std::optional<PendingTlsReportPost> parse_pending_post(std::string_view text);
// The wait after the failures-th failed POST: delay, 5, 30, then 60 times delay (no more).
std::int64_t post_retry_wait(unsigned failures, std::int64_t delay);

// The rua URIs of a `_smtp._tls` TXT record (§3: "v=TLSRPTv1; rua=mailto:a@b,https://…");
// nothing when it is not a TLSRPTv1 record.
std::optional<std::vector<std::string>> parse_tlsrpt_record(std::string_view text);

}  // namespace delivery
