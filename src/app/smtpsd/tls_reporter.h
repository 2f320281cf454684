// tls_reporter.h — SMTP TLS reports (RFC 8460), off until [tls_reports] names the reporting
// organisation and its address.
//
// MX delivery counts its sessions in the counts given (delivery/tls_report.h). Every
// `interval` (a day by default) the reporter's thread takes the counts, groups them by policy
// domain, looks up each domain's `_smtp._tls` TXT record (§3), queues one report mail per
// domain to its mailto: rua addresses through the spool like any message (signed with the
// reporting domain's DKIM keys when it has some) and POSTs the report to its https: rua URIs
// (§5.4, delivery/pinned_https.h). A domain without the record gets nothing.
//
// Durability (docs/architecture.md "TLS reports"): the counts not yet reported are written
// to <directory>/current.counts (auth::replace_file_atomically: temporary file, fsync,
// rename, fsync of the directory) every `save_interval` when they changed and at stop, and
// read back at the next start: a crash loses at most the last save_interval of counts. A
// failed POST is kept in <directory>/posts/ (same atomic write) and tried again on the
// housekeeping thread, after post_retry_delay, then 5, 30 and 60 times that, until
// post_retry_lifetime after its first failure; then it is dropped with a warning
// (event=tls_report_dropped) and smtpsd_tls_report_posts_dropped_total. A POST that
// succeeded just before a crash, before its file was removed, is sent again (at least once,
// never lost).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/smtpsd/report_mail.h"
#include "base/polling_thread.h"
#include "delivery/tls_report.h"
#include "dns/resolver.h"

namespace app {

class TlsReporter {
 public:
  struct Options {
    std::string directory;  // <data_dir>/tls-reports
    std::string org_name;
    std::string from;       // the reporting address (envelope, From, contact-info)
    std::string submitter;  // our host name
    std::chrono::seconds interval{86400};
    std::chrono::seconds save_interval{60};  // and the pace at which due POSTs are retried
    std::chrono::seconds post_retry_delay{60};
    std::chrono::seconds post_retry_lifetime{86400};
    std::vector<std::shared_ptr<const mailauth::DkimSigningKey>> keys;  // of from's domain
    std::string ca_file;  // for https: report URIs ([delivery] ca_file); "": the system store
  };
  // counts: where MX delivery counts its sessions (made before delivery starts).
  TlsReporter(Options options, std::shared_ptr<dns::Resolver> resolver, ReportEnqueue enqueue,
              std::shared_ptr<delivery::TlsReportCounts> counts);
  ~TlsReporter();
  TlsReporter(const TlsReporter&) = delete;
  TlsReporter& operator=(const TlsReporter&) = delete;

  // Reports what was counted since the last time. Blocking (DNS).
  void send_reports();
  // The housekeeping: saves the counts if they changed, then POSTs again the kept reports
  // whose time has come. Blocking (HTTPS).
  void save_and_retry();
  // The threads: send_reports() every interval, save_and_retry() every save_interval.
  void start();
  void stop();  // and the counts not reported go to current.counts

 private:
  void save_counts();
  void keep_post(delivery::PendingTlsReportPost post);
  void retry_posts();

  Options options_;
  std::shared_ptr<dns::Resolver> resolver_;
  ReportEnqueue enqueue_;
  std::shared_ptr<delivery::TlsReportCounts> counts_;
  std::atomic<std::int64_t> begin_ = 0;  // of the current period
  unsigned sequence_ = 0;
  bool stopped_ = false;
  std::mutex save_mutex_;            // one save or retry round at a time; guards saved_version_
  std::uint64_t saved_version_ = 0;  // of the counts as current.counts holds them
  std::unique_ptr<base::PollingThread> poller_;       // gone once stopped
  std::unique_ptr<base::PollingThread> housekeeper_;  // gone once stopped
};

}  // namespace app
