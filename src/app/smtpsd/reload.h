// reload.h — the reload engine: what serves new connections (one configuration snapshot,
// the certificates read for it, each listener's TLS contexts and options), and how a reload
// replaces it without a restart (README "Reloading").
//
// Two steps. plan_reload() is pure: from the configuration in service and the one just
// read it says what changes (listeners added, kept, removed; certificate entries; the log
// output; the metrics endpoint; the users file) and which settings only a restart can
// change. ReloadEngine::apply() then makes everything the plan needs ready beside what is in
// service (certificates read and checked, TLS contexts built, a new syslog socket or metrics
// endpoint opened, ports bound), and only then swaps it in for new sessions; sessions keep
// the snapshot they started with.
//
// Invariants:
// - All or nothing: whatever fails (unreadable or mismatched key, expired or not yet valid
//   certificate, a port or endpoint that cannot be bound, a bad users file) refuses the whole
//   reload with one log line naming "FILE:LINE: KEY", and everything in service stays.
// - Restart-only settings (they shape objects built once at start: the spool, the queue,
//   delivery, the I/O threads, the failure limiter, the control socket, the account) keep
//   their running values; the reload goes on and names them in reload_needs_restart.
//   Reloadable, for new sessions: log_level, [log], [metrics], [tls] (policy and
//   certificates), [[domains]], [[listeners]], [limits] (except the two rate tables),
//   auth.users_file, timeouts.command / data / handshake.
// - One reload at a time; the watch thread (SIGHUP, certificate file changes, the hourly
//   expiry check) never runs on an I/O thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/smtpsd/listener_policy.h"
#include "auth/alias_table.h"
#include "auth/user_store.h"
#include "base/expected.h"
#include "config/config.h"
#include "net/server.h"
#include "obs/log.h"
#include "obs/metrics_server.h"
#include "queue/spool_space.h"
#include "tls/certificate_store.h"
#include "tls/expiry_watch.h"
#include "tls/file_watch.h"

namespace app {

class SystemdNotifier;

struct ReloadResult {
  bool ok = false;
  std::string error;  // "FILE:LINE: KEY: what is wrong" when refused
};

// Which listeners a reload opens, keeps and closes. A listener is the same one when its
// address and port are (for port 0, where the kernel picks: address, role and how many such
// listeners come before it), as net::Server::update_listeners matches them.
struct ListenerChanges {
  std::vector<std::size_t> added;                         // indices into the next listeners
  std::vector<std::pair<std::size_t, std::size_t>> kept;  // (running index, next index)
  std::vector<std::size_t> removed;                       // indices into the running ones
};

struct ReloadPlan {
  // The configuration to put in service: the one read, with the restart-only settings in
  // service kept.
  config::Config next;
  std::vector<std::string> restart_only_keys;  // changed in the file, kept until a restart
  ListenerChanges listeners;
  bool certificates_changed = false;  // [[tls.certificates]] entries: files or names
  bool log_output_changed = false;    // [log]: format, output, facility or socket
  bool metrics_moved = false;         // [metrics] host or port (added or removed too)
  bool users_file_changed = false;    // auth.users_file
};

// What changes from running to next. No I/O.
ReloadPlan plan_reload(const config::Config& running, config::Config next);

// Copies every restart-only setting of `running` into `next` (so that `next` describes what
// the process really does) and returns the keys whose value differed, for the log.
std::vector<std::string> keep_restart_only_settings(config::Config& next,
                                                    const config::Config& running);

// [log]: the format and the output, made ready (the syslog socket opened) before either is
// put in service, so that a reload can refuse an output that cannot be made.
struct LogOutput {
  obs::Format format = obs::Format::kKeyValue;
  std::shared_ptr<const obs::SyslogSink> sink;  // null: stderr
};
base::Expected<LogOutput, std::string> prepare_log(const config::Config& config);
void apply_log(LogOutput output);

// [metrics]: the endpoint, bound and serving (null when the table is absent).
base::Expected<std::unique_ptr<obs::MetricsServer>, std::string> open_metrics(
    const config::Config& config);

// A listener as it was bound at start-up.
struct BoundListener {
  std::string role;     // "smtp", "submission", "submissions", "local"
  std::string address;  // as written in the configuration (local: the socket's path)
  std::uint16_t port = 0;
};

class ReloadEngine {
 public:
  explicit ReloadEngine(config::Config config);
  ReloadEngine(const ReloadEngine&) = delete;
  ReloadEngine& operator=(const ReloadEngine&) = delete;

