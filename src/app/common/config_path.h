// config_path.h — which configuration file a command of smtpsd or smtpsctl reads, as an
// administrator expects from other mail servers: the --config option, else the
// SMTPSD_CONFIG environment variable, else /etc/smtpsd/smtpsd.toml, so that
// `smtpsctl queue list` (and `mailq`) work without options on a packaged host.
//
// Invariant: every "no such file" message names the path tried and where that path came
// from, so a wrong SMTPSD_CONFIG is never mistaken for a missing installation.
#pragma once

#include <string>

#include "base/expected.h"

namespace app {

inline constexpr const char* kDefaultConfigPath = "/etc/smtpsd/smtpsd.toml";

struct ConfigPath {
  std::string path;
  std::string source;  // "--config", "SMTPSD_CONFIG" or "the default"
};

// given: the --config value ("" when absent); environment: getenv("SMTPSD_CONFIG") or null.
ConfigPath choose_config_path(const std::string& given, const char* environment);

// The chosen path when a file (or anything) is there; else the error to print, e.g.
// "no configuration file at /etc/smtpsd/smtpsd.toml (the default; give --config FILE or set
// SMTPSD_CONFIG)".
base::Expected<std::string, std::string> existing_config_path(const ConfigPath& choice);

}  // namespace app
