// dmarc_report.cpp — see dmarc_report.h.
#include "mailauth/dmarc_report.h"

#include <zlib.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <tuple>

#include "base/ascii.h"
#include "base/base64.h"
#include "base/report_mail.h"

namespace mailauth {
namespace {

bool plain(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == '@' || c == '+' || c == '/';
}

std::string encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    if (plain(c)) {
      out += c;
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    out += '%';
    out += kHex[u >> 4];
    out += kHex[u & 15];
  }
  return out;
}

std::optional<std::string> decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      if (!plain(text[i])) return std::nullopt;
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t j = i + 1; j <= i + 2; ++j) {
      const char c = text[j];
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= c - '0';
      else if (c >= 'A' && c <= 'F')
        value |= c - 'A' + 10;
      else
        return std::nullopt;
    }
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = text.find(separator, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? text.npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::string xml_text(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        if (u < 0x20 && c != '\t') continue;  // not allowed in XML 1.0 text
        out += c;
    }
  }
  return out;
}

void element(std::string& out, std::string_view indent, std::string_view name,
             std::string_view value) {
  out += indent;
  out += '<';
  out += name;
  out += '>';
  out += xml_text(value);
  out += "</";
  out += name;
  out += ">\n";
}

}  // namespace

std::string record_line(const DmarcEvaluation& e) {
  std::string line = "v=1 t=" + std::to_string(e.time) + " ip=" + encode(e.source_ip) +
                     " from=" + encode(e.header_from) + " mfrom=" + encode(e.envelope_from) +
                     " rcpt=" + encode(e.envelope_to) + " domain=" + encode(e.policy_domain) +
                     " adkim=" + (e.strict_dkim ? "s" : "r") +
                     " aspf=" + (e.strict_spf ? "s" : "r") + " p=" + encode(e.policy) +
                     " sp=" + encode(e.subdomain_policy) + " pct=" + std::to_string(e.percent);
  line += " rua=";
  for (std::size_t i = 0; i < e.rua.size(); ++i)
    line += (i ? "," : "") + encode(e.rua[i]);
  line += " dis=" + encode(e.disposition) +
          " dkim_aligned=" + (e.dkim_aligned_pass ? "pass" : "fail") +
          " spf_aligned=" + (e.spf_aligned_pass ? "pass" : "fail") +
          " override=" + encode(e.override_reason);
  // Only when there is one: lines written before the comment existed stay the same.
  if (!e.override_comment.empty()) line += " override_comment=" + encode(e.override_comment);
  line += " dkim=";
  for (std::size_t i = 0; i < e.dkim.size(); ++i) {
    line += (i ? "," : "") + encode(e.dkim[i].domain) + ":" + encode(e.dkim[i].selector) + ":" +
            encode(e.dkim[i].result);
  }
  line += " spf=" + encode(e.spf_domain) + ":" + encode(e.spf_scope) + ":" + encode(e.spf_result);
  return line;
}

