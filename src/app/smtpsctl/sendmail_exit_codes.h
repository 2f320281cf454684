// sendmail_exit_codes.h — the exit codes of the sendmail interface, both modes (TLS and the
// local socket): sysexits.h values, spelled out, as Postfix's sendmail uses them. What each
// means for a caller is in local_sendmail.h.
#pragma once

namespace app {

inline constexpr int kExUsage = 64;
inline constexpr int kExDataErr = 65;
inline constexpr int kExNoUser = 67;
inline constexpr int kExUnavailable = 69;
inline constexpr int kExTempFail = 75;
inline constexpr int kExNoPerm = 77;
inline constexpr int kExConfig = 78;

}  // namespace app
