// bench_command.cpp — see bench_command.h.
#include "app/smtpsctl/bench_command.h"
#include "app/smtpsctl/command_line.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "app/smtpsctl/send_command.h"
#include "base/endpoint.h"
#include "base/json.h"
#include "base/terminal_text.h"
#include "net/tls_waiter.h"
#include "smtp/client_session.h"
#include "tls/policy.h"
#include "tls/stream.h"

namespace app {
namespace {

using asio::awaitable;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

struct BenchOptions {
  ServerAddress server;
  // --connect: where the TCP connections go instead of the --server host's address; TLS
  // still names (SNI) and verifies the --server host.
  std::optional<base::HostPort> connect_to;
  int connections = 8;
  long long messages = 1000;
  double duration_seconds = 0;  // > 0: run for this long instead of --messages
  long long per_connection = 1;
  std::size_t size = 1024;
  std::string from;
  std::string to = "demo@localhost";
  std::string user;
  std::string password;
  bool pipelining = false;
  bool resume = false;
  std::string cafile;
  unsigned threads = 1;
  std::chrono::seconds timeout{30};
  bool handshake_only = false;
  bool json = false;
};

// What one thread counted; merged once all threads are done (no sharing while running).
struct ThreadStats {
  long long messages = 0;     // accepted (final 2xx reply)
  long long connections = 0;  // sessions established (TLS up, EHLO done), or handshakes
  long long resumed = 0;      // of which the TLS session was resumed
  std::vector<double> latencies_ms;
  std::map<std::string, long long> failures;  // reply code or stage → count
};

// Read-only during the run, apart from the atomics and the fatal error.
struct Shared {
  Shared(const BenchOptions& options_in, SSL_CTX* context, tcp::endpoint endpoint_in)
      : options(options_in), tls_context(context), endpoint(endpoint_in) {}
  const BenchOptions& options;
  SSL_CTX* tls_context;
  tcp::endpoint endpoint;
  std::optional<smtp::StuffedContent> stuffed;  // the content's wire form, made once
  std::uint64_t content_size = 0;               // octets of the content (SIZE=)
  smtp::Envelope envelope;
  Clock::time_point end_of_run;  // --duration
  std::atomic<long long> claimed{0};
  std::atomic<long long> established{0};
  std::atomic<bool> stop{false};
  std::mutex fatal_mutex;
  std::string fatal;

  // Takes one unit of work (a message, or a handshake); false when there is none left.
  bool claim() {
    if (stop.load(std::memory_order_relaxed)) return false;
    if (options.duration_seconds > 0) return Clock::now() < end_of_run;
    return claimed.fetch_add(1, std::memory_order_relaxed) < options.messages;
  }
  void fail_run(std::string reason) {
    std::lock_guard lock(fatal_mutex);
    if (fatal.empty()) fatal = std::move(reason);
    stop = true;
  }
};

// --resume: the newest session (ticket) of this thread, offered on its next handshake.
struct SessionDeleter {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
thread_local std::unique_ptr<SSL_SESSION, SessionDeleter> thread_session;
thread_local unsigned long long thread_tickets = 0;  // sessions received by this thread

int remember_session(SSL*, SSL_SESSION* session) {
  thread_session.reset(session);
  ++thread_tickets;
  return 1;  // we keep the reference
}

// One TCP connection, TLS over it once started (a tls::Stream, waited for with Asio).
// Shared with its watchdog coroutine.
struct BenchConnection {
  explicit BenchConnection(const asio::any_io_executor& executor)
      : socket(executor), timer(executor) {}

  tcp::socket socket;
  asio::steady_timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  tls::Stream ssl;
  bool tls = false;
  bool timed_out = false;
  bool finished = false;
  std::array<char, 16 * 1024> read_buffer;

  // The deadline of the next wait (RFC 5321 §4.5.3.2 in spirit: every step is bounded).
  void arm(std::chrono::seconds seconds) {
    Clock::time_point next = Clock::now() + seconds;
    bool sooner = next < timer.expiry();
    deadline = next;
    if (sooner) timer.cancel();
  }

