// dns_command.cpp — see dns_command.h.
#include "app/smtpsctl/dns_command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "app/common/config_path.h"
#include "app/common/dns_options.h"
#include "app/smtpsctl/command_line.h"
#include "app/smtpsctl/dkim_command.h"
#include "base/ascii.h"
#include "base/terminal_text.h"
#include "config/config.h"
#include "delivery/dane.h"
#include "delivery/mta_sts.h"
#include "delivery/posture.h"
#include "dns/unbound_resolver.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"
#include "tls/spki_digest.h"

namespace app {
namespace {

int dns_fail(std::ostream& err, const std::string& message) {
  err << "smtpsctl dns: " << base::terminal_safe(message) << "\n";
  return 1;
}

// One line per record: "<WHAT> <name>: <verdict> <detail>", then the fix, indented.
class Findings {
 public:
  explicit Findings(std::ostream& out) : out_(out) {}
  void ok(std::string_view what, std::string_view name, const std::string& detail) {
    line(what, name, "OK", detail);
  }
  // Missing, wrong or not checked: a problem, and how to fix it.
  void problem(std::string_view what, std::string_view name, std::string_view verdict,
               const std::string& detail, const std::vector<std::string>& fix) {
    ++problems_;
    line(what, name, verdict, detail);
    for (const std::string& step : fix)
      out_ << "  fix: " << step << "\n";
  }
  void note(std::string_view what, std::string_view name, const std::string& detail) {
    line(what, name, "NOTE", detail);
  }
  void add_problems(int count) { problems_ += count; }
  int problems() const { return problems_; }

 private:
  void line(std::string_view what, std::string_view name, std::string_view verdict,
            const std::string& detail) {
    out_ << what << " " << name << ": " << verdict
         << (detail.empty() ? "" : " " + base::terminal_safe(detail)) << "\n";
  }
  std::ostream& out_;
  int problems_ = 0;
};

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  std::string text;
  for (const std::string& item : items)
    text += (text.empty() ? "" : std::string(separator)) + item;
  return text;
}

std::string dnssec(const dns::Resolver& resolver, bool secure) {
  if (!resolver.validates()) return "";
  return secure ? "; DNSSEC: secure" : "; DNSSEC: not signed";
}

// The TXT records of name that start with prefix (case-insensitively); nullopt when the
// lookup failed (detail says why).
std::optional<std::vector<std::string>> txt_records(dns::Resolver& resolver,
                                                    const std::string& name,
                                                    std::string_view prefix,
                                                    std::chrono::milliseconds deadline,
                                                    std::string& detail, bool& secure) {
  dns::AnswerPtr answer = resolver.lookup_and_wait(name, dns::Type::kTxt, deadline);
  secure = answer->secure;
  if (answer->status == dns::Status::kTemporary || answer->status == dns::Status::kBogus) {
    detail = "the TXT lookup failed: " + answer->detail;
    return std::nullopt;
  }
  std::vector<std::string> found;
  for (const std::string& text : answer->texts) {
    if (text.size() >= prefix.size() &&
        base::equals_ignoring_case(std::string_view(text).substr(0, prefix.size()), prefix))
      found.push_back(text);
  }
  return found;
}

mailauth::SpfOutcome spf_for(dns::Resolver& resolver, const std::string& domain,
                             const std::string& ip, const std::string& host,
                             std::chrono::milliseconds deadline) {
  mailauth::SpfRequest request;
  request.client_ip = ip;
  request.sender = "postmaster@" + domain;
  request.helo = host;
  request.receiver = host;
  request.now = std::time(nullptr);
  request.deadline = std::chrono::steady_clock::now() + deadline;
  std::mutex mutex;
  std::condition_variable done;
  std::optional<mailauth::SpfOutcome> outcome;
  mailauth::check_spf(resolver, request, [&](mailauth::SpfOutcome result) {
    std::lock_guard lock(mutex);
    outcome = std::move(result);
    done.notify_all();
  });
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return outcome.has_value(); });
  return *outcome;
}

