// next_hop.h — a server that mail is handed to instead of the recipient domain's MX hosts:
// the smarthost of the sender's domain ([[domains]] relay) or the next hop of a relay domain
// (backup MX, inbound gateway). Plain values; outbound.h connects, router.h chooses.
#pragma once

#include <string>

#include "base/endpoint.h"
#include "tls/policy.h"

namespace delivery {

struct NextHop {
  base::SmtpUrl url;  // smtps:// (implicit TLS) or smtp:// (STARTTLS when the level asks)
  tls::OutboundLevel tls = tls::OutboundLevel::kVerify;
  std::string user;      // AUTH when set (only with tls = verify: config checks it)
  std::string password;  // read from its file by the application
};

}  // namespace delivery
