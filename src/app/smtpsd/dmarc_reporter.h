// dmarc_reporter.h — DMARC aggregate reports (RFC 7489 §7.2), off until [dmarc_reports]
// names the reporting organisation and its address.
//
// The authenticity check hands every evaluation of a domain that publishes rua= to
// record(), which appends one line (mailauth::record_line) to <directory>/current.records
// under a mutex. Every `interval` (a day by default) the reporter's thread closes the file
// (renamed <begin>-<end>.records), groups its lines by policy domain, checks each rua
// address (a domain outside the policy domain's organisation must publish
// <policy-domain>._report._dmarc.<its domain> TXT "v=DMARC1", §7.1, else it gets nothing),
// and queues one report mail per domain through the spool like any message (signed with the
// reporting domain's DKIM keys when it has some). A closed file is removed once every report
// of it is queued; one whose reports could not be queued stays for the next round.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/smtpsd/report_mail.h"
#include "base/polling_thread.h"
#include "dns/resolver.h"
#include "mailauth/dmarc_report.h"

namespace mailauth {
class DkimSigningKey;
}

namespace app {

class DmarcReporter {
 public:
  struct Options {
    std::string directory;  // <data_dir>/dmarc
    std::string org_name;
    std::string from;      // the reporting address (envelope and From)
    std::string receiver;  // our host name (report file names, Submitter)
    std::chrono::seconds interval{86400};
    std::vector<std::shared_ptr<const mailauth::DkimSigningKey>> keys;  // of from's domain
  };
  using Enqueue = ReportEnqueue;
  DmarcReporter(Options options, std::shared_ptr<dns::Resolver> resolver, Enqueue enqueue);
  ~DmarcReporter();
  DmarcReporter(const DmarcReporter&) = delete;
  DmarcReporter& operator=(const DmarcReporter&) = delete;

  // Any thread: appends the evaluation to the current file.
  void record(const mailauth::DmarcEvaluation& evaluation);
  // Closes the current file and sends the reports of every closed file. Blocking (DNS).
  void send_reports();
  void start();  // the thread: send_reports() every interval
  void stop();

 private:
  std::string report_of(const std::string& policy_domain,
                        const std::vector<mailauth::DmarcEvaluation>& evaluations,
                        std::int64_t begin, std::int64_t end, std::vector<std::string>& to);
  bool send_file(const std::string& path);

  Options options_;
  std::shared_ptr<dns::Resolver> resolver_;
  Enqueue enqueue_;
  std::mutex file_mutex_;  // the current file
  std::int64_t current_begin_ = 0;
  std::unique_ptr<base::PollingThread> poller_;  // gone once stopped
  unsigned sequence_ = 0;
};

}  // namespace app