std::optional<DmarcEvaluation> parse_record_line(std::string_view line) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::map<std::string_view, std::string_view> fields;
  for (std::string_view part : split(line, ' ')) {
    const std::size_t equals = part.find('=');
    if (equals == std::string_view::npos) return std::nullopt;
    fields[part.substr(0, equals)] = part.substr(equals + 1);
  }
  if (fields["v"] != "1") return std::nullopt;
  DmarcEvaluation e;
  auto text = [&](std::string_view key, std::string& into) {
    auto found = fields.find(key);
    if (found == fields.end()) return false;
    auto decoded = decode(found->second);
    if (!decoded) return false;
    into = std::move(*decoded);
    return true;
  };
  std::string number, adkim, aspf, dkim_aligned, spf_aligned, pct;
  if (!text("t", number) || !text("ip", e.source_ip) || !text("from", e.header_from) ||
      !text("mfrom", e.envelope_from) || !text("rcpt", e.envelope_to) ||
      !text("domain", e.policy_domain) || !text("adkim", adkim) || !text("aspf", aspf) ||
      !text("p", e.policy) || !text("sp", e.subdomain_policy) || !text("pct", pct) ||
      !text("dis", e.disposition) || !text("dkim_aligned", dkim_aligned) ||
      !text("spf_aligned", spf_aligned) || !text("override", e.override_reason)) {
    return std::nullopt;
  }
  if (fields.contains("override_comment") && !text("override_comment", e.override_comment))
    return std::nullopt;
  if (number.empty() || number.size() > 18 || pct.empty() || pct.size() > 3 ||
      !std::all_of(number.begin(), number.end(), digit) ||
      !std::all_of(pct.begin(), pct.end(), digit)) {
    return std::nullopt;
  }
  e.time = std::stoll(number);
  e.percent = static_cast<unsigned>(std::stoul(pct));
  e.strict_dkim = adkim == "s";
  e.strict_spf = aspf == "s";
  e.dkim_aligned_pass = dkim_aligned == "pass";
  e.spf_aligned_pass = spf_aligned == "pass";
  if (!fields["rua"].empty()) {
    for (std::string_view uri : split(fields["rua"], ',')) {
      auto decoded = decode(uri);
      if (!decoded) return std::nullopt;
      e.rua.push_back(std::move(*decoded));
    }
  }
  if (!fields["dkim"].empty()) {
    for (std::string_view entry : split(fields["dkim"], ',')) {
      const auto parts = split(entry, ':');
      if (parts.size() != 3) return std::nullopt;
      auto domain = decode(parts[0]), selector = decode(parts[1]), result = decode(parts[2]);
      if (!domain || !selector || !result) return std::nullopt;
      e.dkim.push_back({std::move(*domain), std::move(*selector), std::move(*result)});
    }
  }
  const auto spf = split(fields["spf"], ':');
  if (spf.size() != 3) return std::nullopt;
  auto domain = decode(spf[0]), scope = decode(spf[1]), result = decode(spf[2]);
  if (!domain || !scope || !result) return std::nullopt;
  e.spf_domain = std::move(*domain);
  e.spf_scope = std::move(*scope);
  e.spf_result = std::move(*result);
  return e;
}

std::string aggregate_report_xml(const ReportMetadata& metadata,
                                 std::span<const DmarcEvaluation> evaluations) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n";
  out += "  <version>1.0</version>\n  <report_metadata>\n";
  element(out, "    ", "org_name", metadata.org_name);
  element(out, "    ", "email", metadata.email);
  element(out, "    ", "report_id", metadata.report_id);
  out += "    <date_range>\n";
  element(out, "      ", "begin", std::to_string(metadata.begin));
  element(out, "      ", "end", std::to_string(metadata.end));
  out += "    </date_range>\n  </report_metadata>\n";
  if (evaluations.empty()) return out + "</feedback>\n";
  const DmarcEvaluation& published = evaluations.front();
  out += "  <policy_published>\n";
  element(out, "    ", "domain", published.policy_domain);
  element(out, "    ", "adkim", published.strict_dkim ? "s" : "r");
  element(out, "    ", "aspf", published.strict_spf ? "s" : "r");
  element(out, "    ", "p", published.policy);
  element(out, "    ", "sp", published.subdomain_policy);
  element(out, "    ", "pct", std::to_string(published.percent));
  out += "  </policy_published>\n";
  // Rows: identical records counted once (a day of mail from one source is one row).
  std::map<std::string, std::pair<const DmarcEvaluation*, std::uint64_t>> rows;
  std::vector<std::string> order;
  for (const DmarcEvaluation& e : evaluations) {
    DmarcEvaluation key = e;
    key.time = 0;
    std::string line = record_line(key);
    auto [it, inserted] = rows.try_emplace(line, &e, 0);
    if (inserted) order.push_back(line);
    ++it->second.second;
  }
  for (const std::string& line : order) {
    const auto& [e, count] = rows[line];
    out += "  <record>\n    <row>\n";
    element(out, "      ", "source_ip", e->source_ip);
    element(out, "      ", "count", std::to_string(count));
    out += "      <policy_evaluated>\n";
    element(out, "        ", "disposition", e->disposition);
    element(out, "        ", "dkim", e->dkim_aligned_pass ? "pass" : "fail");
    element(out, "        ", "spf", e->spf_aligned_pass ? "pass" : "fail");
    if (!e->override_reason.empty()) {
      out += "        <reason>\n";
      element(out, "          ", "type", e->override_reason);
      if (!e->override_comment.empty()) element(out, "          ", "comment", e->override_comment);
      out += "        </reason>\n";
    }
    out += "      </policy_evaluated>\n    </row>\n    <identifiers>\n";
    if (!e->envelope_to.empty()) element(out, "      ", "envelope_to", e->envelope_to);
    element(out, "      ", "envelope_from", e->envelope_from);
    element(out, "      ", "header_from", e->header_from);
    out += "    </identifiers>\n    <auth_results>\n";
    for (const DmarcEvaluation::Dkim& dkim : e->dkim) {
      out += "      <dkim>\n";
      element(out, "        ", "domain", dkim.domain);
      if (!dkim.selector.empty()) element(out, "        ", "selector", dkim.selector);
      element(out, "        ", "result", dkim.result);
      out += "      </dkim>\n";
    }
    out += "      <spf>\n";
    element(out, "        ", "domain", e->spf_domain);
    element(out, "        ", "scope", e->spf_scope);
    element(out, "        ", "result", e->spf_result);
    out += "      </spf>\n    </auth_results>\n  </record>\n";
  }
  return out + "</feedback>\n";
}