void check_mx(const delivery::Posture& posture, const std::string& host, dns::Resolver& resolver,
              Findings& findings) {
  const delivery::MxAnswer& mx = posture.mx;
  const std::string& domain = posture.domain;
  const std::string fix = domain + ". IN MX 10 " + host + ".";
  switch (mx.status) {
    case delivery::MxStatus::kTemporary:
      findings.problem("MX", domain, "NOT CHECKED", mx.detail, {});
      return;
    case delivery::MxStatus::kNullMx:
      findings.problem("MX", domain, "WRONG", "a null MX (RFC 7505) says the domain takes no mail",
                       {fix});
      return;
    case delivery::MxStatus::kNoDomain:
      findings.problem("MX", domain, "MISSING", mx.detail, {fix});
      return;
    case delivery::MxStatus::kOk:
      break;
  }
  std::vector<std::string> hosts;
  bool ours = false;
  for (const delivery::MxTarget& target : mx.targets) {
    hosts.push_back(target.host + " (preference " + std::to_string(target.preference) + ")");
    ours = ours || target.host == host;
  }
  if (mx.targets.size() == 1 && mx.targets.front().implicit) {
    findings.problem("MX", domain, "MISSING",
                     "no MX record: mail goes to " + domain + "'s own address", {fix});
  } else if (!ours) {
    findings.problem("MX", domain, "WRONG",
                     joined(hosts, ", ") + ": none is this server's host " + host, {fix});
  } else {
    findings.ok("MX", domain, joined(hosts, ", ") + dnssec(resolver, mx.secure));
  }
}

// The host's addresses (A and AAAA) and their PTR names.
std::vector<std::string> check_addresses(dns::Resolver& resolver, const std::string& host,
                                         std::chrono::milliseconds deadline, Findings& findings) {
  std::vector<std::string> addresses;
  bool failed = false;
  std::string detail;
  for (dns::Type type : {dns::Type::kAaaa, dns::Type::kA}) {
    dns::AnswerPtr answer = resolver.lookup_and_wait(host, type, deadline);
    if (answer->status == dns::Status::kTemporary || answer->status == dns::Status::kBogus) {
      failed = true;
      detail = std::string(dns::to_string(type)) + " lookup failed: " + answer->detail;
    }
    addresses.insert(addresses.end(), answer->addresses.begin(), answer->addresses.end());
  }
  if (failed) {
    findings.problem("A/AAAA", host, "NOT CHECKED", detail, {});
  } else if (addresses.empty()) {
    findings.problem("A/AAAA", host, "MISSING", "the host has no address",
                     {host + ". IN A <the server's public IPv4 address> (and AAAA for IPv6)"});
  } else {
    findings.ok("A/AAAA", host, joined(addresses, " "));
  }
  for (const std::string& address : addresses) {
    const std::string name = dns::reverse_name(address);
    dns::AnswerPtr answer = resolver.lookup_and_wait(name, dns::Type::kPtr, deadline);
    const std::string fix =
        "ask whoever holds " + address + " (the hosting provider) to set its PTR record to " + host;
    if (answer->status == dns::Status::kTemporary || answer->status == dns::Status::kBogus) {
      findings.problem("PTR", address, "NOT CHECKED", "PTR lookup failed: " + answer->detail, {});
    } else if (answer->names.empty()) {
      findings.problem("PTR", address, "MISSING",
                       "no PTR record: many receivers refuse mail from such an address", {fix});
    } else if (std::find(answer->names.begin(), answer->names.end(), host) == answer->names.end()) {
      findings.problem("PTR", address, "WRONG",
                       joined(answer->names, " ") + ", not " + host + " (the HELO name)", {fix});
    } else {
      findings.ok("PTR", address, host);
    }
  }
  return addresses;
}

void check_spf(dns::Resolver& resolver, const std::string& domain, const std::string& host,
               const std::vector<std::string>& addresses, std::chrono::milliseconds deadline,
               Findings& findings) {
  std::string detail;
  bool secure = false;
  auto records = txt_records(resolver, domain, "v=spf1", deadline, detail, secure);
  const std::string fix = domain + ". IN TXT \"v=spf1 mx -all\"";
  if (!records) {
    findings.problem("SPF", domain, "NOT CHECKED", detail, {});
    return;
  }
  std::vector<std::string> spf;
  for (const std::string& text : *records) {
    if (mailauth::is_spf_record(text)) spf.push_back(text);
  }
  if (spf.empty()) {
    findings.problem("SPF", domain, "MISSING", "no v=spf1 TXT record", {fix});
    return;
  }
  if (spf.size() > 1) {
    findings.problem("SPF", domain, "WRONG",
                     std::to_string(spf.size()) +
                         " v=spf1 records: receivers treat that as an error (RFC 7208 §4.5)",
                     {"keep one: " + fix});
    return;
  }
  if (auto parsed = mailauth::parse_spf_record(spf.front()); !parsed) {
    findings.problem("SPF", domain, "WRONG", "\"" + spf.front() + "\": " + parsed.error(), {fix});
    return;
  }
  std::vector<std::string> failing;
  for (const std::string& address : addresses) {
    mailauth::SpfOutcome outcome = spf_for(resolver, domain, address, host, deadline);
    if (outcome.result != mailauth::SpfResult::kPass)
      failing.push_back(address + " gets " + std::string(mailauth::to_string(outcome.result)) +
                        (outcome.problem.empty() ? "" : " (" + outcome.problem + ")"));
  }
  if (!failing.empty()) {
    std::vector<std::string> fixes;
    for (const std::string& address : addresses)
      fixes.push_back("add " +
                      std::string(address.find(':') == std::string::npos ? "ip4:" : "ip6:") +
                      address + " (or mx) before the final all of \"" + spf.front() + "\"");
    findings.problem("SPF", domain, "WRONG", joined(failing, "; "), fixes);
    return;
  }
  findings.ok("SPF", domain,
              "\"" + spf.front() + "\"" +
                  (addresses.empty() ? "" : " passes " + joined(addresses, " ")) +
                  dnssec(resolver, secure));
}

