// daemon.cpp — see daemon.h.
#include "app/daemon.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "app/config_reload.h"
#include "app/control_commands.h"
#include "app/control_socket.h"
#include "app/local_recipients.h"
#include "app/privileges.h"
#include "app/systemd_notify.h"
#include "auth/failure_limiter.h"
#include "auth/sasl.h"
#include "auth/user_store.h"
#include "auth/verified_cache.h"
#include "delivery/maildir.h"
#include "delivery/outbound.h"
#include "net/server.h"
#include "obs/log.h"
#include "obs/metrics_server.h"
#include "obs/server_metrics.h"
#include "queue/group_commit.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "tls/certificate_store.h"
#include "tls/expiry_watch.h"
#include "tls/file_watch.h"
#include "tls/policy.h"

namespace app {
namespace {

// The session policy of a listener (DESIGN.md §3): submission roles require AUTH, relay for
// authenticated users and check that the sender belongs to them; the smtp role never
// offers AUTH and accepts mail for the local domains only.
// The lambdas hold the configuration snapshot they were made from: a session keeps it alive
// after a reload has put another one in service.
smtp::SessionConfig session_config(std::shared_ptr<const config::Config> snapshot,
                                   const config::Listener& l, auth::UserDirectory& users) {
  const config::Config& config = *snapshot;
  smtp::SessionConfig session;
  session.hostname = config.hostname;
  session.limits = config.limits;
  const bool submission = l.role != config::Role::kSmtp;
  switch (l.role) {
    case config::Role::kSubmissions:
      session.tls_mode = smtp::TlsMode::kImplicit;
      break;
    case config::Role::kSubmission:
      session.tls_mode = smtp::TlsMode::kStartTlsRequired;
      break;
    case config::Role::kSmtp:
      session.tls_mode =
          l.require_tls ? smtp::TlsMode::kStartTlsRequired : smtp::TlsMode::kStartTlsOptional;
      break;
  }
  if (submission) {
    session.auth_mechanisms = auth::mechanisms_offered(/*have_tls_exporter=*/true,
                                                       /*offer_external=*/!l.client_ca.empty());
    session.require_auth = true;
    session.allow_null_sender = false;  // bounces come from servers, not from users
    session.may_send_as = [&users](std::string_view user, std::string_view sender) {
      auto store = users.current();
      return store && store->may_send_as(user, sender);
    };
  }
  session.check_recipient = [snapshot, submission](std::string_view address,
                                                   std::string_view user) {
    smtp::RecipientVerdict verdict = verdict_for_inbound(*snapshot, address);
    // An authenticated user may send anywhere: mail for other domains is queued for
    // onward delivery (relay or MX, delivery/outbound.h).
    if (submission && !user.empty() && verdict == smtp::RecipientVerdict::kRelayDenied) {
      return smtp::RecipientVerdict::kAccept;
    }
    return verdict;
  };
  return session;
}

// Each connection is a descriptor, and so is each spool and Maildir file it touches:
// raise the soft limit to the hard one (the default soft limit, 1024, would refuse
// connections long before max_connections) and say so when even that is too low.
void raise_open_file_limit(std::size_t max_connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  // One descriptor per connection, plus the spool and Maildir files of messages in flight.
  rlim_t wanted = static_cast<rlim_t>(max_connections) + 1024;
  if (limit.rlim_cur < wanted) {
    obs::Log("open_file_limit_low", obs::Level::kWarning)
        .kv("limit", static_cast<std::uint64_t>(limit.rlim_cur))
        .kv("wanted", static_cast<std::uint64_t>(wanted))
        .kv("hint", "raise LimitNOFILE or lower limits.max_connections");
  }
}

// MAIL's storage check: the declared size plus the configured reserve must fit on the
// spool's file system. A refusal is logged at most every 10 s (a full disk refuses every
// transaction until space returns, and the log must not fill what is left).
bool has_room(const queue::Spool& spool, std::uint64_t reserve, std::uint64_t declared_size) {
  static std::atomic<std::int64_t> last_log{0};
  const std::uint64_t free = spool.free_bytes();
  if (free >= reserve && free - reserve >= declared_size) return true;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t last = last_log.load(std::memory_order_relaxed);
  if (now - last >= 10 && last_log.compare_exchange_strong(last, now)) {
    obs::Log("storage_low", obs::Level::kWarning)
        .kv("spool", spool.directory())
        .kv("free", free)
        .kv("needed", reserve + declared_size)
        .kv("hint", "new mail gets 452 4.3.1 until space returns");
  }
  return false;
}

// The delivery options of [delivery] (README "Delivery"); the relay password is read from
// its file here, once, at start.
delivery::OutboundOptions outbound_options(const config::Config& config) {
  const config::DeliverySettings& d = config.delivery;
  delivery::OutboundOptions options;
  options.helo_name = d.helo_name.empty() ? config.hostname : d.helo_name;
  options.relay_host = d.relay_host;
  options.relay_port = d.relay_port;
  options.relay_implicit_tls = d.relay_implicit_tls;
  options.relay_tls = d.relay_tls;
  options.relay_user = d.relay_user;
  if (!d.relay_password_file.empty()) {
    std::ifstream in(d.relay_password_file);
    std::getline(in, options.relay_password);
  }
  options.mx_port = d.mx_port;
  options.default_tls = d.default_tls;
  for (const config::DestinationTls& policy : d.tls_policy)
    options.tls_policy.emplace_back(policy.domain, policy.level);
  options.ca_file = d.ca_file;
  options.resolver.servers = d.dns_servers;
  options.lmtp = d.lmtp;
  options.max_per_destination = d.max_per_destination;
  options.connection_cache = d.connection_cache;
  options.max_messages_per_connection = d.max_messages_per_connection;
  options.connect_timeout = d.connect_timeout;
  options.command_timeout = d.command_timeout;
  options.tls_memory_file = config.data_dir + "/tls-memory";
  return options;
}

// Sends each recipient where it belongs: local mailboxes to Maildir (or LMTP), other
// domains through delivery::Outbound, one transaction per domain.
// The local domains are those of the configuration in service when the delivery starts.
class Router {
 public:
  Router(std::function<std::shared_ptr<const config::Config>()> config, delivery::Maildir& maildir,
         delivery::Outbound& outbound)
      : config_in_service_(std::move(config)), maildir_(maildir), outbound_(outbound) {}

