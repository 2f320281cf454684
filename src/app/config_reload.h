// config_reload.h — what a configuration reload (SIGHUP) may change in a running server, and
// what only a restart can: a pure function over two snapshots, so it is tested without one.
//
// Changed on reload, for new sessions: log_level, [tls] (policy and certificates), [[domains]],
// [[listeners]] (added, removed, changed), [limits], auth.users_file, timeouts.command / data /
// handshake. Needing a restart (they shape objects built once at start: the spool, the
// queue, delivery, the I/O threads, the failure limiter, the control socket):
// server.hostname, server.data_dir, server.io_threads, server.control_socket, [queue],
// [delivery], [auth] other than users_file, timeouts.shutdown_grace.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace app {

// Copies every restart-only setting of `running` into `next` (so that `next` describes what
// the process really does) and returns the keys whose value differed, for the log.
std::vector<std::string> keep_restart_only_settings(config::Config& next,
                                                    const config::Config& running);

}  // namespace app