void check_dkim(const config::Config& config, const std::string& domain, dns::Resolver& resolver,
                Findings& findings, std::ostream& out) {
  const config::Domain* entry = config.find_domain(domain);
  if (entry == nullptr || entry->dkim.empty()) {
    findings.problem("DKIM", domain, "MISSING",
                     "no DKIM key for " + domain + " in the configuration: its mail is not signed",
                     {"smtpsctl dkim keygen " + domain +
                      ", then add the keys to its [[domains]] entry (dkim = [{ selector, key }])"});
    return;
  }
  std::ostringstream lines;
  findings.add_problems(check_dkim_records(*entry, domain, resolver, lines));
  std::istringstream each(lines.str());
  for (std::string line; std::getline(each, line);)
    out << (line.starts_with(" ") ? line : "DKIM " + line) << "\n";
}

void check_dmarc(dns::Resolver& resolver, const std::string& domain,
                 std::chrono::milliseconds deadline, Findings& findings) {
  const std::string name = "_dmarc." + domain;
  const std::string fix =
      name + ". IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@" + domain + "\"";
  std::string detail;
  bool secure = false;
  auto records = txt_records(resolver, name, "v=DMARC1", deadline, detail, secure);
  if (!records) {
    findings.problem("DMARC", name, "NOT CHECKED", detail, {});
    return;
  }
  if (records->empty()) {
    findings.problem("DMARC", name, "MISSING", "no v=DMARC1 TXT record", {fix});
    return;
  }
  if (records->size() > 1) {
    findings.problem("DMARC", name, "WRONG",
                     std::to_string(records->size()) +
                         " v=DMARC1 records: receivers apply none (RFC 7489 §6.6.3)",
                     {"keep one: " + fix});
    return;
  }
  auto record = mailauth::parse_dmarc_record(records->front());
  if (!record) {
    findings.problem("DMARC", name, "WRONG", "\"" + records->front() + "\": " + record.error(),
                     {fix});
    return;
  }
  findings.ok("DMARC", name,
              "p=" + std::string(mailauth::to_string(record->policy)) +
                  (record->aggregate_addresses.empty()
                       ? ""
                       : ", reports to " + joined(record->aggregate_addresses, " ")) +
                  dnssec(resolver, secure));
  if (record->policy == mailauth::DmarcPolicy::kNone)
    findings.note("DMARC", name, "p=none only monitors: forged mail is still delivered");
}

void check_mta_sts(const delivery::Posture& posture, const std::string& host, Findings& findings) {
  const std::string& domain = posture.domain;
  const delivery::PolicyLookup& sts = posture.sts;
  const std::string fix = "smtpsctl mta-sts policy " + domain + " --mode enforce --mx " + host +
                          " (it prints the policy file and the TXT record)";
  if (!sts.has_policy()) {
    if (sts.failure != delivery::StsFailure::kNone) {
      findings.problem("MTA-STS", domain, "WRONG",
                       "the _mta-sts record is there but the policy is not: " +
                           std::string(delivery::to_string(sts.failure)) + ": " + sts.detail,
                       {fix});
    } else {
      findings.problem("MTA-STS", domain, "MISSING", sts.detail, {fix});
    }
    return;
  }
  std::vector<std::string> unnamed;
  if (posture.mx.status == delivery::MxStatus::kOk && sts.policy.mode != delivery::StsMode::kNone) {
    for (const delivery::MxTarget& target : posture.mx.targets) {
      if (!delivery::matches(sts.policy, target.host)) unnamed.push_back(target.host);
    }
  }
  const std::string summary = "mode " + std::string(delivery::to_string(sts.policy.mode)) +
                              ", mx " + joined(sts.policy.mx, " ") + ", id " + sts.id +
                              ", max_age " + std::to_string(sts.policy.max_age);
  if (!unnamed.empty()) {
    findings.problem("MTA-STS", domain, "WRONG",
                     summary + ": the policy does not name the MX host(s) " + joined(unnamed, " ") +
                         " (enforcing senders will not use them)",
                     {"add \"mx: <host>\" lines for them to the policy file and publish a new id; "
                      "or: " +
                      fix});
    return;
  }
  if (sts.failure != delivery::StsFailure::kNone) {
    findings.problem("MTA-STS", domain, "WRONG", summary + "; but " + sts.detail, {fix});
    return;
  }
  findings.ok("MTA-STS", domain, summary);
  if (sts.policy.mode != delivery::StsMode::kEnforce)
    findings.note("MTA-STS", domain, "mode testing/none does not protect mail: use enforce");
}

