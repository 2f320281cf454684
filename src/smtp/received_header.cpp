// received_header.cpp — see received_header.h.
#include "smtp/received_header.h"

#include <cstdio>
#include <ctime>

namespace smtp {
namespace {

void append_clean(std::string& out, std::string_view text) {
  for (unsigned char c : text) {
    // Printable ASCII without '(' ')' that would unbalance the comment; never CR or LF.
    if (c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('?');
    }
  }
}

}  // namespace

std::string rfc5322_date(std::int64_t unix_time) {
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buffer[64];
  int n = std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                        kDays[tm.tm_wday % 7], tm.tm_mday, kMonths[tm.tm_mon % 12],
                        tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string received_header(const ReceivedFields& f) {
  std::string out;
  out.reserve(256);
  if (!f.local_user.empty()) {
    out += "Received: by ";
    append_clean(out, f.by_hostname);
    out += " (smtpsd, from local user ";
    append_clean(out, f.local_user.substr(0, 64));
    out += ", uid ";
    out += std::to_string(f.local_uid);
    out += ")\r\n\twith ";
  } else {
    out += "Received: from ";
    if (f.helo.empty()) {
      out += "unknown";
    } else {
      append_clean(out, f.helo.substr(0, 255));
    }
    out += " ([";
    append_clean(out, f.client_address);
    out += "])\r\n\tby ";
    append_clean(out, f.by_hostname);
    out += " (smtpsd) with ";
  }
  append_clean(out, f.with_protocol);
  out += " id ";
  append_clean(out, f.queue_id);
  if (!f.tls_version.empty()) {
    out += "\r\n\t(version=";
    append_clean(out, f.tls_version);
    out += " cipher=";
    append_clean(out, f.tls_cipher);
    out += ")";
  }
  if (!f.authenticated_user.empty()) {
    out += "\r\n\t(authenticated as ";
    append_clean(out, f.authenticated_user);
    out += ")";
  }
  if (!f.for_recipient.empty()) {
    out += "\r\n\tfor <";
    append_clean(out, f.for_recipient);
    out += ">";
  }
  out += ";\r\n\t";
  out += rfc5322_date(f.unix_time);
  out += "\r\n";
  return out;
}

}  // namespace smtp
