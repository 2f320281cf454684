// session_limits.h — the bounds one SMTP session enforces while it streams (line lengths,
// recipients, message size, errors, Received count), as plain values: the configuration
// fills them, smtp::ServerSession enforces them (server_session.h), and nothing else is
// needed to name them. RFC 5321 §4.5.3.1 (size limits), §6.3 (loops); RFC 1870 (SIZE).
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
  // RFC 5321 §6.3 loop detection: a message whose header section already has this many
  // "Received:" fields (ours would be one more) gets 554 5.4.6 at the end of its data and
  // is not stored; 0 turns the check off. XXX: §6.3 says a threshold "SHOULD" normally be
  // "at least 100"; 50 follows Postfix's hopcount_limit, and real paths stay far below.
  std::size_t max_received_headers = 50;
};

}  // namespace smtp
