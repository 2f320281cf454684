// server.cpp — see server.h.
#include "net/server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "auth/authenticator.h"
#include "auth/sasl.h"
#include "base/clock.h"
#include "intake/message_intake.h"
#include "intake/pipeline.h"
#include "net/proxy_protocol.h"
#include "net/rate_limit.h"
#include "net/tls_waiter.h"
#include "obs/log.h"
#include "obs/server_metrics.h"
#include "smtp/received_header.h"
#include "tls/client_identity.h"
#include "tls/policy.h"
#include "tls/stream.h"

namespace net {
namespace {

using asio::awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// Bound on writing a reply to a client that does not read (same as a command wait).
constexpr std::chrono::seconds kShutdownGrace{10};
// A proxy sends its PROXY header at once, with its connect: a peer that has not within
// this is not a working proxy, and holding its connection open only helps a flood.
constexpr std::chrono::seconds kProxyHeaderTimeout{5};
// Bounds on the rate tables (rate_limit.h): ~100 bytes an entry, so ~10 MiB at most each.
constexpr std::size_t kMaxRateEntries = 100000;

std::string session_id_prefix() {
  std::random_device device;
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%06x", device() & 0xffffff);
  return buffer;
}

std::string endpoint_address(const tcp::endpoint& endpoint) {
  asio::ip::address address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

// Completion for GroupCommitter: the result comes back on the connection's executor.
template <typename Token>
auto async_commit(queue::GroupCommitter& committer, queue::SpoolWriter& writer, Token&& token) {
  using Result = base::Expected<base::Ok, queue::SpoolError>;
  return asio::async_initiate<Token, void(Result)>(
      [&committer, &writer](auto handler) {
        auto work = asio::make_work_guard(handler);
        auto shared = std::make_shared<std::pair<decltype(handler), decltype(work)>>(
            std::move(handler), std::move(work));
        committer.commit_async(writer, [shared](Result result) {
          auto executor = shared->second.get_executor();
          asio::post(executor, [shared, result = std::move(result)]() mutable {
            shared->first(std::move(result));
          });
        });
      },
      token);
}

// Runs one check with its deadline: the verdict, or nothing when the deadline passed first.
// The check may answer at once or later from any thread; the answer is brought back to this
// connection's executor, and one that comes after the deadline is dropped.
awaitable<std::optional<intake::Verdict>> run_check(intake::Check& check, intake::Stage stage,
                                                    const intake::Context& context) {
  struct Pending {
    explicit Pending(asio::any_io_executor executor) : timer(executor) {}
    asio::steady_timer timer;
    std::optional<intake::Verdict> verdict;
    bool over = false;
  };
  auto executor = co_await asio::this_coro::executor;
  auto pending = std::make_shared<Pending>(executor);
  pending->timer.expires_after(check.deadline());
  check.run(stage, context, [pending, executor](intake::Verdict verdict) {
    asio::post(executor, [pending, verdict = std::move(verdict)]() mutable {
      if (pending->over) return;
      pending->verdict = std::move(verdict);
      pending->over = true;
      pending->timer.cancel();
    });
  });
  co_await pending->timer.async_wait(use_nothrow);
  pending->over = true;
  co_return std::move(pending->verdict);
}

// One stage through the pipeline (intake::StageRun decides; this only waits).
// XXX: GCC 12 reports a false -Wmismatched-new-delete for Asio's coroutine frame when it inlines
// this free coroutine (frame allocated and freed by the same awaitable_frame_base operators).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
awaitable<intake::Verdict> run_stage(const intake::Pipeline& pipeline, intake::Stage stage,
                                     const intake::Context& context) {
  intake::StageRun run(pipeline, stage);
  while (intake::Check* check = run.next_check()) {
    std::optional<intake::Verdict> verdict = co_await run_check(*check, stage, context);
    if (verdict)
      run.record(std::move(*verdict));
    else
      run.record_timeout();
  }
  for (const std::string& name : run.timed_out()) {
    obs::Log("check_timeout", obs::Level::kWarning)
        .kv("session", context.session_id)
        .kv("check", name)
        .kv("stage", intake::stage_name(stage));
  }
  co_return run.take_verdict();
}
#pragma GCC diagnostic pop

intake::Stage intake_stage(smtp::CheckStage stage) {
  switch (stage) {
    case smtp::CheckStage::kConnect:
      return intake::Stage::kConnect;
    case smtp::CheckStage::kHelo:
      return intake::Stage::kHelo;
    case smtp::CheckStage::kMail:
      return intake::Stage::kMail;
    case smtp::CheckStage::kRcpt:
      return intake::Stage::kRcpt;
  }
  return intake::Stage::kConnect;
}

}  // namespace

// One client connection. Owned by its coroutine (and the watchdog, through shared_ptr).
//
// TLS is a tls::Stream: OpenSSL over the non-blocking socket (a socket BIO), with Asio only
// waiting for readiness (net/tls_waiter.h). Unlike asio::ssl::stream, which keeps two 17 KiB
// buffers per connection for life, this lets SSL_MODE_RELEASE_BUFFERS free OpenSSL's record
// buffers while a connection is idle (≤ 64 KiB per open TLS connection).
struct Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}

  tcp::socket socket;
  tls::Stream ssl;  // set once the handshake starts; ssl.get() is the SSL* (AUTH needs it)
  asio::steady_timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  bool tls = false;
  bool timed_out = false;
  bool finished = false;
  std::atomic<bool> shutting_down{false};
  // Waiting for a command outside a mail transaction: a shutdown may interrupt this read
  // at once; any other wait is left to finish (set and read on the connection's thread).
  bool idle_read = false;
  std::array<char, 8 * 1024> read_buffer;

