// check_command.h — `smtpsd check`: loads every certificate set and client CA as the server
// would, refusing unreadable, mismatched, expired and not-yet-valid certificates; warns
// about a configured name a certificate does not cover (RFC 6125 §6.4); says which account
// the server will run as; prints the effective policy. Each error names "FILE:LINE: KEY".
#pragma once

#include "config/config.h"

namespace app {

// Prints the report on stdout (errors on stderr). Returns 0 (usable) or 2 (errors).
int check(const config::Config& config);

}  // namespace app
