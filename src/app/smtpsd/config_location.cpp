// config_location.cpp — see config_location.h.
#include "app/smtpsd/config_location.h"

namespace app {

std::string config_location(const config::Config& config, long line, const std::string& key) {
  return config.source_file + (line > 0 ? ":" + std::to_string(line) : "") + ": " + key + ": ";
}

std::string tls_error_at(const config::Config& config, long line, const std::string& key,
                         std::string error) {
  if (error.rfind("tls: ", 0) == 0) error.erase(0, 5);
  return config_location(config, line, key) + error;
}

}  // namespace app
