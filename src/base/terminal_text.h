// terminal_text.h — text that came from the network or from an unauthenticated peer (a
// user name typed at AUTH, an EHLO reply, a remote server's banner or error, a sender
// address), made safe to print on a terminal (docs/architecture.md "Security rules").
//
// Invariant: the result holds no byte a terminal acts on — no C0 control (CR, LF, TAB,
// ESC …), no DEL, no C1 control (U+0080–U+009F, CSI among them), no bidirectional or line
// separator format character (U+200E/F, U+2028/9, U+202A–E, U+2066–9) and no byte that is
// not UTF-8 — yet it shows each of them: "\r", "\n", "\t", "\\" and "\xHH" for every other
// byte (a multi-byte character escaped byte by byte). Printable ASCII and valid UTF-8 other
// than those stay as they are, so ordinary text reads unchanged.
#pragma once

#include <string>
#include <string_view>

namespace base {

void append_terminal_safe(std::string& out, std::string_view text);
std::string terminal_safe(std::string_view text);

}  // namespace base
