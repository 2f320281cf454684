// tls_reporter.cpp — see tls_reporter.h.
#include "app/smtpsd/tls_reporter.h"

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "auth/user_store.h"
#include "base/ascii.h"
#include "base/clock.h"
#include "delivery/pinned_https.h"
#include "delivery/posture.h"
#include "mailauth/dmarc_report.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace app {
namespace fs = std::filesystem;

namespace {

constexpr std::chrono::seconds kLookupDeadline{10};
constexpr std::size_t kMaxRecipients = 4;
constexpr std::chrono::seconds kPostTimeout{30};

// "mailto:a@b" → "a@b" (RFC 8460 §3: a mailto URI, RFC 6068); "" for anything else.
std::string mailto_address(std::string_view uri) {
  if (uri.size() < 7 || !base::equals_ignoring_case(uri.substr(0, 7), "mailto:")) return {};
  std::string_view address = uri.substr(7);
  const std::size_t at = address.rfind('@');
  if (at == 0 || at == std::string_view::npos || at + 1 >= address.size()) return {};
  for (char c : address)
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>' || c == ',' || c == '"' ||
        c == '?' || c == '%')
      return {};
  return std::string(address);
}

}  // namespace

TlsReporter::TlsReporter(Options options, std::shared_ptr<dns::Resolver> resolver,
                         ReportEnqueue enqueue, std::shared_ptr<delivery::TlsReportCounts> counts)
    : options_(std::move(options)),
      resolver_(std::move(resolver)),
      enqueue_(std::move(enqueue)),
      counts_(std::move(counts)) {
  std::error_code ec;
  fs::create_directories(options_.directory, ec);
  begin_ = base::unix_now();
  // What a previous run counted and did not report yet (saved every save_interval and at
  // stop, so also what a run that crashed had counted).
  const std::string kept = options_.directory + "/current.counts";
  std::ifstream in(kept);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    const std::string lines = text.str();
    if (lines.starts_with("B ")) {
      std::int64_t begin = 0;
      const std::size_t end = lines.find('\n');
      std::from_chars(lines.data() + 2,
                      lines.data() + (end == std::string::npos ? lines.size() : end), begin);
      if (begin > 0 && begin < begin_) begin_ = begin;
    }
    counts_->add_lines(lines);
  }
  // The file stays until the next save replaces it: a crash before then loses nothing.
  saved_version_ = counts_->version();
  // The temporary files of writes a crash cut short (no thread of ours writes yet).
  const std::string posts = options_.directory + "/posts";
  fs::create_directories(posts, ec);
  for (const fs::directory_entry& entry : fs::directory_iterator(posts, ec)) {
    if (entry.path().filename().string().find(".tmp.") != std::string::npos)
      fs::remove(entry.path(), ec);
  }
  const std::string counts_prefix = "current.counts.tmp.";
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.directory, ec)) {
    if (entry.path().filename().string().starts_with(counts_prefix)) fs::remove(entry.path(), ec);
  }
}

TlsReporter::~TlsReporter() {
  stop();
}