std::string report_file_name(const ReportMetadata& metadata, std::string_view policy_domain) {
  return metadata.receiver + "!" + std::string(policy_domain) + "!" +
         std::to_string(metadata.begin) + "!" + std::to_string(metadata.end) + ".xml.gz";
}

base::Expected<std::string, std::string> gzip(std::string_view data) {
  z_stream stream{};
  // windowBits 15 + 16: a gzip header and trailer (RFC 1952), not zlib's.
  if (deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return base::unexpected(std::string("zlib: deflateInit2 failed"));
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  const std::size_t size = stream.total_out;
  deflateEnd(&stream);
  if (result != Z_STREAM_END) return base::unexpected(std::string("zlib: deflate failed"));
  out.resize(size);
  return out;
}

std::string report_message(const ReportMetadata& metadata, std::string_view policy_domain,
                           std::span<const std::string> recipients, std::string_view gzipped,
                           std::int64_t now) {
  std::string to;
  for (const std::string& recipient : recipients)
    to += (to.empty() ? "" : ", ") + ("<" + recipient + ">");
  base::ReportMail mail;
  mail.fields = {{"From", metadata.org_name + " DMARC <" + metadata.email + ">"},
                 {"To", to},
                 {"Date", base::mail_date(now)},
                 {"Subject", "Report Domain: " + std::string(policy_domain) + " Submitter: " +
                                 metadata.receiver + " Report-ID: <" + metadata.report_id + ">"},
                 {"Message-ID", "<" + metadata.report_id + "@" + metadata.receiver + ">"}};
  mail.multipart_type = "multipart/mixed";
  mail.boundary = "=_dmarc_" + metadata.report_id;
  mail.text = "This is a DMARC aggregate report (RFC 7489 section 7.2) for " +
              std::string(policy_domain) + ", from " + metadata.org_name + ".\r\n\r\n";
  mail.attachment_type = "application/gzip";
  mail.file_name = report_file_name(metadata, policy_domain);
  return base::report_mail(mail, gzipped);
}

std::string rua_address(std::string_view uri) {
  if (uri.size() < 7 || !base::equals_ignoring_case(uri.substr(0, 7), "mailto:")) return {};
  std::string_view address = uri.substr(7);
  // RFC 7489 §6.2: an optional "!" size limit after the URI.
  if (const std::size_t bang = address.rfind('!'); bang != std::string_view::npos)
    address = address.substr(0, bang);
  const std::size_t at = address.rfind('@');
  if (at == 0 || at == std::string_view::npos || at + 1 >= address.size()) return {};
  for (char c : address)
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>' || c == ',' || c == '"')
      return {};
  return std::string(address);
}

}  // namespace mailauth
