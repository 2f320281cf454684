// unbound_resolver.cpp — dns::Resolver on libunbound (see unbound_resolver.h).
//
// Invariants:
// - Only the resolver thread calls libunbound after start-up; lookup() hands requests over
//   through a queue and an eventfd, so that it never blocks on libunbound's locks.
// - Every lookup's callback runs exactly once: with the answer, at its deadline
//   ("timed out", the query cancelled), or when the resolver is destroyed ("resolver
//   stopped").
// - Metrics (obs::metrics()): smtpsd_dns_lookups_total{source} counts every lookup by where
//   its answer came from ("cache", "shared" with a query in flight, "query"), and
//   smtpsd_dns_answers_total{status} the outcome of each query ("ok" ... "bogus", resolver.h).
// - libunbound's own worker runs as a thread (ub_ctx_async(ctx, 1)), never a forked process.
// - Forward mode fails fast when nothing listens: libunbound takes "connection refused" for
//   a lost packet and retries for ~17 s. When a lookup is still unanswered after
//   kProbeAfter, the resolver thread sends one query of its own to each forwarder from a
//   connected UDP socket (at most once per kProbeEvery); if every forwarder answers with an
//   ICMP port unreachable (ECONNREFUSED), the lookups in flight, and those of the next
//   kRefusedFor, end as kTemporary "DNS server unreachable (connection refused)", as a
//   stub resolver would report it.
#include "dns/unbound_resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unbound.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "dns/answer_decoding.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace dns {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kClassIn = 1;
constexpr std::size_t kMaxPresentationNameLength =
    253;  // RFC 1035 §2.3.4, presentation, no final dot
constexpr auto kProbeAfter = std::chrono::milliseconds(100);
constexpr auto kProbeEvery = std::chrono::seconds(1);
constexpr auto kRefusedFor = std::chrono::seconds(1);
constexpr std::string_view kRefused = "DNS server unreachable (connection refused)";