  std::vector<queue::DeliveryResult> deliver(const queue::StoredMessage& message,
                                             std::span<const std::size_t> recipients) {
    const std::shared_ptr<const config::Config> snapshot = config_in_service_();
    const config::Config& config_ = *snapshot;
    std::vector<queue::DeliveryResult> results(recipients.size());
    std::vector<std::size_t> lmtp_positions;
    std::map<std::string, std::vector<std::size_t>> remote_positions;  // domain -> positions
    queue::StoredMessage canonical = message;  // local recipients under their mailbox names
    for (std::size_t k = 0; k < recipients.size(); ++k) {
      const std::size_t index = recipients[k];
      const std::string& address = message.envelope.recipients[index].address;
      std::optional<std::string> mailbox = canonical_local_mailbox(config_, address);
      if (!mailbox) {
        std::size_t at = address.rfind('@');
        std::string domain = at == std::string::npos ? std::string() : address.substr(at + 1);
        std::transform(domain.begin(), domain.end(), domain.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (config_.find_domain(domain) != nullptr) {
          // One of our domains, but the mailbox is gone (removed from the configuration
          // while the message waited): never send it out to our own MX.
          results[k] = {queue::DeliveryStatus::kPermanent,
                        "no mailbox " + address + " here any more", "maildir", "5.1.1"};
          continue;
        }
        remote_positions[domain].push_back(k);
        continue;
      }
      // One copy per mailbox: <demo@x>, <DEMO@x> and <postmaster> + <postmaster@x> in one
      // envelope are the same mailbox twice; the first recipient that names it delivers.
      bool duplicate = false;
      for (std::size_t earlier = 0; earlier < index && !duplicate; ++earlier) {
        if (canonical_local_mailbox(config_, message.envelope.recipients[earlier].address) ==
            mailbox) {
          results[k] = {queue::DeliveryStatus::kDelivered,
                        "same mailbox as recipient " + std::to_string(earlier), "maildir"};
          duplicate = true;
        }
      }
      if (duplicate) continue;
      canonical.envelope.recipients[index].address = *mailbox;
      if (outbound_.has_lmtp()) {
        lmtp_positions.push_back(k);
      } else {
        results[k] = maildir_.deliver(canonical, index);
      }
    }
    if (!lmtp_positions.empty()) {
      std::vector<std::size_t> indices;
      for (std::size_t k : lmtp_positions)
        indices.push_back(recipients[k]);
      std::vector<queue::DeliveryResult> lmtp = outbound_.deliver_lmtp(canonical, indices);
      for (std::size_t j = 0; j < lmtp_positions.size(); ++j)
        results[lmtp_positions[j]] = std::move(lmtp[j]);
    }
    for (auto& [domain, positions] : remote_positions) {
      std::vector<std::size_t> indices;
      for (std::size_t k : positions)
        indices.push_back(recipients[k]);
      std::vector<queue::DeliveryResult> remote =
          domain.empty() ? std::vector<queue::DeliveryResult>(
                               indices.size(), {queue::DeliveryStatus::kPermanent,
                                                "address without a domain", "", "5.1.3"})
                         : outbound_.deliver_remote(message, indices, domain);
      for (std::size_t j = 0; j < positions.size(); ++j)
        results[positions[j]] = std::move(remote[j]);
    }
    return results;
  }

 private:
  std::function<std::shared_ptr<const config::Config>()> config_in_service_;
  delivery::Maildir& maildir_;
  delivery::Outbound& outbound_;
};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string joined(const std::vector<std::string>& items, std::string_view separator = ",") {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

// "FILE:LINE: KEY: " for messages about one entry of the configuration.
std::string where(const config::Config& config, long line, const std::string& key) {
  return config.source_file + (line > 0 ? ":" + std::to_string(line) : "") + ": " + key + ": ";
}

std::string without_tls_prefix(std::string message) {
  if (message.rfind("tls: ", 0) == 0) message.erase(0, 5);
  return message;
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

// Inotify wakes the watcher at once; the poll catches what it cannot see. A change is acted
// on once the files have stayed the same for kSettle (certbot replaces four links in a row,
// an administrator copies the certificate and then the key).
constexpr std::chrono::milliseconds kPollInterval{2000};
constexpr std::chrono::milliseconds kSettle{200};
constexpr std::chrono::milliseconds kSettleStep{50};
constexpr std::chrono::hours kExpiryCheckInterval{1};

// [log]: the format and the output, made ready (the syslog socket opened) before either is
// put in service, so that a reload can refuse an output that cannot be made.
struct LogOutput {
  obs::Format format = obs::Format::kKeyValue;
  std::shared_ptr<const obs::SyslogSink> sink;  // null: stderr
};

base::Expected<LogOutput, std::string> prepare_log(const config::Config& config) {
  LogOutput out;
  out.format = config.log.format == "json" ? obs::Format::kJson : obs::Format::kKeyValue;
  if (config.log.output != "syslog") return out;
  out.sink =
      obs::make_syslog_sink(config.log.syslog_socket, obs::syslog_facility(config.log.facility));
  if (out.sink == nullptr) {
    return base::unexpected(where(config, 0, "log.syslog_socket") + "cannot use " +
                            config.log.syslog_socket);
  }
  return out;
}

void apply_log(LogOutput output) {
  obs::set_format(output.format);
  obs::set_output(std::move(output.sink));
}

// [metrics]: the endpoint, bound and serving (null when the table is absent).
base::Expected<std::unique_ptr<obs::MetricsServer>, std::string> open_metrics(
    const config::Config& config) {
  if (config.metrics.address.empty()) return std::unique_ptr<obs::MetricsServer>();
  auto server = std::make_unique<obs::MetricsServer>(obs::metrics(), std::chrono::seconds(5));
  auto bound = server->start(config.metrics.host, config.metrics.port);
  if (!bound) return base::unexpected(where(config, 0, "metrics.address") + bound.error());
  obs::Log("metrics_listening").kv("address", config.metrics.host).kv("port", bound.value());
  return server;
}

// The gauges computed at each scrape: the queue, from the scheduler. Registered whether or
// not an endpoint is configured, so that a reload can add one.
void add_queue_collector(const queue::Scheduler& scheduler) {
  obs::server_metrics();  // registers every series, so a scrape shows them all from zero
  obs::metrics().add_collector([&scheduler](std::string& out) {
    queue::Scheduler::Stats stats = scheduler.stats();
    std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    obs::append_family_header(out, "smtpsd_queue_messages",
                              "Messages in the queue (waiting, in delivery, held).", "gauge");
    obs::append_sample(out, "smtpsd_queue_messages", "", static_cast<double>(stats.messages));
    obs::append_family_header(out, "smtpsd_queue_oldest_age_seconds",
                              "Age of the oldest message in the queue (0: empty).", "gauge");
    obs::append_sample(out, "smtpsd_queue_oldest_age_seconds", "",
                       stats.oldest_unix == 0 ? 0.0 : static_cast<double>(now - stats.oldest_unix));
  });
}

}  // namespace

// What serves new connections: one configuration snapshot, the certificates read for it and
// each listener's TLS contexts (in the order of config->listeners).
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

struct Daemon::Impl {
  explicit Impl(config::Config config) {
    generation.config = std::make_shared<const config::Config>(std::move(config));
  }

  // Set by run() while the server runs, under reload_mutex (one reload at a time).
  std::mutex reload_mutex;
  net::Server* server = nullptr;
  auth::UserDirectory* users = nullptr;
  queue::Spool* spool = nullptr;
  std::unique_ptr<obs::MetricsServer> metrics_server;  // [metrics]; null when off

  mutable std::mutex state_mutex;  // guards what follows
  Generation generation;
  std::vector<std::string> watched_paths;
  std::vector<tls::FileSignature> watched_signatures;  // as of the last load attempt
  std::uint64_t watched_version = 0;
  tls::ExpiryWatch expiry;

  tls::FileWatch file_watch;  // owned by the watch thread, except wake()
  std::atomic<bool> hangup{false};
  const SystemdNotifier* notifier = nullptr;  // set by run() before the watch thread starts
  std::atomic<bool> watch_stop{false};

  std::shared_ptr<const config::Config> config() const {
    std::lock_guard lock(state_mutex);
    return generation.config;
  }

  // Reads the certificates of `snapshot` and builds every listener's contexts and options.
  // Nothing in service changes here.
  base::Expected<Generation, PrepareError> prepare(std::shared_ptr<const config::Config> snapshot,
                                                   const Generation* previous, bool strict_dates) {
    const config::Config& config = *snapshot;
    Generation next;
    next.config = snapshot;
    tls::LoadOptions load_options;
    load_options.now_unix = unix_now();
    load_options.refuse_out_of_date = strict_dates;
    load_options.in_service = previous != nullptr ? previous->certificates.get() : nullptr;
    auto store = tls::CertificateStore::load(config.certificates, load_options);
    if (!store) {
      const tls::LoadError& error = store.error();
      const std::size_t index = error.pair_index;
      const long line =
          index < config.certificate_lines.size() ? config.certificate_lines[index] : 0;
      return base::unexpected(
          PrepareError{where(config, line, "tls.certificates[" + std::to_string(index) + "]") +
                           error.to_string(),
                       error});
    }
    next.certificates = std::move(store.value());
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
        return base::unexpected(
            PrepareError{where(config, l.line, "listeners[" + std::to_string(i) + "]") +
                             without_tls_prefix(contexts.error()),
                         std::nullopt});
      }
      net::ListenerOptions options;
      options.role = std::string(config::role_name(l.role));
      options.address = l.address;
      options.port = l.port;
      options.implicit_tls = l.role == config::Role::kSubmissions;
      options.tls_context = contexts.value()->initial_context();
      options.session = session_config(snapshot, l, *users);
      options.proxy_protocol = l.proxy_protocol;
      for (const std::string& network : l.proxy_from) {
        auto parsed = auth::parse_network(network);  // validated by the configuration loader
        if (!parsed) {
          return base::unexpected(PrepareError{
              where(config, l.line, "listeners[" + std::to_string(i) + "].proxy_from") +
                  parsed.error(),
              std::nullopt});
        }
        options.proxy_from.push_back(parsed.value());
      }
      options.session.has_room_for = [spool = spool,
                                      reserve = config.min_free_space](std::uint64_t size) {
        return has_room(*spool, reserve, size);
      };
      options.command_timeout = config.command_timeout;
      options.data_timeout = config.data_timeout;
      options.handshake_timeout = config.handshake_timeout;
      next.contexts.push_back(std::move(contexts.value()));
      next.listeners.push_back(std::move(options));
    }
    return next;
  }

