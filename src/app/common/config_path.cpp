// config_path.cpp — see config_path.h.
#include "app/common/config_path.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace app {

ConfigPath choose_config_path(const std::string& given, const char* environment) {
  if (!given.empty()) return ConfigPath{given, "--config"};
  if (environment != nullptr && *environment != '\0') {
    return ConfigPath{environment, "SMTPSD_CONFIG"};
  }
  return ConfigPath{kDefaultConfigPath, "the default"};
}

base::Expected<std::string, std::string> existing_config_path(const ConfigPath& choice) {
  struct stat status {};
  if (::stat(choice.path.c_str(), &status) == 0) return choice.path;
  const int error = errno;
  std::string hint =
      choice.source == "the default" ? "; give --config FILE or set SMTPSD_CONFIG" : "";
  if (error == ENOENT) {
    return base::unexpected("no configuration file at " + choice.path + " (" + choice.source +
                            hint + ")");
  }
  return base::unexpected("cannot read the configuration " + choice.path + " (" + choice.source +
                          "): " + std::strerror(error));
}

}  // namespace app
