// daemon.h — wiring of the server: configuration → spool, committer, delivery worker,
// TLS contexts and listeners. The only place that knows every layer (docs/architecture.md).
//
// Reload (README "Reloading"; reload.h): SIGHUP re-reads the whole file, a change of a
// certificate or key file re-reads the certificates alone; new sessions get the new
// snapshot, and a reload that fails in any part changes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/smtpsd/reload.h"
#include "config/config.h"

namespace app {

// One certificate in service, for the expiry metric
// (smtpsd_certificate_expiry_seconds{file,names} = not_after - now).
struct CertificateExpiry {
  std::string file;
  std::vector<std::string> names;      // DNS names the certificate covers (SAN, else CN)
  std::vector<std::string> set_names;  // names of its SNI set; empty for the unnamed default
  std::int64_t not_before = 0;         // unix seconds
  std::int64_t not_after = 0;          // unix seconds
};

class Daemon {
 public:
  explicit Daemon(config::Config config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs the server until SIGINT/SIGTERM or stop(). Returns the process exit status;
  // start-up failures are printed to stderr and give 1. on_ready runs once every listener
  // is bound, with the listeners as bound.
  int run(const std::function<void(const std::vector<BoundListener>&)>& on_ready = {});

  // What SIGHUP does: re-reads the configuration file and applies it for new sessions
  // (reload.h says which settings need a restart instead). Thread-safe and blocking
  // (milliseconds); call it from any thread but an I/O thread of the server. Refused (with
  // the reason, and a log line) when not running or when anything in the new configuration
  // is wrong; the configuration in service then stays entirely.
  ReloadResult reload();
  // What a changed certificate or key file does: re-reads the certificate files of the
  // configuration in service. Same rules as reload().
  ReloadResult reload_certificates();

  // Every certificate in service (empty before run()). Thread-safe.
  std::vector<CertificateExpiry> certificate_expiry() const;

  // Same as SIGTERM. Thread-safe.
  void stop();

 private:
  std::unique_ptr<ReloadEngine> engine_;
};

// Daemon(config).run(on_ready).
int serve(const config::Config& config,
          const std::function<void(const std::vector<BoundListener>&)>& on_ready = {});

}  // namespace app
