// dns_options.cpp — see dns_options.h.
#include "app/common/dns_options.h"

namespace app {

dns::Options dns_options(const config::DnsSettings& settings) {
  dns::Options options;
  switch (settings.mode) {
    case config::DnsSettings::Mode::kSystem:
      options.mode = dns::Options::Mode::kSystem;
      break;
    case config::DnsSettings::Mode::kForward:
      options.mode = dns::Options::Mode::kForward;
      break;
    case config::DnsSettings::Mode::kRecursive:
      options.mode = dns::Options::Mode::kRecursive;
      break;
  }
  options.servers = settings.servers;
  switch (settings.validation) {
    case config::DnsSettings::Validation::kAuto:
      options.validation = dns::Options::Validation::kAuto;
      break;
    case config::DnsSettings::Validation::kYes:
      options.validation = dns::Options::Validation::kOn;
      break;
    case config::DnsSettings::Validation::kNo:
      options.validation = dns::Options::Validation::kOff;
      break;
  }
  options.trust_anchor = settings.trust_anchor;
  options.timeout = settings.timeout;
  return options;
}

}  // namespace app