  // Puts a prepared generation in service and notes the files it was read from.
  void publish(Generation next, std::vector<std::string> paths,
               std::vector<tls::FileSignature> signatures) {
    std::lock_guard lock(state_mutex);
    generation = std::move(next);
    watched_paths = std::move(paths);
    watched_signatures = std::move(signatures);
    ++watched_version;
  }

  // A refused load: the same files are not tried again until they change once more.
  void remember_refused(std::vector<std::string> paths,
                        std::vector<tls::FileSignature> signatures) {
    std::lock_guard lock(state_mutex);
    watched_paths = std::move(paths);
    watched_signatures = std::move(signatures);
    ++watched_version;
  }

  static void log_certificate(std::string_view event, const tls::CertificateDetails& c) {
    obs::Log(event)
        .kv("file", c.file)
        .kv("names", joined(c.subject_names))
        .kv("set", c.set_names.empty() ? std::string("default") : joined(c.set_names))
        .kv("key", c.key_type)
        .kv("not_after", c.not_after)
        .kv("days_left", (c.not_after - unix_now()) / 86400);
  }

  // Warnings at 30, 14, 7, 3 and 1 days; an error once expired (expiry_watch.h).
  void check_expiry() {
    std::vector<tls::ExpiryNotice> notices;
    {
      std::lock_guard lock(state_mutex);
      if (!generation.certificates) return;
      notices = expiry.check(generation.certificates->certificates(), unix_now());
    }
    for (const tls::ExpiryNotice& notice : notices) {
      const tls::CertificateDetails& c = notice.certificate;
      if (notice.expired) {
        obs::Log("certificate_expired", obs::Level::kError)
            .kv("file", c.file)
            .kv("names", joined(c.subject_names))
            .kv("not_after", c.not_after)
            .kv("expired_seconds_ago", -notice.seconds_left);
      } else {
        obs::Log("certificate_expiring", obs::Level::kWarning)
            .kv("file", c.file)
            .kv("names", joined(c.subject_names))
            .kv("days_left", notice.days_left)
            .kv("threshold_days", notice.threshold_days)
            .kv("not_after", c.not_after);
      }
    }
  }

