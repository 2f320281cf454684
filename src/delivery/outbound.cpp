// outbound.cpp — see outbound.h.
#include "delivery/outbound.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "base/ascii.h"
#include "base/clock.h"
#include "base/endpoint.h"
#include "base/network.h"
#include "delivery/dane.h"
#include "delivery/mta_sts.h"
#include "delivery/require_tls.h"
#include "delivery/system_resolver.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace delivery {
namespace {

using Clock = std::chrono::steady_clock;
using queue::DeliveryResult;

constexpr std::size_t kMaxHostsRemembered = 4096;  // server addresses with a timeout record
// Without a validating resolver: domains warned about (at most), how often each, and how
// many of a domain's MX hosts are asked for TLSA records.
constexpr std::size_t kMaxDaneWarnedDomains = 1024;
constexpr std::chrono::hours kDaneWarningInterval{24};
constexpr std::size_t kMaxTlsaProbes = 3;
using queue::DeliveryStatus;

DeliveryResult temporary(std::string detail, std::string transport,
                         std::string enhanced = "4.4.1") {
  DeliveryResult result;
  result.status = DeliveryStatus::kTransient;
  result.detail = std::move(detail);
  result.transport = std::move(transport);
  result.enhanced = std::move(enhanced);
  return result;
}

// What the no-downgrade memory learns from a session: a certificate verified by the trust
// store is "verified"; one authenticated by DANE proves only that TLS is there (the domain's
// hosts without TLSA records need not have a CA's certificate, RFC 7672 §2.2).
SeenTls achieved(const TlsOutcome& tls) {
  if (!tls.encrypted) return SeenTls::kNone;
  return tls.verified && !tls.dane ? SeenTls::kVerified : SeenTls::kEncrypted;
}

// A unix socket or HOST:PORT (the address is found at each connection: system_resolver.h).
Endpoint lmtp_endpoint(const std::optional<base::Endpoint>& lmtp) {
  Endpoint endpoint;
  if (!lmtp) return endpoint;
  if (lmtp->is_unix()) {
    endpoint.unix_socket = true;
    endpoint.address = lmtp->unix_path;
    endpoint.host = "localhost";
    return endpoint;
  }
  endpoint.host = lmtp->tcp.host;
  endpoint.port = lmtp->tcp.port;
  return endpoint;
}

}  // namespace

base::Expected<std::unique_ptr<Outbound>, std::string> Outbound::create(OutboundOptions options) {
  std::unique_ptr<Outbound> outbound(new Outbound(std::move(options)));
  // Without a ca_file, the system trust store is read at the first delivery (trusted_context).
  auto context = tls::make_client_context(outbound->options_.ca_file, tls::SystemTrust::kLater);
  if (!context) return base::unexpected(context.error());
  outbound->tls_context_ = std::move(context.value());
  // DANE (dane.h) is enabled per connection; the context must allow it once.
  if (SSL_CTX_dane_enable(outbound->tls_context_.get()) <= 0) {
    return base::unexpected(std::string("the TLS library cannot do DANE"));
  }
  if (outbound->options_.dns == nullptr) {
    return base::unexpected(std::string("outbound delivery needs a DNS resolver"));
  }
  outbound->resolver_ =
      std::make_unique<MxResolver>(outbound->options_.dns, outbound->options_.mx_deadline);
  // One line per line of the memory file that could not be read (the rest is used).
  std::string_view errors = outbound->memory_.load_errors();
  while (!errors.empty()) {
    const std::size_t end = errors.find('\n');
    obs::Log("tls_memory_unreadable", obs::Level::kWarning).kv("detail", errors.substr(0, end));
    errors.remove_prefix(end == std::string_view::npos ? errors.size() : end + 1);
  }
  outbound->janitor_ = std::thread([raw = outbound.get()] { raw->janitor(); });
  return outbound;
}

SSL_CTX* Outbound::trusted_context() {
  std::call_once(trust_loaded_, [this] {
    if (!options_.ca_file.empty()) return;
    auto loaded = tls::load_system_trust(tls_context_.get());
    if (!loaded) {
      // Every certificate will then fail verification, each delivery saying so.
      obs::Log("trust_store_unreadable", obs::Level::kError).kv("detail", loaded.error());
    } else if (loaded.value() == 0) {
      const auto [file, dir] = tls::system_trust_paths();
      obs::Log("trust_store_empty", obs::Level::kWarning).kv("file", file).kv("dir", dir);
    }
  });
  return tls_context_.get();
}

Outbound::Outbound(OutboundOptions options)
    : options_(std::move(options)),
      memory_(options_.tls_memory_file),
      lmtp_(lmtp_endpoint(options_.lmtp)),
      dane_unavailable_warned_(kMaxDaneWarnedDomains, kDaneWarningInterval) {}

Outbound::~Outbound() {
  {
    std::lock_guard lock(pool_mutex_);
    stopping_ = true;
  }
  pool_changed_.notify_all();
  if (janitor_.joinable()) janitor_.join();
  std::unordered_map<std::string, Destination> pool;
  {
    std::lock_guard lock(pool_mutex_);
    pool.swap(pool_);
  }
  for (auto& [key, destination] : pool) {
    for (auto& connection : destination.idle)
      connection->quit();
  }
}

