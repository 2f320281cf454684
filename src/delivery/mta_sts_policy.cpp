// mta_sts_policy.cpp — the MTA-STS policy file, TXT record and MX matching (usage in
// mta_sts_policy.h; RFC 8461 §3.1, §3.2, §4.1).
#include "delivery/mta_sts_policy.h"

#include <charconv>

#include "base/ascii.h"

namespace delivery {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string_view trim_wsp(std::string_view text) {
  while (!text.empty() && base::is_wsp(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && base::is_wsp(text.back()))
    text.remove_suffix(1);
  return text;
}

// RFC 8461 §3.2 sts-policy-ext-name / §3.1 sts-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT /
// "_" / "-" / ".").
bool is_field_name(std::string_view name) {
  if (name.empty() || name.size() > 32 || !is_alnum(name.front())) return false;
  for (char c : name) {
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

std::string line_error(std::size_t line, std::string_view message) {
  return "line " + std::to_string(line) + ": " + std::string(message);
}

}  // namespace

std::string_view to_string(StsMode mode) {
  switch (mode) {
    case StsMode::kEnforce:
      return "enforce";
    case StsMode::kTesting:
      return "testing";
    case StsMode::kNone:
      return "none";
  }
  return "none";
}

std::string normalized_host(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return {};
  std::size_t labels = 0;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return {};
    for (char c : label) {
      if (!is_alnum(c) && c != '-') return {};
    }
    ++labels;
    start = dot + 1;
  }
  if (labels < 2) return {};
  return base::ascii_lowercase(name);
}

base::Expected<StsPolicy, std::string> parse_sts_policy(std::string_view text) {
  if (text.size() > kMaxPolicyBytes) {
    return base::unexpected("policy larger than " + std::to_string(kMaxPolicyBytes) + " bytes");
  }
  StsPolicy policy;
  bool have_version = false, have_mode = false, have_max_age = false;
  std::size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    // sts-policy-term = LF / CRLF: a CR anywhere else is not allowed.
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) {
      return base::unexpected(line_error(line_number, "bare CR"));
    }
    if (trim_wsp(line).empty()) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return base::unexpected(line_error(line_number, "not a \"key: value\" line"));
    }
    const std::string_view key = line.substr(0, colon);
    const std::string_view value = trim_wsp(line.substr(colon + 1));
    if (!is_field_name(key)) {
      return base::unexpected(line_error(line_number, "invalid key"));
    }
    // The field names are case-sensitive (%s in the ABNF); anything else is an extension,
    // which "MUST be ignored" by a receiver that does not know it (§3.2).
    if (key == "version") {
      if (have_version) return base::unexpected(line_error(line_number, "version repeated"));
      if (value != "STSv1") {
        return base::unexpected(line_error(line_number, "version must be STSv1"));
      }
      have_version = true;
    } else if (key == "mode") {
      if (have_mode) return base::unexpected(line_error(line_number, "mode repeated"));
      if (value == "enforce")
        policy.mode = StsMode::kEnforce;
      else if (value == "testing")
        policy.mode = StsMode::kTesting;
      else if (value == "none")
        policy.mode = StsMode::kNone;
      else
        return base::unexpected(line_error(line_number, "mode must be enforce, testing or none"));
      have_mode = true;
    } else if (key == "max_age") {
      if (have_max_age) return base::unexpected(line_error(line_number, "max_age repeated"));
      // sts-policy-max-age-value = 1*10(DIGIT)
      std::uint64_t seconds = 0;
      auto [at, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (value.empty() || value.size() > 10 || error != std::errc() ||
          at != value.data() + value.size() || value.front() == '+') {
        return base::unexpected(line_error(line_number, "max_age must be 1 to 10 digits"));
      }
      // XXX: "maximum value of 31557600": a larger age is cut to it rather than refused, so
      // that a domain that overshoots keeps its protection for a year.
      policy.max_age = seconds > static_cast<std::uint64_t>(kMaxStsAge)
                           ? kMaxStsAge
                           : static_cast<std::int64_t>(seconds);
      have_max_age = true;
    } else if (key == "mx") {
      // sts-policy-mx-value = ["*."] Domain
      const bool wildcard = value.starts_with("*.");
      std::string host = normalized_host(wildcard ? value.substr(2) : value);
      if (host.empty()) {
        return base::unexpected(line_error(line_number, "mx must be a host name or *.name"));
      }
      policy.mx.push_back(wildcard ? "*." + host : host);
    }
  }
  if (!have_version) return base::unexpected(std::string("no version field"));
  if (!have_mode) return base::unexpected(std::string("no mode field"));
  if (!have_max_age) return base::unexpected(std::string("no max_age field"));
  if (policy.mode != StsMode::kNone && policy.mx.empty()) {
    return base::unexpected("no mx field in mode " + std::string(to_string(policy.mode)));
  }
  return policy;
}