  // Sets the deadline of the next step. A later deadline is picked up when the watchdog's
  // timer fires; an earlier one (data after a command, a command after the handshake) must
  // wake the watchdog now so that it re-arms for it.
  void arm(std::chrono::seconds seconds) {
    if (timed_out) return;  // the watchdog's grace period for the 421 must stay short
    Clock::time_point next = Clock::now() + seconds;
    bool sooner = next < timer.expiry();
    deadline = next;
    if (sooner) timer.cancel();
  }

  // What a TLS read or write that ended without success means to serve(): eof when the
  // client closed (close_notify or TCP EOF), else an abort.
  static std::error_code stream_error(const tls::Result& result) {
    return result.status == tls::Status::kClosed ? std::error_code(asio::error::eof)
                                                 : std::error_code(asio::error::connection_aborted);
  }

  // Server side handshake on the socket; on failure `reason` says why, for the log.
  awaitable<bool> handshake(SSL_CTX* context, std::string& reason) {
    auto opened = tls::Stream::open(context, static_cast<int>(socket.native_handle()),
                                    tls::Stream::Side::kServer);
    if (!opened) {
      reason = "cannot create TLS session: " + opened.error();
      co_return false;
    }
    ssl = std::move(opened.value());
    std::error_code wait_error;
    tls::Result result = co_await complete(
        socket, [this] { return ssl.handshake(); }, wait_error);
    if (result.done()) co_return true;
    if (timed_out) {
      reason = "handshake timeout";
    } else if (result.status == tls::Status::kClosed) {
      reason = "client closed the connection during the handshake";
    } else {
      reason = std::move(result.reason);  // "wrong version number", "no shared cipher"
    }
    co_return false;
  }