DomainTls Outbound::domain_tls(const std::string& domain, Relaxation relaxation) const {
  DomainTls tls;
  tls.name = domain;
  tls.relaxation = relaxation;
  tls.level = tls.relaxed() ? tls::OutboundLevel::kMay : level_for(domain);
  tls.static_policy = std::any_of(options_.tls_policy.begin(), options_.tls_policy.end(),
                                  [&](const auto& entry) { return entry.first == domain; });
  tls.remembered = tls.relaxed() ? SeenTls::kNone : memory_.best(domain);
  return tls;
}

std::string Outbound::describe_policy(std::string_view domain_view) {
  const std::string domain = base::ascii_lowercase(domain_view);
  std::string out = "TLS policy for mail to " + domain + ":\n";
  if (options_.relay) {
    return out + "  all mail goes through the relay " + base::to_string(*options_.relay) +
           " at level " + std::string(tls::to_string(options_.relay_tls)) + " (policy static)\n";
  }
  const std::optional<std::int64_t> exception = memory_.exception_until(domain, base::unix_now());
  // What the table and the memory say, shown even while an exception sets them aside.
  const DomainTls listed = domain_tls(domain, Relaxation::kNone);
  if (exception) {
    out += "  EXCEPTION until " + std::to_string(*exception) +
           " (unix time): opportunistic TLS; DANE, MTA-STS, the table and the memory are not "
           "applied (REQUIRETLS mail excepted)\n";
  }
  out += "  static level: " + std::string(tls::to_string(listed.level)) +
         (listed.static_policy ? " ([[delivery.tls_policy]])\n" : " (default_tls)\n");
  out += "  learned: " +
         (listed.remembered == SeenTls::kNone
              ? std::string("nothing remembered")
              : "reached with " + std::string(to_string(listed.remembered)) +
                    " TLS before: no less is accepted") +
         "\n";
  DomainTls decided = exception ? domain_tls(domain, Relaxation::kException) : listed;
  PostureOptions posture_options;
  posture_options.port = options_.mx_port;
  posture_options.deadline = options_.mx_deadline;
  const Posture posture =
      look_up_posture(*options_.dns, *resolver_, options_.mta_sts.get(), domain, posture_options);
  decided.sts = posture.sts_asked ? &posture.sts : nullptr;
  return out + describe_posture(posture, decided);
}

tls::OutboundLevel Outbound::level_for(std::string_view domain) const {
  std::string name = base::ascii_lowercase(domain);
  for (const auto& [policy_domain, level] : options_.tls_policy) {
    if (policy_domain == name) return level;
  }
  return options_.default_tls;
}

std::unique_ptr<Connection> Outbound::acquire(const std::string& key, bool& got_slot) {
  std::vector<std::unique_ptr<Connection>> stale;
  std::unique_ptr<Connection> reuse;
  {
    std::unique_lock lock(pool_mutex_);
    Destination& destination = pool_[key];
    // A bounded wait: a destination whose connections are all stuck must not take every
    // delivery thread with it.
    got_slot = pool_changed_.wait_for(lock, std::chrono::seconds(30), [&] {
      return stopping_ || destination.active < options_.max_per_destination;
    });
    if (!got_slot || stopping_) {
      got_slot = false;
      return nullptr;
    }
    ++destination.active;
    const Clock::time_point now = Clock::now();
    while (!destination.idle.empty() && !reuse) {
      std::unique_ptr<Connection> candidate = std::move(destination.idle.back());
      destination.idle.pop_back();
      if (now - candidate->last_used() <= options_.connection_cache && candidate->idle_ok()) {
        reuse = std::move(candidate);
      } else {
        stale.push_back(std::move(candidate));
      }
    }
  }
  for (auto& connection : stale)
    connection->quit();
  return reuse;
}

void Outbound::release(const std::string& key, std::unique_ptr<Connection> connection) {
  bool keep = connection && connection->usable() && options_.connection_cache.count() > 0 &&
              connection->messages_sent() < options_.max_messages_per_connection;
  {
    std::lock_guard lock(pool_mutex_);
    Destination& destination = pool_[key];
    --destination.active;
    if (keep && !stopping_) destination.idle.push_back(std::move(connection));
  }
  pool_changed_.notify_all();
  if (connection) connection->quit();
}

bool Outbound::acquire_host(const std::string& address, std::string& busy) {
  std::unique_lock lock(pool_mutex_);
  auto limit = [this](const Host& host) {
    return std::max(1u, options_.max_per_host >> std::min(host.timeouts, 31u));
  };
  Host& host = hosts_[address];
  if (host.active >= limit(host)) {
    // A healthy server may free a slot soon; one that went silent is not waited for.
    if (host.timeouts == 0) {
      pool_changed_.wait_for(lock, std::chrono::seconds(5), [&] {
        return stopping_ || host.timeouts > 0 || host.active < limit(host);
      });
    }
    if (stopping_ || host.active >= limit(host)) {
      busy = "all " + std::to_string(limit(host)) + " connections to " + address + " are busy" +
             (host.timeouts > 0
                  ? " (it timed out " + std::to_string(host.timeouts) + " time(s) in a row)"
                  : "");
      return false;
    }
  }
  ++host.active;
  return true;
}

