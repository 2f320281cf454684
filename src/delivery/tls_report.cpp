// tls_report.cpp — see tls_report.h.
#include "delivery/tls_report.h"

#include <algorithm>
#include <charconv>
#include <ctime>

#include "base/ascii.h"
#include "base/json.h"
#include "base/report_mail.h"

namespace delivery {
namespace {

// Percent-encodes everything but [A-Za-z0-9.-_@:+/=], so that a field holds no space.
std::string encode(std::string_view field) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  if (field.empty()) return "%";  // an empty field stays a field
  std::string out;
  for (unsigned char c : field) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-' || c == '_' || c == '@' || c == ':' || c == '+' ||
                       c == '/' || c == '=';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0x0F];
    }
  }
  return out;
}

std::optional<std::string> decode(std::string_view field) {
  if (field == "%") return std::string();
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '%') {
      out += field[i];
      continue;
    }
    unsigned value = 0;
    if (i + 2 >= field.size()) return std::nullopt;
    auto [end, error] = std::from_chars(field.data() + i + 1, field.data() + i + 3, value, 16);
    if (error != std::errc() || end != field.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view line, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    const std::size_t at = line.find(separator);
    parts.push_back(line.substr(0, at));
    if (at == std::string_view::npos) return parts;
    line.remove_prefix(at + 1);
  }
}

// "type domain mx strings" where strings are joined by ',' (each encoded, so no ',' inside).
std::string policy_fields(const TlsrptPolicy& policy) {
  std::string strings;
  for (const std::string& text : policy.strings)
    strings += (strings.empty() ? "" : ",") + encode(text);
  return encode(policy.type) + " " + encode(policy.domain) + " " + encode(policy.mx_host) + " " +
         (strings.empty() ? "%" : strings);
}

std::optional<TlsrptPolicy> parse_policy(std::span<const std::string_view> fields) {
  TlsrptPolicy policy;
  auto type = decode(fields[0]), domain = decode(fields[1]), mx = decode(fields[2]);
  if (!type || !domain || !mx) return std::nullopt;
  policy.type = *type;
  policy.domain = *domain;
  policy.mx_host = *mx;
  if (fields[3] != "%") {
    for (std::string_view text : split(fields[3], ',')) {
      auto decoded = decode(text);
      if (!decoded) return std::nullopt;
      policy.strings.push_back(*decoded);
    }
  }
  return policy;
}

std::string rfc3339(std::int64_t when) {
  const std::time_t t = static_cast<std::time_t>(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

void member(std::string& out, std::string_view name, std::string_view value) {
  base::append_json_string(out, name);
  out += ':';
  base::append_json_string(out, value);
}

}  // namespace

void TlsReportCounts::success(const TlsrptPolicy& policy, std::uint64_t count) {
  std::lock_guard lock(mutex_);
  successes_[policy] += count;
  ++version_;
}

void TlsReportCounts::failure(const TlsrptPolicy& policy, const TlsrptFailure& failure,
                              std::uint64_t count) {
  std::lock_guard lock(mutex_);
  failures_[{policy, failure}] += count;
  successes_.try_emplace(policy, 0);  // the policy is reported with its successes (maybe 0)
  ++version_;
}

std::uint64_t TlsReportCounts::version() const {
  std::lock_guard lock(mutex_);
  return version_;
}

bool TlsReportCounts::empty() const {
  std::lock_guard lock(mutex_);
  return successes_.empty();
}

std::vector<TlsrptPolicyCounts> TlsReportCounts::take() {
  std::map<TlsrptPolicy, std::uint64_t> successes;
  std::map<std::pair<TlsrptPolicy, TlsrptFailure>, std::uint64_t> failures;
  {
    std::lock_guard lock(mutex_);
    successes.swap(successes_);
    failures.swap(failures_);
    ++version_;
  }
  std::vector<TlsrptPolicyCounts> out;
  for (auto& [policy, count] : successes)
    out.push_back(TlsrptPolicyCounts{policy, count, {}});
  for (auto& [key, count] : failures) {
    for (TlsrptPolicyCounts& entry : out)
      if (entry.policy == key.first) entry.failures.emplace_back(key.second, count);
  }
  return out;
}

std::string TlsReportCounts::lines() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [policy, count] : successes_)
    out += "S " + policy_fields(policy) + " " + std::to_string(count) + "\n";
  for (const auto& [key, count] : failures_) {
    const TlsrptFailure& f = key.second;
    out += "F " + policy_fields(key.first) + " " + encode(f.result_type) + " " +
           encode(f.sending_ip) + " " + encode(f.receiving_mx) + " " + encode(f.receiving_ip) +
           " " + std::to_string(count) + "\n";
  }
  return out;
}