  awaitable<std::size_t> read_some(std::error_code& error) {
    if (!tls) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(read_buffer), use_nothrow);
      error = ec;
      co_return n;
    }
    for (;;) {
      tls::Result result = ssl.read(read_buffer);
      if (result.done()) co_return result.bytes;
      if (!result.wants_io()) {
        error = stream_error(result);
        co_return 0;
      }
      auto [ec] = co_await async_wait_for(socket, result.status);
      if (ec) {
        error = ec;
        co_return 0;
      }
    }
  }

  awaitable<std::error_code> write_all(std::string_view data) {
    if (!tls) {
      auto [ec, n] =
          co_await asio::async_write(socket, asio::buffer(data.data(), data.size()), use_nothrow);
      co_return ec;
    }
    for (;;) {
      tls::Result result = ssl.write(data);
      if (result.done()) co_return std::error_code{};
      if (!result.wants_io()) co_return stream_error(result);
      auto [ec] = co_await async_wait_for(socket, result.status);
      if (ec) co_return ec;
    }
  }

  // RFC 8446 §6.1: send close_notify before closing. The peer's own close_notify is not
  // waited for (the connection is done either way), so this never blocks.
  void send_close_notify() {
    if (tls) ssl.shutdown();
  }

  void close() {
    std::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

// The options as sessions use them: the session asks for the checks its pipeline has.
std::shared_ptr<const ListenerOptions> with_checked_stages(ListenerOptions options) {
  options.session.checked_stages = options.checks ? options.checks->session_stages() : 0;
  return std::make_shared<const ListenerOptions>(std::move(options));
}

// Touched only on the first context (accept loops, update_listeners) once the server runs.
struct Listener {
  std::shared_ptr<const ListenerOptions> options;  // swapped by a reload, for new connections
  std::string key;                                 // identity across reloads (listener_key)
  std::unique_ptr<tcp::acceptor> acceptor;
};

// Which running listener a reloaded one is: address and port, or for port 0 (the kernel
// picks) address, role and how many such listeners came before it.
std::vector<std::string> listener_keys(const std::vector<ListenerOptions>& listeners) {
  std::vector<std::string> keys;
  std::unordered_map<std::string, unsigned> port_zero_seen;
  for (const ListenerOptions& options : listeners) {
    std::string key = options.address + " " + std::to_string(options.port);
    if (options.port == 0) {
      key += " " + options.role;
      key += " " + std::to_string(port_zero_seen[key]++);
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

struct Server::Impl {
  ServerServices services;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::unique_ptr<Listener>> listeners;
  // Removed by a reload: closed, kept until the end because their accept loop may still be
  // about to see the cancellation.
  std::vector<std::unique_ptr<Listener>> retired_listeners;
  std::atomic<bool> running{false};   // run() started the I/O threads
  std::atomic<bool> finished{false};  // run() is over: nothing posted will run any more
  std::atomic<std::size_t> next_context{0};
  std::atomic<std::uint64_t> session_counter{0};
  std::string id_prefix = session_id_prefix();
  std::atomic<bool> stopping{false};
  std::atomic<bool> grace_over{false};  // the shutdown grace period has passed
  asio::signal_set signals;

  std::unique_ptr<asio::steady_timer> grace_timer;  // lives on the first context
  // Password verification (argon2id: ~100 ms and 64 MiB each): two at a time.
  asio::thread_pool auth_pool{2};

  std::mutex connections_mutex;
  std::unordered_set<std::shared_ptr<Connection>> connections;  // guarded by connections_mutex
  std::unordered_map<std::string, std::size_t> per_ip;          // guarded by connections_mutex
  // Connections per client per minute, messages per user per hour (thread-safe tables).
  ConnectionRateTable connection_rate;
  UserMessageTable message_rate;
  // Refusals happen in the accept loops and, for PROXY listeners, in serve() on any thread.
  std::mutex refusal_log_mutex;
  Clock::time_point last_refusal_log{};  // guarded by refusal_log_mutex
  std::uint64_t refused_since_log = 0;   // guarded by refusal_log_mutex
  // Accept loops run on the first context only: no lock needed for this.
  Clock::time_point last_accept_failure_log{};

  Impl(unsigned threads, ServerServices s)
      : services(std::move(s)),
        contexts(make_contexts(threads)),
        signals(*contexts.front(), SIGINT, SIGTERM, SIGHUP),
        connection_rate(services.max_connections_per_minute_per_ip, std::chrono::minutes(1),
                        kMaxRateEntries),
        message_rate(services.max_messages_per_user_per_hour, std::chrono::hours(1),
                     kMaxRateEntries) {}

  static std::vector<std::unique_ptr<asio::io_context>> make_contexts(unsigned threads) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (unsigned i = 0; i < threads; ++i)
      out.push_back(std::make_unique<asio::io_context>(1));
    return out;
  }

  asio::io_context& pick_context() {
    return *contexts[next_context.fetch_add(1, std::memory_order_relaxed) % contexts.size()];
  }

  std::string new_session_id() {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%s%08llx", id_prefix.c_str(),
                  static_cast<unsigned long long>(session_counter.fetch_add(1) + 1));
    return buffer;
  }

  awaitable<void> accept_loop(Listener& listener) {
    for (;;) {
      asio::io_context& target = pick_context();
      auto [ec, socket] = co_await listener.acceptor->async_accept(target, use_nothrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping) co_return;
        if (Clock::now() - last_accept_failure_log >= std::chrono::seconds(1)) {
          obs::Log("accept_failed", obs::Level::kWarning)
              .kv("role", listener.options->role)
              .kv("error", ec.message());
          last_accept_failure_log = Clock::now();
        }
        // EMFILE and friends: back off a little instead of spinning.
        asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
        co_await pause.async_wait(use_nothrow);
        continue;
      }
      std::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      socket.non_blocking(true, ignored);
      tcp::endpoint peer = socket.remote_endpoint(ignored);
      if (ignored) {  // the peer is gone already (reset before we got to it): nothing to serve
        socket.close(ignored);
        continue;
      }
      std::string client = endpoint_address(peer);
      std::shared_ptr<const ListenerOptions> options = listener.options;  // as of this accept
      const bool proxied = options->proxy_protocol;
      auto connection = std::make_shared<Connection>(std::move(socket));
      std::string session_id = new_session_id();  // refused connections are named too
      if (proxied && !trusted_proxy(client, *options)) {
        refuse(*connection, *options, session_id, client,
               Refusal{"Connection not from a configured proxy", "proxy_from"});
        continue;
      }
      // Behind a proxy, the per-client limits wait for the header that names the client.
      std::optional<Refusal> refusal = admit(connection, client, /*per_client=*/!proxied);
      if (refusal) {
        refuse(*connection, *options, session_id, client, *refusal);
        continue;
      }
      asio::co_spawn(target, serve(connection, std::move(options), session_id, client),
                     [session_id, client](std::exception_ptr failure) {
                       if (!failure) return;
                       try {
                         std::rethrow_exception(failure);
                       } catch (const std::exception& e) {
                         obs::Log("session_crashed", obs::Level::kError)
                             .kv("session", session_id)
                             .kv("client", client)
                             .kv("error", e.what());
                       }
                     });
    }
  }

  struct Refusal {
    std::string_view text;   // after "421 4.7.0 <hostname> "
    std::string_view limit;  // for the log: total, per_ip, rate, proxy_from
  };

  bool trusted_proxy(const std::string& peer, const ListenerOptions& options) const {
    auto ip = base::parse_ip(peer);
    return ip && std::any_of(options.proxy_from.begin(), options.proxy_from.end(),
                             [&](const base::Network& network) { return network.contains(*ip); });
  }

  // The connection limits. A new connection (not yet counted anywhere) enters the table of
  // open connections unless the total is reached; with per_client it is also counted for
  // its client against max_connections_per_ip and the per-minute rate (else admit_client()
  // does that later, once a PROXY header has named the client).
  std::optional<Refusal> admit(const std::shared_ptr<Connection>& connection,
                               const std::string& client, bool per_client) {
    std::lock_guard lock(connections_mutex);
    if (connections.size() >= services.max_connections) {
      return Refusal{"Too many connections, try again later", "total"};
    }
    if (per_client) {
      if (auto refusal = admit_client_locked(client)) return refusal;
    }
    connections.insert(connection);
    return std::nullopt;
  }

  std::optional<Refusal> admit_client(const std::string& client) {
    std::lock_guard lock(connections_mutex);
    return admit_client_locked(client);
  }

  std::optional<Refusal> admit_client_locked(const std::string& client) {
    auto it = per_ip.find(client);
    if (it != per_ip.end() && it->second >= services.max_connections_per_ip) {
      return Refusal{"Too many connections from your address, try again later", "per_ip"};
    }
    // Counted only when admitted, so a refused client is back as soon as its rate drops.
    if (!connection_rate.admit(address_key(client), Clock::now())) {
      return Refusal{"Too many connections from your address per minute, try again later", "rate"};
    }
    ++per_ip[client];
    return std::nullopt;
  }

  // Over a connection limit: a 421 where the role speaks plaintext first (RFC 5321 §3.1
  // allows 421 instead of the greeting), a plain close on implicit TLS. Logged at most once
  // a second (with the count since the last line) so that a flood cannot flood the log too.
  void refuse(Connection& connection, const ListenerOptions& options, const std::string& session_id,
              const std::string& client, const Refusal& why) {
    if (!options.implicit_tls) {
      std::string reply = "421 4.7.0 " + services.hostname + " " + std::string(why.text) + "\r\n";
      std::error_code ignored;
      connection.socket.write_some(asio::buffer(reply), ignored);  // best effort, non-blocking
    }
    connection.close();
    std::lock_guard lock(refusal_log_mutex);
    ++refused_since_log;
    auto now = Clock::now();
    if (now - last_refusal_log >= std::chrono::seconds(1)) {
      obs::Log("connection_refused", obs::Level::kWarning)
          .kv("session", session_id)
          .kv("role", options.role)
          .kv("client", client)
          .kv("limit", why.limit)
          .kv("reason", why.text)
          .kv("refused_since_last_line", refused_since_log);
      refused_since_log = 0;
      last_refusal_log = now;
    }
  }

  // Reads the PROXY protocol header without taking one byte past it: what follows is the
  // client's own stream (its ClientHello, read by OpenSSL straight from the socket, or its
  // first command). Each round peeks at what has arrived; bytes that only extend a header
  // still incomplete are consumed, and at the end exactly the rest of the header is.
  struct ProxyHeaderError {
    std::string reason;
    bool nothing_received = false;  // gone without one byte: a port probe or health check
  };
  static awaitable<base::Expected<proxy_protocol::Header, ProxyHeaderError>> read_proxy_header(
      Connection& connection) {
    using Result = base::Expected<proxy_protocol::Header, ProxyHeaderError>;
    auto failure = [&](std::string reason, bool nothing = false) {
      return Result(base::unexpected(ProxyHeaderError{std::move(reason), nothing}));
    };
    static_assert(proxy_protocol::kMaxLength <= sizeof connection.read_buffer);
    char* buffer = connection.read_buffer.data();
    std::size_t have = 0;
    const int fd = connection.socket.native_handle();
    for (;;) {
      auto [ec] = co_await connection.socket.async_wait(tcp::socket::wait_read, use_nothrow);
      if (ec)
        co_return Result(
            base::unexpected(connection.timed_out ? std::string("timeout") : ec.message()));
      ssize_t n = ::recv(fd, buffer + have, proxy_protocol::kMaxLength - have, MSG_PEEK);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n < 0) co_return failure(std::strerror(errno), have == 0 && errno == ECONNRESET);
      if (n == 0) co_return failure("closed before the header", have == 0);
      proxy_protocol::Result parsed =
          proxy_protocol::parse(std::string_view(buffer, have + static_cast<std::size_t>(n)));
      if (parsed.status == proxy_protocol::Status::kInvalid) {
        co_return failure(std::string(parsed.error));
      }
      std::size_t take = parsed.status == proxy_protocol::Status::kDone
                             ? parsed.length - have
                             : static_cast<std::size_t>(n);
      if (::recv(fd, buffer + have, take, 0) != static_cast<ssize_t>(take)) {
        co_return failure("short read of a peeked header");
      }
      have += take;
      if (parsed.status == proxy_protocol::Status::kDone) co_return Result(parsed.header);
    }
  }

  static awaitable<void> watchdog(std::shared_ptr<Connection> connection) {
    while (!connection->finished) {
      connection->timer.expires_at(connection->deadline);
      co_await connection->timer.async_wait(use_nothrow);
      if (connection->finished) co_return;
      if (connection->deadline <= Clock::now()) {
        if (connection->timed_out) {  // the 421 could not be written in time either
          connection->close();
          co_return;
        }
        connection->timed_out = true;
        connection->deadline = Clock::now() + kShutdownGrace;
        std::error_code ignored;
        connection->socket.cancel(ignored);
      }
    }
  }

  // Runs when serve() ends, normally or by an exception: the connection leaves the tables.
  struct ConnectionRelease {
    Impl& impl;
    std::shared_ptr<Connection> connection;
    std::string client;              // the key in per_ip …
    bool counted_for_client = true;  // … if the connection was counted there
    ~ConnectionRelease() {
      connection->finished = true;
      connection->timer.cancel();
      connection->close();
      {
        std::lock_guard lock(impl.connections_mutex);
        impl.connections.erase(connection);
        auto it = counted_for_client ? impl.per_ip.find(client) : impl.per_ip.end();
        if (it != impl.per_ip.end() && --it->second == 0) impl.per_ip.erase(it);
      }
      if (impl.stopping) impl.maybe_finish();
    }
  };

  awaitable<void> serve(std::shared_ptr<Connection> connection,
                        std::shared_ptr<const ListenerOptions> listener_options,
                        std::string session_id, std::string client) {
    const ListenerOptions& options = *listener_options;  // this connection's, for its life
    ConnectionRelease release{*this, connection, client, !options.proxy_protocol};
    std::error_code ec;
    tcp::endpoint peer = connection->socket.remote_endpoint(ec);
    unsigned short client_port = ec ? 0 : peer.port();
    auto started = Clock::now();
    obs::ConnectionScope open_connection(options.role);  // metrics: accepted, open

    connection->arm(options.proxy_protocol ? kProxyHeaderTimeout : options.handshake_timeout);
    asio::co_spawn(connection->socket.get_executor(), watchdog(connection), asio::detached);

    // Behind a proxy the header names the client: from here on it is the address that is
    // logged, limited (connections, rate, AUTH failures) and written in Received.
    std::string proxy;
    if (options.proxy_protocol) {
      proxy = client;
      auto header = co_await read_proxy_header(*connection);
      if (!header) {
        const bool probe = header.error().nothing_received;
        obs::Log("proxy_header_failed", probe ? obs::Level::kDebug : obs::Level::kWarning)
            .kv("session", session_id)
            .kv("role", options.role)
            .kv("proxy", proxy)
            .kv("reason", header.error().reason);
        co_return;
      }
      if (!header->use_socket_address) {
        client = header->source_address;
        client_port = header->source_port;
      }
      release.client = client;
      if (auto refusal = admit_client(client)) {
        refuse(*connection, options, session_id, client, *refusal);
        co_return;
      }
      release.counted_for_client = true;
    }
    {
      obs::Log connect("connect");
      connect.kv("session", session_id)
          .kv("role", options.role)
          .kv("client", client)
          .kv("client_port", client_port);
      if (!proxy.empty()) connect.kv("proxy", proxy);
    }

    connection->arm(options.handshake_timeout);

    smtp::ServerSession session(options.session);
    // The hourly message rate of authenticated users, asked at MAIL; a refusal is logged
    // here, where the session and client are known. Only where AUTH is offered.
    if (message_rate.limit() != 0 && !options.session.auth_mechanisms.empty()) {
      session.set_message_gate([this, &session_id, &client](std::string_view user) {
        if (message_rate.below_limit(std::string(user), Clock::now())) return true;
        obs::Log("user_rate_limited", obs::Level::kWarning)
            .kv("session", session_id)
            .kv("client", client)
            .kv("user", user)
            .kv("limit", static_cast<std::uint64_t>(message_rate.limit()))
            .kv("window", "1h");
        return false;
      });
    }
    static const intake::Pipeline kNoChecks;
    const intake::Pipeline& checks = options.checks ? *options.checks : kNoChecks;
    intake::MessageIntake intake(
        *services.spool, checks,
        intake::SessionFacts{session_id, client, client_port, options.role, services.hostname,
                             services.received_names_user});
    intake::Verdict message_verdict;  // what the checks said of the message so far
    // A stage's verdict for the message being received: a reply ends it (the session sends
    // the reply at the end of the data), anything else is kept for the end of data.
    auto take_message_verdict = [&](intake::Verdict verdict) {
      if (verdict.kind == intake::Verdict::Kind::kReply) {
        intake.abort();
        session.message_failed(verdict.reply);
        return;
      }
      if (verdict.kind != intake::Verdict::Kind::kPass) message_verdict.kind = verdict.kind;
      intake::merge_edits(message_verdict, std::move(verdict));
    };
    unsigned messages = 0;
    std::string close_reason = "quit";
    std::unique_ptr<auth::Authenticator> authenticator;  // the AUTH exchange in progress

    auto handshake = [&]() -> awaitable<bool> {
      connection->arm(options.handshake_timeout);
      std::string reason;
      if (!co_await connection->handshake(options.tls_context.get(), reason)) {
        obs::Log("tls_handshake_failed", obs::Level::kWarning)
            .kv("session", session_id)
            .kv("role", options.role)
            .kv("client", client)
            .kv("reason", reason);
        obs::server_metrics().tls_handshake_failed(options.role, reason);
        co_return false;
      }
      connection->tls = true;
#ifdef TCP_QUICKACK
      // After STARTTLS the client speaks next (EHLO), right behind its Finished message. A
      // client without TCP_NODELAY (Python's smtplib, for one) holds that EHLO back until
      // its Finished is acknowledged, and a delayed ACK costs it 40 ms: acknowledge now.
      int quick_ack = 1;
      ::setsockopt(connection->socket.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &quick_ack,
                   sizeof quick_ack);
#endif
      tls::SessionDescription d = tls::describe(connection->ssl.get());
      session.tls_established(smtp::TlsInfo{d.version, d.cipher, d.sni});
      obs::server_metrics().tls_established(options.role, d.version);
      obs::Log("tls")
          .kv("session", session_id)
          .kv("client", client)
          .kv("version", d.version)
          .kv("cipher", d.cipher)
          .kv("sni", d.sni)
          .kv("resumed", d.resumed);
      co_return true;
    };

    bool alive = true;
    if (options.implicit_tls) alive = co_await handshake();
    if (!alive) close_reason = "handshake failed";
    if (alive) session.start();

    // RFC 5321 §4.5.3.2: the command timeout runs from the moment the server waits for a
    // command until the whole line is in; bytes that trickle in (a slow-loris client, one
    // byte every few seconds) do not restart it. It restarts after each reply, and the
    // data-block timeout restarts with each read, as §4.5.3.2.5 says.
    bool command_clock_running = false;
    auto flush = [&]() -> awaitable<bool> {
      std::string_view out = session.pending_output();
      if (out.empty()) co_return true;
      obs::server_metrics().replies_sent(out);
      command_clock_running = false;
      connection->arm(options.command_timeout);
      std::error_code error = co_await connection->write_all(out);
      if (error) {
        close_reason = "write failed: " + error.message();
        co_return false;
      }
      session.consume_output(out.size());
      co_return true;
    };

    while (alive) {
      // A graceful stop: a session ends (421 4.3.2) once no transaction is open, so a
      // message being sent is finished and acknowledged first; past the grace period,
      // every session ends.
      if (stopping && (grace_over || !session.in_transaction()) &&
          !connection->shutting_down.exchange(true)) {
        session.shutdown();
      }
      smtp::Action action = session.next();
      switch (action) {
        case smtp::Action::kNeedInput: {
          if (!co_await flush()) {
            alive = false;
            break;
          }
          if (session.waiting() == smtp::Waiting::kDataBlock) {
            connection->arm(options.data_timeout);
            command_clock_running = false;
          } else if (!command_clock_running) {
            connection->arm(options.command_timeout);
            command_clock_running = true;
          }
          std::error_code error;
          connection->idle_read = !session.in_transaction();
          std::size_t n = co_await connection->read_some(error);
          connection->idle_read = false;
          if (n > 0) session.receive(std::string_view(connection->read_buffer.data(), n));
          if (error) {
            if (connection->timed_out) {
              close_reason = "timeout";
              session.timeout();
            } else if (stopping) {
              close_reason = "shutdown";
              connection->shutting_down = true;
              session.shutdown();
            } else {
              close_reason = error == asio::error::eof ? "client closed" : error.message();
              session.receive_eof();
            }
          }
          break;
        }
        case smtp::Action::kStartTls: {
          if (!co_await flush()) {
            alive = false;
            break;
          }
          // RFC 3207 §4.2 / CVE-2011-0411: the session dropped whatever it had buffered;
          // bytes still in flight are read by the handshake as TLS records, so plaintext
          // pipelined after STARTTLS can never become a command.
          if (!co_await handshake()) {
            close_reason = "handshake failed";
            alive = false;
          }
          command_clock_running = false;
          break;
        }
        case smtp::Action::kMessageBegin: {
          message_verdict = intake::Verdict::pass();
          const smtp::TlsInfo& info = session.tls_info();
          const bool tls = session.tls_active();
          intake::MessageStart start{&session.envelope(),
                                     session.with_protocol(),
                                     tls ? std::string_view(info.version) : std::string_view(),
                                     tls ? std::string_view(info.cipher) : std::string_view(),
                                     session.authenticated_user(),
                                     base::unix_now()};
          if (auto refusal = intake.begin(start)) {
            session.message_failed(*refusal);
            break;
          }
          if (checks.wants(intake::Stage::kDataStart)) {
            intake::Context context = intake.context();
            context.tls_version = start.tls_version;
            take_message_verdict(co_await run_stage(checks, intake::Stage::kDataStart, context));
          }
          break;
        }
        case smtp::Action::kMessageData: {
          if (!intake.open()) break;
          if (auto failure = intake.append(session.message_data())) {
            session.message_failed(*failure);
            break;
          }
          for (const intake::ContentEvent& event : intake.events()) {
            intake::Context context = intake.context();
            context.header_name = event.name;
            context.header_value = event.value;
            context.body_chunk = event.chunk;
            take_message_verdict(co_await run_stage(checks, event.stage, context));
            if (!intake.open()) break;
          }
          intake.clear_events();
          break;
        }
        case smtp::Action::kMessageAbort: {
          intake.abort();
          break;
        }
        case smtp::Action::kMessageEnd: {
          if (!intake.open()) {
            session.message_failed(
                smtp::Reply{451, "4.3.0", "Temporary failure: message not stored, try later"});
            break;
          }
          if (checks.wants(intake::Stage::kEndOfData)) {
            take_message_verdict(
                co_await run_stage(checks, intake::Stage::kEndOfData, intake.context()));
            if (!intake.open()) break;
          }
          if (message_verdict.kind == intake::Verdict::Kind::kDiscard) {
            // The client is told the message was taken; nothing is stored.
            obs::Log("discarded").kv("session", session_id).kv("id", intake.queue_id());
            std::string id = intake.queue_id();
            intake.abort();
            session.message_committed(id);
            break;
          }
          // A hold is committed like any message: apply() marks it held in the spool.
          if (auto refusal = intake.apply(message_verdict)) {
            session.message_failed(*refusal);
            break;
          }
          auto result =
              co_await async_commit(*services.committer, *intake.writer(), asio::use_awaitable);
          auto committed = intake.committed(result);
          if (!committed) {
            session.message_failed(committed.error());
            break;
          }
          ++messages;
          obs::server_metrics().message_accepted(session.envelope().recipients.size(),
                                                 Clock::now() - started);
          if (!session.authenticated_user().empty()) {
            message_rate.record(std::string(session.authenticated_user()), Clock::now());
          }
          session.message_committed(*committed);
          if (services.on_committed) services.on_committed(*committed);
          break;
        }
        case smtp::Action::kCheck: {
          if (!co_await flush()) {  // the replies before the checked command go out first
            alive = false;
            break;
          }
          const smtp::TlsInfo& info = session.tls_info();
          intake::Context context;
          context.session_id = session_id;
          context.client_address = client;
          context.client_port = client_port;
          context.role = options.role;
          context.tls_version = session.tls_active() ? std::string_view(info.version) : "";
          context.authenticated_user = session.authenticated_user();
          context.envelope = &session.envelope();
          context.helo = session.envelope().helo;
          const smtp::CheckStage stage = session.check_stage();
          if (stage == smtp::CheckStage::kHelo) context.helo = session.check_argument();
          if (stage == smtp::CheckStage::kMail) context.sender = session.check_argument();
          if (stage == smtp::CheckStage::kRcpt) context.recipient = session.check_argument();
          intake::Verdict verdict = co_await run_stage(checks, intake_stage(stage), context);
          if (verdict.kind == intake::Verdict::Kind::kReply)
            session.check_refused(verdict.reply);
          else
            session.check_passed();
          break;
        }
        case smtp::Action::kAuthenticate: {
          co_await authenticate(session, *connection, authenticator, session_id, client);
          break;
        }
        case smtp::Action::kClose: {
          co_await flush();
          alive = false;
          break;
        }
      }
    }

    intake.abort();
    if (session.closed_as_http()) {
      close_reason = "http request (cross-protocol)";
      obs::Log("http_refused", obs::Level::kWarning).kv("session", session_id).kv("client", client);
    }
    if (!connection->timed_out) connection->send_close_notify();
    connection->finished = true;
    connection->timer.cancel();
    connection->close();  // before the log line: the client sees the end at once
    auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    const smtp::TlsInfo& info = session.tls_info();
    obs::Log("session_end")
        .kv("session", session_id)
        .kv("role", options.role)
        .kv("client", client)
        .kv("tls", connection->tls ? info.version : std::string("none"))
        .kv("cipher", connection->tls ? info.cipher : std::string("none"))
        .kv("sni", info.sni)
        .kv("messages", messages)
        .kv("duration_ms", static_cast<std::int64_t>(elapsed))
        .kv("reason", close_reason);
  }

  // RFC 9266: the tls-exporter channel binding, defined for TLS 1.3 (and TLS 1.2 with the
  // extended master secret); empty when unavailable, which refuses SCRAM-…-PLUS.
  static std::string tls_exporter(SSL* ssl) {
    if (ssl == nullptr) return {};
    if (SSL_version(ssl) != TLS1_3_VERSION && SSL_get_extms_support(ssl) != 1) return {};
    std::string value(32, '\0');
    static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
    if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(value.data()),
                                   value.size(), kLabel, sizeof kLabel - 1, nullptr, 0, 0) != 1) {
      ERR_clear_error();
      return {};
    }
    return value;
  }

  // What the client certificate of this connection says (for SASL EXTERNAL), as the
  // authenticator takes it: it never looks at the TLS session itself.
  static auth::ClientCertificate client_certificate(SSL* ssl) {
    tls::ClientIdentity identity = tls::client_identity(ssl);
    return auth::ClientCertificate{
        identity.presented, identity.verified, std::move(identity.verify_error),
        auth::CertificateNames{std::move(identity.email_sans), std::move(identity.subject_cn)}};
  }

  // One kAuthenticate step. The policy (lockouts, cache, reply codes, log lines) is the
  // authenticator's; here only the hop to the worker pool for argon2id and back, and the
  // limiter's wait before a failure reply.
  awaitable<void> authenticate(smtp::ServerSession& session, Connection& connection,
                               std::unique_ptr<auth::Authenticator>& authenticator,
                               const std::string& session_id, const std::string& client) {
    std::optional<auth::Outcome> outcome;
    if (session.auth_starting() || !authenticator) {
      authenticator = std::make_unique<auth::Authenticator>(
          auth::AuthServices{services.users, services.limiter, services.verified_cache},
          auth::AuthConnection{client, session_id, tls_exporter(connection.ssl.get()),
                               client_certificate(connection.ssl.get())});
      // Without auth_starting() (cannot happen) the new authenticator refuses the step.
      if (session.auth_starting()) {
        outcome = authenticator->start(session.auth_mechanism(), Clock::now());
      }
    }
    if (!outcome) {
      outcome =
          authenticator->step(session.auth_response(), session.auth_has_response(), Clock::now());
    }
    while (outcome->kind == auth::Outcome::Kind::kVerifyPassword) {
      // argon2id off the I/O thread: hop to the pool, verify, hop back.
      auto home = co_await asio::this_coro::executor;
      co_await asio::post(auth_pool, asio::use_awaitable);
      const bool ok = auth::verify_password(outcome->check.user, outcome->check.password);
      co_await asio::post(home, asio::use_awaitable);
      outcome = authenticator->password_verified(ok, Clock::now());
    }
    switch (outcome->kind) {
      case auth::Outcome::Kind::kChallenge:
        session.auth_challenge(outcome->challenge);
        co_return;
      case auth::Outcome::Kind::kSucceeded:
        authenticator.reset();
        session.auth_succeeded(outcome->user);
        co_return;
      case auth::Outcome::Kind::kFailed:
      case auth::Outcome::Kind::kVerifyPassword:  // handled above
        authenticator.reset();
        if (outcome->delay.count() > 0) {
          asio::steady_timer pause(co_await asio::this_coro::executor, outcome->delay);
          co_await pause.async_wait(use_nothrow);
        }
        session.auth_failed(outcome->reply);
        co_return;
    }
  }

  void maybe_finish() {
    std::lock_guard lock(connections_mutex);
    if (connections.empty()) {
      for (auto& guard : guards)
        guard.reset();
      asio::post(*contexts.front(), [this] {
        if (grace_timer) grace_timer->cancel();
      });
    }
  }

  // Wakes sessions so that they see `stopping`: each blocked read is cancelled, or (with
  // only_idle) only a read for a command outside a transaction.
  static void interrupt(const std::vector<std::shared_ptr<Connection>>& connections,
                        bool only_idle) {
    for (auto& connection : connections) {
      asio::post(connection->socket.get_executor(), [connection, only_idle] {
        if (only_idle && !connection->idle_read) return;
        std::error_code ignored;
        connection->socket.cancel(ignored);
      });
    }
  }

  void begin_stop() {
    if (stopping.exchange(true)) return;
    obs::Log("stopping");
    if (services.on_stopping) services.on_stopping();
    for (auto& listener : listeners) {
      std::error_code ignored;
      listener->acceptor->close(ignored);
    }
    signals.cancel();
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard lock(connections_mutex);
      open.assign(connections.begin(), connections.end());
    }
    // Idle sessions get their 421 4.3.2 now; sessions inside a transaction finish it.
    interrupt(open, /*only_idle=*/true);
    // Past the grace period every session is told 421 4.3.2 (its unfinished message was
    // never acknowledged, so the client still has it); a session that cannot even take
    // that within kShutdownGrace more is cut.
    grace_timer = std::make_unique<asio::steady_timer>(*contexts.front(), services.shutdown_grace);
    grace_timer->async_wait([this](std::error_code ec) {
      if (ec) return;
      grace_over = true;
      std::vector<std::shared_ptr<Connection>> left;
      {
        std::lock_guard lock(connections_mutex);
        left.assign(connections.begin(), connections.end());
      }
      obs::Log("shutdown_grace_over").kv("sessions", static_cast<std::uint64_t>(left.size()));
      interrupt(left, /*only_idle=*/false);
      grace_timer->expires_after(kShutdownGrace);
      grace_timer->async_wait([this](std::error_code ec) {
        if (ec) return;
        for (auto& context : contexts)
          context->stop();
      });
    });
    maybe_finish();
  }

  void wait_for_signal() {
    signals.async_wait([this](std::error_code ec, int signal) {
      if (ec) return;
      obs::Log("signal").kv("signal", signal);
      if (signal != SIGHUP) {
        begin_stop();
        return;
      }
      if (services.on_hangup) {
        services.on_hangup();
      } else {
        obs::Log("reload_unsupported", obs::Level::kWarning);
      }
      wait_for_signal();
    });
  }

  // Opens, binds and listens; logs event=listening.
  base::Expected<std::unique_ptr<Listener>, std::string> bind(const ListenerOptions& options) {
    auto listener = std::make_unique<Listener>();
    listener->options = with_checked_stages(options);
    std::error_code ec;
    asio::ip::address address = asio::ip::make_address(options.address, ec);
    if (ec) {
      return base::unexpected("listener " + options.role + ": bad address '" + options.address +
                              "': " + ec.message());
    }
    auto acceptor = std::make_unique<tcp::acceptor>(*contexts.front());
    tcp::endpoint endpoint(address, options.port);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && address.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return base::unexpected("listener " + options.role + ": cannot listen on " + options.address +
                              " port " + std::to_string(options.port) + ": " + ec.message());
    }
    std::uint16_t port = acceptor->local_endpoint().port();
    listener->acceptor = std::move(acceptor);
    obs::Log("listening")
        .kv("role", options.role)
        .kv("address", options.address)
        .kv("port", static_cast<unsigned>(port))
        .kv("tls", options.implicit_tls ? "implicit" : "starttls");
    return listener;
  }

  // See Server::update_listeners; runs on the first context (or before run()).
  base::Expected<std::vector<std::uint16_t>, ListenerError> update_listeners(
      std::vector<ListenerOptions> wanted) {
    if (stopping) return base::unexpected(ListenerError{0, "the server is stopping"});
    const std::vector<std::string> keys = listener_keys(wanted);
    std::unordered_map<std::string, Listener*> running_by_key;
    for (auto& listener : listeners)
      running_by_key[listener->key] = listener.get();
    // 1. Bind what is new; on any failure close those again and change nothing.
    std::vector<std::unique_ptr<Listener>> fresh(wanted.size());
    for (std::size_t i = 0; i < wanted.size(); ++i) {
      if (running_by_key.count(keys[i]) != 0) continue;
      auto bound = bind(wanted[i]);
      if (!bound) {
        for (auto& listener : fresh) {
          if (!listener) continue;
          std::error_code ignored;
          listener->acceptor->close(ignored);
          obs::Log("listener_closed")
              .kv("role", listener->options->role)
              .kv("address", listener->options->address)
              .kv("port", static_cast<unsigned>(listener->options->port))
              .kv("reason", "reload refused");
        }
        return base::unexpected(ListenerError{i, bound.error()});
      }
      fresh[i] = std::move(bound.value());
      fresh[i]->key = keys[i];
    }
    // 2. Kept listeners take their new options; 3. removed ones stop accepting.
    std::vector<std::unique_ptr<Listener>> next(wanted.size());
    std::vector<std::uint16_t> ports(wanted.size());
    for (auto& listener : listeners) {
      auto at = std::find(keys.begin(), keys.end(), listener->key);
      if (at == keys.end()) {
        std::error_code ignored;
        auto endpoint = listener->acceptor->local_endpoint(ignored);
        listener->acceptor->close(ignored);
        obs::Log("listener_closed")
            .kv("role", listener->options->role)
            .kv("address", listener->options->address)
            .kv("port", static_cast<unsigned>(endpoint.port()))
            .kv("reason", "removed from the configuration");
        retired_listeners.push_back(std::move(listener));
        continue;
      }
      const std::size_t i = static_cast<std::size_t>(at - keys.begin());
      listener->options = with_checked_stages(std::move(wanted[i]));
      next[i] = std::move(listener);
    }
    // 4. New ones start accepting.
    for (std::size_t i = 0; i < wanted.size(); ++i) {
      if (fresh[i]) {
        next[i] = std::move(fresh[i]);
        if (running) asio::co_spawn(*contexts.front(), accept_loop(*next[i]), asio::detached);
      }
      std::error_code ignored;
      ports[i] = next[i]->acceptor->local_endpoint(ignored).port();
    }
    listeners = std::move(next);
    return ports;
  }
};