  static awaitable<void> watchdog(std::shared_ptr<BenchConnection> self) {
    while (!self->finished) {
      self->timer.expires_at(self->deadline);
      co_await self->timer.async_wait(use_nothrow);
      if (self->finished) break;
      if (Clock::now() >= self->deadline) {
        self->timed_out = true;
        std::error_code ignored;
        self->socket.cancel(ignored);
        break;
      }
    }
  }

  // Client handshake; "" when done, else the reason.
  awaitable<std::string> handshake(const Shared& shared) {
    std::error_code not_blocking;
    socket.non_blocking(true, not_blocking);  // OpenSSL reads and writes the descriptor itself
    auto opened = tls::Stream::open(shared.tls_context, static_cast<int>(socket.native_handle()),
                                    tls::Stream::Side::kClient);
    if (!opened) co_return "cannot create a TLS session: " + opened.error();
    ssl = std::move(opened.value());
    const std::string& host = shared.options.server.host;
    // RFC 6125: the certificate must name the host (or the IP literal); SNI only for names
    // (RFC 6066 §3).
    if (!ssl.expect_peer_name(host) || !ssl.set_server_name(host)) {
      co_return "cannot set the expected host name " + host;
    }
    if (shared.options.resume && thread_session) SSL_set_session(ssl.get(), thread_session.get());
    std::error_code wait_error;
    tls::Result result = co_await net::complete(
        socket, [this] { return ssl.handshake(); }, wait_error);
    if (result.done()) {
      tls = true;
      co_return "";
    }
    if (timed_out) co_return "timeout";
    if (result.status == tls::Status::kError && !wait_error) {
      long verify = SSL_get_verify_result(ssl.get());
      if (verify != X509_V_OK) {
        co_return std::string("certificate not accepted: ") + X509_verify_cert_error_string(verify);
      }
      co_return result.reason;
    }
    co_return "the server closed the connection during the handshake";
  }

  // --handshake-only --resume: TLS 1.3 tickets come after the handshake (RFC 8446 §4.6.1)
  // and are only processed on a read. Waits (once) for this connection's ticket: a server
  // may accept each ticket only once (OpenSSL's stateful tickets), so the next handshake
  // must offer the newest. A server that sends nothing after the handshake costs --timeout.
  awaitable<void> collect_ticket() {
    const unsigned long long before = thread_tickets;
    bool waited = false;
    for (;;) {
      std::array<char, 1> byte;
      tls::Result result = ssl.read(byte);
      if (result.status != tls::Status::kWantRead || thread_tickets != before || waited) break;
      waited = true;
      auto [ec] = co_await net::async_wait_for(socket, result.status);
      if (ec) break;
    }
  }

  // 0 with `closed` set at EOF or error.
  awaitable<std::size_t> read_some(bool& closed) {
    if (!tls) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(read_buffer), use_nothrow);
      closed = ec || n == 0;
      co_return n;
    }
    // The loop of net::complete, written out: no coroutine frame more per read or write.
    for (;;) {
      tls::Result result = ssl.read(read_buffer);
      if (result.done()) co_return result.bytes;
      if (!result.wants_io()) break;
      auto [ec] = co_await net::async_wait_for(socket, result.status);
      if (ec) break;
    }
    closed = true;
    co_return 0;
  }

  awaitable<bool> write_all(std::string_view data) {
    if (!tls) {
      auto [ec, n] =
          co_await asio::async_write(socket, asio::buffer(data.data(), data.size()), use_nothrow);
      co_return !ec;
    }
    for (;;) {
      tls::Result result = ssl.write(data);
      if (result.done()) co_return true;
      if (!result.wants_io()) co_return false;
      auto [ec] = co_await net::async_wait_for(socket, result.status);
      if (ec) co_return false;
    }
  }