void Outbound::release_host(const std::string& address, bool timed_out) {
  unsigned timeouts = 0;
  {
    std::lock_guard lock(pool_mutex_);
    Host& host = hosts_[address];
    if (host.active > 0) --host.active;
    host.timeouts = timed_out ? std::min(host.timeouts + 1, 31u) : 0;
    timeouts = host.timeouts;
    if (host.active == 0 && host.timeouts == 0) hosts_.erase(address);
    // Forged senders can name any number of silent hosts: past kMaxHostsRemembered, the idle
    // ones are forgotten (they start again at the full limit), so the table stays bounded.
    if (hosts_.size() > kMaxHostsRemembered) {
      std::erase_if(hosts_, [](const auto& entry) { return entry.second.active == 0; });
    }
  }
  pool_changed_.notify_all();
  if (timed_out) {
    obs::Log("host_slow", obs::Level::kWarning)
        .kv("host", address)
        .kv("timeouts", static_cast<std::uint64_t>(timeouts))
        .kv("max_connections",
            static_cast<std::uint64_t>(std::max(1u, options_.max_per_host >> timeouts)));
  }
}

void Outbound::forget_next_hops() {
  std::vector<std::unique_ptr<Connection>> closing;
  {
    std::lock_guard lock(pool_mutex_);
    for (auto& [key, destination] : pool_) {
      for (auto& connection : destination.idle)
        closing.push_back(std::move(connection));
      destination.idle.clear();
    }
    for (auto& [address, host] : hosts_)
      host.timeouts = 0;
    std::erase_if(hosts_, [](const auto& entry) { return entry.second.active == 0; });
  }
  pool_changed_.notify_all();
  for (auto& connection : closing)
    connection->quit();
}

