// daemon.cpp — see daemon.h.
#include "app/daemon.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "app/control_commands.h"
#include "app/control_socket.h"
#include "app/local_recipients.h"
#include "auth/failure_limiter.h"
#include "auth/sasl.h"
#include "auth/user_store.h"
#include "auth/verified_cache.h"
#include "delivery/maildir.h"
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
    // onward delivery (the queue issue delivers it; until then it waits in the spool).
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

}  // namespace

int serve(const config::Config& config, const std::function<void()>& on_ready) {
  obs::set_min_level(obs::parse_level(config.log_level));
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

  // Delivery: local mailboxes only for now; other recipients wait in the spool.
  auto deliver = [&config, &maildir](const queue::StoredMessage& message,
                                     std::size_t index) -> queue::DeliveryResult {
    const std::string& address = message.envelope.recipients[index].address;
    std::optional<std::string> mailbox = canonical_local_mailbox(config, address);
    if (!mailbox) {
      return {queue::DeliveryStatus::kNotLocal, "no route for " + address + " yet", "none"};
    }
    // One copy per mailbox: <demo@x>, <DEMO@x> and <postmaster> + <postmaster@x> in one
    // envelope are the same mailbox twice; the first recipient that names it delivers.
    for (std::size_t earlier = 0; earlier < index; ++earlier) {
      if (canonical_local_mailbox(config, message.envelope.recipients[earlier].address) ==
          mailbox) {
        return {queue::DeliveryStatus::kDelivered,
                "same mailbox as recipient " + std::to_string(earlier), "maildir"};
      }
    }
    if (*mailbox == address) return maildir.deliver(message, index);
    queue::StoredMessage canonical = message;
    canonical.envelope.recipients[index].address = *mailbox;
    return maildir.deliver(canonical, index);
  };
  auto log_line = [](std::string_view line) {
    obs::write_preformatted(
        line.rfind("event=error", 0) == 0 ? obs::Level::kError : obs::Level::kInfo, line);
  };
  queue::Scheduler scheduler(*spool.value(), deliver, log_line);
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
      config.control_socket, [limiter = limiter.value().get()](const std::string& request) {
        return handle_control_request(request, *limiter, std::chrono::steady_clock::now());
      });
  if (!controlling) {
    std::fprintf(stderr, "smtpsd: %s\n", controlling.error().c_str());
    return 1;
  }

  scheduler.start();  // delivers whatever the spool already holds (crash recovery)
  obs::Log("started")
      .kv("hostname", config.hostname)
      .kv("config", config.source_file)
      .kv("data_dir", config.data_dir);
  if (on_ready) on_ready();
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
  std::fputs(config::describe(config).c_str(), stdout);
  std::puts(status == 0 ? "configuration OK" : "configuration has errors");
  return status;
}

}  // namespace app
