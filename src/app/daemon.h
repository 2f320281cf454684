// daemon.h — wiring of the server: configuration → spool, committer, delivery worker,
// TLS contexts and listeners. The only place that knows every layer (DESIGN.md §2).
#pragma once

#include <functional>
#include <string>

#include "config/config.h"

namespace app {

// Runs the server until SIGINT/SIGTERM. Returns the process exit status; start-up
// failures are printed to stderr and give 1. on_ready runs once every listener is bound.
int serve(const config::Config& config, const std::function<void()>& on_ready = {});

// `smtpsd check`: loads the certificates, prints the effective policy. Returns 0 or 2.
int check(const config::Config& config);

}  // namespace app