  void close() {
    if (tls) ssl.shutdown();  // RFC 8446 §6.1: close_notify, without waiting for the peer's
    finished = true;
    timer.cancel();
    std::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

std::string failure_key(const smtp::ClientFailure& failure) {
  if (failure.reply) return std::to_string(failure.reply->code);
  return failure.stage;
}

// One connection: the first unit of work is already claimed by the caller.
awaitable<void> run_connection(Shared& shared, ThreadStats& stats) {
  const BenchOptions& options = shared.options;
  auto connection = std::make_shared<BenchConnection>(co_await asio::this_coro::executor);
  asio::co_spawn(connection->socket.get_executor(), BenchConnection::watchdog(connection),
                 asio::detached);
  connection->arm(options.timeout);
  auto [connect_error] = co_await connection->socket.async_connect(shared.endpoint, use_nothrow);
  if (connect_error) {
    connection->close();
    if (shared.established.load() == 0 && !connection->timed_out) {
      // Nothing ever connected: the server is not there; say so once and stop.
      std::string target = options.server.host + ":" + std::to_string(options.server.port);
      if (options.connect_to) {
        target = base::to_string(*options.connect_to) + " (--connect, for " + target + ")";
      }
      shared.fail_run("cannot connect to " + target + ": " + connect_error.message());
    }
    ++stats.failures[connection->timed_out ? "timeout" : "connect"];
    co_return;
  }
  std::error_code ignored;
  connection->socket.set_option(tcp::no_delay(true), ignored);

  if (options.server.implicit_tls) {
    connection->arm(options.timeout);
    std::string reason = co_await connection->handshake(shared);
    if (!reason.empty()) {
      connection->close();
      if (reason.rfind("certificate", 0) == 0) shared.fail_run("TLS: " + reason);
      ++stats.failures[connection->timed_out ? "timeout" : "tls"];
      co_return;
    }
    if (SSL_session_reused(connection->ssl.get())) ++stats.resumed;
    if (options.handshake_only) {
      if (options.resume) co_await connection->collect_ticket();
      ++stats.connections;
      ++shared.established;
      connection->close();
      co_return;
    }
  }

  smtp::ClientConfig config;
  config.helo_name = "bench.invalid";
  config.tls_active = options.server.implicit_tls;
  config.require_tls = true;
  config.pipelining = options.pipelining;
  config.auth_user = options.user;
  config.auth_password = options.password;
  smtp::ClientSession session(std::move(config));
  const std::array<std::size_t, 1> recipients{0};
  bool in_flight = true;  // the claimed unit not yet accounted for
  long long sent_here = 0;
  Clock::time_point end_of_data;
  for (;;) {
    if (!session.output().empty()) {
      connection->arm(options.timeout);
      bool written = co_await connection->write_all(session.output());
      session.output().clear();
      if (!written) session.server_closed();
    }
    switch (session.next()) {
      case smtp::ClientEvent::kNeedInput: {
        if (!session.output().empty()) break;  // next() wrote commands: flush them first
        connection->arm(options.timeout);
        bool closed = false;
        std::size_t n = co_await connection->read_some(closed);
        if (closed) {
          session.server_closed();
        } else {
          session.receive(std::string_view(connection->read_buffer.data(), n));
        }
        break;
      }
      case smtp::ClientEvent::kStartTls: {
        connection->arm(options.timeout);
        std::string reason = co_await connection->handshake(shared);
        if (!reason.empty()) {
          connection->close();
          if (reason.rfind("certificate", 0) == 0) shared.fail_run("TLS: " + reason);
          if (in_flight) ++stats.failures[connection->timed_out ? "timeout" : "tls"];
          co_return;
        }
        if (SSL_session_reused(connection->ssl.get())) ++stats.resumed;
        session.tls_established();
        break;
      }
      case smtp::ClientEvent::kReady:
        if (sent_here == 0) {
          ++stats.connections;
          ++shared.established;
        }
        if (in_flight || (sent_here < options.per_connection && shared.claim())) {
          in_flight = true;
          ++sent_here;
          session.send_message(shared.envelope, recipients, shared.content_size);
        } else {
          session.quit();
        }
        break;
      case smtp::ClientEvent::kSendContent: {
        // The content's wire form was made once for the run: no stuffing and no copy of it
        // per message, so that a large message costs the generator its encryption only.
        session.send_stuffed(*shared.stuffed);
        connection->arm(options.timeout);
        bool written = session.output().empty() || co_await connection->write_all(session.output());
        session.output().clear();
        if (written) written = co_await connection->write_all(shared.stuffed->wire());
        if (!written) session.server_closed();
        end_of_data = Clock::now();
        break;
      }
      case smtp::ClientEvent::kMessageDone: {
        in_flight = false;
        const smtp::ServerReply& reply = session.results().front().reply;
        if (reply.code >= 200 && reply.code < 300) {
          ++stats.messages;
          stats.latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - end_of_data).count());
        } else {
          ++stats.failures[std::to_string(reply.code)];
        }
        break;
      }
      case smtp::ClientEvent::kClosed:
        connection->close();
        co_return;
      case smtp::ClientEvent::kFailed:
        connection->close();
        if (in_flight) {
          ++stats.failures[connection->timed_out ? "timeout" : failure_key(session.failure())];
        }
        if (session.failure().stage == "starttls" || session.failure().stage == "auth") {
          // Every connection would fail the same way: report it once and stop.
          shared.fail_run(session.failure().detail);
        }
        co_return;
    }
  }
}

awaitable<void> run_slot(Shared& shared, ThreadStats& stats) {
  while (shared.claim())
    co_await run_connection(shared, stats);
}

double percentile(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  auto index = static_cast<std::size_t>(fraction * static_cast<double>(sorted.size()));
  return sorted[std::min(sorted.size() - 1, index)];
}

// A message of exactly `size` octets (at least the header block): CRLF lines of 72
// characters, none starting with a dot.
std::string build_content(const std::string& from, const std::string& to, std::size_t size) {
  std::string content =
      "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: smtpsctl bench\r\n\r\n";
  const std::string line =
      "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
  while (content.size() < size)
    content += line;
  if (content.size() > size) {
    content.resize(std::max(size, content.find("\r\n\r\n") + 4));
    if (content.size() >= 2) content.replace(content.size() - 2, 2, "\r\n");
  }
  return content;
}

base::Expected<std::string, std::string> read_password(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return base::unexpected("cannot read the password file " + path + ": " + std::strerror(errno));
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return base::unexpected("the password file " + path + " has no password");
  return line;
}

}  // namespace

