// system_resolver.h — the addresses of a next hop the administrator named (the smarthost of
// delivery.relay, the LMTP server of delivery.lmtp), found the way every other program on
// the host finds them: getaddrinfo(3), so /etc/hosts first and then DNS, as nsswitch.conf
// says. "localhost" or a name for a local content filter in /etc/hosts must work; MX hosts
// are a different matter (RFC 5321 §5.1 asks DNS) and go through mx_resolver.h.
//
// Blocking (getaddrinfo has no deadline of its own beyond resolv.conf's); called only from
// the queue's delivery threads, never from an event loop.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace delivery {

// IP literals of host in the system's order; an IP literal is returned as is. The error
// says what went wrong in words ("no such host (not in /etc/hosts, not in DNS)").
base::Expected<std::vector<std::string>, std::string> resolve_with_system(std::string_view host);

}  // namespace delivery
