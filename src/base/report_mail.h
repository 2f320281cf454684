// report_mail.h — the mail that carries a machine-readable report to a domain's report
// address (DMARC aggregate reports, RFC 7489 §7.2.1.1; SMTP TLS reports, RFC 8460 §5.3): the
// given header fields, then a multipart body of a short text part and the report as a
// base64 attachment in 76-octet lines (RFC 2045 §6.8). CRLF lines; the caller's values must
// already be single-line (they are ours: addresses, domains, ids).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace base {

struct ReportMail {
  std::vector<std::pair<std::string, std::string>> fields;  // From, To, Subject, … in order
  std::string multipart_type;   // "multipart/mixed", or "multipart/report; report-type=…"
  std::string boundary;         // unique to the message
  std::string text;             // the text part, CRLF lines
  std::string attachment_type;  // "application/gzip", "application/tlsrpt+gzip"
  std::string file_name;
};

std::string report_mail(const ReportMail& mail, std::string_view attachment);

// A Date field's value (RFC 5322 §3.3) for a Unix time, in UTC: "Sat, 05 Dec 2026 12:00:00 +0000".
std::string mail_date(std::int64_t unix_time);

}  // namespace base
