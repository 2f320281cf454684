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
#include <optional>
#include <span>
#include <vector>

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
#include "queue/group_commit.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "tls/dev_pki.h"
#include "tls/policy.h"

namespace app {
namespace {

// The session policy of a listener (DESIGN.md §3): submission roles require AUTH, relay for
// authenticated users and check that the sender belongs to them; the smtp role never
// offers AUTH and accepts mail for the local domains only.
smtp::SessionConfig session_config(const config::Config& config, const config::Listener& l,
                                   auth::UserDirectory& users) {
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
  session.check_recipient = [&config, submission](std::string_view address, std::string_view user) {
    smtp::RecipientVerdict verdict = verdict_for_inbound(config, address);
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
class Router {
 public:
  Router(const config::Config& config, delivery::Maildir& maildir, delivery::Outbound& outbound)
      : config_(config), maildir_(maildir), outbound_(outbound) {}

  std::vector<queue::DeliveryResult> deliver(const queue::StoredMessage& message,
                                             std::span<const std::size_t> recipients) {
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
  const config::Config& config_;
  delivery::Maildir& maildir_;
  delivery::Outbound& outbound_;
};

}  // namespace

int serve(const config::Config& config, const std::function<void()>& on_ready) {
  obs::set_min_level(obs::parse_level(config.log_level));
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
  Router router(config, maildir, *outbound.value());
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
  // The users file is read now (a broken one stops the start) and re-read when it changes.
  if (users.current(); !users.last_error().empty()) {
    std::fprintf(stderr, "smtpsd: %s\n", users.last_error().c_str());
    return 1;
  }
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
  net::Server server(config.io_threads, services);

  std::vector<tls::SslCtxPtr> contexts;
  for (const config::Listener& l : config.listeners) {
    tls::Policy policy = config.tls;
    policy.session_tickets = l.session_tickets;
    auto context = tls::make_server_context(policy, config.certificates, l.client_ca);
    if (!context) {
      std::fprintf(stderr, "smtpsd: %s\n", context.error().c_str());
      return 1;
    }
    net::ListenerOptions options;
    options.role = std::string(config::role_name(l.role));
    options.address = l.address;
    options.port = l.port;
    options.implicit_tls = l.role == config::Role::kSubmissions;
    options.tls_context = context.value().get();
    options.session = session_config(config, l, users);
    options.proxy_protocol = l.proxy_protocol;
    for (const std::string& network : l.proxy_from) {
      auto parsed = auth::parse_network(network);  // validated by the configuration loader
      if (!parsed) {
        std::fprintf(stderr, "smtpsd: %s\n", parsed.error().c_str());
        return 1;
      }
      options.proxy_from.push_back(parsed.value());
    }
    options.session.has_room_for = [spool = spool.value().get(),
                                    reserve = config.min_free_space](std::uint64_t size) {
      return has_room(*spool, reserve, size);
    };
    options.command_timeout = config.command_timeout;
    options.data_timeout = config.data_timeout;
    options.handshake_timeout = config.handshake_timeout;
    auto bound = server.listen(options);
    if (!bound) {
      std::fprintf(stderr, "smtpsd: %s\n", bound.error().c_str());
      return 1;
    }
    contexts.push_back(std::move(context.value()));
  }

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

  scheduler.start();  // delivers whatever the spool already holds (crash recovery)
  obs::Log("started")
      .kv("hostname", config.hostname)
      .kv("config", config.source_file)
      .kv("data_dir", config.data_dir);
  if (on_ready) on_ready();
  notifier.ready("accepting mail on " + std::to_string(config.listeners.size()) + " listeners");
  server.run();
  control.stop();
  committer.stop();
  queue::GroupCommitter::Stats commits = committer.stats();
  obs::Log("group_commit")
      .kv("messages", commits.messages)
      .kv("directory_syncs", commits.directory_syncs);
  scheduler.stop();
  return 0;
}

int check(const config::Config& config) {
  // Each certificate pair on its own, so that an error names the entry it is about:
  // "FILE:LINE: tls.certificates[N]: what is wrong".
  int status = 0;
  for (std::size_t i = 0; i < config.certificates.size(); ++i) {
    const tls::CertificatePair& pair = config.certificates[i];
    long line = i < config.certificate_lines.size() ? config.certificate_lines[i] : 0;
    std::string where = config.source_file + (line > 0 ? ":" + std::to_string(line) : "") +
                        ": tls.certificates[" + std::to_string(i) + "]: ";
    auto context = tls::make_server_context(config.tls, {pair});
    if (!context) {
      std::string message = context.error();
      if (message.rfind("tls: ", 0) == 0) message.erase(0, 5);
      std::fprintf(stderr, "%s%s\n", where.c_str(), message.c_str());
      status = 2;
      continue;
    }
    auto days = tls::days_until_expiry(pair.certificate_file);
    if (!days) {
      std::fprintf(stderr, "%s%s\n", where.c_str(), days.error().c_str());
      status = 2;
    } else if (days.value() < 0) {
      std::fprintf(stderr, "%scertificate %s expired %ld days ago\n", where.c_str(),
                   pair.certificate_file.c_str(), -days.value());
      status = 2;
    } else {
      std::printf("certificate %s: expires in %ld days\n", pair.certificate_file.c_str(),
                  days.value());
    }
  }
  if (status == 0) {
    // Together (one ECDSA and one RSA at most, as the server loads them).
    auto context = tls::make_server_context(config.tls, config.certificates);
    if (!context) {
      std::fprintf(stderr, "%s: tls.certificates: %s\n", config.source_file.c_str(),
                   context.error().c_str());
      status = 2;
    }
  }
  for (std::size_t i = 0; status == 0 && i < config.listeners.size(); ++i) {
    const std::string& client_ca = config.listeners[i].client_ca;
    if (client_ca.empty()) continue;
    if (auto context = tls::make_server_context(config.tls, config.certificates, client_ca);
        !context) {
      std::fprintf(stderr, "%s: listeners[%zu].client_ca: %s\n", config.source_file.c_str(), i,
                   context.error().c_str());
      status = 2;
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