void Outbound::janitor() {
  std::unique_lock lock(pool_mutex_);
  while (!stopping_) {
    pool_changed_.wait_for(lock, std::chrono::milliseconds(500));
    std::vector<std::unique_ptr<Connection>> expired;
    const Clock::time_point now = Clock::now();
    for (auto& [key, destination] : pool_) {
      auto& idle = destination.idle;
      for (auto it = idle.begin(); it != idle.end();) {
        if (now - (*it)->last_used() > options_.connection_cache) {
          expired.push_back(std::move(*it));
          it = idle.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (expired.empty()) continue;
    lock.unlock();
    for (auto& connection : expired)
      connection->quit();
    lock.lock();
  }
}

std::string Outbound::below_floor(const TlsOutcome& tls, const std::string& where,
                                  tls::OutboundLevel level, SeenTls remembered) const {
  if (level == tls::OutboundLevel::kNone) return {};  // the administrator chose plain text
  if (level >= tls::OutboundLevel::kEncrypt && !tls.encrypted) {
    return "TLS is required (policy " + std::string(tls::to_string(level)) + ") but " + where +
           " did not offer STARTTLS";
  }
  if (level == tls::OutboundLevel::kVerify && !tls.verified) {
    return "TLS policy verify: the certificate of " + where +
           " does not verify: " + tls.verify_error;
  }
  SeenTls now = achieved(tls);
  if (now < remembered) {
    return "TLS downgrade refused: this destination was reached with " +
           std::string(to_string(remembered)) + " TLS before, " + where + " now offers " +
           std::string(to_string(now)) +
           (tls.encrypted && !tls.verified ? " (" + tls.verify_error + ")" : "") +
           "; if that is expected, run: smtpsctl tls forget DOMAIN";
  }
  return {};
}

void Outbound::warn_dane_unavailable(const std::string& domain,
                                     const std::vector<MxTarget>& targets, std::uint16_t port) {
  // One look per domain and interval, whatever it finds: a domain without TLSA records costs
  // no lookup per message either.
  if (!dane_unavailable_warned_.first_in_window(domain)) return;
  const Clock::time_point deadline = Clock::now() + options_.mx_deadline;
  for (std::size_t i = 0; i < targets.size() && i < kMaxTlsaProbes; ++i) {
    // The records may be at the target of the host's CNAME chain (RFC 7672 §2.2.2), which
    // the address lookup (cached since the MX round) names; MxTarget::canonical is only
    // set for a secure chain.
    const MxTarget& target = targets[i];
    std::string published;
    const std::string canonical =
        options_.dns->lookup_and_wait(target.host, dns::Type::kA, base::time_left(deadline))
            ->canonical_name;
    if (!canonical.empty() && canonical != target.host) {
      published =
          tlsa_published_unvalidated(*options_.dns, canonical, port, base::time_left(deadline));
    }
    if (published.empty()) {
      published =
          tlsa_published_unvalidated(*options_.dns, target.host, port, base::time_left(deadline));
    }
    if (published.empty()) continue;
    obs::Log("dane_unavailable", obs::Level::kWarning)
        .kv("domain", domain)
        .kv("host", target.host)
        .kv("detail", published +
                          " has TLSA records, but the DNS resolver does not validate DNSSEC: "
                          "mail to this domain goes without DANE (MTA-STS, the policy table, "
                          "the memory or opportunistic TLS decide); said once a day per domain");
    return;
  }
}

Outbound::Outcome Outbound::transact(Connection& connection, const queue::StoredMessage& message,
                                     std::span<const std::size_t> recipients,
                                     const std::string& transport,
                                     std::vector<DeliveryResult>& results, std::string& failure,
                                     bool reused) {
  auto sent = connection.send(message, recipients);
  const std::string where = connection.endpoint().describe();
  const std::string tls = connection.tls().describe();
  const bool dsn = connection.capabilities().dsn;
  auto apply = [&](const smtp::RecipientResult& r) {
    auto position = std::find(recipients.begin(), recipients.end(), r.index);
    if (position == recipients.end() || r.reply.code == 0) return;
    DeliveryResult& result = results[static_cast<std::size_t>(position - recipients.begin())];
    const int code = r.reply.code;
    result.status = code >= 200 && code < 300 ? DeliveryStatus::kDelivered
                    : code >= 500             ? DeliveryStatus::kPermanent
                                              : DeliveryStatus::kTransient;
    result.detail = "relay=" + where + " tls=" + tls + " reply=\"" + r.reply.summary() + "\"";
    result.transport = transport;
    result.enhanced = r.reply.enhanced;
    result.remote_mta = connection.endpoint().host;
    result.diagnostic = r.reply.summary();
    result.remote = transport != "lmtp";
    result.dsn_passed_on = dsn && result.remote;
  };
  if (sent) {
    for (const smtp::RecipientResult& r : *sent)
      apply(r);
    return Outcome::kDone;
  }
  const TransportFailure& f = sent.error();
  const std::vector<smtp::RecipientResult>& partial = connection.partial_results();
  const bool answered_some = std::any_of(
      partial.begin(), partial.end(),
      [](const smtp::RecipientResult& r) { return r.reply.code >= 200 && r.reply.code < 300; });
  // After the end of data the message may have arrived even without a reply: sending it
  // again elsewhere now would make a copy, so it waits for the next attempt instead.
  const bool uncertain = f.stage == "content" || answered_some;
  if (!uncertain && (!f.reply || (reused && (f.reply->code == 421 || f.stage == "mail" ||
                                             f.stage == "protocol")))) {
    failure = where + ": " + f.detail;
    return Outcome::kTryElsewhere;
  }
  for (DeliveryResult& result : results) {
    result = temporary(where + " tls=" + tls + ": " + f.detail, transport, "4.4.2");
    if (f.reply && !uncertain) {
      // The server refused the whole transaction (MAIL, DATA): its answer is everyone's.
      result.status =
          f.reply->code >= 500 ? DeliveryStatus::kPermanent : DeliveryStatus::kTransient;
      result.detail = where + " tls=" + tls + " said at " + f.stage + ": " + f.reply->summary();
      result.enhanced = f.reply->enhanced;
      result.remote_mta = connection.endpoint().host;
      result.diagnostic = f.reply->summary();
    }
  }
  for (const smtp::RecipientResult& r : partial)
    apply(r);  // an LMTP server's replies before it broke off still count
  return Outcome::kUncertain;
}

std::vector<DeliveryResult> Outbound::deliver_remote(const queue::StoredMessage& message,
                                                     std::span<const std::size_t> recipients,
                                                     std::string_view domain_view,
                                                     const NextHop* via) {
  const std::string domain = base::ascii_lowercase(domain_view);
  // The server to hand the mail to: a next hop of the router's choice, else the relay of
  // [delivery]; none: the MX hosts.
  std::optional<NextHop> hop;
  if (via) {
    hop = *via;
  } else if (options_.relay) {
    hop =
        NextHop{*options_.relay, options_.relay_tls, options_.relay_user, options_.relay_password};
  }
  const bool relay = hop.has_value();
  const std::string transport = relay ? "relay" : "smtp";
  const std::string memory_key = relay ? hop->url.host : domain;
  const bool require_tls = must_require_tls(message.envelope);  // RFC 8689: require_tls.h
  // The operator's exception (tls_memory.h) for a destination whose policy is broken:
  // opportunistic TLS, whatever DANE, MTA-STS, the table or the memory say; said and
  // counted. Never for REQUIRETLS mail, which must be verified whatever the exception.
  const std::optional<std::int64_t> operator_exception =
      relay || require_tls ? std::nullopt : memory_.exception_until(domain, base::unix_now());
  // `TLS-Required: No` (RFC 8689 §5) from an authenticated sender: delivered even when the
  // destination's DANE, MTA-STS or learned policy fails, like an exception (never with
  // REQUIRETLS, which the intake does not let both be).
  const bool sender_relaxed =
      !relay && message.tls_optional && !operator_exception && !must_require_tls(message.envelope);
  const std::optional<std::int64_t> excepted =
      sender_relaxed ? std::optional<std::int64_t>(0) : operator_exception;
  if (sender_relaxed) {
    obs::Log("tls_required_no")
        .kv("domain", domain)
        .kv("id", message.id)
        .kv("detail",
            "TLS-Required: No: DANE, MTA-STS, the policy table and the memory are not applied");
  }
  if (operator_exception) {
    static obs::Counter& used = obs::metrics().counter(
        "smtpsd_tls_exceptions_used_total",
        "Delivery attempts whose TLS policy an operator's exception set aside.");
    used.inc();
    obs::Log("tls_exception", obs::Level::kWarning)
        .kv("domain", domain)
        .kv("until", *operator_exception)
        .kv("detail",
            "the operator's exception: DANE, the policy table and the memory are not "
            "applied (smtpsctl tls except)");
  }
  // What applies to every host (posture.h); DANE and MTA-STS are decided per MX host below.
  DomainTls decided = domain_tls(domain, sender_relaxed       ? Relaxation::kSenderOptional
                                         : operator_exception ? Relaxation::kException
                                                              : Relaxation::kNone);
  if (relay) {
    decided.name = memory_key;
    decided.level = hop->tls;
    decided.static_policy = true;
    decided.remembered = memory_.best(memory_key);
  }
  const tls::OutboundLevel level = decided.level;
  const SeenTls remembered = decided.remembered;
  // Which policy decided the TLS of this attempt, for the log lines (docs/architecture.md
  // "Outbound TLS policy").
  std::string_view policy = decided.fallback_policy();  // of the host last tried
  // A cached connection is authenticated as its account and verified at its level: a next
  // hop's connections are shared only by mail for the same URL, account and TLS level, and
  // a connection made with a domain's policy set aside (an exception, TLS-Required: No)
  // never carries that domain's other mail.
  const std::string key = !relay ? "mx:" + domain + (excepted ? " relaxed" : "")
                          : via  ? "relay:" + base::to_string(hop->url) + " " + hop->user + " " +
                                      std::string(tls::to_string(hop->tls))
                                : "relay";
  std::vector<DeliveryResult> results(recipients.size());
  const Clock::time_point deadline = Clock::now() + options_.attempt_timeout;
  std::string held_host;  // the address whose slot this attempt holds
  auto let_go_of_host = [&](bool timed_out) {
    if (held_host.empty()) return;
    release_host(held_host, timed_out);
    held_host.clear();
  };

  // Ends the attempt: the connection goes back to the pool (or is closed), and the TLS it
  // had is remembered for the domain.
  auto finish = [&](std::unique_ptr<Connection> connection) {
    let_go_of_host(false);
    for (DeliveryResult& result : results)
      result.tls_policy = policy;
    if (connection) {
      SeenTls seen = achieved(connection->tls());
      if (memory_.record(memory_key, seen, base::unix_now())) {
        obs::Log("tls_memory").kv("domain", memory_key).kv("level", to_string(seen));
      }
    }
    release(key, std::move(connection));
    return results;
  };

  bool got_slot = false;
  std::string failure;
  std::unique_ptr<Connection> reused = acquire(key, got_slot);
  if (!got_slot) {
    for (auto& r : results) {
      r = temporary("all " + std::to_string(options_.max_per_destination) + " connections to " +
                        memory_key + " are busy",
                    transport, "4.4.5");
    }
    return results;
  }
  std::string busy;
  if (reused) {
    const std::string where = reused->endpoint().describe();
    // A REQUIRETLS message takes a fresh connection: its route (the MX answer) is checked first.
    if (below_floor(reused->tls(), where, level, remembered).empty() && !require_tls &&
        acquire_host(reused->endpoint().address, busy)) {
      held_host = reused->endpoint().address;
      reused->set_attempt_deadline(deadline);
      if (reused->tls().dane) policy = "dane";
      Outcome outcome =
          transact(*reused, message, recipients, transport, results, failure, /*reused=*/true);
      if (outcome == Outcome::kDone) return finish(std::move(reused));
      let_go_of_host(reused->timed_out());
      if (outcome == Outcome::kUncertain) return finish(nullptr);
    }
    reused->quit();  // closed by the server while idle, no longer good enough, or busy
  }

  // Where to connect: the smarthost, or the MX hosts of the domain.
  std::vector<MxTarget> targets;
  bool mx_secure = false;
  std::uint16_t port = options_.mx_port;
  if (relay) {
    const std::string& host = hop->url.host;
    port = hop->url.port;
    auto addresses = resolve_with_system(host);
    if (!addresses) {
      for (auto& r : results)
        r = temporary("relay " + host + ": " + addresses.error(), transport, "4.4.3");
      return finish(nullptr);
    }
    targets.push_back(MxTarget{host, 0, std::move(addresses.value()), true, false, {}});
  } else {
    MxAnswer answer = resolver_->resolve(domain);
    if (answer.status != MxStatus::kOk) {
      const bool permanent =
          answer.status == MxStatus::kNullMx || answer.status == MxStatus::kNoDomain;
      for (auto& r : results) {
        r = temporary(answer.detail, transport, "4.4.3");
        if (permanent) {
          r.status = DeliveryStatus::kPermanent;
          r.enhanced = answer.status == MxStatus::kNullMx ? "5.1.10" : "5.1.2";
        }
      }
      return finish(nullptr);
    }
    targets = std::move(answer.targets);
    mx_secure = answer.secure;
    // RFC 7672 needs validated answers: a domain that asks for DANE is told of, loudly.
    if (!excepted && !options_.dns->validates()) warn_dane_unavailable(domain, targets, port);
  }

  // MTA-STS (RFC 8461), for the hosts DANE does not decide (DANE takes precedence, §2): in
  // enforce mode a host must match the policy's mx patterns and present a certificate that
  // verifies for its name; in testing mode failures are only reported.
  PolicyLookup sts;
  if (!relay && !excepted && options_.mta_sts) {
    sts = options_.mta_sts->policy_for(domain, Clock::now() + options_.mx_deadline);
    if (sts.failure != StsFailure::kNone) {
      obs::Log("sts_policy_failed", sts.has_policy() ? obs::Level::kInfo : obs::Level::kWarning)
          .kv("domain", domain)
          .kv("type", to_string(sts.failure))
          .kv("cached", sts.has_policy())
          .kv("detail", sts.detail);
    }
  }
  decided.sts = &sts;
  const bool sts_enforced = decided.sts_enforced();
  std::vector<std::string> sts_strings;
  if (sts.has_policy() && options_.tls_reports) {  // only TLS reports show the policy text
    const std::string formatted = format_sts_policy(sts.policy);
    std::string_view text = formatted;
    while (!text.empty()) {
      const std::size_t end = text.find_first_of("\r\n");
      if (end != 0) sts_strings.emplace_back(text.substr(0, end));
      text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    }
  }
  if (sts.failure != StsFailure::kNone && options_.tls_reports) {
    options_.tls_reports->failure(
        TlsrptPolicy{sts.has_policy() ? "sts" : "no-policy-found", domain, sts_strings, {}},
        TlsrptFailure{std::string(to_string(sts.failure)), {}, "mta-sts." + domain, {}});
  }
  std::optional<RequireTlsRefusal> refusal;  // of REQUIRETLS: the last host's, or the route's
  if (require_tls) refusal = route_refusal(relay, level, mx_secure || sts_enforced, memory_key);
  if (refusal) {
    log_refusal(memory_key, "", *refusal);
    results = refused(*refusal, recipients.size(), transport);
    return finish(nullptr);
  }

  TransportOptions transport_options;
  transport_options.client.protocol = smtp::ClientProtocol::kSmtp;
  transport_options.client.helo_name = options_.helo_name;
  if (relay) {
    transport_options.client.auth_user = hop->user;
    transport_options.client.auth_password = hop->password;
    transport_options.implicit_tls = hop->url.implicit_tls;
  }
  transport_options.starttls = level != tls::OutboundLevel::kNone || require_tls;
  transport_options.client.require_tls = require_tls;
  transport_options.tls_context = trusted_context();
  transport_options.connect_timeout = options_.connect_timeout;
  transport_options.command_timeout = options_.command_timeout;
  transport_options.attempt_deadline = deadline;

  std::size_t tried = 0;
  bool out_of_time = false;
  bool only_busy = true;          // every address was skipped as busy: nothing was tried
  std::size_t refused_hosts = 0;  // of REQUIRETLS (RFC 8689 §4.2.1: the next host is tried)
  bool skipped_host = false;      // a host not tried (its DANE or MTA-STS said no): may work later
  for (const MxTarget& target : targets) {
    // DANE for this MX host (RFC 7672 §2.2): a failed TLSA lookup disqualifies it; usable
    // records authenticate it instead of the other policies; secure but unusable records
    // still make TLS mandatory.
    DaneLookup dane;
    if (!relay && !excepted) {
      dane = lookup_dane(*options_.dns, target.host, port, mx_secure, target.secure,
                         options_.mx_deadline, target.canonical);
    }
    const HostTls host = decide_host(decided, dane, target.host);
    // The policy of this host's sessions for TLS reports (RFC 8460 §4.3).
    TlsrptPolicy report_policy{std::string(host.report_type), domain, {}, {}};
    if (host.report_type == "tlsa") {
      report_policy.mx_host = dane.base;
      for (const dns::TlsaRecord& record : dane.usable)
        report_policy.strings.push_back(to_string(record));
    } else if (host.report_type == "sts") {
      report_policy.strings = sts_strings;
    }
    // Each session is also counted by the policy that decided it (metrics: bounded labels,
    // the policy names and RFC 8460's result types).
    auto report = [&](const std::string& result_type, const std::string& address) {
      if (relay) return;
      // A session with the policy set aside (an exception, TLS-Required: No, a TLS report's
      // own delivery) tells nothing of the domain's policy: counted, never reported.
      obs::metrics()
          .counter("smtpsd_outbound_tls_sessions_total",
                   "MX delivery sessions by the TLS policy that decided them and their result "
                   "(success, or an RFC 8460 failure type).",
                   {{"policy", std::string(host.policy)},
                    {"result", result_type.empty() ? std::string("success") : result_type}})
          .inc();
      if (!options_.tls_reports || excepted) return;
      if (result_type.empty())
        options_.tls_reports->success(report_policy);
      else
        options_.tls_reports->failure(report_policy,
                                      TlsrptFailure{result_type, {}, target.host, address});
    };
    if (dane.kind == DaneLookup::Kind::kFailed) {
      obs::Log("dane_failed", obs::Level::kWarning)
          .kv("domain", domain)
          .kv("host", target.host)
          .kv("detail", dane.detail);
      if (dane.bogus) report("dnssec-invalid", "");
    }
    const bool sts_unnamed = host.sts_unnamed;
    if (sts_unnamed) {
      // §4.1: an MX host the policy does not name is not used in enforce mode (in testing
      // mode the session is reported as failed below).
      if (sts_enforced) report("validation-failure", "");
      obs::Log(sts_enforced ? "sts_mx_refused" : "sts_mx_mismatch", obs::Level::kWarning)
          .kv("domain", domain)
          .kv("host", target.host)
          .kv("mode", to_string(sts.policy.mode));
    }
    if (!host.used) {
      failure = host.why_not;
      policy = host.policy;
      skipped_host = true;
      continue;
    }
    const bool dane_authenticates = host.dane_authenticates;
    const tls::OutboundLevel host_level = host.level;
    transport_options.starttls = host_level != tls::OutboundLevel::kNone || require_tls;
    transport_options.dane_tlsa = dane.usable;
    transport_options.dane_base = dane_authenticates ? dane.base : std::string();
    // What the TLS of a connection to this host must be, else the host is refused.
    auto tls_refusal = [this, dane_authenticates, host_level, remembered](
                           const TlsOutcome& tls, const std::string& where) {
      if (dane_authenticates && !tls.dane) {
        return "DANE authentication of " + where +
               " failed: " + (tls.encrypted ? tls.verify_error : std::string("no TLS"));
      }
      if (dane_authenticates) return std::string();
      return below_floor(tls, where, host_level, remembered);
    };
    for (const std::string& address : target.addresses) {
      if (tried >= 10) break;  // bound the time one attempt can take
      ++tried;
      if (Clock::now() >= deadline) {
        out_of_time = true;
        break;
      }
      if (!acquire_host(address, busy)) {
        failure = busy;
        obs::Log("host_busy").kv("domain", memory_key).kv("host", address).kv("detail", busy);
        continue;
      }
      held_host = address;
      only_busy = false;
      Endpoint endpoint{target.host, address, port, false};
      const std::string where = endpoint.describe();
      policy = host.policy;
      // Checked right after the handshake, before EHLO and AUTH go inside the TLS.
      transport_options.check_tls = [tls_refusal, where](const TlsOutcome& tls) {
        return tls_refusal(tls, where);
      };
      auto opened = Connection::open(endpoint, transport_options);
      const bool handshake_failed =
          !opened && (opened.error().stage == "tls" ||
                      (opened.error().stage == "starttls" && opened.error().reply));
      if (handshake_failed && host_level == tls::OutboundLevel::kMay &&
          remembered == SeenTls::kNone && !transport_options.implicit_tls && !require_tls) {
        // Opportunistic TLS that fails (a broken handshake, STARTTLS refused with 454) falls
        // back to plain text, as RFC 3207 §4 allows and as other MTAs do; never where the
        // policy or the memory says TLS is required.
        obs::Log("tls_fallback")
            .kv("domain", domain)
            .kv("host", where)
            .kv("detail", opened.error().detail);
        TransportOptions plain = transport_options;
        plain.starttls = false;
        opened = Connection::open(endpoint, plain);
      }
      if (!opened) {
        if (opened.error().stage == "tls-policy")
          report(dane_authenticates ? "validation-failure" : "certificate-not-trusted", address);
        else if (opened.error().stage == "tls")
          report("validation-failure", address);
        let_go_of_host(opened.error().timed_out);
        failure = where + ": " + opened.error().detail;
        obs::Log(opened.error().stage == "tls-policy" ? "tls_refused" : "connect_failed")
            .kv("domain", memory_key)
            .kv("host", where)
            .kv("stage", opened.error().stage)
            .kv("level", tls::to_string(host_level))
            .kv("remembered", to_string(remembered))
            .kv("detail", opened.error().detail);
        if (opened.error().stage == "tls-policy") failure = opened.error().detail;
        if (auto why = require_tls ? open_refusal(opened.error(), where) : std::nullopt) {
          log_refusal(memory_key, where, *why);
          failure = why->detail;
          refusal = std::move(why);
          ++refused_hosts;
        }
        continue;
      }
      std::unique_ptr<Connection> connection = std::move(opened.value());
      if (std::string floor = tls_refusal(connection->tls(), where); !floor.empty()) {
        report(connection->tls().encrypted ? "validation-failure" : "starttls-not-supported",
               address);
        failure = floor;
        obs::Log("tls_refused")
            .kv("domain", memory_key)
            .kv("host", where)
            .kv("stage", "ehlo")
            .kv("level", tls::to_string(host_level))
            .kv("remembered", to_string(remembered))
            .kv("detail", floor);
        connection->quit();
        let_go_of_host(false);
        continue;
      }
      // The TLS of this session was as its policy asks: a successful session (§4.4); in
      // MTA-STS testing mode, a session the policy would have refused is reported as such.
      const TlsOutcome& session_tls = connection->tls();
      if (host.sts_host && (sts_unnamed || !session_tls.verified))
        report(sts_unnamed             ? "validation-failure"
               : session_tls.encrypted ? "certificate-not-trusted"
                                       : "starttls-not-supported",
               address);
      else if (session_tls.encrypted || report_policy.type == "no-policy-found")
        report(session_tls.encrypted ? "" : "starttls-not-supported", address);
      if (auto why = require_tls
                         ? connection_refusal(connection->tls(), connection->capabilities(), where)
                         : std::nullopt) {
        log_refusal(memory_key, where, *why);
        failure = why->detail;
        refusal = std::move(why);
        ++refused_hosts;
        connection->quit();
        let_go_of_host(false);
        continue;
      }
      Outcome outcome = transact(*connection, message, recipients, transport, results, failure,
                                 /*reused=*/false);
      if (outcome == Outcome::kDone) return finish(std::move(connection));
      connection->quit();
      let_go_of_host(connection->timed_out());
      if (outcome == Outcome::kUncertain) return finish(nullptr);
    }
    if (out_of_time) break;
  }
  if (targets.empty() || (tried == 0 && failure.empty()))
    failure = "no address to connect to for " + domain;
  if (out_of_time) {
    failure =
        "the attempt's time limit (" +
        std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(options_.attempt_timeout).count()) +
        "s) ran out; last: " + failure;
  }
  // RFC 8689 §4.2.1: every host failed its requirements: returned, not retried. A host that
  // could not be reached at all may still pass later: then the message waits as usual.
  if (refusal && refused_hosts == tried && !skipped_host && !out_of_time) {
    results = refused(*refusal, recipients.size(), transport);
    return finish(nullptr);
  }
  const bool all_busy = tried > 0 && only_busy;
  for (auto& r : results) {
    r = temporary(failure, transport,
                  failure.find("TLS") != std::string::npos ? "4.7.5"
                  : all_busy                               ? "4.4.5"
                                                           : "4.4.1");
  }
  return finish(nullptr);
}

std::vector<DeliveryResult> Outbound::deliver_lmtp(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> recipients,
                                                   const base::Endpoint* server) {
  const std::string key = server ? "lmtp:" + base::to_string(*server) : "lmtp";
  const Endpoint lmtp = server ? lmtp_endpoint(*server) : lmtp_;
  std::vector<DeliveryResult> results(recipients.size());
  std::string failure;
  bool got_slot = false;
  std::unique_ptr<Connection> reused = acquire(key, got_slot);
  if (!got_slot) {
    for (auto& r : results)
      r = temporary("all LMTP connections are busy", "lmtp", "4.4.5");
    return results;
  }
  const Clock::time_point deadline = Clock::now() + options_.attempt_timeout;
  if (reused) {
    reused->set_attempt_deadline(deadline);
    Outcome outcome = transact(*reused, message, recipients, "lmtp", results, failure, true);
    if (outcome == Outcome::kDone) {
      release(key, std::move(reused));
      return results;
    }
    reused->quit();
    if (outcome == Outcome::kUncertain) {
      release(key, nullptr);
      return results;
    }
  }
  TransportOptions transport_options;
  transport_options.client.protocol = smtp::ClientProtocol::kLmtp;
  transport_options.client.helo_name = options_.helo_name;
  transport_options.starttls = false;  // a local socket (RFC 2033 §5: not on a public port)
  transport_options.connect_timeout = options_.connect_timeout;
  transport_options.command_timeout = options_.command_timeout;
  transport_options.attempt_deadline = deadline;
  // Each address of the LMTP server's name in turn (a unix socket has just its path).
  std::vector<std::string> addresses{lmtp.address};
  if (!lmtp.unix_socket) {
    auto found = resolve_with_system(lmtp.host);
    if (!found) {
      for (auto& r : results)
        r = temporary("LMTP server " + found.error(), "lmtp", "4.4.3");
      release(key, nullptr);
      return results;
    }
    addresses = std::move(found.value());
  }
  Endpoint endpoint = lmtp;
  base::Expected<std::unique_ptr<Connection>, TransportFailure> opened =
      base::unexpected(TransportFailure{"connect", "no address", {}});
  for (const std::string& address : addresses) {
    endpoint.address = address;
    opened = Connection::open(endpoint, transport_options);
    if (opened || Clock::now() >= deadline) break;
  }
  if (opened) {
    std::unique_ptr<Connection> connection = std::move(opened.value());
    Outcome outcome = transact(*connection, message, recipients, "lmtp", results, failure, false);
    if (outcome != Outcome::kTryElsewhere) {
      release(key, outcome == Outcome::kDone ? std::move(connection) : nullptr);
      return results;
    }
    connection->quit();
  } else {
    failure = endpoint.describe() + ": " + opened.error().detail;
  }
  for (auto& r : results)
    r = temporary("LMTP server " + failure, "lmtp", "4.3.0");
  release(key, nullptr);
  return results;
}

}  // namespace delivery
