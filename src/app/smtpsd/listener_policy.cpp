// listener_policy.cpp — see listener_policy.h.
#include "app/smtpsd/listener_policy.h"

#include <algorithm>

#include <fmt/format.h>

#include "app/smtpsd/domain_routing.h"
#include "app/smtpsd/local_recipients.h"
#include "auth/failure_limiter.h"
#include "auth/sasl.h"
#include "filter/dns_list_check.h"
#include "intake/authenticity_check.h"
#include "intake/dkim_sign_check.h"
#include "intake/loop_check.h"
#include "intake/milter_check.h"
#include "mailauth/dkim_signer.h"

namespace app {

RolePolicy role_policy(config::Role role) {
  switch (role) {
    case config::Role::kSubmissions:
      return RolePolicy{.implicit_tls = true,
                        .require_auth = true,
                        .relays_for_authenticated = true,
                        .allow_null_sender = false};
    case config::Role::kSubmission:
      return RolePolicy{.implicit_tls = false,
                        .require_auth = true,
                        .relays_for_authenticated = true,
                        .allow_null_sender = false};
    case config::Role::kSmtp:
      break;
  }
  return RolePolicy{.implicit_tls = false,
                    .require_auth = false,
                    .relays_for_authenticated = false,
                    .allow_null_sender = true};
}

smtp::TlsMode tls_mode(const config::Listener& listener) {
  switch (listener.role) {
    case config::Role::kSubmissions:
      return smtp::TlsMode::kImplicit;
    case config::Role::kSubmission:
      return smtp::TlsMode::kStartTlsRequired;
    case config::Role::kSmtp:
      break;
  }
  return listener.require_tls ? smtp::TlsMode::kStartTlsRequired : smtp::TlsMode::kStartTlsOptional;
}

smtp::SessionConfig session_config(std::shared_ptr<const config::Config> snapshot,
                                   const config::Listener& listener, auth::UserDirectory& users,
                                   const auth::AliasDirectory* aliases) {
  const RolePolicy policy = role_policy(listener.role);
  smtp::SessionConfig session;
  session.hostname = snapshot->hostname;
  session.limits = snapshot->limits;
  session.tls_mode = tls_mode(listener);
  session.allow_null_sender = policy.allow_null_sender;
  if (policy.require_auth) {
    session.auth_mechanisms = auth::mechanisms_offered(
        /*have_tls_exporter=*/true, /*offer_external=*/!listener.client_ca.empty());
    session.require_auth = true;
    session.may_send_as = [&users](std::string_view user, std::string_view sender) {
      auto store = users.current();
      return store && store->may_send_as(user, sender);
    };
  }
  // Mailboxes and aliases as they are now (the users and aliases files are watched): a
  // mailbox added with `smtpsctl user add` receives at the next RCPT, no reload needed.
  session.check_recipient = [inbound = inbound_recipients(snapshot, users, aliases),
                             relays = policy.relays_for_authenticated](
                                std::string_view address,
                                std::string_view user) -> smtp::RecipientDecision {
    smtp::RecipientDecision decision = inbound(address);
    // An authenticated user may send anywhere: mail for other domains is queued for
    // onward delivery (relay or MX, delivery/outbound.h).
    if (relays && !user.empty() && decision.verdict == smtp::RecipientVerdict::kRelayDenied) {
      return smtp::RecipientVerdict::kAccept;
    }
    return decision;
  };
  session.recipient_size_limit = [snapshot](std::string_view address) {
    return recipient_size_limit(*snapshot, address);  // [[domains]] max_message_size
  };
  return session;
}

base::Expected<std::vector<std::shared_ptr<const mailauth::DkimSigningKey>>, std::string>
dkim_keys_of(const config::Config& config, const config::Domain& domain) {
  std::vector<std::shared_ptr<const mailauth::DkimSigningKey>> keys;
  for (const config::DkimKeyFile& file : domain.dkim) {
    if (file.pem.empty()) continue;  // a client's reading: keys are the server's
    auto key = mailauth::DkimSigningKey::load(file.pem, domain.name, file.selector);
    if (!key) {
      return base::unexpected(fmt::format("{}:{}: domains.dkim.key: {}: {}", config.source_file,
                                          file.line, file.key_file, key.error()));
    }
    keys.push_back(std::move(key.value()));
  }
  return keys;
}

std::shared_ptr<intake::Check> dns_list_check(const config::Config& config,
                                              const CheckServices& services) {
  if (!services.resolver || config.screening.dns_lists.empty()) return nullptr;
  const config::ScreeningSettings& sc = config.screening;
  filter::DnsListPolicy policy;
  for (const config::DnsListSettings& list : sc.dns_lists) {
    filter::DnsList entry{list.zone, list.weight, {}};
    for (const config::DnsListAnswerSettings& answer : list.answers)
      entry.answers.push_back(filter::ListedAnswer{answer.network, answer.weight});
    policy.lists.push_back(std::move(entry));
  }
  policy.threshold = sc.dns_list_threshold;
  policy.refuse_at = sc.refuse_at == config::DnsListRefuseAt::kConnect
                         ? filter::DnsListPolicy::RefuseAt::kConnect
                         : filter::DnsListPolicy::RefuseAt::kRcpt;
  policy.allow_networks = sc.allow_networks;
  policy.hostname = config.hostname;
  // The A lookups side by side, then the TXT of the list that counted: two lookups' time.
  policy.deadline = 2 * std::chrono::duration_cast<std::chrono::milliseconds>(config.dns.timeout) +
                    std::chrono::seconds(1);
  return std::make_shared<filter::DnsListCheck>(services.resolver, std::move(policy));
}

std::shared_ptr<const intake::Pipeline> with_screening(
    const std::shared_ptr<const intake::Pipeline>& checks,
    const std::shared_ptr<intake::Check>& screening) {
  if (!screening) return checks;
  std::vector<std::shared_ptr<intake::Check>> out{screening};
  out.insert(out.end(), checks->checks().begin(), checks->checks().end());
  return std::make_shared<const intake::Pipeline>(std::move(out));
}

base::Expected<std::shared_ptr<const intake::Pipeline>, std::string> built_in_checks(
    const config::Config& config, const CheckServices& services) {
  std::vector<std::shared_ptr<intake::Check>> checks;
  if (config.max_received_headers != 0) {
    checks.push_back(std::make_shared<intake::ReceivedLoopCheck>(config.max_received_headers));
  }
  if (services.resolver && config.authenticity.verify) {
    const config::AuthenticitySettings& a = config.authenticity;
    auto dmarc = [](config::DmarcEnforcement value) {
      switch (value) {
        case config::DmarcEnforcement::kOff:
          return intake::AuthenticityPolicy::Dmarc::kOff;
        case config::DmarcEnforcement::kMonitor:
          return intake::AuthenticityPolicy::Dmarc::kMonitor;
        case config::DmarcEnforcement::kEnforce:
          break;
      }
      return intake::AuthenticityPolicy::Dmarc::kEnforce;
    };
    intake::AuthenticityPolicy policy;
    policy.authserv_id = a.authserv_id;
    policy.receiver = config.hostname;
    switch (a.spf) {
      case config::SpfEnforcement::kOff:
        policy.spf = intake::AuthenticityPolicy::Spf::kOff;
        break;
      case config::SpfEnforcement::kRecord:
        policy.spf = intake::AuthenticityPolicy::Spf::kRecord;
        break;
      case config::SpfEnforcement::kDmarc:
        policy.spf = intake::AuthenticityPolicy::Spf::kDmarc;
        break;
      case config::SpfEnforcement::kStrict:
        policy.spf = intake::AuthenticityPolicy::Spf::kStrict;
        break;
    }
    policy.dmarc = dmarc(a.dmarc);
    for (const config::Domain& domain : config.domains)
      if (domain.dmarc) policy.domain_dmarc.emplace_back(domain.name, dmarc(*domain.dmarc));
    policy.defer_on_temperror = a.defer_on_temperror;
    policy.max_signatures = a.max_signatures;
    policy.quarantine_folder = a.quarantine_folder;
    policy.trusted_forwarders = a.trusted_forwarders;
    policy.mailing_lists = a.mailing_lists;
    policy.trusted_arc_sealers = a.trusted_arc_sealers;
    policy.deadline = a.deadline;
    policy.record_dmarc = services.record_dmarc;
    checks.push_back(std::make_shared<intake::AuthenticityCheck>(
        services.resolver, std::move(policy), services.offload));
  }
  intake::DkimSignCheck::Keys keys;
  for (const config::Domain& domain : config.domains) {
    auto loaded = dkim_keys_of(config, domain);
    if (!loaded) return base::unexpected(loaded.error());
    if (!loaded->empty()) keys[domain.name] = std::move(loaded.value());
  }
  if (!keys.empty() && services.offload) {
    checks.push_back(std::make_shared<intake::DkimSignCheck>(std::move(keys), services.offload));
  }
  return std::make_shared<const intake::Pipeline>(std::move(checks));
}

namespace {

// Stands in for the server's resolver when a pipeline is only described, never run.
class UnusedResolver final : public dns::Resolver {
 public:
  void lookup(std::string_view, dns::Type, Callback callback) override {
    auto answer = std::make_shared<dns::Answer>();
    answer->detail = "no resolver: the pipeline is only described";
    callback(std::move(answer));
  }
  bool validates() const override { return false; }
  std::string describe() const override { return "none"; }
};

}  // namespace

std::map<std::string, std::shared_ptr<intake::Check>> milter_checks(const config::Config& config,
                                                                    const CheckServices& services) {
  std::map<std::string, std::shared_ptr<intake::Check>> checks;
  auto workers = services.milter_workers;
  if (!workers) workers = std::make_shared<milter::Workers>(1);  // described only: never started
  for (const config::Milter& m : config.milters) {
    intake::MilterSettings settings;
    settings.name = m.name;
    settings.endpoint = m.address;
    settings.timeout = m.timeout;
    settings.default_accept = m.default_action == config::MilterDefaultAction::kAccept;
    settings.hostname = config.hostname;
    for (const auto& [stage, names] : m.macros) {
      if (auto known = milter::macro_stage_named(stage))
        settings.macros[static_cast<std::size_t>(*known)] = names;
    }
    checks[m.name] = std::make_shared<intake::MilterCheck>(std::move(settings), workers);
  }
  return checks;
}

std::shared_ptr<const intake::Pipeline> with_milters(
    const std::shared_ptr<const intake::Pipeline>& checks,
    const std::map<std::string, std::shared_ptr<intake::Check>>& all,
    const std::vector<std::string>& milters) {
  if (milters.empty()) return checks;
  std::vector<std::shared_ptr<intake::Check>> out;
  bool placed = false;
  auto place = [&] {
    for (const std::string& name : milters)
      if (auto found = all.find(name); found != all.end()) out.push_back(found->second);
    placed = true;
  };
  for (const auto& check : checks->checks()) {
    if (!placed && check->name() == "dkim-sign") place();
    out.push_back(check);
  }
  if (!placed) place();
  return std::make_shared<const intake::Pipeline>(std::move(out));
}

std::string describe_configured_checks(const config::Config& config) {
  CheckServices services;
  services.resolver = std::make_shared<UnusedResolver>();
  services.offload = [](std::function<void()> work) { work(); };
  auto pipeline = built_in_checks(config, services);
  if (!pipeline) return pipeline.error();
  std::string out = describe_checks(*pipeline.value());
  if (auto screening = dns_list_check(config, services))
    out += "; on smtp listeners first: " + describe_checks(intake::Pipeline({screening}));
  // The milters of each listener (and of the local submissions), in their order.
  const auto milters = milter_checks(config, services);
  auto named = [&](const std::vector<std::string>& names) {
    std::string text;
    for (const std::string& name : names) {
      if (!text.empty()) text += ", ";
      auto found = milters.find(name);
      text += name;
      if (found != milters.end()) text += " (" + found->second->summary() + ")";
    }
    return text;
  };
  for (const config::Listener& listener : config.listeners) {
    if (listener.milters.empty()) continue;
    out += fmt::format("; milters on {} {}:{}: {}", config::to_string(listener.role),
                       listener.address_text, listener.port, named(listener.milters));
  }
  if (config.local_submission.enabled && !config.local_submission.milters.empty())
    out += "; milters on local submissions: " + named(config.local_submission.milters);
  return out;
}

std::string describe_screening(const config::Config& config) {
  const config::ScreeningSettings& sc = config.screening;
  std::string out =
      sc.pregreet_wait.count() > 0
          ? fmt::format(
                "port 25: pre-greet wait {} ms (passes remembered {} s)", sc.pregreet_wait.count(),
                std::chrono::duration_cast<std::chrono::seconds>(sc.pregreet_pass_ttl).count())
          : std::string("port 25: no pre-greet wait");
  out += sc.refuse_improper_pipelining ? ", improper pipelining refused"
                                       : ", improper pipelining logged";
  if (!sc.dns_lists.empty()) {
    out += fmt::format(", {} DNS lists (refused at {})", sc.dns_lists.size(),
                       config::to_string(sc.refuse_at));
  }
  if (!sc.allow_networks.empty())
    out += fmt::format(", {} networks never screened", sc.allow_networks.size());
  return out;
}

std::string describe_sending_limits(const config::Config& config) {
  const auto& bounds = config.sending_limits;
  std::string out = "per user: ";
  out += bounds.messages_per_hour == 0
             ? std::string("no message rate")
             : fmt::format("{} messages an hour (then 451 4.7.1)", bounds.messages_per_hour);
  const std::uint64_t hour = bounds.external_recipients_per_hour;
  const std::uint64_t day = bounds.external_recipients_per_day;
  if (hour == 0 && day == 0) return out + "; no bound on external recipients";
  out += "; distinct external recipients: ";
  if (hour != 0) out += fmt::format("{} an hour", hour);
  if (hour != 0 && day != 0) out += ", ";
  if (day != 0) out += fmt::format("{} a day", day);
  return out + " (then held: smtpsctl queue release --user USER)";
}

std::string describe_checks(const intake::Pipeline& pipeline) {
  std::string out;
  for (const auto& check : pipeline.checks()) {
    if (!out.empty()) out += ", ";
    out += check->name();
    out += " (";
    std::string stages;
    for (unsigned bit = 0; bit < 16; ++bit) {
      const auto stage = static_cast<intake::Stage>(1u << bit);
      if ((check->stages() & intake::mask(stage)) == 0) continue;
      if (!stages.empty()) stages += ", ";
      stages += intake::to_string(stage);
    }
    std::replace(stages.begin(), stages.end(), '_', ' ');
    out += stages;
    if (std::string summary = check->summary(); !summary.empty()) out += ", " + summary;
    out += ')';
  }
  return out.empty() ? "none" : out;
}

net::ListenerOptions listener_options(std::shared_ptr<const config::Config> snapshot,
                                      std::size_t index,
                                      std::shared_ptr<const intake::Pipeline> checks,
                                      std::shared_ptr<SSL_CTX> tls_context,
                                      auth::UserDirectory& users,
                                      std::function<bool(std::uint64_t declared_size)> has_room_for,
                                      const auth::AliasDirectory* aliases) {
  const config::Config& config = *snapshot;
  const config::Listener& listener = config.listeners.at(index);
  net::ListenerOptions options;
  options.role = std::string(config::to_string(listener.role));
  options.address = listener.address_text;
  options.port = listener.port;
  options.implicit_tls = role_policy(listener.role).implicit_tls;
  options.tls_context = std::move(tls_context);
  options.session = session_config(snapshot, listener, users, aliases);
  options.checks = std::move(checks);
  options.proxy_protocol = listener.proxy_protocol;
  options.proxy_from = listener.proxy_from;
  options.session.has_room_for = std::move(has_room_for);
  options.command_timeout = config.command_timeout;
  options.data_timeout = config.data_timeout;
  options.handshake_timeout = config.handshake_timeout;
  options.proxy_header_timeout = config.proxy_header_timeout;
  if (listener.role == config::Role::kSmtp) {
    options.pregreet_wait = config.screening.pregreet_wait;
    options.refuse_improper_pipelining = config.screening.refuse_improper_pipelining;
    options.screening_exempt = config.screening.allow_networks;
  }
  return options;
}

}  // namespace app
