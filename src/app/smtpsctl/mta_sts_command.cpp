// mta_sts_command.cpp — `smtpsctl mta-sts policy|check` (usage in mta_sts_command.h).
//
// Invariants: `policy` prints only a policy that parse_sts_policy reads back and records whose
// id and URIs are within their grammar (RFC 8461 §3.1, RFC 8460 §3); `check` prints text from
// the network only through base::terminal_safe.
#include "app/smtpsctl/mta_sts_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "app/common/config_path.h"
#include "app/common/dns_options.h"
#include "app/smtpsctl/command_line.h"
#include "base/clock.h"
#include "base/file_write.h"
#include "base/terminal_text.h"
#include "config/config.h"
#include "delivery/mta_sts.h"
#include "delivery/mta_sts_policy.h"
#include "dns/resolver.h"

namespace app {
namespace {

constexpr std::int64_t kDefaultMaxAge = 604800;  // a week: RFC 8461 §3.2 suggests weeks

int mta_sts_fail(std::ostream& err, const std::string& message) {
  err << "smtpsctl mta-sts: " << base::terminal_safe(message) << "\n";
  return 1;
}

base::Expected<config::Config, std::string> load_config(const std::string& config_file) {
  auto path = existing_config_path(choose_config_path(config_file, std::getenv("SMTPSD_CONFIG")));
  if (!path) return base::unexpected(path.error());
  auto config = config::load_file(path.value(), config::Reading::kClient);
  if (!config) return base::unexpected(config.error().to_string());
  return std::move(config.value());
}

// RFC 8460 §3: tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri), each a mailto:
// or https: URI; we refuse what would break the TXT string (quotes, ';', spaces, controls).
bool valid_rua(const std::string& rua) {
  std::size_t start = 0;
  while (start <= rua.size()) {
    std::size_t comma = rua.find(',', start);
    if (comma == std::string::npos) comma = rua.size();
    const std::string uri = rua.substr(start, comma - start);
    if (!(uri.starts_with("mailto:") && uri.size() > 7) &&
        !(uri.starts_with("https://") && uri.size() > 8))
      return false;
    for (char c : uri) {
      if (c <= 0x20 || c >= 0x7f || c == '"' || c == ';' || c == '\\') return false;
    }
    start = comma + 1;
  }
  return true;
}

int print_policy(const std::string& domain, const std::string& mode, std::vector<std::string> mx,
                 std::int64_t max_age, const std::string& rua, const std::string& output,
                 const std::string& config_file, std::ostream& out, std::ostream& err,
                 std::int64_t now) {
  delivery::StsPolicy policy;
  policy.mode = mode == "enforce"   ? delivery::StsMode::kEnforce
                : mode == "testing" ? delivery::StsMode::kTesting
                                    : delivery::StsMode::kNone;
  policy.max_age = max_age;
  if (max_age < 0 || max_age > delivery::kMaxStsAge) {
    return mta_sts_fail(err, "--max-age must be 0 to " + std::to_string(delivery::kMaxStsAge) +
                                 " seconds (RFC 8461 §3.2)");
  }
  if (mx.empty() && policy.mode != delivery::StsMode::kNone) {
    auto config = load_config(config_file);
    if (!config) return mta_sts_fail(err, "no --mx given and " + config.error());
    mx.push_back(config.value().hostname);
  }
  for (const std::string& host : mx) {
    const bool wildcard = host.starts_with("*.");
    const std::string name = delivery::normalized_host(wildcard ? host.substr(2) : host);
    if (name.empty()) return mta_sts_fail(err, "--mx " + host + ": not a host name or *.name");
    policy.mx.push_back(wildcard ? "*." + name : name);
  }
  if (!rua.empty() && !valid_rua(rua)) {
    return mta_sts_fail(err, "--rua must be mailto: or https:// URIs separated by commas");
  }
  const std::string text = delivery::format_sts_policy(policy);
  auto again = delivery::parse_sts_policy(text);
  if (!again || !(*again == policy)) {
    return mta_sts_fail(err, "the policy does not read back: " + (again ? "" : again.error()));
  }
  const std::string id = base::utc_text(now, "%Y%m%dT%H%M%SZ");  // 1*32(ALPHA / DIGIT)
  if (!delivery::parse_sts_record("v=STSv1; id=" + id)) return mta_sts_fail(err, "bad id " + id);
  if (!output.empty()) {
    if (auto written = base::write_file_atomically(output, text, 0644); !written)
      return mta_sts_fail(err, written.error());
    out << "; the policy file, written to " << output << ":\n";
  } else {
    out << "; the policy file:\n";
  }
  out << "; serve it as https://mta-sts." << domain << "/.well-known/mta-sts.txt with\n"
      << "; Content-Type: text/plain and a certificate for mta-sts." << domain
      << " from a public CA;\n"
      << "; no redirect (RFC 8461 §3.3)\n";
  if (output.empty()) {
    std::string lf = text;
    std::erase(lf, '\r');
    out << lf;
  }
  out << "\n; DNS: publish after the policy file; a new id whenever the policy changes\n"
      << "_mta-sts." << domain << ". IN TXT \"v=STSv1; id=" << id << "\"\n";
  if (!rua.empty()) {
    out << "_smtp._tls." << domain << ". IN TXT \"v=TLSRPTv1; rua=" << rua << "\"\n";
  }
  return 0;
}

int check_policy(const std::string& domain, const std::string& config_file,
                 const std::string& cache, unsigned timeout_seconds, std::ostream& out,
                 std::ostream& err) {
  auto config = load_config(config_file);
  if (!config) return mta_sts_fail(err, config.error());
  auto resolver = dns::create_resolver(dns_options(config.value().dns));
  if (!resolver) return mta_sts_fail(err, "[dns]: " + resolver.error());
  std::shared_ptr<dns::Resolver> shared = std::move(resolver.value());
  std::string directory = cache;
  std::filesystem::path temporary;
  if (directory.empty()) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "smtpsctl-mta-sts.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      return mta_sts_fail(err, pattern + ": " + std::strerror(errno));
    temporary = pattern;
    directory = (temporary / "cache").string();
  }
  delivery::MtaStsOptions options;
  options.cache_directory = directory;
  options.ca_file = config.value().delivery.ca_file;
  options.https_port = config.value().delivery.mta_sts_port;
  options.fetch_timeout = std::chrono::seconds(timeout_seconds);
  int status = 1;
  {
    auto sts = delivery::MtaSts::create(shared, options);
    if (!sts) {
      if (!temporary.empty()) std::filesystem::remove_all(temporary);
      return mta_sts_fail(err, sts.error());
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    delivery::PolicyLookup found = sts.value()->policy_for(domain, deadline);
    if (found.has_policy()) {
      status = 0;
      out << domain << ": MTA-STS policy id " << base::terminal_safe(found.id) << " from "
          << (found.source == delivery::PolicyLookup::Source::kFresh
                  ? "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
                  : "the cache " + directory)
          << "\n  mode: " << delivery::to_string(found.policy.mode) << "\n";
      for (const std::string& mx : found.policy.mx)
        out << "  mx: " << mx << "\n";
      out << "  max_age: " << found.policy.max_age
          << "\n  fetched: " << base::utc_text(found.fetched_at, "%Y-%m-%dT%H:%M:%SZ")
          << "\n  expires: " << base::utc_text(found.expires_at, "%Y-%m-%dT%H:%M:%SZ") << "\n";
    } else {
      out << domain << ": no MTA-STS policy"
          << (found.detail.empty() || found.failure != delivery::StsFailure::kNone
                  ? ""
                  : " (" + base::terminal_safe(found.detail) + ")")
          << "\n";
    }
    if (found.failure != delivery::StsFailure::kNone) {
      out << "fetch failed: " << delivery::to_string(found.failure) << ": "
          << base::terminal_safe(found.detail) << "\n";
    }
  }
  shared->stop();
  if (!temporary.empty()) std::filesystem::remove_all(temporary);
  return status;
}

}  // namespace

int run_mta_sts_command(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err,
                        std::int64_t now) {
  CLI::App cli{"MTA-STS (RFC 8461): publish ours, look up others'", "smtpsctl mta-sts"};
  cli.require_subcommand(1);
  std::string domain, mode, rua, output, config_file, cache;
  std::vector<std::string> mx;
  std::int64_t max_age = kDefaultMaxAge;
  const std::string config_help = "The server's configuration (default $SMTPSD_CONFIG, then " +
                                  std::string(kDefaultConfigPath) + ")";
  auto* policy =
      cli.add_subcommand("policy", "Print the policy file and DNS records to publish for DOMAIN");
  policy->add_option("domain", domain, "Our domain (the policy domain)")->required();
  policy->add_option("--mode", mode, "enforce, testing or none")
      ->required()
      ->check(CLI::IsMember({"enforce", "testing", "none"}));
  policy->add_option("--mx", mx, "An MX host name or *.name (repeatable); default: our hostname");
  policy->add_option("--max-age", max_age, "Seconds senders keep the policy (default 604800)");
  policy->add_option("--rua", rua, "TLS-RPT reports to (mailto:… or https://…, comma-separated)");
  policy->add_option("--output", output, "Write the policy file (CRLF lines) here");
  policy->add_option("--config", config_file, config_help);
  auto* check =
      cli.add_subcommand("check", "Look up DOMAIN's policy as delivery would and print it");
  check->add_option("domain", domain, "A recipient domain")->required();
  check->add_option("--config", config_file, config_help);
  check->add_option("--cache", cache, "Policy cache directory (default: a temporary one)");
  unsigned timeout = 20;
  check
      ->add_option("--timeout", timeout,
                   "Seconds the HTTPS fetch may take, as delivery allows (default 20)")
      ->check(CLI::Range(1, 120));
  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;

  const std::string name = delivery::normalized_host(domain);
  if (name.empty()) return mta_sts_fail(err, domain + ": not a domain name");
  if (*check) return check_policy(name, config_file, cache, timeout, out, err);
  return print_policy(name, mode, mx, max_age, rua, output, config_file, out, err, now);
}

}  // namespace app
