// control_commands.h — what the control socket (app/control_socket.h) answers. Pure over
// the objects it is given, so that it is unit-tested without a socket.
#pragma once

#include <chrono>
#include <string>

#include "auth/failure_limiter.h"
#include "delivery/tls_memory.h"
#include "queue/scheduler.h"

namespace app {

// "auth lockouts" / "auth unlock IP_OR_USER";
// "queue list" / "queue show ID" / "queue flush" / "queue delete|hold|release ID" (with a
// scheduler); "tls memory" / "tls forget DOMAIN" (with the no-downgrade memory).
// Anything else, or a failure, gets "error: …". now_unix dates the ages in queue listings.
std::string handle_control_request(const std::string& request, auth::FailureLimiter& limiter,
                                   std::chrono::steady_clock::time_point now,
                                   queue::Scheduler* scheduler = nullptr,
                                   delivery::TlsMemory* tls_memory = nullptr,
                                   std::int64_t now_unix = 0);

}  // namespace app
