// reload.cpp — see reload.h.
#include "app/smtpsd/reload.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "app/smtpsd/config_location.h"
#include "app/smtpsd/listener_policy.h"
#include "app/smtpsd/local_submission.h"
#include "app/smtpsd/systemd_notify.h"
#include "base/clock.h"

namespace app {
namespace {

template <typename T>
void keep(T& next, const T& running, const char* key, std::vector<std::string>& changed) {
  if (next == running) return;
  changed.emplace_back(key);
  next = running;
}

// A listener's identity across a reload (see ListenerChanges).
std::vector<std::string> listener_keys(const std::vector<config::Listener>& listeners) {
  std::vector<std::string> keys;
  std::unordered_map<std::string, unsigned> port_zero_seen;
  for (const config::Listener& l : listeners) {
    std::string key = base::format_ip(l.address) + " " + std::to_string(l.port);
    if (l.port == 0) {
      key += " " + std::string(config::to_string(l.role));
      key += " " + std::to_string(port_zero_seen[key]++);
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

bool same_certificate_entries(const std::vector<tls::CertificatePair>& a,
                              const std::vector<tls::CertificatePair>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.certificate_file == y.certificate_file && x.key_file == y.key_file &&
           x.names == y.names;
  });
}

// The files whose change reloads the certificates: every certificate and key.
std::vector<std::string> certificate_paths(const config::Config& config) {
  std::vector<std::string> paths;
  for (const tls::CertificatePair& pair : config.certificates) {
    paths.push_back(pair.certificate_file);
    paths.push_back(pair.key_file);
  }
  return paths;
}

bool same_certificates(const tls::CertificateStore& a, const tls::CertificateStore& b) {
  std::vector<tls::CertificateDetails> left = a.certificates();
  std::vector<tls::CertificateDetails> right = b.certificates();
  if (left.size() != right.size()) return false;
  for (std::size_t i = 0; i < left.size(); ++i) {
    if (left[i].file != right[i].file || left[i].key_file != right[i].key_file ||
        left[i].fingerprint != right[i].fingerprint || left[i].set_names != right[i].set_names) {
      return false;
    }
  }
  return true;
}

void log_certificate(std::string_view event, const tls::CertificateDetails& c) {
  obs::Log(event)
      .kv("file", c.file)
      .kv("names", fmt::format("{}", fmt::join(c.subject_names, ",")))
      .kv("set", c.set_names.empty() ? std::string("default")
                                     : fmt::format("{}", fmt::join(c.set_names, ",")))
      .kv("key", c.key_type)
      .kv("not_after", c.not_after)
      .kv("days_left", (c.not_after - base::unix_now()) / 86400);
}

// Inotify wakes the watcher at once; the poll ([tls] watch_interval, Config::certificate_poll)
// catches what it cannot see. A change is acted on once the files have stayed the same for
// kSettle (certbot replaces four links in a row, an administrator copies the certificate and
// then the key).
constexpr std::chrono::milliseconds kSettle{200};
constexpr std::chrono::milliseconds kSettleStep{50};
constexpr std::chrono::hours kExpiryCheckInterval{1};

}  // namespace

std::vector<std::string> keep_restart_only_settings(config::Config& next,
                                                    const config::Config& running) {
  std::vector<std::string> changed;
  keep(next.hostname, running.hostname, "server.hostname", changed);
  // The default users file lives in data_dir: it stays where the running data_dir is.
  if (next.data_dir != running.data_dir && next.auth.users_file == next.data_dir + "/users" &&
      running.auth.users_file == running.data_dir + "/users") {
    next.auth.users_file = running.auth.users_file;
  }
  if (next.data_dir != running.data_dir &&
      next.addressing.aliases_file == next.data_dir + "/aliases" &&
      running.addressing.aliases_file == running.data_dir + "/aliases") {
    next.addressing.aliases_file = running.addressing.aliases_file;
  }
  keep(next.data_dir, running.data_dir, "server.data_dir", changed);
  keep(next.io_threads, running.io_threads, "server.io_threads", changed);
  keep(next.control_socket, running.control_socket, "server.control_socket", changed);
  keep(next.mailq_socket, running.mailq_socket, "server.mailq_socket", changed);
  // The account is switched once, at start; after it there is no root left to switch again.
  keep(next.user, running.user, "server.user", changed);
  keep(next.group, running.group, "server.group", changed);
  keep(next.run_as_root, running.run_as_root, "server.run_as_root", changed);
  keep(next.queue, running.queue, "queue", changed);
  keep(next.delivery, running.delivery, "delivery", changed);
  // The one resolver is built at start (docs/architecture.md "DNS").
  keep(next.dns, running.dns, "dns", changed);
  keep(next.dmarc_reports, running.dmarc_reports, "dmarc_reports", changed);
  // [acme] runs from the start (its thread, its port bound before the privilege drop): a
  // change takes a restart, and the certificates it serves stay those of the [acme] in
  // service (config adds them after the [[tls.certificates]] entries).
  if (!(next.acme == running.acme)) {
    changed.emplace_back("acme");
    const auto from_acme = [](const config::Config& c, const tls::CertificatePair& pair) {
      return c.acme && pair.certificate_file.starts_with(c.acme->directory_on_disk + "/");
    };
    std::vector<tls::CertificatePair> pairs;
    std::vector<long> lines;
    for (std::size_t i = 0; i < next.certificates.size(); ++i) {
      if (from_acme(next, next.certificates[i])) continue;
      pairs.push_back(next.certificates[i]);
      lines.push_back(i < next.certificate_lines.size() ? next.certificate_lines[i] : 0);
    }
    for (std::size_t i = 0; i < running.certificates.size(); ++i) {
      if (!from_acme(running, running.certificates[i])) continue;
      pairs.push_back(running.certificates[i]);
      lines.push_back(i < running.certificate_lines.size() ? running.certificate_lines[i] : 0);
    }
    next.certificates = std::move(pairs);
    next.certificate_lines = std::move(lines);
    next.acme = running.acme;
  }
  keep(next.tls_reports, running.tls_reports, "tls_reports", changed);
  // [auth]: only the users file follows a reload; the limiter and the cache keep their state.
  config::AuthSettings auth = next.auth;
  auth.users_file = running.auth.users_file;
  if (!(auth == running.auth)) {
    changed.emplace_back("auth (except users_file)");
    const std::string users_file = next.auth.users_file;
    next.auth = running.auth;
    next.auth.users_file = users_file;
  }
  keep(next.shutdown_grace, running.shutdown_grace, "timeouts.shutdown_grace", changed);
  // The rate tables are sized and filled by the running server: they keep their counts.
  keep(next.max_connections_per_minute_per_ip, running.max_connections_per_minute_per_ip,
       "limits.max_connections_per_minute_per_ip", changed);
  // The sending limiter keeps its counts and who is held: its bounds take a restart.
  keep(next.sending_limits, running.sending_limits, "sending_limits", changed);
  // The pre-greet pass table is sized and filled by net::Server at start: it keeps its
  // clients and their time to live.
  keep(next.screening.pregreet_pass_ttl, running.screening.pregreet_pass_ttl,
       "screening.pregreet_pass_ttl", changed);
  keep(next.screening.pregreet_pass_entries, running.screening.pregreet_pass_entries,
       "screening.pregreet_pass_entries", changed);
  keep(next.ipv6_prefix, running.ipv6_prefix, "limits.ipv6_prefix", changed);
  keep(next.free_space_check, running.free_space_check, "limits.free_space_check_interval",
       changed);
  keep(next.auth.watch_interval, running.auth.watch_interval, "auth.watch_interval", changed);
  return changed;
}

ReloadPlan plan_reload(const config::Config& running, config::Config next) {
  ReloadPlan plan;
  plan.restart_only_keys = keep_restart_only_settings(next, running);
  const std::vector<std::string> old_keys = listener_keys(running.listeners);
  const std::vector<std::string> new_keys = listener_keys(next.listeners);
  for (std::size_t n = 0; n < new_keys.size(); ++n) {
    auto found = std::find(old_keys.begin(), old_keys.end(), new_keys[n]);
    if (found == old_keys.end()) {
      plan.listeners.added.push_back(n);
    } else {
      plan.listeners.kept.emplace_back(static_cast<std::size_t>(found - old_keys.begin()), n);
    }
  }
  for (std::size_t r = 0; r < old_keys.size(); ++r) {
    if (std::find(new_keys.begin(), new_keys.end(), old_keys[r]) == new_keys.end()) {
      plan.listeners.removed.push_back(r);
    }
  }
  plan.certificates_changed = !same_certificate_entries(running.certificates, next.certificates);
  plan.log_output_changed = !(next.log == running.log);
  plan.metrics_moved = next.metrics.address != running.metrics.address;
  plan.users_file_changed = next.auth.users_file != running.auth.users_file;
  plan.next = std::move(next);
  return plan;
}

base::Expected<LogOutput, std::string> prepare_log(const config::Config& config) {
  LogOutput out;
  out.format = config.log.format;
  if (config.log.output != config::LogOutput::kSyslog) return out;
  out.sink = obs::make_syslog_sink(config.log.syslog_socket, config.log.facility);
  if (out.sink == nullptr) {
    return base::unexpected(config_location(config, 0, "log.syslog_socket") + "cannot use " +
                            config.log.syslog_socket);
  }
  return out;
}

void apply_log(LogOutput output) {
  obs::set_format(output.format);
  obs::set_output(std::move(output.sink));
}

base::Expected<std::unique_ptr<obs::MetricsServer>, std::string> open_metrics(
    const config::Config& config) {
  if (!config.metrics.address) return std::unique_ptr<obs::MetricsServer>();
  auto server = std::make_unique<obs::MetricsServer>(obs::metrics(), std::chrono::seconds(5));
  auto bound = server->start(config.metrics.address->host, config.metrics.address->port);
  if (!bound)
    return base::unexpected(config_location(config, 0, "metrics.address") + bound.error());
  obs::Log("metrics_listening")
      .kv("address", config.metrics.address->host)
      .kv("port", bound.value());
  return server;
}

ReloadEngine::ReloadEngine(config::Config config) {
  generation_.config = std::make_shared<const config::Config>(std::move(config));
}

std::shared_ptr<const config::Config> ReloadEngine::config() const {
  std::lock_guard lock(state_mutex_);
  return generation_.config;
}

// Reads the certificates of `snapshot` and builds every listener's contexts and options.
// Nothing in service changes here.
base::Expected<ReloadEngine::Generation, ReloadEngine::PrepareError> ReloadEngine::prepare(
    std::shared_ptr<const config::Config> snapshot, const Generation* previous, bool strict_dates) {
  const config::Config& config = *snapshot;
  Generation next;
  next.config = snapshot;
  tls::LoadOptions load_options;
  load_options.now_unix = base::unix_now();
  load_options.refuse_out_of_date = strict_dates;
  load_options.in_service = previous != nullptr ? previous->certificates.get() : nullptr;
  auto store = tls::CertificateStore::load(config.certificates, load_options);
  if (!store) {
    const tls::LoadError& error = store.error();
    const std::size_t index = error.pair_index;
    const long line = index < config.certificate_lines.size() ? config.certificate_lines[index] : 0;
    return base::unexpected(PrepareError{
        config_location(config, line, "tls.certificates[" + std::to_string(index) + "]") +
            error.to_string(),
        error});
  }
  next.certificates = std::move(store.value());
  // One pipeline for every listener of this snapshot, and one with the DNS list check in
  // front for the smtp listeners (the other roles are never screened).
  auto built = built_in_checks(config, check_services_);
  if (!built) return base::unexpected(PrepareError{built.error(), std::nullopt});
  std::shared_ptr<const intake::Pipeline> checks = std::move(built.value());
  std::shared_ptr<const intake::Pipeline> smtp_checks =
      with_screening(checks, dns_list_check(config, check_services_));
  const auto milters = milter_checks(config, check_services_);
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const config::Listener& l = config.listeners[i];
    tls::Policy policy = config.tls;
    policy.session_tickets = l.session_tickets;
    // Ticket keys carry over from the listener on the same address and port.
    const tls::ServerContexts* before = nullptr;
    if (previous != nullptr) {
      const auto& old_listeners = previous->config->listeners;
      for (std::size_t j = 0; j < old_listeners.size() && j < previous->contexts.size(); ++j) {
        if (old_listeners[j].address == l.address && old_listeners[j].port == l.port &&
            old_listeners[j].role == l.role) {
          before = previous->contexts[j].get();
          break;
        }
      }
    }
    auto contexts = tls::ServerContexts::create(policy, next.certificates, l.client_ca, before);
    if (!contexts) {
      return base::unexpected(PrepareError{
          tls_error_at(config, l.line, "listeners[" + std::to_string(i) + "]", contexts.error()),
          std::nullopt});
    }
    auto options = listener_options(
        snapshot, i,
        with_milters(l.role == config::Role::kSmtp ? smtp_checks : checks, milters, l.milters),
        contexts.value()->initial_context(), *users_,
        [space = space_, reserve = config.min_free_space](std::uint64_t size) {
          return space->has_room(reserve, size);
        },
        aliases_);
    next.contexts.push_back(std::move(contexts.value()));
    next.listeners.push_back(std::move(options));
  }
  // The local submission socket comes after the [[listeners]] (it has no TLS context).
  if (config.local_submission.enabled) {
    next.listeners.push_back(local_listener_options(
        snapshot, with_milters(checks, milters, config.local_submission.milters),
        [space = space_, reserve = config.min_free_space](std::uint64_t size) {
          return space->has_room(reserve, size);
        },
        *users_, aliases_));
  }
  return next;
}

// Puts a prepared generation in service and notes the files it was read from.
void ReloadEngine::publish(Generation next, std::vector<std::string> paths,
                           std::vector<tls::FileSignature> signatures) {
  std::lock_guard lock(state_mutex_);
  generation_ = std::move(next);
  watched_paths_ = std::move(paths);
  watched_signatures_ = std::move(signatures);
  ++watched_version_;
}

// A refused load: the same files are not tried again until they change once more.
void ReloadEngine::remember_refused(std::vector<std::string> paths,
                                    std::vector<tls::FileSignature> signatures) {
  std::lock_guard lock(state_mutex_);
  watched_paths_ = std::move(paths);
  watched_signatures_ = std::move(signatures);
  ++watched_version_;
}

base::Expected<std::vector<BoundListener>, std::string> ReloadEngine::serve_first(
    net::Server& server, auth::UserDirectory& users, queue::SpoolSpace& space) {
  users_ = &users;
  space_ = &space;
  const std::shared_ptr<const config::Config> snapshot = config();
  const config::Config& config = *snapshot;
  std::vector<std::string> paths = certificate_paths(config);
  std::vector<tls::FileSignature> signatures = tls::file_signatures(paths);
  // At start an expired certificate is served (with an error in the log, and `smtpsd check`
  // failing): refusing to start would take every listener down for one certificate.
  auto prepared = prepare(snapshot, nullptr, /*strict_dates=*/false);
  if (!prepared) return base::unexpected(prepared.error().message);
  std::vector<BoundListener> listening;
  for (std::size_t i = 0; i < prepared.value().listeners.size(); ++i) {
    const net::ListenerOptions& options = prepared.value().listeners[i];
    auto bound = server.listen(options);
    if (!bound) {
      const bool local = i >= config.listeners.size();
      return base::unexpected(config_location(config, local ? 0 : config.listeners[i].line,
                                              local ? std::string("local_submission.socket")
                                                    : "listeners[" + std::to_string(i) + "]") +
                              bound.error());
    }
    listening.push_back(BoundListener{options.role, options.address, bound.value()});
  }
  for (const tls::CertificateDetails& c : prepared.value().certificates->certificates())
    log_certificate("certificate_loaded", c);
  publish(std::move(prepared.value()), std::move(paths), std::move(signatures));
  check_expiry();
  return listening;
}

void ReloadEngine::attach(net::Server& server, std::unique_ptr<obs::MetricsServer> metrics_server,
                          const SystemdNotifier* notifier) {
  std::lock_guard lock(reload_mutex_);
  server_ = &server;
  metrics_server_ = std::move(metrics_server);
  notifier_ = notifier;
  watch_stop_ = false;
}

void ReloadEngine::detach() {
  std::lock_guard lock(reload_mutex_);
  server_ = nullptr;
  users_ = nullptr;
  space_ = nullptr;
  metrics_server_.reset();  // stops the endpoint, the collectors' only caller
}

// Warnings at 30, 14, 7, 3 and 1 days; an error once expired (expiry_watch.h).
void ReloadEngine::check_expiry() {
  std::vector<tls::ExpiryNotice> notices;
  {
    std::lock_guard lock(state_mutex_);
    if (!generation_.certificates) return;
    notices = expiry_.check(generation_.certificates->certificates(), base::unix_now());
  }
  for (const tls::ExpiryNotice& notice : notices) {
    const tls::CertificateDetails& c = notice.certificate;
    const std::string names = fmt::format("{}", fmt::join(c.subject_names, ","));
    if (notice.expired) {
      obs::Log("certificate_expired", obs::Level::kError)
          .kv("file", c.file)
          .kv("names", names)
          .kv("not_after", c.not_after)
          .kv("expired_seconds_ago", -notice.seconds_left);
    } else {
      obs::Log("certificate_expiring", obs::Level::kWarning)
          .kv("file", c.file)
          .kv("names", names)
          .kv("days_left", notice.days_left)
          .kv("threshold_days", notice.threshold_days)
          .kv("not_after", c.not_after);
    }
  }
}

ReloadResult ReloadEngine::reload() {
  std::lock_guard lock(reload_mutex_);
  const std::string file = config()->source_file;
  obs::Log("reloading").kv("config", file);
  auto loaded = config::load_file(file);
  if (!loaded) {
    const std::string message = loaded.error().to_string();
    obs::Log("reload_refused", obs::Level::kError)
        .kv("error", message)
        .kv("kept", "the configuration in service");
    return ReloadResult{false, message};
  }
  return apply(std::move(loaded.value()), /*whole_config=*/true);
}

ReloadResult ReloadEngine::reload_certificates() {
  std::lock_guard lock(reload_mutex_);
  return apply(*config(), /*whole_config=*/false);
}

// Applies `next_config` (whole_config: from SIGHUP; else the certificates of the
// configuration in service, which plans no other change).
ReloadResult ReloadEngine::apply(config::Config next_config, bool whole_config) {
  if (server_ == nullptr) return ReloadResult{false, "the server is not running"};
  Generation running;
  {
    std::lock_guard lock(state_mutex_);
    running = generation_;
  }
  ReloadPlan plan = plan_reload(*running.config, std::move(next_config));
  auto snapshot = std::make_shared<const config::Config>(std::move(plan.next));
  // Signatures before reading: a change while we read is seen as a change afterwards.
  std::vector<std::string> running_paths = certificate_paths(*running.config);
  std::vector<std::string> next_paths = certificate_paths(*snapshot);
  std::vector<tls::FileSignature> running_signatures = tls::file_signatures(running_paths);
  std::vector<tls::FileSignature> next_signatures = tls::file_signatures(next_paths);

  auto refuse = [&](const std::string& message, const std::optional<tls::LoadError>& file) {
    remember_refused(running_paths, running_signatures);
    if (file) {
      obs::Log("tls_reload_refused", obs::Level::kError)
          .kv("file", file->file)
          .kv("reason", file->reason)
          .kv("kept", "the certificates in service");
    }
    if (whole_config) {
      obs::Log("reload_refused", obs::Level::kError)
          .kv("error", message)
          .kv("kept", "the configuration in service");
    }
    file_watch_.wake();
    return ReloadResult{false, message};
  };

  auto prepared = prepare(snapshot, &running, /*strict_dates=*/true);
  if (!prepared) return refuse(prepared.error().message, prepared.error().certificate);
  Generation next = std::move(prepared.value());
  if (!whole_config && same_certificates(*next.certificates, *running.certificates)) {
    // Touched, or rewritten with the same bytes: nothing to change.
    remember_refused(next_paths, next_signatures);
    obs::Log("tls_files_unchanged", obs::Level::kDebug);
    return ReloadResult{true, {}};
  }

  // [log] and [metrics]: made ready here, put in service with the rest below.
  std::optional<LogOutput> log_output;
  if (plan.log_output_changed) {
    auto made = prepare_log(*snapshot);
    if (!made) return refuse(made.error(), std::nullopt);
    log_output = std::move(made.value());
  }
  // A new endpoint is bound before the old one closes: the same host and port stay bound.
  std::unique_ptr<obs::MetricsServer> new_metrics;
  if (plan.metrics_moved) {
    auto opened = open_metrics(*snapshot);
    if (!opened) return refuse(opened.error(), std::nullopt);
    new_metrics = std::move(opened.value());
  }

  const std::string old_users_file = running.config->auth.users_file;
  if (plan.users_file_changed) {
    if (auto switched = users_->switch_to(snapshot->auth.users_file); !switched) {
      return refuse(config_location(*snapshot, 0, "auth.users_file") + switched.error(),
                    std::nullopt);
    }
  }
  const std::string& old_aliases_file = running.config->addressing.aliases_file;
  const bool aliases_file_changed =
      aliases_ != nullptr && snapshot->addressing.aliases_file != old_aliases_file;
  if (aliases_file_changed) {
    if (auto switched = aliases_->switch_to(snapshot->addressing.aliases_file); !switched) {
      if (plan.users_file_changed) users_->switch_to(old_users_file);
      return refuse(config_location(*snapshot, 0, "addressing.aliases_file") + switched.error(),
                    std::nullopt);
    }
  }
  auto bound = server_->update_listeners(next.listeners);
  if (!bound) {
    // Refused: the files in service stay those of the configuration in service.
    if (plan.users_file_changed) users_->switch_to(old_users_file);
    if (aliases_file_changed) aliases_->switch_to(old_aliases_file);
    const std::size_t index = bound.error().index;
    const bool local = index >= snapshot->listeners.size();
    const long line = local ? 0 : snapshot->listeners[index].line;
    return refuse(config_location(*snapshot, line,
                                  local ? std::string("local_submission.socket")
                                        : "listeners[" + std::to_string(index) + "]") +
                      bound.error().message,
                  std::nullopt);
  }
  server_->set_connection_limits(snapshot->max_connections, snapshot->max_connections_per_ip);
  obs::set_min_level(snapshot->log_level);
  if (log_output) apply_log(std::move(*log_output));
  if (plan.metrics_moved) {
    if (metrics_server_ != nullptr) {
      obs::Log("metrics_closed").kv("address", base::to_string(*running.config->metrics.address));
    }
    std::swap(metrics_server_, new_metrics);  // the old endpoint stops as new_metrics ends
  }

  std::vector<tls::CertificateDetails> before = running.certificates->certificates();
  std::vector<tls::CertificateDetails> after = next.certificates->certificates();
  publish(std::move(next), next_paths, next_signatures);
  file_watch_.wake();  // the watcher looks at the (maybe new) files and directories

  for (const tls::CertificateDetails& c : after) {
    const bool known = std::any_of(before.begin(), before.end(), [&c](const auto& old) {
      return old.file == c.file && old.fingerprint == c.fingerprint;
    });
    if (!known) log_certificate("tls_reloaded", c);
  }
  if (whole_config) {
    if (!plan.restart_only_keys.empty()) {
      obs::Log("reload_needs_restart", obs::Level::kWarning)
          .kv("keys", fmt::format("{}", fmt::join(plan.restart_only_keys, ",")))
          .kv("kept", "the values in service");
    }
    obs::Log("reloaded")
        .kv("config", snapshot->source_file)
        .kv("listeners", static_cast<std::uint64_t>(snapshot->listeners.size()))
        .kv("certificates", static_cast<std::uint64_t>(after.size()));
  }
  check_expiry();
  return ReloadResult{true, {}};
}

void ReloadEngine::request_reload() {
  hangup_ = true;
  file_watch_.wake();
}

void ReloadEngine::stop_server() {
  std::lock_guard lock(reload_mutex_);
  if (server_ != nullptr) server_->stop();
}

void ReloadEngine::stop_watch() {
  watch_stop_ = true;
  file_watch_.wake();
}

std::vector<tls::CertificateDetails> ReloadEngine::certificates() const {
  std::shared_ptr<const tls::CertificateStore> store;
  {
    std::lock_guard lock(state_mutex_);
    store = generation_.certificates;
  }
  if (!store) return {};
  return store->certificates();
}

void ReloadEngine::run_watch() {
  using Clock = std::chrono::steady_clock;
  std::uint64_t version_seen = ~std::uint64_t{0};
  std::vector<std::string> paths;
  bool pending = false;
  std::vector<tls::FileSignature> pending_signatures;
  Clock::time_point pending_since;
  std::chrono::milliseconds poll_interval = config()->certificate_poll;
  Clock::time_point next_poll = Clock::now() + poll_interval;
  Clock::time_point next_expiry_check = Clock::now() + kExpiryCheckInterval;
  bool announced = false;
  bool refresh_watches = true;
  while (!watch_stop_) {
    {
      std::lock_guard lock(state_mutex_);
      if (watched_version_ != version_seen) {
        version_seen = watched_version_;
        paths = watched_paths_;
        refresh_watches = true;
        poll_interval = generation_.config->certificate_poll;  // a reload may change it
      }
    }
    if (refresh_watches) {
      // Again after each load and each poll: a renewal may point the links elsewhere, and
      // a directory may have been replaced.
      refresh_watches = false;
      std::vector<std::string> directories;
      for (const std::string& path : paths) {
        for (std::string& directory : tls::directories_to_watch(path))
          directories.push_back(std::move(directory));
      }
      std::sort(directories.begin(), directories.end());
      directories.erase(std::unique(directories.begin(), directories.end()), directories.end());
      file_watch_.watch_directories(directories);
      if (!announced) {
        announced = true;
        obs::Log("certificate_watch")
            .kv("files", static_cast<std::uint64_t>(paths.size()))
            .kv("inotify", file_watch_.notifying())
            .kv("poll_ms", static_cast<std::int64_t>(poll_interval.count()));
      }
    }
    Clock::time_point now = Clock::now();
    Clock::time_point deadline = std::min(next_poll, next_expiry_check);
    if (pending) deadline = std::min(deadline, now + kSettleStep);
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                   std::chrono::milliseconds(1);
    tls::FileWatch::Woken woken = file_watch_.wait(timeout);
    if (watch_stop_) break;
    if (hangup_.exchange(false)) {
      // systemd (Type=notify): the manager shows "reloading" until READY=1 comes back.
      if (notifier_ != nullptr) notifier_->reloading();
      ReloadResult result = reload();
      if (notifier_ != nullptr) {
        notifier_->ready(result.ok ? "accepting mail; configuration reloaded"
                                   : "accepting mail; reload refused: " + result.error);
      }
      pending = false;
      continue;
    }
    now = Clock::now();
    if (woken == tls::FileWatch::Woken::kFileEvent || pending || now >= next_poll) {
      if (now >= next_poll) {
        next_poll = now + poll_interval;
        refresh_watches = true;
      }
      std::vector<tls::FileSignature> current = tls::file_signatures(paths);
      std::vector<tls::FileSignature> baseline;
      {
        std::lock_guard lock(state_mutex_);
        baseline = watched_signatures_;
      }
      if (current == baseline) {
        pending = false;
      } else if (!pending || current != pending_signatures) {
        pending = true;
        pending_signatures = std::move(current);
        pending_since = now;
      } else if (now - pending_since >= kSettle) {
        pending = false;
        reload_certificates();
      }
    }
    if (now >= next_expiry_check) {
      check_expiry();
      next_expiry_check = now + kExpiryCheckInterval;
    }
  }
}

}  // namespace app
