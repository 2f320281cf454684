// server_metrics.cpp — see server_metrics.h.
#include "obs/server_metrics.h"

#include <ctime>

namespace obs {
namespace {

constexpr std::string_view kRoleNames[] = {"submissions", "submission", "smtp", "other"};
constexpr std::string_view kVersionNames[] = {"TLSv1.2", "TLSv1.3", "other"};
constexpr std::string_view kReasonNames[] = {
    "protocol_version", "no_shared_cipher", "timeout", "eof", "http", "other"};
constexpr std::string_view kMechanismNames[] = {
    "PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "EXTERNAL", "other"};
constexpr std::string_view kResultNames[] = {"delivered", "deferred", "bounced"};
constexpr std::string_view kDnsblResultNames[] = {"listed", "not_listed", "allowlisted"};
constexpr std::string_view kEarlyTalkerNames[] = {"pregreet", "pipelining"};
constexpr std::string_view kPregreetNames[] = {"passed", "skipped"};
constexpr std::string_view kTransportNames[] = {"maildir", "lmtp", "smtp", "relay", "other"};

template <std::size_t N>
std::size_t index_of(const std::string_view (&names)[N], std::string_view name) {
  for (std::size_t i = 0; i + 1 < N; ++i) {
    if (names[i] == name) return i;
  }
  return N - 1;  // the last entry is the catch-all
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace

std::string_view ServerMetrics::handshake_failure_reason(std::string_view reason) {
  if (contains(reason, "timeout")) return "timeout";
  if (contains(reason, "closed") || contains(reason, "eof") || contains(reason, "End of file") ||
      contains(reason, "reset by peer"))
    return "eof";
  if (contains(reason, "http request")) return "http";
  if (contains(reason, "no shared cipher") || contains(reason, "no suitable signature") ||
      contains(reason, "no shared group") || contains(reason, "no_shared"))
    return "no_shared_cipher";
  if (contains(reason, "version") || contains(reason, "protocol")) return "protocol_version";
  return "other";
}

ServerMetrics::ServerMetrics(Registry& registry) {
  for (std::size_t r = 0; r < kRoles; ++r) {
    std::string role(kRoleNames[r]);
    accepted_[r] = &registry.counter("smtpsd_connections_accepted_total",
                                     "Connections accepted, by listener role.", {{"role", role}});
  }
  for (std::size_t r = 0; r < kRoles; ++r) {
    open_[r] = &registry.gauge("smtpsd_connections_open", "Connections open now, by listener role.",
                               {{"role", std::string(kRoleNames[r])}});
  }
  for (std::size_t r = 0; r < kRoles; ++r) {
    for (std::size_t v = 0; v < kVersions; ++v) {
      tls_[r][v] = &registry.counter(
          "smtpsd_tls_handshakes_total", "TLS handshakes completed, by role and TLS version.",
          {{"role", std::string(kRoleNames[r])}, {"version", std::string(kVersionNames[v])}});
    }
  }
  for (std::size_t r = 0; r < kRoles; ++r) {
    for (std::size_t f = 0; f < kReasons; ++f) {
      tls_failed_[r][f] = &registry.counter(
          "smtpsd_tls_handshake_failures_total", "TLS handshakes that failed, by role and reason.",
          {{"role", std::string(kRoleNames[r])}, {"reason", std::string(kReasonNames[f])}});
    }
  }
  for (std::size_t m = 0; m < kMechanisms; ++m) {
    for (int ok = 1; ok >= 0; --ok) {
      auth_[m][ok] = &registry.counter("smtpsd_auth_total",
                                       "AUTH exchanges that ended, by SASL mechanism and result.",
                                       {{"mechanism", std::string(kMechanismNames[m])},
                                        {"result", ok != 0 ? "success" : "failure"}});
    }
  }
  auth_busy_ = &registry.counter(
      "smtpsd_auth_verifications_refused_total",
      "Password verifications refused with 454 4.7.0 because the verification queue was full.");
  for (std::size_t w = 0; w < 2; ++w) {
    users_held_[w] = &registry.counter(
        "smtpsd_users_held_total",
        "Users whose mail was put on hold in the queue for crossing a sending limit's bound on "
        "distinct external recipients, by the bound's window.",
        {{"window", w == 0 ? "1h" : "24h"}});
  }
  messages_ = &registry.counter("smtpsd_messages_accepted_total",
                                "Messages made durable and acknowledged with 250.");
  recipients_ = &registry.counter("smtpsd_recipients_accepted_total",
                                  "Recipients of the messages acknowledged with 250.");
  accept_to_250_ = &registry.histogram(
      "smtpsd_accept_to_250_seconds",
      "Time from the accept of a connection to each 250 that acknowledges a message on it.",
      latency_buckets());
  for (std::size_t t = 0; t < kTransports; ++t) {
    for (std::size_t r = 0; r < kResults; ++r) {
      deliveries_[r][t] =
          &registry.counter("smtpsd_delivery_attempts_total",
                            "Delivery attempts of one recipient, by result and transport.",
                            {{"result", std::string(kResultNames[r])},
                             {"transport", std::string(kTransportNames[t])}});
    }
  }
  for (std::size_t t = 0; t < kTransports; ++t) {
    delivery_seconds_[t] = &registry.histogram(
        "smtpsd_delivery_seconds", "Duration of one delivery attempt (all its recipients).",
        latency_buckets(), {{"transport", std::string(kTransportNames[t])}});
  }
  for (std::size_t r = 0; r < 3; ++r) {
    dnsbl_[r] = &registry.counter("smtpsd_dnsbl_decisions_total",
                                  "DNS block/allow list decisions of port 25 clients, by result.",
                                  {{"result", std::string(kDnsblResultNames[r])}});
  }
  dnsbl_errors_ = &registry.counter(
      "smtpsd_dnsbl_list_errors_total",
      "DNS list answers that were provider error codes (127.255.255.x) or outside 127.0.0.0/8.");
  for (std::size_t r = 0; r < 2; ++r) {
    early_talkers_[r] = &registry.counter(
        "smtpsd_early_talkers_total",
        "Port 25 clients refused for talking early: before the greeting or improperly pipelined.",
        {{"reason", std::string(kEarlyTalkerNames[r])}});
    pregreet_[r] = &registry.counter(
        "smtpsd_pregreet_total",
        "Port 25 clients that waited out the pre-greet wait, or skipped it (passed recently).",
        {{"result", std::string(kPregreetNames[r])}});
  }
  registry.add_collector([this](std::string& out) {
    append_family_header(out, "smtpsd_smtp_replies_total",
                         "Replies sent to clients, by reply code (4xx and 5xx are refusals).",
                         "counter");
    for (std::size_t code = 200; code < replies_.size(); ++code) {
      std::uint64_t n = replies_[code].load(std::memory_order_relaxed);
      if (n == 0) continue;
      std::string labels;
      append_label(labels, "code", std::to_string(code));
      append_sample(out, "smtpsd_smtp_replies_total", labels, static_cast<double>(n));
    }
  });
}

void ServerMetrics::connection_opened(std::string_view role) {
  std::size_t r = index_of(kRoleNames, role);
  accepted_[r]->inc();
  open_[r]->add();
}

void ServerMetrics::user_held(std::string_view window) {
  users_held_[window == "1h" ? 0 : 1]->inc();
}

void ServerMetrics::connection_closed(std::string_view role) {
  open_[index_of(kRoleNames, role)]->sub();
}

void ServerMetrics::tls_established(std::string_view role, std::string_view version) {
  tls_[index_of(kRoleNames, role)][index_of(kVersionNames, version)]->inc();
}

void ServerMetrics::tls_handshake_failed(std::string_view role, std::string_view reason) {
  tls_failed_[index_of(kRoleNames, role)][index_of(kReasonNames, handshake_failure_reason(reason))]
      ->inc();
}

void ServerMetrics::auth_result(std::string_view mechanism, bool success) {
  auth_[index_of(kMechanismNames, mechanism)][success ? 1 : 0]->inc();
}

void ServerMetrics::auth_verification_refused() {
  auth_busy_->inc();
}

void ServerMetrics::replies_sent(std::string_view output) {
  // A final reply line is three digits and a space (RFC 5321 §4.2.1); continuation lines
  // have a hyphen and are not counted.
  std::size_t at = 0;
  while (at + 4 <= output.size()) {
    std::string_view line = output.substr(at);
    if (line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' && line[2] >= '0' &&
        line[2] <= '9' && line[3] == ' ') {
      std::size_t code =
          static_cast<std::size_t>((line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
      replies_[code].fetch_add(1, std::memory_order_relaxed);
    }
    std::size_t end = output.find('\n', at);
    if (end == std::string_view::npos) break;
    at = end + 1;
  }
}

void ServerMetrics::message_accepted(std::size_t recipients,
                                     std::chrono::nanoseconds since_accept) {
  messages_->inc();
  recipients_->inc(recipients);
  accept_to_250_->observe_nanoseconds(
      static_cast<std::uint64_t>(since_accept.count() > 0 ? since_accept.count() : 0));
}

void ServerMetrics::delivery_attempt(std::string_view result, std::string_view transport) {
  std::size_t r = index_of(kResultNames, result);
  if (r == kResults - 1 && result != "bounced") return;  // not a result we know
  deliveries_[r][index_of(kTransportNames, transport)]->inc();
}

void ServerMetrics::delivery_duration(std::string_view transport,
                                      std::chrono::nanoseconds duration) {
  delivery_seconds_[index_of(kTransportNames, transport)]->observe_nanoseconds(
      static_cast<std::uint64_t>(duration.count() > 0 ? duration.count() : 0));
}

ServerMetrics& server_metrics() {
  static ServerMetrics instance(metrics());
  return instance;
}

void add_certificate_collector(Registry& registry,
                               std::function<std::vector<CertificateExpiry>()> list) {
  registry.add_collector([list = std::move(list)](std::string& out) {
    std::vector<CertificateExpiry> certificates = list();
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    // Two families with the same labels: the seconds left, and notAfter itself (offset 0).
    struct Family {
      std::string_view name, help;
      std::int64_t minus;
    };
    for (const Family& family :
         {Family{"smtpsd_certificate_expiry_seconds",
                 "Seconds until the certificate expires (negative: expired).", now},
          Family{"smtpsd_certificate_not_after_seconds",
                 "The certificate's notAfter as a Unix time.", 0}}) {
      append_family_header(out, family.name, family.help, "gauge");
      for (const CertificateExpiry& c : certificates) {
        std::string labels;
        append_label(labels, "file", c.file);
        append_label(labels, "names", c.names);
        append_sample(out, family.name, labels, static_cast<double>(c.not_after - family.minus));
      }
    }
  });
}

void ServerMetrics::dnsbl_decision(std::string_view result) {
  dnsbl_[std::min<std::size_t>(index_of(kDnsblResultNames, result), 2)]->inc();
}

void ServerMetrics::dnsbl_list_error() {
  dnsbl_errors_->inc();
}

void ServerMetrics::early_talker(std::string_view reason) {
  early_talkers_[std::min<std::size_t>(index_of(kEarlyTalkerNames, reason), 1)]->inc();
}

void ServerMetrics::pregreet(std::string_view result) {
  pregreet_[std::min<std::size_t>(index_of(kPregreetNames, result), 1)]->inc();
}

}  // namespace obs
