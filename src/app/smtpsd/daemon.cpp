// daemon.cpp — see daemon.h. Daemon::run is the start-up sequence, in order: log output,
// privileges planned, spool, delivery (router, scheduler), users and limiter, listeners
// (reload.h builds them from the roles in listener_policy.h), control socket, metrics, the
// switch of account, the watch thread; then serve until stopped, and shut down in reverse.
#include "app/smtpsd/daemon.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "app/common/control_socket.h"
#include "app/common/dns_options.h"
#include "app/smtpsd/acme_service.h"
#include "app/smtpsd/control_commands.h"
#include "app/smtpsd/dmarc_reporter.h"
#include "app/smtpsd/domain_routing.h"
#include "app/smtpsd/local_recipients.h"
#include "app/smtpsd/privileges.h"
#include "app/smtpsd/report_mail.h"
#include "app/smtpsd/systemd_notify.h"
#include "app/smtpsd/tls_reporter.h"
#include "auth/alias_table.h"
#include "auth/failure_limiter.h"
#include "auth/sending_limiter.h"
#include "auth/user_store.h"
#include "auth/verified_cache.h"
#include "base/clock.h"
#include "base/file_sync.h"
#include "base/polling_thread.h"
#include "delivery/maildir.h"
#include "delivery/mta_sts.h"
#include "delivery/outbound.h"
#include "delivery/router.h"
#include "dns/unbound_resolver.h"
#include "mailauth/dkim_signer.h"
#include "net/server.h"
#include "obs/log.h"
#include "obs/metrics_server.h"
#include "obs/server_metrics.h"
#include "queue/group_commit.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "queue/spool_space.h"

