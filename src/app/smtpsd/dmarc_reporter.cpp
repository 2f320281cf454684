// dmarc_reporter.cpp — see dmarc_reporter.h.
#include "app/smtpsd/dmarc_reporter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "app/smtpsd/report_mail.h"
#include "base/ascii.h"
#include "base/clock.h"
#include "mailauth/dmarc.h"
#include "obs/log.h"

namespace app {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxRecordsFile = 64u << 20;  // a day of lines; more is not read
constexpr std::chrono::seconds kVerifyDeadline{10};

}  // namespace

DmarcReporter::DmarcReporter(Options options, std::shared_ptr<dns::Resolver> resolver,
                             Enqueue enqueue)
    : options_(std::move(options)), resolver_(std::move(resolver)), enqueue_(std::move(enqueue)) {
  std::error_code ec;
  fs::create_directories(options_.directory, ec);
  current_begin_ = base::unix_now();
}

DmarcReporter::~DmarcReporter() {
  stop();
}

void DmarcReporter::record(const mailauth::DmarcEvaluation& evaluation) {
  const std::string line = mailauth::record_line(evaluation) + "\n";
  std::lock_guard lock(file_mutex_);
  const std::string path = options_.directory + "/current.records";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    obs::Log("dmarc_record_failed", obs::Level::kWarning).kv("file", path).kv("errno", errno);
    return;
  }
  // One write(2) per line with O_APPEND: lines never interleave.
  const ssize_t written = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size())) {
    obs::Log("dmarc_record_failed", obs::Level::kWarning).kv("file", path);
  }
}

void DmarcReporter::send_reports() {
  {
    std::lock_guard lock(file_mutex_);
    const std::int64_t now = base::unix_now();
    const std::string current = options_.directory + "/current.records";
    if (fs::exists(current)) {
      const std::string closed = options_.directory + "/" + std::to_string(current_begin_) + "-" +
                                 std::to_string(now) + ".records";
      std::error_code ec;
      fs::rename(current, closed, ec);
      if (ec) {
        obs::Log("dmarc_report_failed", obs::Level::kWarning)
            .kv("file", current)
            .kv("detail", ec.message());
      }
    }
    current_begin_ = now;
  }
  std::vector<std::string> closed;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.directory, ec)) {
    const std::string name = entry.path().filename().string();
    if (name != "current.records" && name.ends_with(".records")) closed.push_back(entry.path());
  }
  std::sort(closed.begin(), closed.end());
  for (const std::string& path : closed) {
    if (send_file(path)) fs::remove(path, ec);
  }
}

bool DmarcReporter::send_file(const std::string& path) {
  const std::string name = fs::path(path).filename().string();
  std::int64_t begin = 0, end = 0;
  if (std::sscanf(name.c_str(), "%ld-%ld.records", &begin, &end) != 2) return true;  // not ours
  std::error_code ec;
  if (fs::file_size(path, ec) > kMaxRecordsFile) {
    obs::Log("dmarc_report_failed", obs::Level::kWarning)
        .kv("file", path)
        .kv("detail", "larger than 64 MiB: not reported");
    return true;
  }
  std::ifstream in(path);
  std::map<std::string, std::vector<mailauth::DmarcEvaluation>> by_domain;
  std::string line;
  while (std::getline(in, line)) {
    if (auto evaluation = mailauth::parse_record_line(line))
      by_domain[evaluation->policy_domain].push_back(std::move(*evaluation));
  }
  bool all_queued = true;
  for (const auto& [domain, evaluations] : by_domain) {
    std::vector<std::string> to;
    const std::string content = report_of(domain, evaluations, begin, end, to);
    if (to.empty() || content.empty()) continue;
    if (!enqueue_(options_.from, to, content)) {
      all_queued = false;
      continue;
    }
    std::string list;
    for (const std::string& address : to)
      list += (list.empty() ? "" : ",") + address;
    obs::Log("dmarc_report")
        .kv("domain", domain)
        .kv("to", list)
        .kv("records", static_cast<std::uint64_t>(evaluations.size()))
        .kv("begin", begin)
        .kv("end", end);
  }
  return all_queued;
}

std::string DmarcReporter::report_of(const std::string& policy_domain,
                                     const std::vector<mailauth::DmarcEvaluation>& evaluations,
                                     std::int64_t begin, std::int64_t end,
                                     std::vector<std::string>& to) {
  // The rua of the latest record that named some: the Domain Owner's current wish.
  const std::vector<std::string>& uris = evaluations.back().rua;
  const std::string policy_org = mailauth::organizational_domain(policy_domain);
  for (const std::string& uri : uris) {
    const std::string address = mailauth::rua_address(uri);
    if (address.empty() || to.size() >= 4) continue;  // RFC 7489 §6.2: at most a few
    const std::string target = base::address_domain(address);
    if (mailauth::organizational_domain(target) != policy_org) {
      // §7.1: the other domain must agree to receive reports about this one.
      const std::string name = policy_domain + "._report._dmarc." + target;
      dns::AnswerPtr answer = resolver_->lookup_and_wait(name, dns::Type::kTxt, kVerifyDeadline);
      const bool agreed =
          std::any_of(answer->texts.begin(), answer->texts.end(), [](const std::string& text) {
            return base::starts_with_ignoring_case(text, "v=DMARC1");
          });
      if (!agreed) {
        obs::Log("dmarc_report_refused", obs::Level::kWarning)
            .kv("domain", policy_domain)
            .kv("to", address)
            .kv("detail", "no TXT \"v=DMARC1\" at " + name + " (RFC 7489 §7.1)");
        continue;
      }
    }
    to.push_back(address);
  }
  if (to.empty()) return {};
  mailauth::ReportMetadata metadata;
  metadata.org_name = options_.org_name;
  metadata.email = options_.from;
  metadata.receiver = options_.receiver;
  metadata.report_id =
      std::to_string(end) + "." + std::to_string(++sequence_) + "." + policy_domain;
  metadata.begin = begin;
  metadata.end = end;
  auto packed = mailauth::gzip(mailauth::aggregate_report_xml(metadata, evaluations));
  if (!packed) return {};
  std::string message =
      mailauth::report_message(metadata, policy_domain, to, packed.value(), base::unix_now());
  return with_dkim_signatures(options_.keys, std::move(message));
}

void DmarcReporter::start() {
  poller_ = std::make_unique<base::PollingThread>();
  poller_->start(options_.interval, [this] { send_reports(); });
}

void DmarcReporter::stop() {
  poller_.reset();  // a report under way finishes first
}

}  // namespace app