int run_bench_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App cli{
      "SMTP load generator: messages/s, TLS handshakes/s, latency (end of data to the "
      "final reply)",
      "smtpsctl bench"};
  BenchOptions options;
  std::string server_url, password_file;
  unsigned hardware = std::thread::hardware_concurrency();
  options.threads = hardware == 0 ? 1 : hardware;
  cli.add_option("--server", server_url,
                 "smtps://HOST:PORT (implicit TLS) or smtp://HOST:PORT (STARTTLS)")
      ->required();
  std::string connect_text;
  auto* connect_option = cli.add_option(
      "--connect", connect_text,
      "ADDRESS:PORT (an IP literal, IPv6 in brackets): connect there instead of to the --server "
      "host's address, as curl's --connect-to; TLS still names (SNI) and verifies the --server "
      "host");
  cli.add_option("--connections", options.connections, "Connections in parallel (default 8)")
      ->check(CLI::Range(1, 100000));
  auto* messages_option =
      cli.add_option("--messages", options.messages, "Messages in all (default 1000)")
          ->check(CLI::Range(1LL, 1000000000LL));
  cli.add_option("--duration", options.duration_seconds,
                 "Run for SECONDS instead of --messages (SIGINT or SIGTERM ends any run early, "
                 "with its report)")
      ->check(CLI::Range(0.01, 86400.0))
      ->excludes(messages_option);
  cli.add_option("--per-connection", options.per_connection,
                 "Messages per connection (1: a new TLS handshake per message; default 1)")
      ->check(CLI::Range(1LL, 1000000000LL));
  cli.add_option("--size", options.size, "Message size in octets (default 1024)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  cli.add_option("--from", options.from, "Envelope sender (default: --user, else bench@localhost)");
  cli.add_option("--to", options.to, "Recipient (default demo@localhost)");
  cli.add_option("--user", options.user, "AUTH as this user (inside TLS only)");
  auto* password_option =
      cli.add_option("--password-file", password_file, "The password: first line of this file");
  cli.add_flag("--pipelining", options.pipelining,
               "Send MAIL, RCPT and DATA in one write when the server offers PIPELINING");
  cli.add_flag("--resume", options.resume, "Resume TLS sessions (tickets) across connections");
  cli.add_option("--cafile", options.cafile,
                 "Trust the CA certificates of this PEM file (default: the system trust store)");
  cli.add_option("--threads", options.threads, "Event loop threads (default: the cores)")
      ->check(CLI::Range(1u, 1024u));
  long timeout_seconds = 30;
  cli.add_option("--timeout", timeout_seconds, "Seconds to wait for each step (default 30)")
      ->check(CLI::Range(1, 3600));
  cli.add_flag("--handshake-only", options.handshake_only,
               "smtps:// only: connect, TLS handshake, close (no SMTP)");
  cli.add_flag("--json", options.json, "Print the report as one JSON object");
  if (auto stop = parse_command_line(cli, args, out, err)) return *stop;
  auto server = parse_server_url(server_url);
  if (!server) {
    err << "smtpsctl bench: " << server.error() << "\n";
    return 2;
  }
  options.server = server.value();
  if (connect_option->count() > 0) {
    base::HostPortForm form;
    form.numeric_host = true;  // no name resolution: that is what --connect avoids
    auto connect_to = base::parse_host_port(connect_text, form);
    if (!connect_to) {
      err << "smtpsctl bench: --connect " << base::terminal_safe(connect_text) << ": "
          << connect_to.error() << " (expected ADDRESS:PORT, e.g. 127.0.0.1:465 or [::1]:465)\n";
      return 2;
    }
    options.connect_to = connect_to.value();
  }
  options.timeout = std::chrono::seconds(timeout_seconds);
  if (options.handshake_only && !options.server.implicit_tls) {
    err << "smtpsctl bench: --handshake-only needs smtps:// (implicit TLS)\n";
    return 2;
  }
  if (password_option->count() > 0 && options.user.empty()) {
    err << "smtpsctl bench: --password-file without --user\n";
    return 2;
  }
  if (!options.user.empty()) {
    if (password_file.empty()) {
      err << "smtpsctl bench: --user needs --password-file\n";
      return 2;
    }
    auto password = read_password(password_file);
    if (!password) {
      err << "smtpsctl bench: " << password.error() << "\n";
      return 1;
    }
    options.password = password.value();
  }
  if (options.from.empty()) {
    options.from = options.user.find('@') != std::string::npos ? options.user : "bench@localhost";
  }

  auto made = tls::make_client_context(options.cafile);
  if (!made) {
    err << "smtpsctl bench: " << made.error() << "\n";
    return 1;
  }
  tls::SslCtxPtr context = std::move(made.value());
  if (options.resume) {
    SSL_CTX_set_session_cache_mode(context.get(),
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(context.get(), remember_session);
  } else {
    SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(context.get(), SSL_OP_NO_TICKET);
  }

  // The address: --connect's, else the --server host's (resolved once, first result).
  tcp::endpoint endpoint;
  if (options.connect_to) {
    std::error_code error;
    auto address = asio::ip::make_address(options.connect_to->host, error);
    if (error) {  // parse_host_port accepted it: not expected, but no exception either way
      err << "smtpsctl bench: --connect " << base::terminal_safe(connect_text)
          << ": not an IP address\n";
      return 2;
    }
    endpoint = tcp::endpoint(address, options.connect_to->port);
  } else {
    std::error_code error;
    auto address = asio::ip::make_address(options.server.host, error);
    if (!error) {
      endpoint = tcp::endpoint(address, options.server.port);
    } else {
      asio::io_context resolving;
      tcp::resolver resolver(resolving);
      auto results =
          resolver.resolve(options.server.host, std::to_string(options.server.port), error);
      if (error || results.empty()) {
        err << "smtpsctl bench: host not found: " << options.server.host << "\n";
        return 1;
      }
      endpoint = results.begin()->endpoint();
    }
  }

  Shared shared(options, context.get(), endpoint);
  const std::string content = build_content(options.from, options.to, options.size);
  shared.stuffed.emplace(content);
  shared.content_size = content.size();
  shared.envelope.helo = "bench.invalid";
  shared.envelope.esmtp = true;
  shared.envelope.reverse_path = options.from;
  shared.envelope.recipients.push_back(smtp::Recipient{options.to, "", ""});

  const unsigned threads =
      std::min<unsigned>(options.threads, static_cast<unsigned>(options.connections));
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<ThreadStats> stats(threads);
  for (unsigned t = 0; t < threads; ++t)
    loops.push_back(std::make_unique<asio::io_context>(1));
  for (int slot = 0; slot < options.connections; ++slot) {
    unsigned t = static_cast<unsigned>(slot) % threads;
    asio::co_spawn(*loops[t], run_slot(shared, stats[t]), asio::detached);
  }
  const Clock::time_point start = Clock::now();
  shared.end_of_run = start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(options.duration_seconds));
  // SIGINT or SIGTERM ends the run as --duration's end does: each connection finishes its
  // message and the report covers what was done. The signals are blocked in every thread
  // (the workers inherit the mask) and taken by one waiter, which polls so it can end.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t previous_mask;
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous_mask);
  std::atomic<bool> run_over{false};
  std::thread signal_waiter([&] {
    const timespec poll{0, 50'000'000};
    while (!run_over.load()) {
      if (sigtimedwait(&stop_signals, nullptr, &poll) > 0) shared.stop = true;
    }
  });
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t)
    workers.emplace_back([&loop = *loops[t]] {
      loop.run();
      thread_session.reset();
    });
  for (std::thread& worker : workers)
    worker.join();
  run_over = true;
  signal_waiter.join();
  pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  ThreadStats total;
  for (ThreadStats& part : stats) {
    total.messages += part.messages;
    total.connections += part.connections;
    total.resumed += part.resumed;
    total.latencies_ms.insert(total.latencies_ms.end(), part.latencies_ms.begin(),
                              part.latencies_ms.end());
    for (const auto& [key, count] : part.failures)
      total.failures[key] += count;
  }
  if (!shared.fatal.empty()) {
    err << "smtpsctl bench: " << base::terminal_safe(shared.fatal) << "\n";
    return 1;
  }
  std::sort(total.latencies_ms.begin(), total.latencies_ms.end());
  long long failures = 0;
  for (const auto& [key, count] : total.failures)
    failures += count;
  const double p50 = percentile(total.latencies_ms, 0.50);
  const double p90 = percentile(total.latencies_ms, 0.90);
  const double p99 = percentile(total.latencies_ms, 0.99);
  const double max = total.latencies_ms.empty() ? 0 : total.latencies_ms.back();
  char line[512];
  if (options.json) {
    std::string failures_by_code;
    for (const auto& [key, count] : total.failures) {
      if (!failures_by_code.empty()) failures_by_code += ", ";
      failures_by_code += base::json_string(key) + ": " + std::to_string(count);
    }
    std::snprintf(line, sizeof line,
                  "{\"messages\": %lld, \"failures\": %lld, \"connections\": %lld, "
                  "\"resumed\": %lld, \"seconds\": %.3f, \"messages_per_second\": %.1f, "
                  "\"connections_per_second\": %.1f, \"latency_ms\": {\"p50\": %.3f, "
                  "\"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}, ",
                  total.messages, failures, total.connections, total.resumed, seconds,
                  static_cast<double>(total.messages) / seconds,
                  static_cast<double>(total.connections) / seconds, p50, p90, p99, max);
    out << line << "\"failures_by_code\": {" << failures_by_code << "}}\n";
  } else {
    std::snprintf(line, sizeof line,
                  "messages %lld  failures %lld  connections %lld (resumed %lld)  seconds %.3f\n"
                  "messages/s %.1f  connections/s %.1f\n"
                  "latency ms (end of data to reply)  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
                  total.messages, failures, total.connections, total.resumed, seconds,
                  static_cast<double>(total.messages) / seconds,
                  static_cast<double>(total.connections) / seconds, p50, p90, p99, max);
    out << line;
    if (!total.failures.empty()) {
      out << "failures by code:";
      for (const auto& [key, count] : total.failures)
        out << "  " << base::terminal_safe(key) << " x" << count;
      out << "\n";
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace app