void check_tlsrpt(const delivery::Posture& posture, dns::Resolver& resolver, Findings& findings) {
  const std::string name = "_smtp._tls." + posture.domain;
  const delivery::TlsrptRecord& record = posture.tlsrpt;
  const std::string fix =
      name + ". IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@" + posture.domain + "\"";
  switch (record.status) {
    case delivery::TlsrptRecord::Status::kFound:
      findings.ok("TLS-RPT", name,
                  "reports to " + joined(record.rua, " ") + dnssec(resolver, record.secure));
      return;
    case delivery::TlsrptRecord::Status::kNone:
      findings.problem("TLS-RPT", name, "MISSING", record.detail, {fix});
      return;
    case delivery::TlsrptRecord::Status::kInvalid:
      findings.problem("TLS-RPT", name, "WRONG", record.detail, {fix});
      return;
    case delivery::TlsrptRecord::Status::kUnknown:
      findings.problem("TLS-RPT", name, "NOT CHECKED", record.detail, {});
      return;
  }
}

void check_tlsa(const delivery::Posture& posture, const config::Config& config,
                const std::string& host, dns::Resolver& resolver, Findings& findings) {
  const std::string name = "_25._tcp." + host;
  std::vector<std::pair<std::string, std::string>> ours;  // digest, certificate file
  for (const tls::CertificatePair& pair : config.certificates) {
    auto digest = tls::spki_sha256_hex(pair.certificate_file);
    if (!digest) {
      findings.problem("TLSA", name, "NOT CHECKED", digest.error(), {});
      return;
    }
    ours.emplace_back(digest.value(), pair.certificate_file);
  }
  std::vector<std::string> fix;
  for (const auto& [digest, file] : ours)
    fix.push_back(name + ". IN TLSA 3 1 1 " + digest + "  ; " + file);
  if (!resolver.validates()) {
    findings.problem("TLSA", name, "NOT CHECKED",
                     "the resolver does not validate DNSSEC ([dns]): " + resolver.describe(), {});
    return;
  }
  const auto& targets = posture.mx.targets;
  auto target = std::find_if(targets.begin(), targets.end(),
                             [&](const delivery::MxTarget& t) { return t.host == host; });
  if (target == targets.end()) {
    findings.problem("TLSA", name, "NOT CHECKED", host + " is not an MX host of " + posture.domain,
                     {});
    return;
  }
  const delivery::DaneLookup& dane =
      posture.dane[static_cast<std::size_t>(target - targets.begin())];
  using Kind = delivery::DaneLookup::Kind;
  switch (dane.kind) {
    case Kind::kNotApplicable:
      // No DANE without DNSSEC (RFC 7672 §2.2): a note, not a fault; MTA-STS covers such zones.
      findings.note("TLSA", name,
                    "DANE is not possible: " + dane.detail +
                        "; sign the zones with DNSSEC to publish TLSA records");
      return;
    case Kind::kFailed:
      findings.problem("TLSA", name, "WRONG", dane.detail + ": senders using DANE defer mail", fix);
      return;
    case Kind::kNone:
      findings.problem("TLSA", name, "MISSING", dane.detail, fix);
      return;
    case Kind::kUnusable:
      findings.problem("TLSA", name, "WRONG",
                       "no usable record (RFC 7672 §3.1.3): senders require TLS but cannot "
                       "authenticate it",
                       fix);
      return;
    case Kind::kUsable:
      break;
  }
  std::vector<std::string> uncovered;
  for (const auto& [digest, file] : ours) {
    const bool matched =
        std::any_of(dane.usable.begin(), dane.usable.end(), [&](const dns::TlsaRecord& record) {
          return record.usage == 3 && record.selector == 1 && record.matching_type == 1 &&
                 delivery::to_string(record).ends_with(" " + digest);
        });
    const bool trust_anchor = std::any_of(dane.usable.begin(), dane.usable.end(),
                                          [](const dns::TlsaRecord& r) { return r.usage == 2; });
    if (!matched && !trust_anchor) uncovered.push_back(file);
  }
  std::vector<std::string> records;
  for (const dns::TlsaRecord& record : dane.usable)
    records.push_back(delivery::parameters_of(record));
  if (!uncovered.empty()) {
    findings.problem("TLSA", name, "WRONG",
                     "no record matches the key of " + joined(uncovered, " ") +
                         ": senders using DANE defer mail when the server presents it",
                     fix);
    return;
  }
  findings.ok("TLSA", name,
              joined(records, ", ") + " cover every served certificate; DNSSEC: secure");
}

