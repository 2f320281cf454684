// listeners.h — the listening sockets: bind, accept, admit, and change them on reload.
//
// Acceptors live on the first I/O context and hand each new socket to the next context
// round-robin (a connection stays on one thread for life). Each accepted connection is
// named (session id), checked against the listener's PROXY sources and the admission
// limits, and handed to the session starter; a refused one gets its 421 from Admission.
//
// Reload (update): listeners are matched to the running ones by address and port (port 0:
// address, role and order). New ones are bound first and, if one cannot be, nothing
// changes; kept ones take their new options for new connections; removed ones stop
// accepting while their sessions run to the end. Everything here runs on the first context
// (or before the server runs).
//
// A local submission listener (ListenerOptions::unix_path) accepts on a unix socket; each
// connection carries its peer's SO_PEERCRED credentials, counts toward the total connection
// limit only (there is no client address), and is keyed across reloads by its path.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/expected.h"
#include "net/admission.h"
#include "net/connection.h"
#include "net/server.h"

namespace net {

struct Listener {
  std::shared_ptr<const ListenerOptions> options;     // swapped by a reload, for new connections
  std::string key;                                    // identity across reloads (listener_keys)
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor;  // TCP roles …
  std::unique_ptr<asio::local::stream_protocol::acceptor> local_acceptor;  // … or unix_path
  std::uint16_t port() const;  // the bound TCP port (0 for a unix socket)
  void close();                // stops accepting (a unix socket's file is removed)
};

class Listeners {
 public:
  // Starts the session of an admitted connection on `context` (its thread for life).
  using StartSession = std::function<void(
      asio::io_context& context, std::shared_ptr<Connection> connection,
      std::shared_ptr<const ListenerOptions> options, std::string session_id, std::string client)>;

  Listeners(std::vector<std::unique_ptr<asio::io_context>>& contexts, Admission& admission,
            const std::atomic<bool>& stopping, StartSession start);

  // Binds one more listener (start-up); its bound port.
  base::Expected<std::uint16_t, std::string> add(const ListenerOptions& options);
  // See Server::update_listeners; on the first context, or before start_accepting().
  base::Expected<std::vector<std::uint16_t>, ListenerError> update(
      std::vector<ListenerOptions> wanted);
  // The accept loops start (on the first context); later listeners start at once.
  void start_accepting();
  // A drain: every acceptor closes.
  void close_all();

 private:
  asio::awaitable<void> accept_loop(Listener& listener);
  asio::awaitable<void> accept_local_loop(Listener& listener);
  // The context the next connection runs on: each in turn.
  asio::io_context& next_context();
  // After a failed accept: true when the loop is to end (the acceptor closed, or the server
  // is stopping); else logs (at most once a second) and pauses 50 ms.
  asio::awaitable<bool> accept_failed(const Listener& listener, asio::error_code ec);
  base::Expected<std::unique_ptr<Listener>, std::string> bind_local(const ListenerOptions& options);
  void spawn_accept(Listener& listener);
  base::Expected<std::unique_ptr<Listener>, std::string> bind(const ListenerOptions& options);
  std::string new_session_id();

  std::vector<std::unique_ptr<asio::io_context>>& contexts_;
  Admission& admission_;
  const std::atomic<bool>& stopping_;
  StartSession start_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Removed by a reload: closed, kept until the end because their accept loop may still be
  // about to see the cancellation.
  std::vector<std::unique_ptr<Listener>> retired_;
  bool accepting_ = false;
  std::atomic<std::size_t> next_context_{0};
  std::atomic<std::uint64_t> session_counter_{0};
  const std::string id_prefix_;
  Clock::time_point last_accept_failure_log_{};
};

}  // namespace net