Server::Server(unsigned io_threads, ServerServices services)
    : impl_(std::make_unique<Impl>(io_threads, std::move(services))) {}

Server::~Server() = default;

base::Expected<std::uint16_t, std::string> Server::listen(const ListenerOptions& options) {
  auto listener = impl_->bind(options);
  if (!listener) return base::unexpected(listener.error());
  // Port-0 keys count earlier listeners of the same address and role.
  std::vector<ListenerOptions> all;
  for (const auto& running : impl_->listeners)
    all.push_back(*running->options);
  all.push_back(options);
  listener.value()->key = listener_keys(all).back();
  const std::uint16_t port = listener.value()->acceptor->local_endpoint().port();
  impl_->listeners.push_back(std::move(listener.value()));
  return port;
}

base::Expected<std::vector<std::uint16_t>, ListenerError> Server::update_listeners(
    std::vector<ListenerOptions> listeners) {
  Impl& impl = *impl_;
  using Result = base::Expected<std::vector<std::uint16_t>, ListenerError>;
  asio::io_context& front = *impl.contexts.front();
  if (!impl.running || front.get_executor().running_in_this_thread()) {
    return impl.update_listeners(std::move(listeners));
  }
  // Acceptors belong to the first context: the change runs there, between two accepts.
  auto promise = std::make_shared<std::promise<Result>>();
  std::future<Result> future = promise->get_future();
  asio::post(front, [&impl, promise, wanted = std::move(listeners)]() mutable {
    promise->set_value(impl.update_listeners(std::move(wanted)));
  });
  while (future.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    if (impl.finished) return base::unexpected(ListenerError{0, "the server has stopped"});
  }
  return future.get();
}

void Server::set_connection_limits(std::size_t max_connections,
                                   std::size_t max_connections_per_ip) {
  // Read under connections_mutex by the accept loops and, behind a PROXY listener, by
  // serve() on any I/O thread once the header has named the client.
  std::lock_guard lock(impl_->connections_mutex);
  impl_->services.max_connections = max_connections;
  impl_->services.max_connections_per_ip = max_connections_per_ip;
}

void Server::run() {
  Impl& impl = *impl_;
  for (auto& context : impl.contexts)
    impl.guards.push_back(asio::make_work_guard(*context));
  for (auto& listener : impl.listeners) {
    asio::co_spawn(*impl.contexts.front(), impl.accept_loop(*listener), asio::detached);
  }
  impl.wait_for_signal();
  impl.running = true;
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl.contexts.size(); ++i) {
    threads.emplace_back([context = impl.contexts[i].get()] { context->run(); });
  }
  impl.contexts.front()->run();
  for (auto& thread : threads)
    thread.join();
  impl.finished = true;
  obs::Log("stopped");
}

void Server::stop() {
  asio::post(*impl_->contexts.front(), [impl = impl_.get()] { impl->begin_stop(); });
}

}  // namespace net
