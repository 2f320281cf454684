// server.cpp — see server.h. The server's life: the I/O contexts and their threads, the
// signals, and the drain on stop; listeners (listeners.h), admission (admission.h),
// connections (connection.h) and sessions (session_loop.h) are their own parts.
#include "net/server.h"

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "net/admission.h"
#include "net/connection.h"
#include "net/listeners.h"
#include "net/rate_limit.h"
#include "net/session_loop.h"
#include "obs/log.h"

namespace net {
namespace {

std::vector<std::unique_ptr<asio::io_context>> make_contexts(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<asio::io_context>> out;
  for (unsigned i = 0; i < threads; ++i)
    out.push_back(std::make_unique<asio::io_context>(1));
  return out;
}

}  // namespace

struct Server::Impl {
  ServerServices services;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::atomic<bool> running{false};   // run() started the I/O threads
  std::atomic<bool> finished{false};  // run() is over: nothing posted will run any more
  std::atomic<bool> stopping{false};
  std::atomic<bool> grace_over{false};  // the shutdown grace period has passed
  asio::signal_set signals;
  std::unique_ptr<asio::steady_timer> grace_timer;  // lives on the first context
  // Password verification (argon2id: ~100 ms and 64 MiB each): two at a time, and at most
  // VerificationQueue::kPerThread per thread waiting or running (auth/verification_queue.h).
  static constexpr std::size_t kAuthThreads = 2;
  asio::thread_pool auth_pool{kAuthThreads};
  auth::VerificationQueue verifications{kAuthThreads * auth::VerificationQueue::kPerThread};
  Admission admission;
  PregreetPasses pregreet_passes;
  SessionHost session_host;
  Listeners listeners;

  Impl(unsigned threads, ServerServices s)
      : services(std::move(s)),
        contexts(make_contexts(threads)),
        signals(*contexts.front(), SIGINT, SIGTERM, SIGHUP),
        admission(services.hostname, services.max_connections, services.max_connections_per_ip,
                  services.max_connections_per_minute_per_ip, services.ipv6_prefix),
        pregreet_passes(services.pregreet_pass_ttl, services.pregreet_pass_entries),
        session_host{services,
                     admission,
                     pregreet_passes,
                     auth_pool,
                     verifications,
                     stopping,
                     grace_over,
                     [this] {
                       if (stopping) maybe_finish();
                     }},
        listeners(contexts, admission, stopping,
                  [this](asio::io_context& context, std::shared_ptr<Connection> connection,
                         std::shared_ptr<const ListenerOptions> options, std::string session_id,
                         std::string client) {
                    start_session(context, std::move(connection), std::move(options),
                                  std::move(session_id), std::move(client));
                  }) {}

  void start_session(asio::io_context& context, std::shared_ptr<Connection> connection,
                     std::shared_ptr<const ListenerOptions> options, std::string session_id,
                     std::string client) {
    auto on_crash = [session_id, client](std::exception_ptr failure) {
      if (!failure) return;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        obs::Log("session_crashed", obs::Level::kError)
            .kv("session", session_id)
            .kv("client", client)
            .kv("error", e.what());
      }
    };
    asio::co_spawn(context,
                   serve(session_host, std::move(connection), std::move(options),
                         std::move(session_id), std::move(client)),
                   std::move(on_crash));
  }

  // The drain is over once no connection is open: the I/O threads may end.
  void maybe_finish() {
    if (!admission.none_open()) return;
    for (auto& guard : guards)
      guard.reset();
    asio::post(*contexts.front(), [this] {
      if (grace_timer) grace_timer->cancel();
    });
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
    listeners.close_all();
    signals.cancel();
    // Idle sessions get their 421 4.3.2 now; sessions inside a transaction finish it.
    interrupt(admission.open_connections(), /*only_idle=*/true);
    // Past the grace period every session is told 421 4.3.2 (its unfinished message was
    // never acknowledged, so the client still has it); a session that cannot even take
    // that within kShutdownGrace more is cut.
    grace_timer = std::make_unique<asio::steady_timer>(*contexts.front(), services.shutdown_grace);
    grace_timer->async_wait([this](std::error_code ec) {
      if (ec) return;
      grace_over = true;
      std::vector<std::shared_ptr<Connection>> left = admission.open_connections();
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
};

Server::Server(unsigned io_threads, ServerServices services)
    : impl_(std::make_unique<Impl>(io_threads, std::move(services))) {}

Server::~Server() = default;

base::Expected<std::uint16_t, std::string> Server::listen(const ListenerOptions& options) {
  return impl_->listeners.add(options);
}

base::Expected<std::vector<std::uint16_t>, ListenerError> Server::update_listeners(
    std::vector<ListenerOptions> listeners) {
  Impl& impl = *impl_;
  using Result = base::Expected<std::vector<std::uint16_t>, ListenerError>;
  asio::io_context& front = *impl.contexts.front();
  if (!impl.running || front.get_executor().running_in_this_thread()) {
    return impl.listeners.update(std::move(listeners));
  }
  // Acceptors belong to the first context: the change runs there, between two accepts.
  auto promise = std::make_shared<std::promise<Result>>();
  std::future<Result> future = promise->get_future();
  asio::post(front, [&impl, promise, wanted = std::move(listeners)]() mutable {
    promise->set_value(impl.listeners.update(std::move(wanted)));
  });
  while (future.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    if (impl.finished) return base::unexpected(ListenerError{0, "the server has stopped"});
  }
  return future.get();
}

void Server::set_connection_limits(std::size_t max_connections,
                                   std::size_t max_connections_per_ip) {
  impl_->admission.set_limits(max_connections, max_connections_per_ip);
}

void Server::run() {
  Impl& impl = *impl_;
  for (auto& context : impl.contexts)
    impl.guards.push_back(asio::make_work_guard(*context));
  impl.listeners.start_accepting();
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
