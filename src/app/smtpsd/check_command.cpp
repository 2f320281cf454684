// check_command.cpp — see check_command.h.
#include "app/smtpsd/check_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "acme/http01_responder.h"
#include "acme/http01_webroot.h"
#include "app/smtpsd/config_location.h"
#include "app/smtpsd/listener_policy.h"
#include "app/smtpsd/local_recipients.h"
#include "app/smtpsd/privileges.h"
#include "app/smtpsd/startup_check.h"
#include "auth/alias_table.h"
#include "auth/recipient_resolver.h"
#include "auth/user_store.h"
#include "base/ascii.h"
#include "tls/certificate_store.h"

namespace app {
namespace {

// A configured name the certificate's own names do not cover: clients that check the name
// (RFC 6125) will refuse it.
bool covers(const std::vector<std::string>& subject_names, const std::string& name) {
  for (const std::string& subject : subject_names) {
    const std::string lower = base::ascii_lowercase(subject);
    if (lower == name || (lower.rfind("*.", 0) == 0 && tls::name_matches(lower, name))) {
      return true;
    }
  }
  return false;
}

std::string joined(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, " "));
}

// Deprecated forms (warnings), the users and aliases files as the server would read them,
// and every alias that loops or fans out too far (errors) or names no mailbox (warning).
int check_addressing(const config::Config& config) {
  int status = 0;
  for (const std::string& deprecation : config.deprecations) {
    std::printf("warning: %s\n", deprecation.c_str());
  }
  for (const std::string& warning : config.warnings) {
    std::printf("warning: %s\n", warning.c_str());
  }
  // As the server reads them: a missing file is empty. One this caller cannot read is said
  // once, by check_startup, with its fix (a bare "Permission denied" here would repeat it).
  auto store = std::make_shared<const auth::UserStore>();
  if (::access(config.auth.users_file.c_str(), R_OK) == 0) {
    auto loaded = auth::UserStore::load(config.auth.users_file);
    if (!loaded) {
      std::fprintf(stderr, "%s\n", loaded.error().c_str());
      status = 2;
    } else {
      store = std::make_shared<const auth::UserStore>(std::move(loaded.value()));
    }
  }
  auto table = std::make_shared<const auth::AliasTable>();
  if (::access(config.addressing.aliases_file.c_str(), F_OK) == 0) {
    auto loaded = auth::AliasTable::load(config.addressing.aliases_file);
    if (!loaded) {
      std::fprintf(stderr, "%s\n", loaded.error().c_str());
      return 2;
    }
    table = std::make_shared<const auth::AliasTable>(std::move(loaded.value()));
  }
  for (const auth::AliasProblem& problem : auth::alias_problems(
           addressing_policy(config), store.get(), *table, config.addressing.aliases_file)) {
    if (problem.fatal) {
      std::fprintf(stderr, "%s\n", problem.text.c_str());
      status = 2;
    } else {
      std::printf("warning: %s\n", problem.text.c_str());
    }
  }
  std::printf("mailboxes: %zu in %s; aliases: %zu in %s\n", store->size(),
              config.auth.users_file.c_str(), table->size(),
              config.addressing.aliases_file.c_str());
  return status;
}

}  // namespace

