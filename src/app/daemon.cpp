// daemon.cpp — see daemon.h.
#include "app/daemon.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "app/local_recipients.h"
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

smtp::SessionConfig session_config(const config::Config& config, const config::Listener& l) {
  smtp::SessionConfig session;
  session.hostname = config.hostname;
  session.limits = config.limits;
  switch (l.role) {
    case config::Role::kSubmissions:
      session.tls_mode = smtp::TlsMode::kImplicit;
      // XXX: no mail on submission roles until AUTH lands (issue "AUTH and submission").
      session.accepts_mail = false;
      break;
    case config::Role::kSubmission:
      session.tls_mode = smtp::TlsMode::kStartTlsRequired;
      session.accepts_mail = false;
      break;
    case config::Role::kSmtp:
      session.tls_mode =
          l.require_tls ? smtp::TlsMode::kStartTlsRequired : smtp::TlsMode::kStartTlsOptional;
      session.accepts_mail = true;
      break;
  }
  session.check_recipient = [&config](std::string_view address) {
    return verdict_for_inbound(config, address);
  };
  return session;
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
    if (*mailbox == address) return maildir.deliver(message, index);
    queue::StoredMessage canonical = message;
    canonical.envelope.recipients[index].address = *mailbox;
    return maildir.deliver(canonical, index);
  };
  auto log_line = [](std::string_view line) {
    obs::write_preformatted(
        line.find("event=error") != std::string_view::npos ? obs::Level::kError : obs::Level::kInfo,
        line);
  };
  queue::Scheduler scheduler(*spool.value(), deliver, log_line);
  queue::GroupCommitter committer;

  net::ServerServices services;
  services.hostname = config.hostname;
  services.spool = spool.value().get();
  services.committer = &committer;
  services.on_committed = [&scheduler](const std::string& id) { scheduler.enqueue(id); };
  net::Server server(config.io_threads, services);

  std::vector<tls::SslCtxPtr> contexts;
  for (const config::Listener& l : config.listeners) {
    tls::Policy policy = config.tls;
    policy.session_tickets = l.session_tickets;
    auto context = tls::make_server_context(policy, config.certificates);
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
    options.session = session_config(config, l);
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

  scheduler.start();  // delivers whatever the spool already holds (crash recovery)
  obs::Log("started")
      .kv("hostname", config.hostname)
      .kv("config", config.source_file)
      .kv("data_dir", config.data_dir);
  if (on_ready) on_ready();
  server.run();
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
  std::fputs(config::describe(config).c_str(), stdout);
  std::puts(status == 0 ? "configuration OK" : "configuration has errors");
  return status;
}

}  // namespace app