  // The configuration in service.
  std::shared_ptr<const config::Config> config() const;

  // Start-up: reads the certificates of the configuration in service (an expired one is
  // served, with an error in the log), builds every listener and binds it on server; then
  // puts it all in service. users and space must outlive the server's sessions.
  // Returns the listeners as bound (the port the kernel chose for port 0), in config order.
  base::Expected<std::vector<BoundListener>, std::string> serve_first(net::Server& server,
                                                                      auth::UserDirectory& users,
                                                                      queue::SpoolSpace& space);
  // The aliases in service (before serve_first()); it must outlive the server's sessions.
  // A reload that names another [addressing] aliases_file switches it.
  void use_aliases(auth::AliasDirectory& aliases) { aliases_ = &aliases; }
  // The resolver and worker pool of the sender-authentication checks (before serve_first());
  // without them the pipeline has the received-loop check only.
  void use_check_services(CheckServices services) { check_services_ = std::move(services); }
  // From here until detach(), reloads change server, and the engine owns the metrics
  // endpoint; the watch thread (run_watch) may start.
  void attach(net::Server& server, std::unique_ptr<obs::MetricsServer> metrics_server,
              const SystemdNotifier* notifier);
  // Stops the endpoint and forgets server (after server.run() has returned).
  void detach();

  // What SIGHUP does: re-reads the configuration file and applies it. Blocking.
  ReloadResult reload();
  // What a changed certificate or key file does: re-reads the certificate files of the
  // configuration in service.
  ReloadResult reload_certificates();
  // From an I/O thread (SIGHUP): the watch thread does the reload.
  void request_reload();
  // Same as SIGTERM when attached. Thread-safe.
  void stop_server();

  // The watch thread: SIGHUP requests, certificate file changes, the hourly expiry check;
  // returns once stop_watch() is called.
  void run_watch();
  void stop_watch();

  // Every certificate in service (empty before serve_first()). Thread-safe.
  std::vector<tls::CertificateDetails> certificates() const;

 private:
  // What serves new connections: one configuration snapshot, the certificates read for it
  // and each listener's TLS contexts and options (in the order of config->listeners).
  struct Generation {
    std::shared_ptr<const config::Config> config;
    std::shared_ptr<const tls::CertificateStore> certificates;
    std::vector<std::shared_ptr<tls::ServerContexts>> contexts;
    std::vector<net::ListenerOptions> listeners;
  };
  struct PrepareError {
    std::string message;                        // "FILE:LINE: KEY: …"
    std::optional<tls::LoadError> certificate;  // when a certificate or key file is at fault
  };

  base::Expected<Generation, PrepareError> prepare(std::shared_ptr<const config::Config> snapshot,
                                                   const Generation* previous, bool strict_dates);
  void publish(Generation next, std::vector<std::string> paths,
               std::vector<tls::FileSignature> signatures);
  void remember_refused(std::vector<std::string> paths, std::vector<tls::FileSignature> signatures);
  // Caller holds reload_mutex_.
  ReloadResult apply(config::Config next_config, bool whole_config);
  void check_expiry();

  // Set between attach() and detach(), under reload_mutex_ (one reload at a time).
  std::mutex reload_mutex_;
  net::Server* server_ = nullptr;
  auth::UserDirectory* users_ = nullptr;                // from serve_first()
  auth::AliasDirectory* aliases_ = nullptr;             // from use_aliases(); may stay null
  CheckServices check_services_;                        // from use_check_services()
  queue::SpoolSpace* space_ = nullptr;                  // from serve_first()
  std::unique_ptr<obs::MetricsServer> metrics_server_;  // [metrics]; null when off
  const SystemdNotifier* notifier_ = nullptr;

  mutable std::mutex state_mutex_;  // guards what follows
  Generation generation_;
  std::vector<std::string> watched_paths_;
  std::vector<tls::FileSignature> watched_signatures_;  // as of the last load attempt
  std::uint64_t watched_version_ = 0;
  tls::ExpiryWatch expiry_;

  tls::FileWatch file_watch_;  // owned by the watch thread, except wake()
  std::atomic<bool> hangup_{false};
  std::atomic<bool> watch_stop_{false};
};

}  // namespace app
