// listeners.cpp — see listeners.h.
#include "net/listeners.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <random>
#include <unordered_map>

#include "base/network.h"
#include "base/socket_file.h"
#include "obs/log.h"

namespace net {
namespace {

using asio::awaitable;
using asio::ip::tcp;

std::string session_id_prefix() {
  std::random_device device;
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%06x", device() & 0xffffff);
  return buffer;
}

// The options as sessions use them: the session asks for the checks its pipeline has.
std::shared_ptr<const ListenerOptions> with_checked_stages(ListenerOptions options) {
  options.session.checked_stages = options.checks ? options.checks->session_stages() : 0;
  return std::make_shared<const ListenerOptions>(std::move(options));
}

// Which running listener a reloaded one is: address and port, or for port 0 (the kernel
// picks) address, role and how many such listeners came before it.
std::vector<std::string> listener_keys(const std::vector<ListenerOptions>& listeners) {
  std::vector<std::string> keys;
  std::unordered_map<std::string, unsigned> port_zero_seen;
  for (const ListenerOptions& options : listeners) {
    if (!options.unix_path.empty()) {
      keys.push_back("unix:" + options.unix_path);
      continue;
    }
    std::string key = options.address + " " + std::to_string(options.port);
    if (options.port == 0) {
      key += " " + options.role;
      key += " " + std::to_string(port_zero_seen[key]++);
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

bool trusted_proxy(const std::string& peer, const ListenerOptions& options) {
  auto ip = base::parse_ip(peer);
  return ip && std::any_of(options.proxy_from.begin(), options.proxy_from.end(),
                           [&](const base::Network& network) { return network.contains(*ip); });
}

void log_closed(const Listener& listener, std::uint16_t port, std::string_view reason) {
  obs::Log("listener_closed")
      .kv("role", listener.options->role)
      .kv("address", listener.options->unix_path.empty() ? listener.options->address
                                                         : listener.options->unix_path)
      .kv("port", static_cast<unsigned>(port))
      .kv("reason", reason);
}

}  // namespace

std::uint16_t Listener::port() const {
  if (!acceptor) return 0;
  std::error_code ignored;
  return acceptor->local_endpoint(ignored).port();
}

void Listener::close() {
  std::error_code ignored;
  if (acceptor) acceptor->close(ignored);
  if (local_acceptor && local_acceptor->is_open()) {
    local_acceptor->close(ignored);
    ::unlink(options->unix_path.c_str());
  }
}

Listeners::Listeners(std::vector<std::unique_ptr<asio::io_context>>& contexts, Admission& admission,
                     const std::atomic<bool>& stopping, StartSession start)
    : contexts_(contexts),
      admission_(admission),
      stopping_(stopping),
      start_(std::move(start)),
      id_prefix_(session_id_prefix()) {}

std::string Listeners::new_session_id() {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%s%08llx", id_prefix_.c_str(),
                static_cast<unsigned long long>(session_counter_.fetch_add(1) + 1));
  return buffer;
}

asio::io_context& Listeners::next_context() {
  return *contexts_[next_context_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
}

awaitable<bool> Listeners::accept_failed(const Listener& listener, asio::error_code ec) {
  if (ec == asio::error::operation_aborted || stopping_) co_return true;
  if (Clock::now() - last_accept_failure_log_ >= std::chrono::seconds(1)) {
    obs::Log("accept_failed", obs::Level::kWarning)
        .kv("role", listener.options->role)
        .kv("error", ec.message());
    last_accept_failure_log_ = Clock::now();
  }
  // EMFILE and friends: back off a little instead of spinning.
  asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
  co_await pause.async_wait(use_nothrow);
  co_return false;
}

awaitable<void> Listeners::accept_loop(Listener& listener) {
  for (;;) {
    asio::io_context& target = next_context();
    auto [ec, socket] = co_await listener.acceptor->async_accept(target, use_nothrow);
    if (ec) {
      if (co_await accept_failed(listener, ec)) co_return;
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
    auto connection = std::make_shared<Connection>(Socket(std::move(socket)));
    connection->client_port = peer.port();
    std::string session_id = new_session_id();  // refused connections are named too
    if (proxied && !trusted_proxy(client, *options)) {
      admission_.refuse(*connection, *options, session_id, client,
                        Refusal{"Connection not from a configured proxy", "proxy_from"});
      continue;
    }
    // Behind a proxy, the per-client limits wait for the header that names the client.
    if (auto refusal = admission_.admit(connection, client, /*per_client=*/!proxied)) {
      admission_.refuse(*connection, *options, session_id, client, *refusal);
      continue;
    }
    start_(target, std::move(connection), std::move(options), std::move(session_id),
           std::move(client));
  }
}

// A local submission connection: the peer is whoever the kernel says (SO_PEERCRED); no
// client address, so only the total connection limit applies.
awaitable<void> Listeners::accept_local_loop(Listener& listener) {
  for (;;) {
    asio::io_context& target = next_context();
    auto [ec, socket] = co_await listener.local_acceptor->async_accept(target, use_nothrow);
    if (ec) {
      if (co_await accept_failed(listener, ec)) co_return;
      continue;
    }
    std::error_code ignored;
    socket.non_blocking(true, ignored);
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
      socket.close(ignored);  // cannot say who it is: never served
      continue;
    }
    std::shared_ptr<const ListenerOptions> options = listener.options;
    auto connection = std::make_shared<Connection>(Socket(std::move(socket)));
    connection->peer_credentials = PeerCredentials{static_cast<std::uint32_t>(credentials.uid),
                                                   static_cast<std::uint32_t>(credentials.gid),
                                                   static_cast<std::int32_t>(credentials.pid)};
    std::string session_id = new_session_id();
    std::string client = "local";
    if (auto refusal = admission_.admit(connection, client, /*per_client=*/false)) {
      admission_.refuse(*connection, *options, session_id, client, *refusal);
      continue;
    }
    start_(target, std::move(connection), std::move(options), std::move(session_id),
           std::move(client));
  }
}

// The unix socket of a local submission listener: its directory (0755, made when missing),
// a stale socket replaced, the socket itself 0666 so that every local user may connect (who
// may submit is decided per connection, from SO_PEERCRED).
base::Expected<std::unique_ptr<Listener>, std::string> Listeners::bind_local(
    const ListenerOptions& options) {
  auto listener = std::make_unique<Listener>();
  listener->options = with_checked_stages(options);
  const std::string& path = options.unix_path;
  const std::string what = "listener " + options.role + ": " + path + ": ";
  std::filesystem::path directory = std::filesystem::path(path).parent_path();
  struct stat status {};
  if (::stat(directory.c_str(), &status) != 0) {
    if (errno != ENOENT || ::mkdir(directory.c_str(), 0755) != 0) {
      return base::unexpected(what + "cannot create its directory: " + std::strerror(errno));
    }
    ::chmod(directory.c_str(), 0755);  // whatever the umask: local users must reach it
  }
  if (auto safe = base::check_socket_directory(directory.string()); !safe) {
    return base::unexpected(what + safe.error());
  }
  if (::lstat(path.c_str(), &status) == 0) {
    if (!S_ISSOCK(status.st_mode)) {
      return base::unexpected(what +
                              "exists and is not a socket (remove it or choose another "
                              "local_submission.socket)");
    }
    // A socket someone still answers on belongs to another running server: never taken.
    std::error_code in_use;
    asio::local::stream_protocol::socket probe(*contexts_.front());
    probe.connect(asio::local::stream_protocol::endpoint(path), in_use);
    if (!in_use) return base::unexpected(what + "another server is listening on it");
    ::unlink(path.c_str());  // left by a server that did not stop cleanly
  }
  std::error_code ec;
  auto acceptor = std::make_unique<asio::local::stream_protocol::acceptor>(*contexts_.front());
  asio::local::stream_protocol::endpoint endpoint(path);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) {
    // Connecting to a unix socket needs write access; never through a swapped-in link.
    if (auto mode = base::set_socket_mode(path, 0666); !mode) {
      return base::unexpected(what + mode.error());
    }
    acceptor->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) return base::unexpected(what + "cannot listen: " + ec.message());
  listener->local_acceptor = std::move(acceptor);
  obs::Log("listening").kv("role", options.role).kv("socket", path).kv("tls", "none");
  return listener;
}

void Listeners::spawn_accept(Listener& listener) {
  if (listener.local_acceptor) {
    asio::co_spawn(*contexts_.front(), accept_local_loop(listener), asio::detached);
  } else {
    asio::co_spawn(*contexts_.front(), accept_loop(listener), asio::detached);
  }
}

// Opens, binds and listens; logs event=listening.
base::Expected<std::unique_ptr<Listener>, std::string> Listeners::bind(
    const ListenerOptions& options) {
  if (!options.unix_path.empty()) return bind_local(options);
  auto listener = std::make_unique<Listener>();
  listener->options = with_checked_stages(options);
  std::error_code ec;
  asio::ip::address address = asio::ip::make_address(options.address, ec);
  if (ec) {
    return base::unexpected("listener " + options.role + ": bad address '" + options.address +
                            "': " + ec.message());
  }
  auto acceptor = std::make_unique<tcp::acceptor>(*contexts_.front());
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

base::Expected<std::uint16_t, std::string> Listeners::add(const ListenerOptions& options) {
  auto listener = bind(options);
  if (!listener) return base::unexpected(listener.error());
  // Port-0 keys count earlier listeners of the same address and role.
  std::vector<ListenerOptions> all;
  for (const auto& running : listeners_)
    all.push_back(*running->options);
  all.push_back(options);
  listener.value()->key = listener_keys(all).back();
  const std::uint16_t port = listener.value()->port();
  listeners_.push_back(std::move(listener.value()));
  return port;
}

base::Expected<std::vector<std::uint16_t>, ListenerError> Listeners::update(
    std::vector<ListenerOptions> wanted) {
  if (stopping_) return base::unexpected(ListenerError{0, "the server is stopping"});
  const std::vector<std::string> keys = listener_keys(wanted);
  std::unordered_map<std::string, Listener*> running_by_key;
  for (auto& listener : listeners_)
    running_by_key[listener->key] = listener.get();
  // 1. Bind what is new; on any failure close those again and change nothing.
  std::vector<std::unique_ptr<Listener>> fresh(wanted.size());
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    if (running_by_key.count(keys[i]) != 0) continue;
    auto bound = bind(wanted[i]);
    if (!bound) {
      for (auto& listener : fresh) {
        if (!listener) continue;
        listener->close();
        log_closed(*listener, listener->options->port, "reload refused");
      }
      return base::unexpected(ListenerError{i, bound.error()});
    }
    fresh[i] = std::move(bound.value());
    fresh[i]->key = keys[i];
  }
  // 2. Kept listeners take their new options; 3. removed ones stop accepting.
  std::vector<std::unique_ptr<Listener>> next(wanted.size());
  std::vector<std::uint16_t> ports(wanted.size());
  for (auto& listener : listeners_) {
    auto at = std::find(keys.begin(), keys.end(), listener->key);
    if (at == keys.end()) {
      const std::uint16_t port = listener->port();
      listener->close();
      log_closed(*listener, port, "removed from the configuration");
      retired_.push_back(std::move(listener));
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
      if (accepting_) spawn_accept(*next[i]);
    }
    ports[i] = next[i]->port();
  }
  listeners_ = std::move(next);
  return ports;
}

void Listeners::start_accepting() {
  accepting_ = true;
  for (auto& listener : listeners_)
    spawn_accept(*listener);
}

void Listeners::close_all() {
  for (auto& listener : listeners_)
    listener->close();
}

}  // namespace net
