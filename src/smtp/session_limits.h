// session_limits.h — the bounds one SMTP session enforces while it streams (line lengths,
// recipients, message size, errors), as plain values: the configuration
// fills them, smtp::ServerSession enforces them (server_session.h), and nothing else is
// needed to name them. RFC 5321 §4.5.3.1 (size limits); RFC 1870 (SIZE).
#pragma once

#include <cstddef>
#include <cstdint>

namespace smtp {

struct SessionLimits {
  std::size_t max_command_line = 2048;  // octets incl. CRLF; RFC 5321 §4.5.3.1.4 says 512
                                        // at least, plus room for ESMTP parameters
  std::size_t max_text_line = 1000;     // octets incl. CRLF in DATA, §4.5.3.1.6
  std::size_t max_recipients = 100;     // 452 4.5.3 past it, §4.5.3.1.8
  std::uint64_t max_message_size = 35u * 1024 * 1024;  // 552 5.3.4, RFC 1870
  unsigned max_errors = 10;                            // 421 4.7.0 and close after this many
  bool normalize_bare_line_endings = false;  // opt-in leniency: turn bare CR/LF in DATA into CRLF
                                             // instead of refusing the message
};

}  // namespace smtp