void TlsReporter::send_reports() {
  const std::int64_t begin = begin_;
  const std::int64_t end = base::unix_now();
  begin_ = end;
  std::map<std::string, std::vector<delivery::TlsrptPolicyCounts>> by_domain;
  for (delivery::TlsrptPolicyCounts& entry : counts_->take())
    by_domain[entry.policy.domain].push_back(std::move(entry));
  for (const auto& [domain, policies] : by_domain) {
    // §3: the policy domain's wish, as published now (the same lookup as tls policy).
    const delivery::TlsrptRecord record =
        delivery::lookup_tlsrpt(*resolver_, domain, kLookupDeadline);
    std::vector<std::string> to, posts;
    if (record.status == delivery::TlsrptRecord::Status::kUnknown) {
      // Not known now: counted again, for the next round.
      for (const delivery::TlsrptPolicyCounts& entry : policies) {
        counts_->success(entry.policy, entry.successes);
        for (const auto& [failure, count] : entry.failures)
          counts_->failure(entry.policy, failure, count);
      }
      continue;
    }
    for (const std::string& uri : record.rua) {  // empty unless exactly one valid record
      const std::string address = mailto_address(uri);
      if (!address.empty() && to.size() < kMaxRecipients) {
        to.push_back(address);
      } else if (uri.starts_with("https://") && posts.size() < kMaxRecipients) {
        posts.push_back(uri);
      }
    }
    if (to.empty() && posts.empty()) continue;
    delivery::TlsReportMetadata metadata;
    metadata.org_name = options_.org_name;
    metadata.contact = options_.from;
    metadata.submitter = options_.submitter;
    metadata.report_id = std::to_string(end) + "." + std::to_string(++sequence_) + "." + domain;
    metadata.begin = begin;
    metadata.end = end;
    auto packed = mailauth::gzip(delivery::tls_report_json(metadata, policies));
    if (!packed) continue;
    std::uint64_t sessions = 0;
    for (const delivery::TlsrptPolicyCounts& entry : policies) {
      sessions += entry.successes;
      for (const auto& [failure, count] : entry.failures)
        sessions += count;
    }
    // §5.4: HTTPS POST of the gzipped report; a failure is logged and the report kept, to
    // be tried again (save_and_retry()).
    for (const std::string& uri : posts) {
      auto posted = delivery::https_post(*resolver_, options_.ca_file, uri,
                                         "application/tlsrpt+gzip", packed.value(), kPostTimeout);
      if (posted && *posted >= 200 && *posted < 300) {
        obs::Log("tls_report")
            .kv("domain", domain)
            .kv("to", uri)
            .kv("sessions", sessions)
            .kv("status", static_cast<std::int64_t>(*posted));
      } else {
        const std::int64_t now = base::unix_now();
        delivery::PendingTlsReportPost post{
            uri,
            domain,
            sessions,
            now,
            now + delivery::post_retry_wait(1, options_.post_retry_delay.count()),
            1,
            std::string(packed.value())};
        const std::int64_t retry_at = post.next_attempt;
        keep_post(std::move(post));  // before the log line: it says the report is kept
        obs::Log("tls_report_failed", obs::Level::kWarning)
            .kv("domain", domain)
            .kv("to", uri)
            .kv("detail", posted ? "HTTP status " + std::to_string(*posted) : posted.error())
            .kv("retry_at", retry_at);
      }
    }
    if (to.empty()) continue;
    std::string message = with_dkim_signatures(
        options_.keys,
        delivery::tls_report_message(metadata, domain, to, packed.value(), base::unix_now()));
    if (!enqueue_(options_.from, to, message)) {
      // Not queued (the spool is full): counted again, for the next round.
      for (const delivery::TlsrptPolicyCounts& entry : policies) {
        counts_->success(entry.policy, entry.successes);
        for (const auto& [failure, count] : entry.failures)
          counts_->failure(entry.policy, failure, count);
      }
      continue;
    }
    std::string list;
    for (const std::string& address : to)
      list += (list.empty() ? "" : ",") + address;
    obs::Log("tls_report")
        .kv("domain", domain)
        .kv("to", list)
        .kv("sessions", sessions)
        .kv("begin", begin)
        .kv("end", end);
  }
}

void TlsReporter::save_counts() {
  // Under save_mutex_. Unchanged since the last save: the file already says it.
  const std::uint64_t version = counts_->version();
  if (version == saved_version_) return;
  const std::string path = options_.directory + "/current.counts";
  const std::string content = "B " + std::to_string(begin_.load()) + "\n" + counts_->lines();
  auto written = auth::replace_file_atomically(path, content);
  if (!written) {
    obs::Log("tls_report_failed", obs::Level::kWarning)
        .kv("file", path)
        .kv("detail", written.error());
    return;
  }
  saved_version_ = version;
}

