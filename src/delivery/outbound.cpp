// outbound.cpp — see outbound.h.
#include "delivery/outbound.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace delivery {
namespace {

using Clock = std::chrono::steady_clock;
using queue::DeliveryResult;
using queue::DeliveryStatus;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

DeliveryResult temporary(std::string detail, std::string transport,
                         std::string enhanced = "4.4.1") {
  DeliveryResult result;
  result.status = DeliveryStatus::kTransient;
  result.detail = std::move(detail);
  result.transport = std::move(transport);
  result.enhanced = std::move(enhanced);
  return result;
}

SeenTls achieved(const TlsOutcome& tls) {
  if (!tls.encrypted) return SeenTls::kNone;
  return tls.verified ? SeenTls::kVerified : SeenTls::kEncrypted;
}

// "unix:/path" or "HOST:PORT" / "[v6]:PORT".
Endpoint lmtp_endpoint(const std::string& spec) {
  Endpoint endpoint;
  if (spec.rfind("unix:", 0) == 0) {
    endpoint.unix_socket = true;
    endpoint.address = spec.substr(5);
    endpoint.host = "localhost";
    return endpoint;
  }
  std::size_t colon = spec.rfind(':');
  std::string host = spec.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  endpoint.host = host;
  endpoint.address = host == "localhost" ? "127.0.0.1" : host;
  endpoint.port = static_cast<std::uint16_t>(std::stoi(spec.substr(colon + 1)));
  return endpoint;
}

}  // namespace

base::Expected<std::unique_ptr<Outbound>, std::string> Outbound::create(OutboundOptions options,
                                                                        LogFn log) {
  std::unique_ptr<Outbound> outbound(new Outbound(std::move(options), std::move(log)));
  auto context = tls::make_client_context(outbound->options_.ca_file);
  if (!context) return base::unexpected(context.error());
  outbound->tls_context_ = std::move(context.value());
  auto resolver = MxResolver::create(outbound->options_.resolver);
  if (!resolver) return base::unexpected(resolver.error());
  outbound->resolver_ = std::move(resolver.value());
  if (!outbound->memory_.load_errors().empty()) outbound->log_(outbound->memory_.load_errors());
  outbound->janitor_ = std::thread([raw = outbound.get()] { raw->janitor(); });
  return outbound;
}

Outbound::Outbound(OutboundOptions options, LogFn log)
    : options_(std::move(options)), log_(std::move(log)), memory_(options_.tls_memory_file) {}

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

void Outbound::log(const std::string& line) const {
  if (log_) log_(line);
}

tls::OutboundLevel Outbound::level_for(std::string_view domain) const {
  std::string name = lower(domain);
  for (const auto& [policy_domain, level] : options_.tls_policy) {
    if (policy_domain == name) return level;
  }
  return options_.default_tls;
}