int check_domain(const std::string& domain, const std::string& config_file, std::string host,
                 unsigned timeout_seconds, std::ostream& out, std::ostream& err) {
  auto path = existing_config_path(choose_config_path(config_file, std::getenv("SMTPSD_CONFIG")));
  if (!path) return dns_fail(err, path.error());
  auto loaded = config::load_file(path.value());
  if (!loaded) return dns_fail(err, loaded.error().to_string());
  const config::Config& config = loaded.value();
  if (host.empty()) host = config.hostname;
  host = base::ascii_lowercase(host);
  if (!host.empty() && host.back() == '.') host.pop_back();
  auto created = dns::create_resolver(dns_options(config.dns));
  if (!created) return dns_fail(err, "[dns]: " + created.error());
  std::shared_ptr<dns::Resolver> resolver = std::move(created.value());
  const std::chrono::milliseconds deadline = std::chrono::seconds(timeout_seconds);

  // MTA-STS as delivery fetches it, into a cache of our own.
  std::string pattern =
      (std::filesystem::temp_directory_path() / "smtpsctl-dns-check.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    return dns_fail(err, pattern + ": " + std::strerror(errno));
  const std::filesystem::path temporary = pattern;
  delivery::MtaStsOptions sts_options;
  sts_options.cache_directory = (temporary / "cache").string();
  sts_options.ca_file = config.delivery.ca_file;
  sts_options.https_port = config.delivery.mta_sts_port;
  sts_options.fetch_timeout = deadline;
  auto sts = delivery::MtaSts::create(resolver, sts_options);
  if (!sts) {
    std::filesystem::remove_all(temporary);
    return dns_fail(err, sts.error());
  }
  delivery::MxResolver mx(resolver, deadline);
  delivery::PostureOptions options;
  options.deadline = deadline;
  const delivery::Posture posture =
      delivery::look_up_posture(*resolver, mx, sts.value().get(), domain, options);
  sts.value().reset();
  std::filesystem::remove_all(temporary);

  out << "DNS: " << resolver->describe() << "\n";
  Findings findings(out);
  check_mx(posture, host, *resolver, findings);
  const std::vector<std::string> addresses = check_addresses(*resolver, host, deadline, findings);
  check_spf(*resolver, domain, host, addresses, deadline, findings);
  check_dkim(config, domain, *resolver, findings, out);
  check_dmarc(*resolver, domain, deadline, findings);
  check_mta_sts(posture, host, findings);
  check_tlsrpt(posture, *resolver, findings);
  check_tlsa(posture, config, host, *resolver, findings);
  resolver->stop();
  if (findings.problems() == 0) {
    out << domain << ": every record is right\n";
    return 0;
  }
  out << domain << ": " << findings.problems() << " record(s) to fix\n";
  return 1;
}

}  // namespace

int run_dns_command(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  CLI::App cli{"DNS records of a mail domain", "smtpsctl dns"};
  cli.require_subcommand(1);
  std::string domain, config_file, host;
  unsigned timeout = 15;
  auto* check = cli.add_subcommand(
      "check",
      "Look up what DOMAIN publishes (MX, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, "
      "TLSA) and say what is missing or wrong, with the fix");
  check->add_option("domain", domain, "The mail domain")->required();
  check->add_option("--config", config_file,
                    "The server's configuration (default $SMTPSD_CONFIG, then " +
                        std::string(kDefaultConfigPath) + ")");
  check->add_option("--host", host, "This server's MX host name (default [server] hostname)");
  check->add_option("--timeout", timeout, "Seconds for each lookup and the policy fetch (15)")
      ->check(CLI::Range(1, 300));
  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;
  domain = base::ascii_lowercase(domain);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (delivery::normalized_host(domain).empty())
    return dns_fail(err, "\"" + domain + "\" is not a domain name");
  return check_domain(delivery::normalized_host(domain), config_file, host, timeout, out, err);
}

}  // namespace app