  // Applies `next` (whole_config: from SIGHUP; else the certificates of the configuration in
  // service). Caller holds reload_mutex.
  ReloadResult apply(config::Config next_config, bool whole_config) {
    if (server == nullptr) return ReloadResult{false, "the server is not running"};
    Generation running;
    {
      std::lock_guard lock(state_mutex);
      running = generation;
    }
    std::vector<std::string> restart_keys;
    if (whole_config) restart_keys = keep_restart_only_settings(next_config, *running.config);
    auto snapshot = std::make_shared<const config::Config>(std::move(next_config));
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
      file_watch.wake();
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
    if (whole_config && !(snapshot->log == running.config->log)) {
      auto made = prepare_log(*snapshot);
      if (!made) return refuse(made.error(), std::nullopt);
      log_output = std::move(made.value());
    }
    // A new endpoint is bound before the old one closes: the same host and port stay bound.
    const config::MetricsSettings& old_metrics = running.config->metrics;
    const bool metrics_moved =  // an absent [metrics] has host "", which no address has
        whole_config &&
        (snapshot->metrics.host != old_metrics.host || snapshot->metrics.port != old_metrics.port);
    std::unique_ptr<obs::MetricsServer> new_metrics;
    if (metrics_moved) {
      auto opened = open_metrics(*snapshot);
      if (!opened) return refuse(opened.error(), std::nullopt);
      new_metrics = std::move(opened.value());
    }

    const std::string old_users_file = running.config->auth.users_file;
    const bool users_moved = snapshot->auth.users_file != old_users_file;
    if (users_moved) {
      if (auto switched = users->switch_to(snapshot->auth.users_file); !switched) {
        return refuse(where(*snapshot, 0, "auth.users_file") + switched.error(), std::nullopt);
      }
    }
    auto bound = server->update_listeners(next.listeners);
    if (!bound) {
      if (users_moved) users->switch_to(old_users_file);
      const std::size_t index = bound.error().index;
      const long line = index < snapshot->listeners.size() ? snapshot->listeners[index].line : 0;
      return refuse(where(*snapshot, line, "listeners[" + std::to_string(index) + "]") +
                        bound.error().message,
                    std::nullopt);
    }
    server->set_connection_limits(snapshot->max_connections, snapshot->max_connections_per_ip);
    obs::set_min_level(obs::parse_level(snapshot->log_level));
    if (log_output) apply_log(std::move(*log_output));
    if (metrics_moved) {
      if (metrics_server != nullptr) obs::Log("metrics_closed").kv("address", old_metrics.address);
      std::swap(metrics_server, new_metrics);  // the old endpoint stops as new_metrics ends
    }

    std::vector<tls::CertificateDetails> before = running.certificates->certificates();
    std::vector<tls::CertificateDetails> after = next.certificates->certificates();
    publish(std::move(next), next_paths, next_signatures);
    file_watch.wake();  // the watcher looks at the (maybe new) files and directories

    for (const tls::CertificateDetails& c : after) {
      const bool known = std::any_of(before.begin(), before.end(), [&c](const auto& old) {
        return old.file == c.file && old.fingerprint == c.fingerprint;
      });
      if (!known) log_certificate("tls_reloaded", c);
    }
    if (whole_config) {
      if (!restart_keys.empty()) {
        obs::Log("reload_needs_restart", obs::Level::kWarning)
            .kv("keys", joined(restart_keys))
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

  // The watch thread: SIGHUP requests, certificate file changes, the hourly expiry check.
  void watch_loop(Daemon& daemon) {
    using Clock = std::chrono::steady_clock;
    std::uint64_t version_seen = ~std::uint64_t{0};
    std::vector<std::string> paths;
    bool pending = false;
    std::vector<tls::FileSignature> pending_signatures;
    Clock::time_point pending_since;
    Clock::time_point next_poll = Clock::now() + kPollInterval;
    Clock::time_point next_expiry_check = Clock::now() + kExpiryCheckInterval;
    bool announced = false;
    bool refresh_watches = true;
    while (!watch_stop) {
      {
        std::lock_guard lock(state_mutex);
        if (watched_version != version_seen) {
          version_seen = watched_version;
          paths = watched_paths;
          refresh_watches = true;
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
        file_watch.watch_directories(directories);
        if (!announced) {
          announced = true;
          obs::Log("certificate_watch")
              .kv("files", static_cast<std::uint64_t>(paths.size()))
              .kv("inotify", file_watch.notifying())
              .kv("poll_ms", static_cast<std::int64_t>(kPollInterval.count()));
        }
      }
      Clock::time_point now = Clock::now();
      Clock::time_point deadline = std::min(next_poll, next_expiry_check);
      if (pending) deadline = std::min(deadline, now + kSettleStep);
      auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                     std::chrono::milliseconds(1);
      tls::FileWatch::Woken woken = file_watch.wait(timeout);
      if (watch_stop) break;
      if (hangup.exchange(false)) {
        // systemd (Type=notify): the manager shows "reloading" until READY=1 comes back.
        if (notifier != nullptr) notifier->reloading();
        ReloadResult result = daemon.reload();
        if (notifier != nullptr) {
          notifier->ready(result.ok ? "accepting mail; configuration reloaded"
                                    : "accepting mail; reload refused: " + result.error);
        }
        pending = false;
        continue;
      }
      now = Clock::now();
      if (woken == tls::FileWatch::Woken::kFileEvent || pending || now >= next_poll) {
        if (now >= next_poll) {
          next_poll = now + kPollInterval;
          refresh_watches = true;
        }
        std::vector<tls::FileSignature> current = tls::file_signatures(paths);
        std::vector<tls::FileSignature> baseline;
        {
          std::lock_guard lock(state_mutex);
          baseline = watched_signatures;
        }
        if (current == baseline) {
          pending = false;
        } else if (!pending || current != pending_signatures) {
          pending = true;
          pending_signatures = std::move(current);
          pending_since = now;
        } else if (now - pending_since >= kSettle) {
          pending = false;
          daemon.reload_certificates();
        }
      }
      if (now >= next_expiry_check) {
        check_expiry();
        next_expiry_check = now + kExpiryCheckInterval;
      }
    }
  }
};

Daemon::Daemon(config::Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Daemon::~Daemon() = default;

ReloadResult Daemon::reload() {
  std::lock_guard lock(impl_->reload_mutex);
  const std::string file = impl_->config()->source_file;
  obs::Log("reloading").kv("config", file);
  auto loaded = config::load_file(file);
  if (!loaded) {
    const std::string message = loaded.error().to_string();
    obs::Log("reload_refused", obs::Level::kError)
        .kv("error", message)
        .kv("kept", "the configuration in service");
    return ReloadResult{false, message};
  }
  return impl_->apply(std::move(loaded.value()), /*whole_config=*/true);
}

ReloadResult Daemon::reload_certificates() {
  std::lock_guard lock(impl_->reload_mutex);
  return impl_->apply(*impl_->config(), /*whole_config=*/false);
}

std::vector<CertificateExpiry> Daemon::certificate_expiry() const {
  std::shared_ptr<const tls::CertificateStore> store;
  {
    std::lock_guard lock(impl_->state_mutex);
    store = impl_->generation.certificates;
  }
  std::vector<CertificateExpiry> out;
  if (!store) return out;
  for (const tls::CertificateDetails& c : store->certificates()) {
    out.push_back(
        CertificateExpiry{c.file, c.subject_names, c.set_names, c.not_before, c.not_after});
  }
  return out;
}

void Daemon::stop() {
  std::lock_guard lock(impl_->reload_mutex);
  if (impl_->server != nullptr) impl_->server->stop();
}

int Daemon::run(const std::function<void()>& on_ready) {
  Impl& impl = *impl_;
  const std::shared_ptr<const config::Config> initial = impl.config();
  const config::Config& config = *initial;
  obs::set_min_level(obs::parse_level(config.log_level));
  if (auto log_output = prepare_log(config); !log_output) {
    std::fprintf(stderr, "smtpsd: %s\n", log_output.error().c_str());
    return 1;
  } else {
    apply_log(std::move(log_output.value()));
  }
  SystemdNotifier notifier;  // before the switch of account: $NOTIFY_SOCKET may be root's
  PrivilegeSettings privileges{config.user, config.group, config.run_as_root, config.data_dir,
                               config.control_socket};
  // Refused before anything is opened when the settings cannot work (root without
  // server.user, an unknown account, ...).
  if (auto planned = plan_privileges(privileges); !planned) {
    std::fprintf(stderr, "smtpsd: %s: server.user: %s\n", config.source_file.c_str(),
                 planned.error().c_str());
    return 1;
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "smtpsd: cannot create data_dir %s: %s\n", config.data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  auto spool = queue::Spool::open(config.data_dir + "/spool");
  if (!spool) {
    std::fprintf(stderr, "smtpsd: %s\n", spool.error().message.c_str());
    return 1;
  }
  delivery::Maildir maildir(config.data_dir + "/mail", config.hostname);
  auto log_line = [](std::string_view line) {
    obs::write_preformatted(
        line.rfind("event=error", 0) == 0 ? obs::Level::kError : obs::Level::kInfo, line);
  };
  auto outbound = delivery::Outbound::create(outbound_options(config), log_line);
  if (!outbound) {
    std::fprintf(stderr, "smtpsd: %s\n", outbound.error().c_str());
    return 1;
  }
  Router router([&impl] { return impl.config(); }, maildir, *outbound.value());
  queue::SchedulerOptions scheduler_options;
  scheduler_options.retry_schedule.assign(config.queue.retry_schedule.begin(),
                                          config.queue.retry_schedule.end());
  scheduler_options.max_lifetime = config.queue.max_lifetime;
  scheduler_options.delay_warning = config.queue.delay_warning;
  scheduler_options.threads = config.queue.delivery_threads;
  scheduler_options.hostname = config.hostname;
  queue::Scheduler scheduler(
      *spool.value(),
      [&router](const queue::StoredMessage& message, std::span<const std::size_t> recipients) {
        return router.deliver(message, recipients);
      },
      log_line, scheduler_options);
  queue::GroupCommitter committer;

  raise_open_file_limit(config.max_connections);
  auth::UserDirectory users(config.auth.users_file);
  // The users file is read now (a broken one stops the start) and re-read when it changes,
  // by the directory's own watcher thread: I/O threads only load the snapshot pointer.
  if (!users.last_error().empty()) {
    std::fprintf(stderr, "smtpsd: %s\n", users.last_error().c_str());
    return 1;
  }
  users.start_watching(std::chrono::milliseconds(500));  // docs/users-file.md: "within a second"
  auth::FailureLimiterOptions limiter_options;
  limiter_options.per_user_ip_max_failures = config.auth.max_failures_per_user;
  limiter_options.per_ip_max_failures = config.auth.max_failures_per_ip;
  limiter_options.window = config.auth.failure_window;
  limiter_options.exempt = config.auth.exempt_networks;
  auto limiter = auth::FailureLimiter::create(limiter_options);
  if (!limiter) {
    std::fprintf(stderr, "smtpsd: %s\n", limiter.error().c_str());
    return 1;
  }

  net::ServerServices services;
  services.hostname = config.hostname;
  services.users = &users;
  services.limiter = limiter.value().get();
  auth::VerifiedCache verified_cache(config.auth.verified_cache);
  services.verified_cache = &verified_cache;
  services.received_names_user = config.auth.received_names_user;
  services.max_connections = config.max_connections;
  services.max_connections_per_ip = config.max_connections_per_ip;
  services.max_connections_per_minute_per_ip = config.max_connections_per_minute_per_ip;
  services.max_messages_per_user_per_hour = config.max_messages_per_user_per_hour;
  services.shutdown_grace = config.shutdown_grace;
  services.on_stopping = [&notifier] { notifier.stopping(); };
  services.spool = spool.value().get();
  services.committer = &committer;
  services.on_committed = [&scheduler](const std::string& id) { scheduler.enqueue(id); };
  // SIGHUP arrives on an I/O thread: the watch thread does the reload.
  services.on_hangup = [&impl] {
    impl.hangup = true;
    impl.file_watch.wake();
  };
  net::Server server(config.io_threads, services);

  impl.users = &users;
  impl.spool = spool.value().get();
  // At start an expired certificate is served (with an error in the log, and `smtpsd check`
  // failing): refusing to start would take every listener down for one certificate.
  std::vector<std::string> paths = certificate_paths(config);
  std::vector<tls::FileSignature> signatures = tls::file_signatures(paths);
  auto prepared = impl.prepare(initial, nullptr, /*strict_dates=*/false);
  if (!prepared) {
    std::fprintf(stderr, "smtpsd: %s\n", prepared.error().message.c_str());
    return 1;
  }
  for (std::size_t i = 0; i < prepared.value().listeners.size(); ++i) {
    auto bound = server.listen(prepared.value().listeners[i]);
    if (!bound) {
      std::fprintf(
          stderr, "smtpsd: %s%s\n",
          where(config, config.listeners[i].line, "listeners[" + std::to_string(i) + "]").c_str(),
          bound.error().c_str());
      return 1;
    }
  }
  for (const tls::CertificateDetails& c : prepared.value().certificates->certificates())
    Impl::log_certificate("certificate_loaded", c);
  impl.publish(std::move(prepared.value()), std::move(paths), std::move(signatures));
  impl.check_expiry();

  ControlSocket control;
  auto controlling = control.start(
      config.control_socket,
      [limiter = limiter.value().get(), &scheduler,
       memory = &outbound.value()->tls_memory()](const std::string& request) {
        std::int64_t now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
        return handle_control_request(request, *limiter, std::chrono::steady_clock::now(),
                                      &scheduler, memory, now_unix);
      });
  if (!controlling) {
    std::fprintf(stderr, "smtpsd: %s\n", controlling.error().c_str());
    return 1;
  }

  add_queue_collector(scheduler);
  // smtpsd_certificate_expiry_seconds: the certificates in service at each scrape, so a
  // renewal shows at once (the endpoint, the only caller, ends before this Daemon).
  obs::add_certificate_collector(obs::metrics(), [this] {
    std::vector<obs::CertificateExpiry> out;
    for (const CertificateExpiry& c : certificate_expiry())
      out.push_back(obs::CertificateExpiry{c.file, joined(c.names), c.not_after});
    return out;
  });
  auto metrics_server = open_metrics(config);
  if (!metrics_server) {
    std::fprintf(stderr, "smtpsd: %s\n", metrics_server.error().c_str());
    return 1;
  }

  // Ports bound, keys read, spool and control socket open: root is not needed any more.
  auto dropped = drop_privileges(privileges);
  if (!dropped) {
    std::fprintf(stderr, "smtpsd: %s\n", dropped.error().c_str());
    return 1;
  }
  obs::Log("privileges", dropped.value().uid == 0 ? obs::Level::kWarning : obs::Level::kInfo)
      .kv("uid", static_cast<std::uint64_t>(dropped.value().uid))
      .kv("gid", static_cast<std::uint64_t>(dropped.value().gid))
      .kv("note", dropped.value().note);

  {
    std::lock_guard lock(impl.reload_mutex);
    impl.server = &server;
    impl.metrics_server = std::move(metrics_server.value());
  }
  impl.watch_stop = false;
  impl.notifier = &notifier;
  std::thread watcher([&impl, this] { impl.watch_loop(*this); });

  scheduler.start();  // delivers whatever the spool already holds (crash recovery)
  obs::Log("started")
      .kv("hostname", config.hostname)
      .kv("config", config.source_file)
      .kv("data_dir", config.data_dir);
  if (on_ready) on_ready();
  notifier.ready("accepting mail on " + std::to_string(config.listeners.size()) + " listeners");
  server.run();
  impl.watch_stop = true;
  impl.file_watch.wake();
  watcher.join();
  {
    std::lock_guard lock(impl.reload_mutex);
    impl.server = nullptr;
    impl.users = nullptr;
    impl.spool = nullptr;
    impl.metrics_server.reset();  // stops the endpoint, the collectors' only caller
  }
  control.stop();
  committer.stop();
  queue::GroupCommitter::Stats commits = committer.stats();
  obs::Log("group_commit")
      .kv("messages", commits.messages)
      .kv("directory_syncs", commits.directory_syncs);
  scheduler.stop();
  return 0;
}

int serve(const config::Config& config, const std::function<void()>& on_ready) {
  Daemon daemon(config);
  return daemon.run(on_ready);
}

namespace {

// A configured name the certificate's own names do not cover: clients that check the name
// (RFC 6125) will refuse it.
bool covers(const std::vector<std::string>& subject_names, const std::string& name) {
  for (const std::string& subject : subject_names) {
    std::string lower = subject;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == name || (lower.rfind("*.", 0) == 0 && tls::name_matches(lower, name))) {
      return true;
    }
  }
  return false;
}

}  // namespace

int check(const config::Config& config) {
  // Each certificate pair on its own, so that an error names the entry it is about:
  // "FILE:LINE: tls.certificates[N]: what is wrong".
  int status = 0;
  tls::LoadOptions strict;
  strict.now_unix = unix_now();
  for (std::size_t i = 0; i < config.certificates.size(); ++i) {
    const tls::CertificatePair& pair = config.certificates[i];
    long line = i < config.certificate_lines.size() ? config.certificate_lines[i] : 0;
    const std::string at = where(config, line, "tls.certificates[" + std::to_string(i) + "]");
    auto store = tls::CertificateStore::load({pair}, strict);
    if (!store) {
      std::fprintf(stderr, "%s%s\n", at.c_str(), store.error().to_string().c_str());
      status = 2;
      continue;
    }
    const tls::CertificateDetails c = store.value()->certificates().front();
    std::printf("certificate %s: expires in %ld days (%s, %s; serves %s)\n", c.file.c_str(),
                static_cast<long>((c.not_after - strict.now_unix) / 86400), c.key_type.c_str(),
                joined(c.subject_names, " ").c_str(),
                c.set_names.empty() ? "the default set" : joined(c.set_names, " ").c_str());
    for (const std::string& name : c.set_names) {
      if (!covers(c.subject_names, name)) {
        std::printf("warning: %scertificate %s does not cover the name %s\n", at.c_str(),
                    c.file.c_str(), name.c_str());
      }
    }
  }
  if (status == 0) {
    // Together, as the server loads them: one ECDSA and one RSA per set at most, and each
    // listener's client CA.
    auto store = tls::CertificateStore::load(config.certificates, strict);
    if (!store) {
      const std::size_t index = store.error().pair_index;
      long line = index < config.certificate_lines.size() ? config.certificate_lines[index] : 0;
      std::fprintf(stderr, "%s%s\n",
                   where(config, line, "tls.certificates[" + std::to_string(index) + "]").c_str(),
                   store.error().to_string().c_str());
      status = 2;
    }
    for (std::size_t i = 0; store && i < config.listeners.size(); ++i) {
      const config::Listener& l = config.listeners[i];
      tls::Policy policy = config.tls;
      policy.session_tickets = l.session_tickets;
      auto contexts = tls::ServerContexts::create(policy, store.value(), l.client_ca);
      if (!contexts) {
        const std::string key =
            "listeners[" + std::to_string(i) + "]" + (l.client_ca.empty() ? "" : ".client_ca");
        std::fprintf(stderr, "%s%s\n", where(config, l.line, key).c_str(),
                     without_tls_prefix(contexts.error()).c_str());
        status = 2;
      }
    }
    if (store && store.value()->set_count() > 1) {
      std::printf(
          "certificate sets: %zu (chosen by SNI; default: %s)\n", store.value()->set_count(),
          store.value()->set_names(0).empty() ? "the set without names"
                                              : joined(store.value()->set_names(0), " ").c_str());
    }
  }
  PrivilegeSettings privileges{config.user, config.group, config.run_as_root, config.data_dir,
                               config.control_socket};
  if (auto planned = plan_privileges(privileges); !planned) {
    std::fprintf(stderr, "%s: server.user: %s\n", config.source_file.c_str(),
                 planned.error().c_str());
    status = 2;
  } else if (!config.user.empty() && ::geteuid() == 0) {
    std::printf("privileges: after start-up, runs as %s (uid %u, gid %u)\n", config.user.c_str(),
                static_cast<unsigned>(planned.value().uid),
                static_cast<unsigned>(planned.value().gid));
  } else {
    std::printf("privileges: %s\n", planned.value().note.c_str());
  }
  std::fputs(config::describe(config).c_str(), stdout);
  std::puts(status == 0 ? "configuration OK" : "configuration has errors");
  return status;
}

}  // namespace app