std::unique_ptr<Connection> Outbound::acquire(const std::string& key) {
  std::vector<std::unique_ptr<Connection>> stale;
  std::unique_ptr<Connection> reuse;
  {
    std::unique_lock lock(pool_mutex_);
    Destination& destination = pool_[key];
    pool_changed_.wait(
        lock, [&] { return stopping_ || destination.active < options_.max_per_destination; });
    ++destination.active;
    const Clock::time_point now = Clock::now();
    while (!destination.idle.empty() && !reuse) {
      std::unique_ptr<Connection> candidate = std::move(destination.idle.back());
      destination.idle.pop_back();
      if (now - candidate->last_used() <= options_.connection_cache && candidate->usable()) {
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

std::string Outbound::below_floor(const Connection& connection, tls::OutboundLevel level,
                                  SeenTls remembered) const {
  const TlsOutcome& tls = connection.tls();
  const std::string where = connection.endpoint().describe();
  if (level >= tls::OutboundLevel::kEncrypt && !tls.encrypted) {
    return "TLS is required (policy " + std::string(tls::outbound_level_name(level)) + ") but " +
           where + " did not offer STARTTLS";
  }
  if (level == tls::OutboundLevel::kVerify && !tls.verified) {
    return "TLS policy verify: the certificate of " + where +
           " does not verify: " + tls.verify_error;
  }
  SeenTls now = achieved(tls);
  if (now < remembered) {
    return "TLS downgrade refused: this destination was reached with " +
           std::string(seen_tls_name(remembered)) + " TLS before, " + where + " now offers " +
           std::string(seen_tls_name(now)) +
           (tls.encrypted && !tls.verified ? " (" + tls.verify_error + ")" : "") +
           "; if that is expected, run: smtpsctl tls forget DOMAIN";
  }
  return {};
}

bool Outbound::transact(Connection& connection, const queue::StoredMessage& message,
                        std::span<const std::size_t> recipients, const std::string& transport,
                        std::vector<DeliveryResult>& results, std::string& failure) {
  auto sent = connection.send(message, recipients);
  const std::string where = connection.endpoint().describe();
  const std::string tls = connection.tls().describe();
  if (!sent) {
    const TransportFailure& f = sent.error();
    if (!f.reply) {
      failure = where + ": " + f.detail;
      return false;
    }
    // The server answered (MAIL refused, ...): that answer is every recipient's.
    for (DeliveryResult& result : results) {
      result.status =
          f.reply->code >= 500 ? DeliveryStatus::kPermanent : DeliveryStatus::kTransient;
      result.detail = where + " tls=" + tls + " said at " + f.stage + ": " + f.reply->summary();
      result.transport = transport;
      result.enhanced = f.reply->enhanced;
      result.remote_mta = connection.endpoint().host;
      result.diagnostic = f.reply->summary();
    }
    return true;
  }
  const bool dsn = connection.capabilities().dsn;
  for (const smtp::RecipientResult& r : *sent) {
    auto position = std::find(recipients.begin(), recipients.end(), r.index);
    if (position == recipients.end()) continue;
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
  }
  return true;
}

std::vector<DeliveryResult> Outbound::deliver_remote(const queue::StoredMessage& message,
                                                     std::span<const std::size_t> recipients,
                                                     std::string_view domain_view) {
  const std::string domain = lower(domain_view);
  const bool relay = !options_.relay_host.empty();
  const std::string transport = relay ? "relay" : "smtp";
  const std::string key = relay ? "relay" : "mx:" + domain;
  const std::string memory_key = relay ? options_.relay_host : domain;
  const tls::OutboundLevel level = relay ? options_.relay_tls : level_for(domain);
  const SeenTls remembered = memory_.best(memory_key);
  std::vector<DeliveryResult> results(recipients.size());

  auto finish = [&](std::unique_ptr<Connection> connection) {
    if (connection) {
      if (memory_.record(memory_key, achieved(connection->tls()), unix_now())) {
        log("event=tls_memory domain=" + memory_key +
            " level=" + std::string(seen_tls_name(achieved(connection->tls()))));
      }
    }
    release(key, std::move(connection));
    return results;
  };

  std::string failure;
  if (std::unique_ptr<Connection> reused = acquire(key)) {
    std::string floor = below_floor(*reused, level, remembered);
    if (floor.empty() && transact(*reused, message, recipients, transport, results, failure)) {
      return finish(std::move(reused));
    }
    reused->quit();  // broken while idle (the server timed it out): open a fresh one
  }

  // Where to connect: the smarthost, or the MX hosts of the domain.
  std::vector<MxTarget> targets;
  std::uint16_t port = options_.mx_port;
  if (relay) {
    port = options_.relay_port;
    unsigned char buffer[16];
    if (::inet_pton(AF_INET, options_.relay_host.c_str(), buffer) == 1 ||
        ::inet_pton(AF_INET6, options_.relay_host.c_str(), buffer) == 1) {
      targets.push_back(MxTarget{options_.relay_host, 0, {options_.relay_host}, true});
    } else {
      MxAnswer answer = resolver_->resolve_host(options_.relay_host);
      if (answer.status != MxStatus::kOk) {
        for (auto& r : results)
          r = temporary("relay " + options_.relay_host + ": " + answer.detail, transport, "4.4.3");
        return finish(nullptr);
      }
      targets = std::move(answer.targets);
    }
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
  }

  TransportOptions transport_options;
  transport_options.client.protocol = smtp::ClientProtocol::kSmtp;
  transport_options.client.helo_name = options_.helo_name;
  if (relay) {
    transport_options.client.auth_user = options_.relay_user;
    transport_options.client.auth_password = options_.relay_password;
    transport_options.implicit_tls = options_.relay_implicit_tls;
  }
  transport_options.starttls = level != tls::OutboundLevel::kNone;
  transport_options.tls_context = tls_context_.get();
  transport_options.connect_timeout = options_.connect_timeout;
  transport_options.command_timeout = options_.command_timeout;

  std::size_t tried = 0;
  for (const MxTarget& target : targets) {
    for (const std::string& address : target.addresses) {
      if (++tried > 10) break;  // bound the time one attempt can take
      Endpoint endpoint{target.host, address, port, false};
      auto opened = Connection::open(endpoint, transport_options);
      if (!opened && opened.error().stage == "tls" && level == tls::OutboundLevel::kMay &&
          remembered == SeenTls::kNone && !transport_options.implicit_tls) {
        // Opportunistic TLS that fails in the handshake (an old server, a broken
        // certificate chain) falls back to plain text, as RFC 3207 §4 allows and as other
        // MTAs do; never where the policy or the memory says TLS is required.
        log("event=tls_fallback domain=" + domain + " host=" + endpoint.describe() + " detail=\"" +
            opened.error().detail + "\"");
        TransportOptions plain = transport_options;
        plain.starttls = false;
        opened = Connection::open(endpoint, plain);
      }
      if (!opened) {
        failure = endpoint.describe() + ": " + opened.error().detail;
        log("event=connect_failed domain=" + domain + " host=" + endpoint.describe() +
            " stage=" + opened.error().stage + " detail=\"" + opened.error().detail + "\"");
        continue;
      }
      std::unique_ptr<Connection> connection = std::move(opened.value());
      if (std::string floor = below_floor(*connection, level, remembered); !floor.empty()) {
        failure = floor;
        log("event=tls_refused domain=" + memory_key + " host=" + endpoint.describe() +
            " level=" + std::string(tls::outbound_level_name(level)) +
            " remembered=" + std::string(seen_tls_name(remembered)) + " detail=\"" + floor + "\"");
        connection->quit();
        continue;
      }
      if (transact(*connection, message, recipients, transport, results, failure)) {
        return finish(std::move(connection));
      }
      connection->quit();
    }
  }
  if (targets.empty() || tried == 0) failure = "no address to connect to for " + domain;
  for (auto& r : results)
    r = temporary(failure, transport, failure.find("TLS") != std::string::npos ? "4.7.5" : "4.4.1");
  return finish(nullptr);
}

std::vector<DeliveryResult> Outbound::deliver_lmtp(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> recipients) {
  const std::string key = "lmtp";
  std::vector<DeliveryResult> results(recipients.size());
  std::string failure;
  if (std::unique_ptr<Connection> reused = acquire(key)) {
    if (transact(*reused, message, recipients, "lmtp", results, failure)) {
      release(key, std::move(reused));
      return results;
    }
    reused->quit();
  }
  TransportOptions transport_options;
  transport_options.client.protocol = smtp::ClientProtocol::kLmtp;
  transport_options.client.helo_name = options_.helo_name;
  transport_options.starttls = false;  // a local socket (RFC 2033 §5: not on a public port)
  transport_options.connect_timeout = options_.connect_timeout;
  transport_options.command_timeout = options_.command_timeout;
  Endpoint endpoint = lmtp_endpoint(options_.lmtp);
  auto opened = Connection::open(endpoint, transport_options);
  if (opened) {
    std::unique_ptr<Connection> connection = std::move(opened.value());
    if (transact(*connection, message, recipients, "lmtp", results, failure)) {
      release(key, std::move(connection));
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
