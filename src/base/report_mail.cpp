// report_mail.cpp — see report_mail.h.
#include "base/report_mail.h"

#include <ctime>

#include "base/base64.h"

namespace base {

std::string mail_date(std::int64_t unix_time) {
  char date[64];
  const std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return date;
}

std::string report_mail(const ReportMail& mail, std::string_view attachment) {
  std::string out;
  for (const auto& [name, value] : mail.fields)
    out += name + ": " + value + "\r\n";
  out += "MIME-Version: 1.0\r\n";
  out += "Content-Type: " + mail.multipart_type + "; boundary=\"" + mail.boundary + "\"\r\n\r\n";
  out += "--" + mail.boundary + "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
  out += mail.text;
  out += "--" + mail.boundary + "\r\nContent-Type: " + mail.attachment_type + "; name=\"" +
         mail.file_name + "\"\r\n";
  out += "Content-Transfer-Encoding: base64\r\n";
  out += "Content-Disposition: attachment; filename=\"" + mail.file_name + "\"\r\n\r\n";
  std::string encoded;
  append_base64(encoded, attachment);
  for (std::size_t at = 0; at < encoded.size(); at += 76)
    out += encoded.substr(at, 76) + "\r\n";
  out += "--" + mail.boundary + "--\r\n";
  return out;
}

}  // namespace base
