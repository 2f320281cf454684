// config_location.h — how a message about one entry of the configuration names it:
// "FILE:LINE: KEY: " (no ":LINE" when the line is unknown), so that every start-up, reload
// and `smtpsd check` error points at the entry to fix.
#pragma once

#include <string>

#include "config/config.h"

namespace app {

std::string config_location(const config::Config& config, long line, const std::string& key);

// An error of the TLS layer about that entry: the location, then the error without the
// layer's "tls: " prefix (the key already says what it is about).
std::string tls_error_at(const config::Config& config, long line, const std::string& key,
                         std::string error);

}  // namespace app
