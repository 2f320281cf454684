// tls_reporter.h — SMTP TLS reports (RFC 8460), off until [tls_reports] names the reporting
// organisation and its address.
//
// MX delivery counts its sessions in the counts given (delivery/tls_report.h). Every
// `interval` (a day by default) the reporter's thread takes the counts, groups them by policy
// domain, looks up each domain's `_smtp._tls` TXT record (§3), queues one report mail per
// domain to its mailto: rua addresses through the spool like any message (signed with the
// reporting domain's DKIM keys when it has some) and POSTs the report to its https: rua URIs
// (§5.4, delivery/pinned_https.h; a failed POST is logged, not retried). A domain without
// the record gets nothing. At stop the counts not yet reported are written to
// <directory>/current.counts (temporary file, fsync, rename) and read back at the next
// start, so a restart loses none.
#pragma once

#include <chrono>
#include <memory>
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
  void start();  // the thread: send_reports() every interval
  void stop();   // and the counts not reported go to current.counts

 private:
  Options options_;
  std::shared_ptr<dns::Resolver> resolver_;
  ReportEnqueue enqueue_;
  std::shared_ptr<delivery::TlsReportCounts> counts_;
  std::int64_t begin_ = 0;  // of the current period
  unsigned sequence_ = 0;
  bool stopped_ = false;
  std::unique_ptr<base::PollingThread> poller_;  // gone once stopped
};

}  // namespace app