void TlsReporter::keep_post(delivery::PendingTlsReportPost post) {
  static std::atomic<unsigned> counter{0};
  const std::string path = options_.directory + "/posts/post-" +
                           std::to_string(post.first_failure) + "." + std::to_string(::getpid()) +
                           "." + std::to_string(++counter);
  auto written = auth::replace_file_atomically(path, delivery::pending_post_text(post));
  if (!written) {
    obs::Log("tls_report_failed", obs::Level::kWarning)
        .kv("file", path)
        .kv("detail", written.error());
  }
}

void TlsReporter::retry_posts() {
  const std::string directory = options_.directory + "/posts";
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    // Our files only, not the temporary files of a write under way or cut by a crash.
    if (name.starts_with("post-") && name.find(".tmp.") == std::string::npos) names.push_back(name);
  }
  for (const std::string& name : names) {
    const std::string path = directory + "/" + name;
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    auto post = delivery::parse_pending_post(text.str());
    if (!post) {
      obs::Log("tls_report_dropped", obs::Level::kWarning)
          .kv("file", path)
          .kv("detail", "not a kept report");
      fs::remove(path, ec);
      continue;
    }
    const std::int64_t now = base::unix_now();
    if (now < post->next_attempt) continue;
    auto posted = delivery::https_post(*resolver_, options_.ca_file, post->uri,
                                       "application/tlsrpt+gzip", post->gzipped, kPostTimeout);
    if (posted && *posted >= 200 && *posted < 300) {
      obs::Log("tls_report")
          .kv("domain", post->domain)
          .kv("to", post->uri)
          .kv("sessions", post->sessions)
          .kv("status", static_cast<std::int64_t>(*posted))
          .kv("attempt", static_cast<std::uint64_t>(post->failures + 1));
      fs::remove(path, ec);
      continue;
    }
    const std::string detail = posted ? "HTTP status " + std::to_string(*posted) : posted.error();
    ++post->failures;
    const std::int64_t after =
        now + delivery::post_retry_wait(post->failures, options_.post_retry_delay.count());
    if (after >= post->first_failure + options_.post_retry_lifetime.count()) {
      // No attempt left within the lifetime: the report is given up.
      obs::Log("tls_report_dropped", obs::Level::kWarning)
          .kv("domain", post->domain)
          .kv("to", post->uri)
          .kv("sessions", post->sessions)
          .kv("failures", static_cast<std::uint64_t>(post->failures))
          .kv("detail", detail);
      obs::metrics()
          .counter("smtpsd_tls_report_posts_dropped_total",
                   "SMTP TLS reports whose HTTPS POST failed until their retry lifetime ended.")
          .inc();
      fs::remove(path, ec);
      continue;
    }
    post->next_attempt = after;
    auto written = auth::replace_file_atomically(path, delivery::pending_post_text(*post));
    if (!written) {
      obs::Log("tls_report_failed", obs::Level::kWarning)
          .kv("file", path)
          .kv("detail", written.error());
    }
    obs::Log("tls_report_failed", obs::Level::kWarning)
        .kv("domain", post->domain)
        .kv("to", post->uri)
        .kv("detail", detail)
        .kv("failures", static_cast<std::uint64_t>(post->failures))
        .kv("retry_at", after);
  }
}

void TlsReporter::save_and_retry() {
  std::lock_guard lock(save_mutex_);
  save_counts();
  retry_posts();
}

void TlsReporter::start() {
  poller_ = std::make_unique<base::PollingThread>();
  poller_->start(options_.interval, [this] { send_reports(); });
  housekeeper_ = std::make_unique<base::PollingThread>();
  housekeeper_->start(options_.save_interval, [this] { save_and_retry(); });
}

void TlsReporter::stop() {
  if (stopped_) return;
  stopped_ = true;
  poller_.reset();  // a report under way finishes first
  housekeeper_.reset();
  std::lock_guard lock(save_mutex_);
  save_counts();
}

}  // namespace app
