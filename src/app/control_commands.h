// control_commands.h — what the control socket (app/control_socket.h) answers. Pure over
// the objects it is given, so that it is unit-tested without a socket.
#pragma once

#include <chrono>
#include <string>

#include "auth/failure_limiter.h"

namespace app {

// "auth lockouts" / "auth unlock IP_OR_USER"; anything else gets "error: …".
std::string handle_control_request(const std::string& request, auth::FailureLimiter& limiter,
                                   std::chrono::steady_clock::time_point now);

}  // namespace app