void TlsReportCounts::add_lines(std::string_view text) {
  for (std::string_view line : split(text, '\n')) {
    std::vector<std::string_view> fields = split(line, ' ');
    const bool successes = fields.size() == 6 && fields[0] == "S";
    const bool failures = fields.size() == 10 && fields[0] == "F";
    if (!successes && !failures) continue;
    std::uint64_t count = 0;
    const std::string_view number = fields.back();
    auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), count);
    if (error != std::errc() || end != number.data() + number.size()) continue;
    auto policy = parse_policy(std::span(fields).subspan(1, 4));
    if (!policy) continue;
    if (successes) {
      success(*policy, count);
      continue;
    }
    auto type = decode(fields[5]), sending = decode(fields[6]), mx = decode(fields[7]),
         receiving = decode(fields[8]);
    if (!type || !sending || !mx || !receiving) continue;
    failure(*policy, TlsrptFailure{*type, *sending, *mx, *receiving}, count);
  }
}

std::string tls_report_json(const TlsReportMetadata& metadata,
                            std::span<const TlsrptPolicyCounts> policies) {
  std::string out = "{";
  member(out, "organization-name", metadata.org_name);
  out += ",\"date-range\":{";
  member(out, "start-datetime", rfc3339(metadata.begin));
  out += ',';
  member(out, "end-datetime", rfc3339(metadata.end));
  out += "},";
  member(out, "contact-info", metadata.contact);
  out += ',';
  member(out, "report-id", metadata.report_id);
  out += ",\"policies\":[";
  bool first_policy = true;
  for (const TlsrptPolicyCounts& entry : policies) {
    if (!first_policy) out += ',';
    first_policy = false;
    std::uint64_t failed = 0;
    for (const auto& [failure, count] : entry.failures)
      failed += count;
    out += "{\"policy\":{";
    member(out, "policy-type", entry.policy.type);
    if (!entry.policy.strings.empty()) {
      out += ",\"policy-string\":[";
      for (std::size_t i = 0; i < entry.policy.strings.size(); ++i) {
        if (i > 0) out += ',';
        base::append_json_string(out, entry.policy.strings[i]);
      }
      out += ']';
    }
    out += ',';
    member(out, "policy-domain", entry.policy.domain);
    if (!entry.policy.mx_host.empty()) {
      out += ',';
      member(out, "mx-host", entry.policy.mx_host);
    }
    out += "},\"summary\":{\"total-successful-session-count\":" + std::to_string(entry.successes) +
           ",\"total-failure-session-count\":" + std::to_string(failed) + "}";
    if (!entry.failures.empty()) {
      out += ",\"failure-details\":[";
      for (std::size_t i = 0; i < entry.failures.size(); ++i) {
        const auto& [failure, count] = entry.failures[i];
        if (i > 0) out += ',';
        out += '{';
        member(out, "result-type", failure.result_type);
        if (!failure.sending_ip.empty()) {
          out += ',';
          member(out, "sending-mta-ip", failure.sending_ip);
        }
        out += ',';
        member(out, "receiving-mx-hostname", failure.receiving_mx);
        if (!failure.receiving_ip.empty()) {
          out += ',';
          member(out, "receiving-ip", failure.receiving_ip);
        }
        out += ",\"failed-session-count\":" + std::to_string(count) + "}";
      }
      out += ']';
    }
    out += '}';
  }
  return out + "]}";
}

std::string tls_report_file_name(const TlsReportMetadata& metadata,
                                 std::string_view policy_domain) {
  return metadata.submitter + "!" + std::string(policy_domain) + "!" +
         std::to_string(metadata.begin) + "!" + std::to_string(metadata.end) + "!" +
         metadata.report_id + ".json.gz";
}