// A connected UDP socket to a forwarder, for the refusal probe; -1 when it cannot be made.
int connect_udp(const base::HostPort& server) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, server.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(server.port);
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, server.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(server.port);
    length = sizeof *v6;
  } else {
    return -1;
  }
  int sock = ::socket(address.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  if (::connect(sock, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    ::close(sock);
    return -1;
  }
  return sock;
}

struct ContextDeleter {
  void operator()(ub_ctx* context) const { ub_ctx_delete(context); }
};
using Context = std::unique_ptr<ub_ctx, ContextDeleter>;

struct ResultDeleter {
  void operator()(ub_result* result) const { ub_resolve_free(result); }
};
using Result = std::unique_ptr<ub_result, ResultDeleter>;

AnswerPtr temporary(std::string detail) {
  auto answer = std::make_shared<Answer>();
  answer->status = Status::kTemporary;
  answer->detail = std::move(detail);
  return answer;
}

AnswerPtr decode(int error, ub_result* result, Type type) {
  if (error != 0 || result == nullptr)
    return temporary(std::string("resolver: ") + ub_strerror(error));
  RawResult raw;
  raw.type = type;
  raw.rcode = result->rcode;
  raw.secure = result->secure != 0;
  raw.bogus = result->bogus != 0;
  if (result->why_bogus != nullptr) raw.why_bogus = result->why_bogus;
  raw.ttl = std::chrono::seconds(result->ttl > 0 ? result->ttl : 0);
  if (result->qname != nullptr) raw.query_name = result->qname;
  if (result->canonname != nullptr) raw.canonical_name = result->canonname;
  if (result->havedata != 0 && result->data != nullptr) {
    for (int i = 0; result->data[i] != nullptr; ++i) {
      raw.rdata.emplace_back(result->data[i], static_cast<std::size_t>(result->len[i]));
    }
  }
  if (result->was_ratelimited != 0 && !raw.bogus && raw.rcode != 0) {
    auto answer = std::make_shared<Answer>(decode_answer(raw));
    answer->detail += " (rate limited)";
    return answer;
  }
  return std::make_shared<Answer>(decode_answer(raw));
}

std::string set_option(ub_ctx* context, const char* name, const std::string& value) {
  if (int error = ub_ctx_set_option(context, name, value.c_str()); error != 0) {
    return std::string("resolver option ") + name + " " + value + ": " + ub_strerror(error);
  }
  return "";
}

// A context per the options; validate says whether it gets the trust anchor.
base::Expected<Context, std::string> make_context(const Options& options, bool validate) {
  Context context(ub_ctx_create());
  if (context == nullptr) return base::unexpected(std::string("ub_ctx_create failed"));
  if (int error = ub_ctx_async(context.get(), 1); error != 0) {
    return base::unexpected(std::string("resolver thread: ") + ub_strerror(error));
  }
  // Forwarders on loopback (a local caching resolver, 127.0.0.53, a test server) are common.
  std::string failed = set_option(context.get(), "do-not-query-localhost:", "no");
  if (failed.empty()) {
    failed =
        set_option(context.get(), "module-config:", validate ? "validator iterator" : "iterator");
  }
  if (!failed.empty()) return base::unexpected(failed);
  switch (options.mode) {
    case Options::Mode::kForward:
      if (options.servers.empty()) {
        return base::unexpected(std::string("forward mode needs at least one DNS server"));
      }
      for (const base::HostPort& server : options.servers) {
        std::string address = server.host + "@" + std::to_string(server.port);
        if (int error = ub_ctx_set_fwd(context.get(), address.c_str()); error != 0) {
          return base::unexpected("DNS server " + base::to_string(server) + ": " +
                                  ub_strerror(error));
        }
      }
      break;
    case Options::Mode::kSystem:
      if (int error = ub_ctx_resolvconf(context.get(), options.resolv_conf.c_str()); error != 0) {
        return base::unexpected(
            options.resolv_conf + ": " + ub_strerror(error) +
            (error == UB_READFILE ? std::string(": ") + std::strerror(errno) : std::string()));
      }
      break;
    case Options::Mode::kRecursive:
      break;  // libunbound's built-in root hints
  }
  if (options.mode != Options::Mode::kRecursive) {
    // The forwarders decide which names exist: names RFC 6761 reserves for tests and local
    // use may be served there, so libunbound's built-in empty zones for them stay off.
    for (const char* zone : {"test.", "invalid.", "home.arpa.", "onion."}) {
      failed = set_option(context.get(), "local-zone:", std::string(zone) + " transparent");
      if (!failed.empty()) return base::unexpected(failed);
    }
  }
  if (validate) {
    if (int error = ub_ctx_add_ta_file(context.get(), options.trust_anchor.c_str()); error != 0) {
      return base::unexpected("trust anchor " + options.trust_anchor + ": " + ub_strerror(error));
    }
  }
  return context;
}

// The metric series of the resolver, registered once (the registry keeps them for good).
struct ResolverMetrics {
  obs::Counter* from_cache;
  obs::Counter* shared;
  obs::Counter* queried;
  obs::Counter* answers[5];  // by Status

  ResolverMetrics() {
    obs::Registry& registry = obs::metrics();
    auto lookups = [&](const char* source) {
      return &registry.counter("smtpsd_dns_lookups_total",
                               "DNS lookups, by where the answer came from.", {{"source", source}});
    };
    from_cache = lookups("cache");
    shared = lookups("shared");
    queried = lookups("query");
    for (Status status :
         {Status::kOk, Status::kNoData, Status::kNxDomain, Status::kTemporary, Status::kBogus}) {
      answers[static_cast<int>(status)] =
          &registry.counter("smtpsd_dns_answers_total", "DNS queries, by outcome.",
                            {{"status", std::string(to_string(status))}});
    }
  }
  void answered(Status status) const { answers[static_cast<int>(status)]->inc(); }
};

const ResolverMetrics& resolver_metrics() {
  static const ResolverMetrics metrics;
  return metrics;
}

// One query on a context not yet running its loop, waited for with poll() until deadline:
// the start-up probe. nullptr with *error set on failure; a timeout is not a failure.
Result probe(ub_ctx* context, const char* name, int type, std::chrono::milliseconds timeout,
             std::string* error) {
  struct Outcome {
    bool done = false;
    int error = 0;
    ub_result* result = nullptr;
  } outcome;
  int id = 0;
  int started = ub_resolve_async(
      context, name, type, kClassIn, &outcome,
      [](void* data, int err, ub_result* result) {
        auto* out = static_cast<Outcome*>(data);
        out->done = true;
        out->error = err;
        out->result = result;
      },
      &id);
  if (started != 0) {
    *error = ub_strerror(started);
    return nullptr;
  }
  const auto deadline = Clock::now() + timeout;
  while (!outcome.done) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      ub_cancel(context, id);
      return nullptr;
    }
    pollfd descriptor{ub_fd(context), POLLIN, 0};
    int ready = ::poll(&descriptor, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno != EINTR) {
      ub_cancel(context, id);
      *error = std::string("poll: ") + std::strerror(errno);
      return nullptr;
    }
    if (ready > 0) ub_process(context);
  }
  Result result(outcome.result);
  if (outcome.error != 0) {
    *error = ub_strerror(outcome.error);
    return nullptr;
  }
  return result;
}