std::string format_sts_policy(const StsPolicy& policy) {
  std::string text = "version: STSv1\r\nmode: " + std::string(to_string(policy.mode)) + "\r\n";
  for (const std::string& mx : policy.mx)
    text += "mx: " + mx + "\r\n";
  text += "max_age: " + std::to_string(policy.max_age) + "\r\n";
  return text;
}

base::Expected<std::string, std::string> parse_sts_record(std::string_view text) {
  // sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
  // sts-sep = *WSP %x3B *WSP
  if (!text.starts_with("v=STSv1"))
    return base::unexpected(std::string("does not start with v=STSv1"));
  text.remove_prefix(7);
  std::string id;
  bool any_field = false;
  while (true) {
    std::string_view rest = trim_wsp(text);
    if (rest.empty()) break;
    if (rest.front() != ';')
      return base::unexpected(std::string("fields must be separated by ';'"));
    rest = trim_wsp(rest.substr(1));
    if (rest.empty()) break;  // the optional trailing separator
    std::size_t end = 0;
    while (end < rest.size() && rest[end] != ';' && !base::is_wsp(rest[end]))
      ++end;
    std::string_view field = rest.substr(0, end);
    text = rest.substr(end);
    const std::size_t equals = field.find('=');
    if (equals == std::string_view::npos) {
      return base::unexpected("field without '=': " + std::string(field));
    }
    std::string_view name = field.substr(0, equals);
    std::string_view value = field.substr(equals + 1);
    if (!is_field_name(name)) return base::unexpected("invalid field name: " + std::string(name));
    // sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
    if (value.empty()) return base::unexpected("empty value of " + std::string(name));
    for (char c : value) {
      if (c < 0x21 || c > 0x7e || c == '=') {
        return base::unexpected("invalid character in the value of " + std::string(name));
      }
    }
    any_field = true;
    if (name == "id") {
      // sts-id = %s"id=" 1*32(ALPHA / DIGIT)
      if (!id.empty()) return base::unexpected(std::string("id repeated"));
      if (value.size() > 32) return base::unexpected(std::string("id longer than 32 characters"));
      for (char c : value) {
        if (!is_alnum(c)) return base::unexpected(std::string("id must be letters and digits"));
      }
      id = value;
    }
  }
  if (!any_field || id.empty()) return base::unexpected(std::string("no id field"));
  return id;
}

base::Expected<std::string, std::string> select_sts_record(const std::vector<std::string>& texts) {
  const std::string* found = nullptr;
  std::size_t count = 0;
  for (const std::string& text : texts) {
    // §3.1: "records that do not begin with "v=STSv1;" are discarded" (a separator may have
    // white space before it, sts-sep).
    std::string_view rest(text);
    if (!rest.starts_with("v=STSv1")) continue;
    rest = trim_wsp(rest.substr(7));
    if (rest.empty() || rest.front() != ';') continue;
    found = &text;
    ++count;
  }
  if (count == 0) return base::unexpected(std::string("no v=STSv1 record"));
  if (count > 1) {
    return base::unexpected(std::to_string(count) + " v=STSv1 records (exactly one is allowed)");
  }
  return parse_sts_record(*found);
}

bool matches_pattern(std::string_view pattern, std::string_view mx_host) {
  if (!mx_host.empty() && mx_host.back() == '.') mx_host.remove_suffix(1);
  if (pattern.starts_with("*.")) {
    // "*.example.com" matches "mx1.example.com" but neither "example.com" nor
    // "a.b.example.com": the wildcard stands for exactly one leftmost label.
    const std::size_t dot = mx_host.find('.');
    if (dot == 0 || dot == std::string_view::npos) return false;
    return base::equals_ignoring_case(mx_host.substr(dot + 1), pattern.substr(2));
  }
  return base::equals_ignoring_case(mx_host, pattern);
}

bool matches(const StsPolicy& policy, std::string_view mx_host) {
  for (const std::string& pattern : policy.mx) {
    if (matches_pattern(pattern, mx_host)) return true;
  }
  return false;
}

}  // namespace delivery
