// dns_options.h — [dns] of the configuration as the resolver takes it (dns::create_resolver):
// the server's one resolver and `smtpsctl dkim check` are built from the same settings
// (docs/architecture.md "DNS").
#pragma once

#include "config/config.h"
#include "dns/unbound_resolver.h"

namespace app {

dns::Options dns_options(const config::DnsSettings& settings);

}  // namespace app
