// dmarc_report.h — DMARC aggregate reports (RFC 7489 §7.2): what is recorded of each
// evaluation, and the report a Domain Owner receives for a day of them.
//
// The server records one DmarcEvaluation per evaluated From domain (as one text line in a
// daily file, record_line/parse_record_line); once a day it groups the lines by policy
// domain and mails each domain's `rua` addresses an XML report (Appendix C schema) in gzip,
// named as §7.2.1.1 says: receiver "!" policy-domain "!" begin "!" end ".xml.gz".
// Everything here is pure: files, DNS (§7.1 external destination verification) and the
// queue belong to the caller.
//
// Invariants: a record line holds no space, CR or LF inside a value (every field is
// percent-encoded but for [A-Za-z0-9.-_@+/]), so a hostile From domain cannot forge a
// second record; XML text is escaped; a report names one policy domain.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace mailauth {

struct DmarcEvaluation {
  std::int64_t time = 0;      // Unix time of the message
  std::string source_ip;      // the SMTP client
  std::string header_from;    // the RFC5322.From domain
  std::string envelope_from;  // the RFC5321.MailFrom domain ("" for <>)
  std::string envelope_to;    // the first recipient's domain
  // The record that applied (RFC 7489 §6.3).
  std::string policy_domain;
  bool strict_dkim = false;
  bool strict_spf = false;
  std::string policy = "none";            // p
  std::string subdomain_policy = "none";  // sp (p when absent)
  unsigned percent = 100;                 // pct
  std::vector<std::string> rua;           // "mailto:" URIs
  // What was decided (PolicyEvaluatedType).
  std::string disposition = "none";
  bool dkim_aligned_pass = false;
  bool spf_aligned_pass = false;
  std::string override_reason;   // "", "trusted_forwarder", "local_policy", "sampled_out", …
  std::string override_comment;  // the reason's <comment> ("arc=pass sealer=…"), or ""
  // The underlying results (AuthResultType).
  struct Dkim {
    std::string domain, selector, result;
  };
  std::vector<Dkim> dkim;
  std::string spf_domain;
  std::string spf_scope = "mfrom";  // "mfrom" or "helo"
  std::string spf_result = "none";
};

// One line without its LF: "v=1 t=… ip=… from=… …".
std::string record_line(const DmarcEvaluation& evaluation);
// The evaluation of a line record_line wrote; nothing for a line it could not have written.
std::optional<DmarcEvaluation> parse_record_line(std::string_view line);

struct ReportMetadata {
  std::string org_name;    // the reporting organisation ("Example Mail")
  std::string email;       // its contact address
  std::string receiver;    // our domain, for the file name (§7.2.1.1)
  std::string report_id;   // unique per report
  std::int64_t begin = 0;  // the day covered, Unix time
  std::int64_t end = 0;
};

// The XML report of the evaluations of one policy domain (the first one's policy is the one
// published); rows group identical (source, disposition, results, identifiers) with a count.
std::string aggregate_report_xml(const ReportMetadata& metadata,
                                 std::span<const DmarcEvaluation> evaluations);

// "mx.example.org!example.com!1700000000!1700086400.xml.gz".
std::string report_file_name(const ReportMetadata& metadata, std::string_view policy_domain);

// RFC 1952 gzip of data.
base::Expected<std::string, std::string> gzip(std::string_view data);

// The mail that carries a report (RFC 7489 §7.2.1.1): From our reporting address, To the
// rua addresses, Subject "Report Domain: … Submitter: … Report-ID: <…>", a text part and
// the report as an application/gzip attachment (base64, 76-octet lines).
std::string report_message(const ReportMetadata& metadata, std::string_view policy_domain,
                           std::span<const std::string> recipients, std::string_view gzipped,
                           std::int64_t now);

// The address of a "mailto:" rua URI (RFC 7489 §6.2: "mailto:a@b!10m" → a@b, the size
// limit dropped); "" when it is not a mailto URI with an address.
std::string rua_address(std::string_view uri);

}  // namespace mailauth