namespace app {
namespace {

// A start-up failure: one line on stderr, exit status 1.
int fail(const std::string& message) {
  std::fprintf(stderr, "smtpsd: %s\n", message.c_str());
  return 1;
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

// The delivery options of [delivery] (README "Delivery"); the relay password is read from
// its file here, once, at start.
delivery::OutboundOptions outbound_options(const config::Config& config) {
  const config::DeliverySettings& d = config.delivery;
  delivery::OutboundOptions options;
  options.helo_name = d.helo_name.empty() ? config.hostname : d.helo_name;
  options.relay = d.relay;
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
  options.lmtp = d.lmtp;
  options.max_per_destination = d.max_per_destination;
  options.max_per_host = d.max_per_host;
  options.attempt_timeout = d.attempt_timeout;
  options.connection_cache = d.connection_cache;
  options.max_messages_per_connection = d.max_messages_per_connection;
  options.connect_timeout = d.connect_timeout;
  options.command_timeout = d.command_timeout;
  options.tls_memory_file = config.data_dir + "/tls-memory";
  return options;
}

// The DKIM keys of a reporting address's domain when it is one of ours with keys: reports
// are signed like our users' mail.
base::Expected<std::vector<std::shared_ptr<const mailauth::DkimSigningKey>>, std::string>
report_signing_keys(const config::Config& config, const std::string& from) {
  const config::Domain* domain = config.find_domain(from.substr(from.rfind('@') + 1));
  if (domain == nullptr) return std::vector<std::shared_ptr<const mailauth::DkimSigningKey>>{};
  return dkim_keys_of(config, *domain);
}

// One round of the MTA-STS background refresh (RFC 8461 §10.2, delivery/mta_sts.h), logged
// one line per domain looked at.
void refresh_mta_sts_policies(delivery::MtaSts& sts) {
  // A policy fetch is bounded by 20 s (MtaStsOptions), its DNS lookups by their timeout.
  constexpr std::chrono::seconds kPerDomain{30};
  for (const delivery::MtaSts::Refreshed& entry : sts.refresh_cache(kPerDomain)) {
    const delivery::PolicyLookup& lookup = entry.lookup;
    // Fresh, or fetched by a delivery meanwhile.
    if (lookup.source == delivery::PolicyLookup::Source::kFresh ||
        (lookup.has_policy() && lookup.fetched_at > entry.previous_fetched_at)) {
      obs::Log("sts_policy_refreshed")
          .kv("domain", entry.domain)
          .kv("id", lookup.id)
          .kv("fetched_at", lookup.fetched_at)
          .kv("expires_at", lookup.expires_at);
    } else if (lookup.source == delivery::PolicyLookup::Source::kNone) {
      obs::Log("sts_policy_expired")
          .kv("domain", entry.domain)
          .kv("fetched_at", entry.previous_fetched_at)
          .kv("detail", lookup.detail);
    } else {
      // Not fetched again (the fetch failed, the TXT record is gone, DNS failed): the cached
      // policy stays in force until it expires (§5.1).
      obs::Log("sts_refresh_failed", obs::Level::kWarning)
          .kv("domain", entry.domain)
          .kv("type", lookup.failure == delivery::StsFailure::kNone
                          ? std::string_view("none")
                          : delivery::to_string(lookup.failure))
          .kv("expires_at", lookup.expires_at)
          .kv("detail", lookup.detail);
    }
  }
}

// The DMARC aggregate reporter of [dmarc_reports]: its reports are spooled and queued like a
// DSN, signed with the keys of the `from` domain when it has some.
base::Expected<std::unique_ptr<DmarcReporter>, std::string> make_dmarc_reporter(
    const config::Config& config, std::shared_ptr<dns::Resolver> resolver, queue::Spool& spool,
    queue::Scheduler& scheduler) {
  const config::DmarcReportSettings& settings = *config.dmarc_reports;
  DmarcReporter::Options options;
  options.directory = settings.directory;
  options.org_name = settings.org_name;
  options.from = settings.from;
  options.receiver = config.hostname;
  options.interval = settings.interval;
  auto keys = report_signing_keys(config, settings.from);
  if (!keys) return base::unexpected(keys.error());
  options.keys = std::move(keys.value());
  auto enqueue = spool_report_enqueue(spool, scheduler, "a DMARC report");
  return std::make_unique<DmarcReporter>(std::move(options), std::move(resolver), enqueue);
}

// The SMTP TLS reporter of [tls_reports], like the DMARC one: reports spooled, signed with
// the keys of the `from` domain when it has some.
base::Expected<std::unique_ptr<TlsReporter>, std::string> make_tls_reporter(
    const config::Config& config, std::shared_ptr<dns::Resolver> resolver, queue::Spool& spool,
    queue::Scheduler& scheduler, std::shared_ptr<delivery::TlsReportCounts> counts) {
  const config::ReportSettings& settings = *config.tls_reports;
  TlsReporter::Options options;
  options.directory = settings.directory;
  options.org_name = settings.org_name;
  options.from = settings.from;
  options.submitter = config.hostname;
  options.ca_file = config.delivery.ca_file;
  options.interval = settings.interval;
  options.save_interval = settings.save_interval;
  options.post_retry_delay = settings.post_retry_delay;
  options.post_retry_lifetime = settings.post_retry_lifetime;
  auto keys = report_signing_keys(config, settings.from);
  if (!keys) return base::unexpected(keys.error());
  options.keys = std::move(keys.value());
  return std::make_unique<TlsReporter>(std::move(options), std::move(resolver),
                                       spool_report_enqueue(spool, scheduler, "a TLS report",
                                                            /*tls_optional=*/true),
                                       std::move(counts));
}

// The ways out of the router: Maildir, the LMTP server when one is configured, and
// outbound delivery (relay or MX) for other domains.
delivery::Routes delivery_routes(delivery::Maildir& maildir, delivery::Outbound& outbound) {
  delivery::Routes routes;
  routes.maildir = [&maildir](const queue::StoredMessage& message, std::size_t index) {
    return maildir.deliver(message, index);
  };
  // Always there: a domain may name its own LMTP server ([[domains]] delivery).
  routes.lmtp = [&outbound](const queue::StoredMessage& message,
                            std::span<const std::size_t> indices, const base::Endpoint* server) {
    return outbound.deliver_lmtp(message, indices, server);
  };
  routes.lmtp_by_default = outbound.has_lmtp();
  routes.remote = [&outbound](const queue::StoredMessage& message,
                              std::span<const std::size_t> indices, std::string_view domain,
                              const delivery::NextHop* via) {
    return outbound.deliver_remote(message, indices, domain, via);
  };
  return routes;
}

queue::SchedulerOptions scheduler_options(const config::Config& config) {
  queue::SchedulerOptions options;
  options.retry_schedule.assign(config.queue.retry_schedule.begin(),
                                config.queue.retry_schedule.end());
  options.max_lifetime = config.queue.max_lifetime;
  options.delay_warning = config.queue.delay_warning;
  options.threads = config.queue.delivery_threads;
  options.local_threads = config.queue.local_delivery_threads;
  options.unauthenticated_success_dsns_per_minute = config.queue.success_dsns_per_minute;
  options.hostname = config.hostname;
  return options;
}

auth::FailureLimiterOptions limiter_options(const config::Config& config) {
  auth::FailureLimiterOptions options;
  options.per_user_ip_max_failures = config.auth.max_failures_per_user;
  options.per_ip_max_failures = config.auth.max_failures_per_ip;
  options.window = config.auth.failure_window;
  options.first_delay = config.auth.failure_delay;
  options.max_delay = 4 * config.auth.failure_delay;
  options.exempt = config.auth.exempt_networks;
  options.ipv6_prefix = config.ipv6_prefix;
  return options;
}

auth::SendingLimits sending_limits(const config::Config& config) {
  auth::SendingLimits limits;
  limits.messages_per_hour = config.sending_limits.messages_per_hour;
  limits.external_recipients_per_hour = config.sending_limits.external_recipients_per_hour;
  limits.external_recipients_per_day = config.sending_limits.external_recipients_per_day;
  return limits;
}

// The settings of net::Server that come from the configuration; run() adds the objects.
net::ServerServices server_settings(const config::Config& config) {
  net::ServerServices services;
  services.hostname = config.hostname;
  services.received_names_user = config.auth.received_names_user;
  services.max_connections = config.max_connections;
  services.max_connections_per_ip = config.max_connections_per_ip;
  services.max_connections_per_minute_per_ip = config.max_connections_per_minute_per_ip;
  services.ipv6_prefix = config.ipv6_prefix;
  services.shutdown_grace = config.shutdown_grace;
  services.pregreet_pass_ttl = config.screening.pregreet_pass_ttl;
  services.pregreet_pass_entries = config.screening.pregreet_pass_entries;
  return services;
}

// The gauges computed at each scrape: the queue, from the scheduler. Registered whether or
// not an endpoint is configured, so that a reload can add one.
void add_queue_collector(const queue::Scheduler& scheduler) {
  obs::server_metrics();  // registers every series, so a scrape shows them all from zero
  obs::metrics().add_collector([&scheduler](std::string& out) {
    queue::Scheduler::Stats stats = scheduler.stats();
    obs::append_family_header(out, "smtpsd_queue_messages",
                              "Messages in the queue (waiting, in delivery, held).", "gauge");
    obs::append_sample(out, "smtpsd_queue_messages", "", static_cast<double>(stats.messages));
    obs::append_family_header(out, "smtpsd_queue_oldest_age_seconds",
                              "Age of the oldest message in the queue (0: empty).", "gauge");
    obs::append_sample(
        out, "smtpsd_queue_oldest_age_seconds", "",
        stats.oldest_unix == 0 ? 0.0 : static_cast<double>(base::unix_now() - stats.oldest_unix));
  });
}

// smtpsd_users_file_*: whether the users file as it is now is the one in service. A broken
// edit leaves the previous users serving (valid 0) until the file is fixed.
void add_users_collector(const auth::UserDirectory& users) {
  obs::metrics().add_collector([&users](std::string& out) {
    auth::UserDirectory::Status status = users.status();
    obs::append_family_header(out, "smtpsd_users_file_valid",
                              "1 when the users file parsed and is in service, 0 while a "
                              "broken file is refused and the previous users serve.",
                              "gauge");
    obs::append_sample(out, "smtpsd_users_file_valid", "", status.valid ? 1.0 : 0.0);
    obs::append_family_header(out, "smtpsd_users_file_loaded_timestamp_seconds",
                              "Unix time the users in service were loaded.", "gauge");
    obs::append_sample(out, "smtpsd_users_file_loaded_timestamp_seconds", "",
                       static_cast<double>(status.loaded_unix));
    obs::append_family_header(out, "smtpsd_users", "Users in service.", "gauge");
    obs::append_sample(out, "smtpsd_users", "", static_cast<double>(status.users));
  });
}

// Who is asking on the listing socket: root and the server's own account see every
// message; anyone else, by login name, only their own (control_commands.h).
ControlCaller listing_caller(uid_t peer_uid) {
  ControlCaller caller;
  caller.read_only = true;
  caller.all_messages = peer_uid == 0 || peer_uid == ::geteuid();
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (::getpwuid_r(peer_uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found) {
    caller.user = found->pw_name;
  }
  return caller;
}

// Whether the spool directory's file system turns every sync into a journal commit.
bool journaled_spool(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool journaled = base::syncs_are_journal_commits(fd);
  ::close(fd);
  return journaled;
}

// Delivery at acceptance of one commit batch (queue::GroupCommitter::set_deliverer): the
// Maildir copies of all its messages made durable together (delivery::MaildirBatch), then
// the deliveries logged; a copy that failed there is the queue's to make.
std::vector<std::optional<std::vector<bool>>> deliver_batch_at_acceptance(
    queue::Scheduler& scheduler, std::span<const queue::StoredMessage> messages,
    std::string_view at) {
  obs::LogBatch lines;  // a line per delivery, written at once
  std::vector<std::optional<std::vector<queue::DeliveryResult>>> attempts;
  attempts.reserve(messages.size());
  const auto started = std::chrono::steady_clock::now();
  {
    delivery::MaildirBatch batch;
    for (const queue::StoredMessage& message : messages)
      attempts.push_back(scheduler.attempt_at_acceptance(message));
    batch.complete();
    for (const delivery::MaildirBatch::Copy& copy : batch.copies()) {
      if (copy.error.empty()) continue;
      for (std::size_t k = 0; k < messages.size(); ++k) {
        if (messages[k].id != copy.message_id || !attempts[k] ||
            copy.recipient_index >= attempts[k]->size()) {
          continue;
        }
        (*attempts[k])[copy.recipient_index] =
            queue::DeliveryResult{queue::DeliveryStatus::kTransient, copy.error, "maildir"};
      }
    }
  }
  std::vector<std::optional<std::vector<bool>>> done(messages.size());
  for (std::size_t k = 0; k < messages.size(); ++k) {
    if (attempts[k]) {
      done[k] = scheduler.settle_at_acceptance(messages[k], *attempts[k],
                                               std::chrono::steady_clock::now() - started, at);
    }
  }
  return done;
}

}  // namespace

Daemon::Daemon(config::Config config)
    : engine_(std::make_unique<ReloadEngine>(std::move(config))) {}

Daemon::~Daemon() = default;

ReloadResult Daemon::reload() {
  return engine_->reload();
}

ReloadResult Daemon::reload_certificates() {
  return engine_->reload_certificates();
}

std::vector<CertificateExpiry> Daemon::certificate_expiry() const {
  std::vector<CertificateExpiry> out;
  for (const tls::CertificateDetails& c : engine_->certificates()) {
    out.push_back(
        CertificateExpiry{c.file, c.subject_names, c.set_names, c.not_before, c.not_after});
  }
  return out;
}

void Daemon::stop() {
  engine_->stop_server();
}

int Daemon::run(const std::function<void(const std::vector<BoundListener>&)>& on_ready) {
  ReloadEngine& engine = *engine_;
  const std::shared_ptr<const config::Config> initial = engine.config();
  const config::Config& config = *initial;
  // Under systemd, stderr lines carry the journal's priority instead of a timestamp.
  obs::set_stderr_journal(obs::stderr_is_journal());
  obs::set_min_level(config.log_level);
  auto log_output = prepare_log(config);
  if (!log_output) return fail(log_output.error());
  apply_log(std::move(log_output.value()));
  SystemdNotifier notifier;  // before the switch of account: $NOTIFY_SOCKET may be root's
  PrivilegeSettings privileges{config.user, config.group, config.run_as_root, config.data_dir,
                               config.control_socket};
  // Refused before anything is opened when the settings cannot work (root without
  // server.user, an unknown account, ...).
  if (auto planned = plan_privileges(privileges); !planned) {
    return fail(config.source_file + ": server.user: " + planned.error());
  }
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) return fail("cannot create data_dir " + config.data_dir + ": " + ec.message());
  auto spool = queue::Spool::open(config.data_dir + "/spool");
  if (!spool) return fail(spool.error().message);
  queue::SpoolSpace space([spool = spool.value().get()] { return spool->free_bytes(); },
                          spool.value()->directory(), config.free_space_check);

  // Delivery: each recipient routed to Maildir, LMTP or onward (delivery/router.h).
  // The server's one DNS resolver (docs/architecture.md "DNS"), built once: MX delivery
  // asks it, and so do the checks of incoming mail (SPF, DKIM, DMARC) handed this pointer.
  // [dns] is read at start only.
  const dns::Options resolver_options = dns_options(config.dns);
  auto created_resolver = dns::create_resolver(resolver_options);
  if (!created_resolver) return fail("[dns]: " + created_resolver.error());
  const std::shared_ptr<dns::Resolver> resolver = std::move(created_resolver).value();
  obs::Log("dns")
      .kv("mode", dns::to_string(resolver_options.mode))
      .kv("validating", resolver->validates() ? "yes" : "no")
      .kv("detail", resolver->describe());
  if (!resolver->validates() && !config.delivery.relay) {
    // Said loudly: MX delivery then authenticates no destination by DANE, whatever the
    // destinations publish; the other policies (static table, learned memory) still hold.
    obs::Log("dane_unavailable", obs::Level::kWarning)
        .kv("detail",
            "the DNS resolver does not validate DNSSEC: DANE (TLSA) is not applied to MX "
            "delivery; set [dns] validation or use a validating resolver");
  }

  delivery::Maildir maildir(config.data_dir + "/mail", config.hostname);
  delivery::OutboundOptions delivery_options = outbound_options(config);
  delivery_options.dns = resolver;
  // MTA-STS for MX delivery: policies cached under the data directory.
  if (!config.delivery.relay) {
    delivery::MtaStsOptions sts_options;
    sts_options.cache_directory = config.data_dir + "/mta-sts";
    sts_options.ca_file = config.delivery.ca_file;
    sts_options.https_port = config.delivery.mta_sts_port;
    auto sts = delivery::MtaSts::create(resolver, std::move(sts_options));
    if (!sts) return fail("MTA-STS: " + sts.error());
    delivery_options.mta_sts = std::move(sts.value());
  }
  // SMTP TLS reports ([tls_reports]): MX delivery counts its sessions from the start.
  std::shared_ptr<delivery::TlsReportCounts> tls_report_counts;
  if (config.tls_reports) {
    tls_report_counts = std::make_shared<delivery::TlsReportCounts>();
    delivery_options.tls_reports = tls_report_counts;
  }
  // The cached MTA-STS policies refreshed before they expire, mail or no mail, on a thread of
  // their own (started with the scheduler, stopped before the resolver).
  std::shared_ptr<delivery::MtaSts> sts_to_refresh =
      config.delivery.mta_sts_refresh.count() > 0 ? delivery_options.mta_sts : nullptr;
  std::unique_ptr<base::PollingThread> sts_refresher;
  delivery_options.mx_deadline = 2 * std::chrono::milliseconds(resolver_options.timeout);
  auto outbound = delivery::Outbound::create(std::move(delivery_options));
  if (!outbound) return fail(outbound.error());
  // Mailboxes are entries of the users file; aliases live in their own file. Both are read
  // now (a broken one stops the start) and re-read when they change, by their own watcher
  // threads: I/O threads and delivery threads only load the snapshot pointers.
  auth::UserDirectory users(config.auth.users_file);
  if (!users.last_error().empty()) return fail(users.last_error());
  users.start_watching(config.auth.watch_interval);  // docs/users-file.md: "within a second"
  auth::AliasDirectory aliases(config.addressing.aliases_file);
  if (!aliases.last_error().empty()) return fail(aliases.last_error());
  aliases.start_watching(config.auth.watch_interval);
  engine.use_aliases(aliases);
  for (const std::string& deprecation : config.deprecations) {
    obs::Log("deprecated", obs::Level::kWarning).kv("detail", deprecation);
  }
  for (const std::string& warning : config.warnings) {
    obs::Log("config_warning", obs::Level::kWarning).kv("detail", warning);
  }
  DomainRoutingCache domain_routing;      // [[domains]] and [srs] of the snapshot in service
  LocalRecipientsCache local_recipients;  // mailboxes of the configuration and users in service
  delivery::Router router(
      [&engine, &users, &local_recipients] {
        return local_recipients.get(engine.config(), users.current());
      },
      delivery_routes(maildir, *outbound.value()),
      [&engine, &domain_routing] { return domain_routing.get(engine.config()); });
  queue::SchedulerOptions queue_options = scheduler_options(config);
  queue_options.is_local = [&router](std::string_view address) {
    return router.stays_here(address);
  };
  if (config.queue.deliver_at_acceptance) {
    queue_options.at_acceptance = [&router](std::string_view address) {
      return router.goes_to_maildir(address);
    };
  }
  queue::Scheduler scheduler(
      *spool.value(),
      [&router](const queue::StoredMessage& message, std::span<const std::size_t> recipients) {
        return router.deliver(message, recipients);
      },
      std::move(queue_options));
  // Four committer threads where every sync is a journal commit (base/file_sync.h): the
  // journal merges their syncs. Else two, the second only beside a batch that runs past
  // kSecondCommitterAfter or holds kLargeBatch: two committers taking turns split the
  // batches, and their syncs contend (bench/README.md: 0.76-0.81x the server CPU a message
  // at 100 x 8 with the rule).
  const bool journaled = journaled_spool(spool.value()->directory());
  const unsigned commit_threads = journaled ? 4 : 2;
  queue::GroupCommitter committer(
      commit_threads, queue::GroupCommitter::kLogIdleClose,
      journaled ? std::chrono::microseconds{} : queue::GroupCommitter::kSecondCommitterAfter);
  if (config.queue.deliver_at_acceptance) {
    const std::string_view at = config.queue.reply_after_log ? "after_reply" : "acceptance";
    committer.set_deliverer([&scheduler, at](std::span<const queue::StoredMessage> messages) {
      return deliver_batch_at_acceptance(scheduler, messages, at);
    });
    if (config.queue.reply_after_log) {
      committer.set_reply_after_log([&scheduler](const std::string& id) { scheduler.enqueue(id); },
                                    [&scheduler](const queue::StoredMessage& message) {
                                      return scheduler.takes_at_acceptance(message);
                                    });
    }
  }

  // The checks of incoming mail (SPF, DKIM, DMARC, signing): the same resolver, and a pool
  // for the RSA/Ed25519 work, never an I/O thread (docs/architecture.md "Mail authenticity").
  // The pipelines (and so these services) outlive run(): held by the reload engine. What
  // they capture is shared, and the resolver and the pool are stopped before the network
  // host goes, so no late answer finds freed memory.
  auto check_pool = std::make_shared<asio::thread_pool>(2);
  CheckServices check_services;
  check_services.resolver = resolver;
  check_services.offload = [check_pool](std::function<void()> work) {
    asio::post(*check_pool, std::move(work));
  };
  std::unique_ptr<TlsReporter> tls_reporter;
  if (config.tls_reports) {
    auto reporter =
        make_tls_reporter(config, resolver, *spool.value(), scheduler, tls_report_counts);
    if (!reporter) return fail(reporter.error());
    tls_reporter = std::move(reporter.value());
  }
  std::shared_ptr<DmarcReporter> dmarc_reporter;
  if (config.dmarc_reports) {
    auto reporter = make_dmarc_reporter(config, resolver, *spool.value(), scheduler);
    if (!reporter) return fail(reporter.error());
    dmarc_reporter = std::move(reporter.value());
    check_services.record_dmarc = [dmarc_reporter](const mailauth::DmarcEvaluation& evaluation) {
      dmarc_reporter->record(evaluation);
    };
  }
  // The milter threads ([[milters]]; started at the first conversation, joined at the stop).
  auto milter_workers = std::make_shared<milter::Workers>();
  check_services.milter_workers = milter_workers;
  engine.use_check_services(check_services);

  raise_open_file_limit(config.max_connections);
  auto limiter = auth::FailureLimiter::create(limiter_options(config));
  if (!limiter) return fail(limiter.error());
  auth::VerifiedCache verified_cache(config.auth.verified_cache);

  // What one user may send (auth/sending_limiter.h): who is held survives a restart in
  // <data_dir>/sending-limits.held; the counts start again from zero.
  auth::SendingLimiter sending_limiter(sending_limits(config),
                                       config.data_dir + "/sending-limits.held");
  for (const auth::Containment& held : sending_limiter.containments()) {
    obs::Log("user_still_held", obs::Level::kWarning)
        .kv("user", held.user)
        .kv("count", held.count)
        .kv("bound", held.bound)
        .kv("window", auth::to_string(held.window))
        .kv("since", held.since_unix);
  }

  net::ServerServices services = server_settings(config);
  services.sending_limiter = &sending_limiter;
  // Recipients of our own domains and relay domains do not count towards the recipient
  // bounds: a leaked password is used to write to the world.
  services.is_local_address = [&router, &engine](std::string_view address) {
    if (router.stays_here(address)) return true;
    const std::size_t at = address.rfind('@');
    return at != std::string_view::npos &&
           engine.config()->find_relay_domain(address.substr(at + 1)) != nullptr;
  };
  services.users = &users;
  services.limiter = limiter.value().get();
  services.verified_cache = &verified_cache;
  services.on_stopping = [&notifier] { notifier.stopping(); };
  services.spool = spool.value().get();
  services.committer = &committer;
  services.on_committed = [&scheduler](const std::string& id) { scheduler.enqueue(id); };
  services.on_hangup = [&engine] { engine.request_reload(); };  // SIGHUP, on an I/O thread
  net::Server server(config.io_threads, services);
  // [acme]: keys and a placeholder before the certificates are read; the http-01 port bound
  // before the privilege drop; the threads once the server runs.
  std::unique_ptr<AcmeService> acme_service;
  if (config.acme) {
    acme_service = std::make_unique<AcmeService>(*config.acme);
    // Root never writes into a directory the account can change (<data_dir>/acme could be a
    // link the account planted): once data_dir is the account's, the account prepares it;
    // at the first start root does and drop_privileges's walk gives the result.
    auto prepared =
        write_as_data_dir_owner(privileges, [&acme_service] { return acme_service->prepare(); });
    if (!prepared) return fail(prepared.error());
    if (auto bound = acme_service->bind(); !bound) return fail(bound.error());
  }
  auto serving = engine.serve_first(server, users, space);
  if (!serving) return fail(serving.error());

  ControlContext control_context;
  control_context.limiter = limiter.value().get();
  control_context.sending_limiter = &sending_limiter;
  control_context.scheduler = &scheduler;
  control_context.tls_memory = &outbound.value()->tls_memory();
  control_context.describe_tls_policy = [&outbound](std::string_view domain) {
    return outbound.value()->describe_policy(domain);
  };
  control_context.spool = spool.value().get();
  if (acme_service) {
    control_context.certificates = [service =
                                        acme_service.get()](const std::vector<std::string>& words) {
      return service->handle_request(words);
    };
  }
  control_context.forget_next_hops = [outbound = outbound.value().get()] {
    outbound->forget_next_hops();
  };
  control_context.is_local_address = [&router](std::string_view address) {
    return router.stays_here(address);
  };
  auto control_now = [](ControlContext context) {
    context.now = std::chrono::steady_clock::now();
    context.now_unix = base::unix_now();
    return context;
  };
  ControlSocket control;
  auto controlling = control.start(
      config.control_socket, [&control_context, control_now](const std::string& request) {
        return handle_control_request(request, control_now(control_context));
      });
  if (!controlling) return fail(controlling.error());
  // The read-only listing for every local user (docs/architecture.md "Security rules").
  ControlSocket mailq_socket;
  if (!config.mailq_socket.empty()) {
    auto listing = mailq_socket.start_for_everyone(
        config.mailq_socket,
        [&control_context, control_now](const std::string& request, uid_t peer_uid) {
          return handle_control_request(request, control_now(control_context),
                                        listing_caller(peer_uid));
        });
    if (!listing) return fail(listing.error());
  }

  add_queue_collector(scheduler);
  add_users_collector(users);
  // smtpsd_certificate_expiry_seconds: the certificates in service at each scrape, so a
  // renewal shows at once (the endpoint, the only caller, ends before this Daemon).
  obs::add_certificate_collector(obs::metrics(), [this] {
    std::vector<obs::CertificateExpiry> out;
    for (const CertificateExpiry& c : certificate_expiry())
      out.push_back(
          obs::CertificateExpiry{c.file, fmt::format("{}", fmt::join(c.names, ",")), c.not_after});
    return out;
  });
  auto metrics_server = open_metrics(config);
  if (!metrics_server) return fail(metrics_server.error());

  // Ports bound, keys read, spool and control socket open: root is not needed any more.
  auto dropped = drop_privileges(privileges);
  if (!dropped) return fail(dropped.error());
  obs::Log("privileges", dropped.value().uid == 0 ? obs::Level::kWarning : obs::Level::kInfo)
      .kv("uid", static_cast<std::uint64_t>(dropped.value().uid))
      .kv("gid", static_cast<std::uint64_t>(dropped.value().gid))
      .kv("note", dropped.value().note);

  engine.attach(server, std::move(metrics_server.value()), &notifier);
  std::thread watcher([&engine] { engine.run_watch(); });
  scheduler.start();  // delivers whatever the spool already holds (crash recovery)
  if (sts_to_refresh) {
    sts_refresher = std::make_unique<base::PollingThread>();
    sts_refresher->start(config.delivery.mta_sts_refresh,
                         [sts_to_refresh] { refresh_mta_sts_policies(*sts_to_refresh); });
  }
  if (dmarc_reporter) dmarc_reporter->start();
  if (tls_reporter) tls_reporter->start();
  if (acme_service) acme_service->start(resolver);
  obs::Log("started")
      .kv("hostname", config.hostname)
      .kv("config", config.source_file)
      .kv("data_dir", config.data_dir)
      .kv("commit_threads", static_cast<std::uint64_t>(commit_threads));
  if (on_ready) on_ready(serving.value());
  notifier.ready("accepting mail on " + std::to_string(config.listeners.size()) + " listeners");
  server.run();

  if (acme_service) acme_service->stop();  // a renewal under way ends at its next wait
  engine.stop_watch();
  watcher.join();
  engine.detach();
  mailq_socket.stop();
  control.stop();
  committer.stop();
  queue::GroupCommitter::Stats commits = committer.stats();
  obs::Log("group_commit")
      .kv("messages", commits.messages)
      .kv("log_syncs", commits.syncs)
      .kv("delivered_at_acceptance", commits.delivered);
  scheduler.stop();
  sts_refresher.reset();  // a refresh under way finishes first
  // No session is counted any more; a report round under way still has its resolver.
  if (tls_reporter) tls_reporter->stop();
  // The last DNS answers and verifications of the sessions that ended, while the network
  // host they answer to still exists (its executors): then nothing is left in flight.
  resolver->stop();
  check_pool->join();
  milter_workers->stop();
  if (dmarc_reporter) dmarc_reporter->stop();
  return 0;
}

int serve(const config::Config& config,
          const std::function<void(const std::vector<BoundListener>&)>& on_ready) {
  Daemon daemon(config);
  return daemon.run(on_ready);
}

}  // namespace app