// [acme]: the settings, the certificates not made yet (the start makes a placeholder, so
// they are no error) and whether the http-01 port can be bound now.
std::vector<tls::CertificatePair> report_acme(const config::Config& config,
                                              std::vector<long>& lines) {
  std::vector<tls::CertificatePair> present;
  for (std::size_t i = 0; i < config.certificates.size(); ++i) {
    const tls::CertificatePair& pair = config.certificates[i];
    const bool from_acme =
        config.acme && pair.certificate_file.starts_with(config.acme->directory_on_disk + "/");
    if (from_acme && ::access(pair.certificate_file.c_str(), F_OK) != 0) continue;
    present.push_back(pair);
    lines.push_back(i < config.certificate_lines.size() ? config.certificate_lines[i] : 0);
  }
  if (!config.acme) return present;
  const config::AcmeSettings& a = *config.acme;
  const std::string eab = a.eab_kid.empty() ? ""
                                            : " (external account " + a.eab_kid +
                                                  ", MAC key from " + a.eab_hmac_key_file + ")";
  const char* pending = present.size() < config.certificates.size()
                            ? " (no certificate yet: the start makes a self-signed placeholder, "
                              "then asks the CA)"
                            : "";
  if (a.challenge == "dns-01") {
    std::string hook;
    for (const std::string& word : a.dns_hook)
      hook += (hook.empty() ? "" : " ") + word;
    std::printf("acme: %s%s for %s, dns-01 by %s, files in %s%s\n", a.directory.c_str(),
                eab.c_str(), joined(a.names).c_str(), hook.c_str(), a.directory_on_disk.c_str(),
                pending);
    return present;
  }
  if (!a.http_webroot.empty()) {
    const acme::WebrootPublisher webroot(a.http_webroot);
    std::printf(
        "acme: %s%s for %s, http-01 by files in %s (your web server serves them on "
        "port 80), files in %s%s\n",
        a.directory.c_str(), eab.c_str(), joined(a.names).c_str(), webroot.directory().c_str(),
        a.directory_on_disk.c_str(), pending);
    return present;
  }
  const bool tls_alpn = a.challenge == "tls-alpn-01";
  const std::string& address = tls_alpn ? a.tls_alpn_address : a.http_address;
  const std::uint16_t port = tls_alpn ? a.tls_alpn_port : a.http_port;
  std::printf("acme: %s%s for %s, %s on %s port %u, files in %s%s\n", a.directory.c_str(),
              eab.c_str(), joined(a.names).c_str(), a.challenge.c_str(),
              address.empty() ? "every address" : address.c_str(), static_cast<unsigned>(port),
              a.directory_on_disk.c_str(), pending);
  auto bound = tls_alpn ? acme::listen_on(address, port, "tls-alpn-01 responder")
                        : acme::listen_on(address, port, "http-01 responder");
  if (bound) {
    ::close(bound->fd);
  } else {
    std::printf(
        "warning: %s (free it, or give smtpsd CAP_NET_BIND_SERVICE; a running smtpsd "
        "holds it itself)\n",
        bound.error().c_str());
  }
  return present;
}

int check(const config::Config& config) {
  // Each certificate pair on its own, so that an error names the entry it is about:
  // "FILE:LINE: tls.certificates[N]: what is wrong".
  int status = 0;
  tls::LoadOptions strict;
  strict.now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::vector<long> certificate_lines;
  const std::vector<tls::CertificatePair> certificates = report_acme(config, certificate_lines);
  for (std::size_t i = 0; i < certificates.size(); ++i) {
    const tls::CertificatePair& pair = certificates[i];
    long line = certificate_lines[i];
    const std::string at =
        config_location(config, line, "tls.certificates[" + std::to_string(i) + "]");
    auto store = tls::CertificateStore::load({pair}, strict);
    if (!store) {
      std::fprintf(stderr, "%s%s\n", at.c_str(), store.error().to_string().c_str());
      status = 2;
      continue;
    }
    const tls::CertificateDetails c = store.value()->certificates().front();
    std::printf("certificate %s: expires in %ld days (%s, %s; serves %s)\n", c.file.c_str(),
                static_cast<long>((c.not_after - strict.now_unix) / 86400), c.key_type.c_str(),
                joined(c.subject_names).c_str(),
                c.set_names.empty() ? "the default set" : joined(c.set_names).c_str());
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
    auto store = tls::CertificateStore::load(certificates, strict);
    if (!store) {
      const std::size_t index = store.error().pair_index;
      long line = index < certificate_lines.size() ? certificate_lines[index] : 0;
      std::fprintf(
          stderr, "%s%s\n",
          config_location(config, line, "tls.certificates[" + std::to_string(index) + "]").c_str(),
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
        std::fprintf(stderr, "%s\n", tls_error_at(config, l.line, key, contexts.error()).c_str());
        status = 2;
      }
    }
    if (store && store.value()->set_count() > 1) {
      std::printf(
          "certificate sets: %zu (chosen by SNI; default: %s)\n", store.value()->set_count(),
          store.value()->set_names(0).empty() ? "the set without names"
                                              : joined(store.value()->set_names(0)).c_str());
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
  if (check_addressing(config) != 0) status = 2;
  // What would make the start (or a later reload) fail: files, the data directory, ports.
  for (const StartupProblem& problem : check_startup(config)) {
    switch (problem.severity) {
      case StartupProblem::Severity::kError:
        std::fprintf(stderr, "%s\n", problem.text.c_str());
        status = 2;
        break;
      case StartupProblem::Severity::kWarning:
        std::printf("warning: %s\n", problem.text.c_str());
        break;
      case StartupProblem::Severity::kNote:
        std::printf("note: %s\n", problem.text.c_str());
        break;
    }
  }
  std::fputs(config::describe(config).c_str(), stdout);
  std::printf("sending limits: %s\n", describe_sending_limits(config).c_str());
  std::puts(status == 0 ? "configuration OK" : "configuration has errors");
  return status;
}

}  // namespace app