class UnboundResolver final : public Resolver {
 public:
  UnboundResolver(Options options, Context context, bool validating, std::string description)
      : options_(std::move(options)),
        context_(std::move(context)),
        validating_(validating),
        description_(std::move(description)),
        cache_(options_.cache, options_.now),
        wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  ~UnboundResolver() override {
    stop();
    if (wake_fd_ >= 0) ::close(wake_fd_);
    for (Forwarder& forwarder : forwarders_)
      ::close(forwarder.socket);
    // Requests handed over but never started end here.
    for (Request& request : requests_)
      request.callback(temporary("resolver stopped"));
  }

  std::string start() {
    if (wake_fd_ < 0) return std::string("eventfd: ") + std::strerror(errno);
    if (options_.mode == Options::Mode::kForward) {
      for (const base::HostPort& server : options_.servers) {
        if (int sock = connect_udp(server); sock >= 0) forwarders_.push_back({sock});
      }
    }
    thread_ = std::thread([this] { run(); });
    return "";
  }

  void lookup(std::string_view name_text, Type type, Callback callback) override {
    std::string_view name = name_text;
    // "." is the root (its NS: a key rollover's zone cut may be there); "a." is "a".
    if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > kMaxPresentationNameLength) {
      auto answer = std::make_shared<Answer>();
      answer->status = Status::kNxDomain;
      answer->detail = "not a valid domain name";
      callback(std::move(answer));
      return;
    }
    if (AnswerPtr cached = cache_.find(name, type)) {
      metrics_.from_cache->inc();
      callback(std::move(cached));
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        requests_.push_back(Request{std::string(name), type, std::move(callback)});
        callback = nullptr;
      }
    }
    if (callback) {
      callback(temporary("resolver stopped"));
      return;
    }
    wake();
  }

  void stop() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  bool validates() const override { return validating_; }
  std::string describe() const override { return description_; }

 private:
  struct Request {
    std::string name;
    Type type;
    Callback callback;
  };
  struct Forwarder {
    int socket = -1;
    bool refused = false;
  };
  // A query in flight and every lookup waiting for it (identical lookups share it).
  struct Flight {
    UnboundResolver* owner = nullptr;
    std::string key;
    std::string name;
    Type type = Type::kA;
    int async_id = 0;
    Clock::time_point deadline;
    std::vector<Callback> callbacks;
  };

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(wake_fd_, &one, sizeof one);
  }

  // The resolver thread.
  void run() {
    std::vector<pollfd> descriptors;
    while (true) {
      const auto now = Clock::now();
      auto next = Clock::time_point::max();
      if (!by_deadline_.empty()) next = by_deadline_.begin()->first;
      if (auto probe = next_probe(); probe < next) next = probe;
      int wait = -1;
      if (next != Clock::time_point::max()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(next - now);
        wait = static_cast<int>(std::max<std::int64_t>(left.count(), 0));
      }
      descriptors.assign({{wake_fd_, POLLIN, 0}, {ub_fd(context_.get()), POLLIN, 0}});
      for (const Forwarder& forwarder : forwarders_)
        descriptors.push_back({forwarder.socket, POLLIN, 0});
      int ready = ::poll(descriptors.data(), descriptors.size(), wait);
      if (ready < 0 && errno != EINTR) {
        obs::Log("dns_poll_failed", obs::Level::kError).kv("detail", std::strerror(errno));
      }
      if (ready > 0 && (descriptors[0].revents & POLLIN) != 0) {
        std::uint64_t count = 0;
        [[maybe_unused]] ssize_t got = ::read(wake_fd_, &count, sizeof count);
        std::deque<Request> requests;
        bool stopping = false;
        {
          std::lock_guard lock(mutex_);
          requests.swap(requests_);
          stopping = stopping_;
        }
        for (Request& request : requests)
          begin(std::move(request));
        if (stopping) break;
      }
      if (ready > 0 && (descriptors[1].revents & POLLIN) != 0) ub_process(context_.get());
      if (ready > 0) read_probe_replies(descriptors);
      if (Clock::now() >= next_probe()) send_probes();
      expire(Clock::now());
    }
    // Stopping: every lookup in flight ends now.
    while (!flights_.empty()) {
      Flight& flight = *flights_.begin()->second;
      ub_cancel(context_.get(), flight.async_id);
      finish(flight, temporary("resolver stopped"));
    }
  }

  // When the refusal probe is due: kProbeAfter after the oldest lookup in flight began, and
  // not again within kProbeEvery.
  Clock::time_point next_probe() const {
    if (forwarders_.empty() || by_deadline_.empty()) return Clock::time_point::max();
    Clock::time_point due = by_deadline_.begin()->first - options_.timeout + kProbeAfter;
    if (probe_sent_ != Clock::time_point{}) due = std::max(due, probe_sent_ + kProbeEvery);
    return due;
  }

  void send_probes() {
    // "." NS IN, recursion desired (RFC 1035 §4.1): any reply at all says the server listens.
    unsigned char query[17] = {0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1};
    query[0] = static_cast<unsigned char>(std::rand());
    query[1] = static_cast<unsigned char>(std::rand());
    for (Forwarder& forwarder : forwarders_) {
      forwarder.refused = false;
      if (::send(forwarder.socket, query, sizeof query, MSG_DONTWAIT) < 0 &&
          errno == ECONNREFUSED) {
        forwarder.refused = true;  // an earlier probe's ICMP error, reported now
        [[maybe_unused]] ssize_t again =
            ::send(forwarder.socket, query, sizeof query, MSG_DONTWAIT);
      }
    }
    probing_ = true;
    probe_sent_ = Clock::now();
  }

  void read_probe_replies(const std::vector<pollfd>& descriptors) {
    bool answered = false;
    for (std::size_t i = 0; i < forwarders_.size(); ++i) {
      if (descriptors[i + 2].revents == 0) continue;
      unsigned char reply[512];
      while (true) {
        ssize_t got = ::recv(forwarders_[i].socket, reply, sizeof reply, MSG_DONTWAIT);
        if (got >= 0) {
          answered = true;
          forwarders_[i].refused = false;
          continue;
        }
        if (errno == ECONNREFUSED) {
          forwarders_[i].refused = true;
          continue;
        }
        break;  // EAGAIN
      }
    }
    if (!probing_) return;
    const bool all_refused =
        std::all_of(forwarders_.begin(), forwarders_.end(),
                    [](const Forwarder& forwarder) { return forwarder.refused; });
    if (answered) probing_ = false;
    if (!all_refused) return;
    probing_ = false;
    refused_until_ = Clock::now() + kRefusedFor;
    while (!flights_.empty()) {
      Flight& flight = *flights_.begin()->second;
      ub_cancel(context_.get(), flight.async_id);
      finish(flight, temporary(std::string(kRefused)));
    }
  }

  void begin(Request request) {
    std::string key = Cache::key(request.name, request.type);
    if (auto where = flights_.find(key); where != flights_.end()) {
      metrics_.shared->inc();
      where->second->callbacks.push_back(std::move(request.callback));
      return;
    }
    // An answer may have come in since lookup() looked.
    if (AnswerPtr cached = cache_.find(request.name, request.type)) {
      metrics_.from_cache->inc();
      request.callback(std::move(cached));
      return;
    }
    metrics_.queried->inc();
    if (Clock::now() < refused_until_) {
      metrics_.answered(Status::kTemporary);
      request.callback(temporary(std::string(kRefused)));
      return;
    }
    auto flight = std::make_unique<Flight>();
    flight->owner = this;
    flight->key = key;
    flight->name = request.name;
    flight->type = request.type;
    flight->deadline = Clock::now() + options_.timeout;
    flight->callbacks.push_back(std::move(request.callback));
    int error =
        ub_resolve_async(context_.get(), flight->name.c_str(), static_cast<int>(flight->type),
                         kClassIn, flight.get(), &UnboundResolver::on_result, &flight->async_id);
    if (error != 0) {
      AnswerPtr answer;
      if (error == UB_SYNTAX) {
        auto invalid = std::make_shared<Answer>();
        invalid->status = Status::kNxDomain;
        invalid->detail = "not a valid domain name";
        answer = std::move(invalid);
      } else {
        answer = temporary(std::string("resolver: ") + ub_strerror(error));
      }
      for (Callback& callback : flight->callbacks)
        callback(answer);
      return;
    }
    Flight* raw = flight.get();
    flights_.emplace(std::move(key), std::move(flight));
    raw_deadline_position(raw);
  }

  void raw_deadline_position(Flight* flight) { by_deadline_.emplace(flight->deadline, flight); }

  static void on_result(void* data, int error, ub_result* result) {
    Result owned(result);
    auto* flight = static_cast<Flight*>(data);
    AnswerPtr answer = decode(error, owned.get(), flight->type);
    flight->owner->cache_.store(flight->name, flight->type, answer);
    flight->owner->finish(*flight, std::move(answer));
  }

  void expire(Clock::time_point now) {
    while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
      Flight& flight = *by_deadline_.begin()->second;
      ub_cancel(context_.get(), flight.async_id);
      finish(flight, temporary("timed out"));
    }
  }

  // Ends a flight: out of the tables, then its callbacks (which may call lookup() again).
  void finish(Flight& flight, AnswerPtr answer) {
    for (auto position = by_deadline_.lower_bound(flight.deadline);
         position != by_deadline_.end() && position->first == flight.deadline; ++position) {
      if (position->second == &flight) {
        by_deadline_.erase(position);
        break;
      }
    }
    auto where = flights_.find(flight.key);
    std::unique_ptr<Flight> owned = std::move(where->second);
    flights_.erase(where);
    metrics_.answered(answer->status);
    for (Callback& callback : owned->callbacks)
      callback(answer);
  }

  const ResolverMetrics& metrics_ = resolver_metrics();
  Options options_;
  Context context_;
  bool validating_;
  std::string description_;
  Cache cache_;
  int wake_fd_;
  std::thread thread_;

  std::mutex mutex_;  // guards requests_ and stopping_
  std::deque<Request> requests_;
  bool stopping_ = false;

  // The resolver thread's own.
  std::unordered_map<std::string, std::unique_ptr<Flight>> flights_;
  std::multimap<Clock::time_point, Flight*> by_deadline_;
  std::vector<Forwarder> forwarders_;  // forward mode: watched for "connection refused"
  bool probing_ = false;
  Clock::time_point probe_sent_{};
  Clock::time_point refused_until_{};
};