std::string tls_report_message(const TlsReportMetadata& metadata, std::string_view policy_domain,
                               std::span<const std::string> recipients, std::string_view gzipped,
                               std::int64_t now) {
  std::string to;
  for (const std::string& recipient : recipients)
    to += (to.empty() ? "" : ", ") + ("<" + recipient + ">");
  base::ReportMail mail;
  mail.fields = {{"From", metadata.org_name + " TLS reports <" + metadata.contact + ">"},
                 {"To", to},
                 {"Date", base::mail_date(now)},
                 {"Subject", "Report Domain: " + std::string(policy_domain) + " Submitter: " +
                                 metadata.submitter + " Report-ID: <" + metadata.report_id + ">"},
                 {"Message-ID", "<" + metadata.report_id + "@" + metadata.submitter + ">"},
                 {"TLS-Report-Domain", std::string(policy_domain)},
                 {"TLS-Report-Submitter", metadata.submitter}};
  mail.multipart_type = "multipart/report; report-type=\"tlsrpt\"";
  mail.boundary = "=_tlsrpt_" + metadata.report_id;
  mail.text = "This is an SMTP TLS report (RFC 8460) for " + std::string(policy_domain) +
              ", from " + metadata.org_name + ".\r\n\r\n";
  mail.attachment_type = "application/tlsrpt+gzip";
  mail.file_name = tls_report_file_name(metadata, policy_domain);
  return base::report_mail(mail, gzipped);
}

namespace {
constexpr std::string_view kPendingMagic = "smtpsd tls report post 1";
}  // namespace

std::string pending_post_text(const PendingTlsReportPost& post) {
  return std::string(kPendingMagic) + "\nuri " + encode(post.uri) + "\ndomain " +
         encode(post.domain) + "\nsessions " + std::to_string(post.sessions) + "\nfirst " +
         std::to_string(post.first_failure) + "\nnext " + std::to_string(post.next_attempt) +
         "\nfailures " + std::to_string(post.failures) + "\n\n" + post.gzipped;
}

std::optional<PendingTlsReportPost> parse_pending_post(std::string_view text) {
  const std::size_t header_end = text.find("\n\n");
  if (header_end == std::string_view::npos) return std::nullopt;
  std::vector<std::string_view> lines = split(text.substr(0, header_end), '\n');
  if (lines.size() != 7 || lines[0] != kPendingMagic) return std::nullopt;
  auto value = [&](std::size_t i, std::string_view key) -> std::optional<std::string_view> {
    if (!lines[i].starts_with(key) || lines[i].size() <= key.size() || lines[i][key.size()] != ' ')
      return std::nullopt;
    return lines[i].substr(key.size() + 1);
  };
  auto number = [&](std::size_t i, std::string_view key, auto& out) {
    auto field = value(i, key);
    if (!field) return false;
    auto [end, error] = std::from_chars(field->data(), field->data() + field->size(), out);
    return error == std::errc() && end == field->data() + field->size();
  };
  PendingTlsReportPost post;
  auto uri = value(1, "uri"), domain = value(2, "domain");
  if (!uri || !domain) return std::nullopt;
  auto decoded_uri = decode(*uri), decoded_domain = decode(*domain);
  if (!decoded_uri || !decoded_domain) return std::nullopt;
  post.uri = std::move(*decoded_uri);
  post.domain = std::move(*decoded_domain);
  if (!number(3, "sessions", post.sessions) || !number(4, "first", post.first_failure) ||
      !number(5, "next", post.next_attempt) || !number(6, "failures", post.failures))
    return std::nullopt;
  post.gzipped = std::string(text.substr(header_end + 2));
  return post;
}

std::int64_t post_retry_wait(unsigned failures, std::int64_t delay) {
  static constexpr std::int64_t kFactors[] = {1, 5, 30, 60};
  const std::size_t at = failures == 0 ? 0 : std::min<std::size_t>(failures - 1, 3);
  return delay * kFactors[at];
}

std::optional<std::vector<std::string>> parse_tlsrpt_record(std::string_view text) {
  // §3: "v=TLSRPTv1" first, then "; rua=" a comma-separated list of URIs.
  std::vector<std::string_view> fields = split(text, ';');
  auto trimmed = [](std::string_view value) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    return value;
  };
  if (fields.empty() || trimmed(fields[0]) != "v=TLSRPTv1") return std::nullopt;
  std::optional<std::vector<std::string>> rua;
  for (std::size_t i = 1; i < fields.size(); ++i) {
    std::string_view field = trimmed(fields[i]);
    if (field.empty()) continue;
    const std::size_t equals = field.find('=');
    if (equals == std::string_view::npos) return std::nullopt;
    if (!base::equals_ignoring_case(trimmed(field.substr(0, equals)), "rua")) continue;
    if (rua) return std::nullopt;  // rua twice
    rua.emplace();
    for (std::string_view uri : split(field.substr(equals + 1), ',')) {
      uri = trimmed(uri);
      if (!uri.empty()) rua->emplace_back(uri);
    }
  }
  if (!rua || rua->empty()) return std::nullopt;
  return rua;
}

}  // namespace delivery
