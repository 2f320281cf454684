// peer_credentials.h — who is at the other end of a unix socket, as the kernel says
// (SO_PEERCRED, socket(7)): the uid, gid and pid of the process that connected. Not the
// peer's word, so the local submission role (docs/architecture.md "Listener roles") may
// trust it where a TCP peer would need AUTH.
#pragma once

#include <cstdint>

namespace net {

struct PeerCredentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int32_t pid = 0;
};

}  // namespace net