std::string servers_text(const std::vector<base::HostPort>& servers) {
  std::string text;
  for (const base::HostPort& server : servers)
    text += (text.empty() ? "" : ",") + base::to_string(server);
  return text;
}

}  // namespace

std::string_view to_string(Options::Mode mode) {
  switch (mode) {
    case Options::Mode::kSystem:
      return "system";
    case Options::Mode::kForward:
      return "forward";
    case Options::Mode::kRecursive:
      return "recursive";
  }
  return "?";
}

base::Expected<std::unique_ptr<Resolver>, std::string> create_resolver(const Options& options) {
  if (options.timeout.count() <= 0) {
    return base::unexpected(std::string("DNS timeout must be positive"));
  }
  std::string where;
  switch (options.mode) {
    case Options::Mode::kSystem:
      where = "system resolvers of " + options.resolv_conf;
      break;
    case Options::Mode::kForward:
      where = "forward to " + servers_text(options.servers);
      break;
    case Options::Mode::kRecursive:
      where = "recursive from the root hints";
      break;
  }
  bool validate = options.validation != Options::Validation::kOff;
  auto context = make_context(options, validate);
  if (!context) return base::unexpected(context.error());
  std::string note;
  if (validate) {
    // The probe also loads the trust anchor now (libunbound reads its files at the first
    // query), so that an unreadable one stops start-up.
    std::string error;
    Result result = probe(context.value().get(), ".", 48 /* DNSKEY */, options.timeout, &error);
    if (!error.empty()) {
      return base::unexpected("DNS resolver (" + where + ", trust anchor " + options.trust_anchor +
                              "): " + error);
    }
    bool secure = result != nullptr && result->secure != 0;
    if (!secure && options.validation == Options::Validation::kAuto) {
      std::string why =
          result == nullptr ? "no answer in time"
          : result->bogus != 0
              ? "bogus" + (result->why_bogus != nullptr ? ": " + std::string(result->why_bogus)
                                                        : std::string())
              : "rcode " + rcode_name(result->rcode) + ", not secure";
      obs::Log("dns_validation_unavailable", obs::Level::kWarning)
          .kv("mode", to_string(options.mode))
          .kv("detail", "the root DNSKEY probe did not validate (" + why +
                            "): DNSSEC validation is off, no answer will be secure");
      validate = false;
      context = make_context(options, false);
      if (!context) return base::unexpected(context.error());
    } else if (!secure) {
      note = " (the root DNSKEY probe did not validate: answers may be bogus)";
    }
  }
  std::string description =
      where + (validate ? ", validating (trust anchor " + options.trust_anchor + ")" + note
                        : ", not validating");
  auto resolver = std::make_unique<UnboundResolver>(options, std::move(context).value(), validate,
                                                    std::move(description));
  if (std::string error = resolver->start(); !error.empty()) return base::unexpected(error);
  return std::unique_ptr<Resolver>(std::move(resolver));
}

}  // namespace dns
