// reply.h — an SMTP reply with its enhanced status code (RFC 5321 §4.2, RFC 3463, RFC 2034).
#pragma once

#include <string>
#include <string_view>

namespace smtp {

struct Reply {
  int code = 0;          // 250, 451, 550, ...
  std::string enhanced;  // "2.0.0"; every reply we send has one (RFC 2034)
  std::string text;      // may contain '\n' for a multi-line reply

  // Appends the wire form to out: "250-2.0.0 first\r\n250 2.0.0 last\r\n".
  void append_to(std::string& out) const;
};

// The same wire form without building a Reply (no allocation on the session's paths).
// An empty enhanced code is left out (the greeting and EHLO/HELO lines, RFC 2034 §3).
void append_reply(std::string& out, int code, std::string_view enhanced, std::string_view text);

}  // namespace smtp
