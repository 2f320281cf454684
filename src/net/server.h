// server.h — the network host: listeners, one coroutine per connection, TLS, deadlines.
//
// It carries out the actions of smtp::ServerSession (see server_session.h) and knows no
// SMTP grammar itself. Threads: one asio::io_context per I/O thread; acceptors live on
// the first and hand each new socket to the next context round-robin, so a connection
// stays on one thread for life. Blocking work never runs here: fsync goes to the
// queue::GroupCommitter and comes back as an event.
//
// The parts (docs/architecture.md "Where is X"): listeners.h (bind, accept, reload),
// admission.h (connection limits and the 421 refusal), connection.h (socket, TLS stream,
// deadlines, PROXY header), session_loop.h (the action loop of one session: messages
// through intake::MessageIntake and its checks, AUTH through auth::Authenticator with
// argon2id on a small worker pool). This file: the server's life — threads, signals, the
// drain on stop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/failure_limiter.h"
#include "auth/sending_limiter.h"
#include "auth/user_store.h"
#include "auth/verified_cache.h"
#include "base/expected.h"
#include "base/network.h"
#include "intake/pipeline.h"
#include "net/peer_credentials.h"
#include "queue/group_commit.h"
#include "queue/spool.h"
#include "smtp/server_session.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace net {

struct ListenerOptions {
  std::string role;  // for logs: "submissions", "submission", "smtp"
  std::string address;
  std::uint16_t port = 0;  // 0: the kernel picks one
  bool implicit_tls = false;
  // The context each new connection starts its handshake on (tls::ServerContexts picks the
  // certificate set by SNI from there). Each connection holds its own reference, so a reload
  // that swaps it lets open connections finish on the old one.
  std::shared_ptr<SSL_CTX> tls_context;
  smtp::SessionConfig session;  // copied into each new session
  // The checks every session of this listener runs (intake/check.h); none when null. The
  // session's checked_stages are set from it when the listener is bound or updated.
  std::shared_ptr<const intake::Pipeline> checks;
  std::chrono::milliseconds command_timeout{300'000};
  std::chrono::milliseconds data_timeout{180'000};
  std::chrono::milliseconds handshake_timeout{30'000};
  std::chrono::milliseconds proxy_header_timeout{5'000};  // for the PROXY header to arrive
  // PROXY protocol v1/v2: each connection from one of proxy_from starts with a header naming
  // the real client (logged, limited, put in Received); other peers are refused.
  bool proxy_protocol = false;
  std::vector<base::Network> proxy_from;
  // Local submission (role "local"): a unix socket at this path instead of address and port,
  // mode 0666 in a directory made 0755 when missing (a stale socket left by a crash is
  // replaced; any other file there is an error). No TLS, no PROXY header. Each connection's
  // peer is asked of identify_local: the user name the session is authenticated as, or the
  // reply that refuses it.
  std::string unix_path;
  std::function<base::Expected<std::string, smtp::Reply>(const PeerCredentials&)> identify_local;
  // The early-talker screen (the smtp role; docs/architecture.md "Screening"): the pre-greet
  // wait (0: none; a client in ServerServices' pass table skips it) and the refusal of
  // improper pipelining, for every client but those in screening_exempt.
  std::chrono::milliseconds pregreet_wait{0};
  bool refuse_improper_pipelining = false;
  std::vector<base::Network> screening_exempt;
};

struct ServerServices {
  std::string hostname;
  // AUTH (submission roles): the users and the failure limiter; both outlive the server.
  auth::UserDirectory* users = nullptr;
  auth::FailureLimiter* limiter = nullptr;
  auth::VerifiedCache* verified_cache = nullptr;  // skips argon2id for a recent success
  bool received_names_user = false;               // "(authenticated as …)" in the Received header
  queue::Spool* spool = nullptr;
  queue::GroupCommitter* committer = nullptr;
  // Open connections in total and from one client address; past them a new connection
  // gets "421 4.7.0" (plaintext roles) or is closed (implicit TLS) at once.
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_ip = 50;
  // New connections from one client (IPv6: its /64) in a sliding minute; 0 turns it off.
  unsigned max_connections_per_minute_per_ip = 120;
  // What one authenticated user may send (auth/sending_limiter.h), asked by each session
  // where a user authenticates (AUTH, the local socket): at MAIL (past messages_per_hour,
  // "451 4.7.1") and at the end of data (past a recipient bound, the message is held).
  // None: no limits. Outlives the server.
  auth::SendingLimiter* sending_limiter = nullptr;
  // Whether a recipient stays on this server (not counted by the recipient bounds); none:
  // every recipient counts.
  std::function<bool(std::string_view address)> is_local_address;
  // How much of an IPv6 address names one client for the limits above (base::client_network).
  unsigned ipv6_prefix = base::kDefaultIpv6ClientPrefix;
  // How long a client that waited out the pre-greet wait skips it, and how many such
  // clients are remembered (net/pregreet_passes.h). Fixed at start.
  std::chrono::milliseconds pregreet_pass_ttl{86'400'000};
  std::size_t pregreet_pass_entries = 100'000;
  // On SIGTERM/stop(): sessions inside a mail transaction get this long to finish it.
  std::chrono::milliseconds shutdown_grace{30'000};
  std::function<void()> on_stopping;  // called once when a stop begins (systemd STOPPING=1)
  // Called (from an I/O thread) once a message is durable, with its queue id.
  std::function<void(const std::string& id)> on_committed;
  // SIGHUP (called on an I/O thread: hand the reload to another thread, never block here).
  std::function<void()> on_hangup;
};

// A listener of update_listeners() that could not be bound: its position and why.
struct ListenerError {
  std::size_t index = 0;
  std::string message;
};

class Server {
 public:
  Server(unsigned io_threads, ServerServices services);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; returns the bound port (useful with port 0).
  base::Expected<std::uint16_t, std::string> listen(const ListenerOptions& options);
  // A reload: makes the listeners exactly `listeners`, matched to the running ones by address
  // and port (listeners on port 0 by address, role and order). New ones are bound first — if
  // one cannot be, nothing changes and the error says which; kept ones take their new options
  // for new connections; removed ones stop accepting, while their open sessions run to the
  // end. Returns the bound ports in order. Blocking; call it from any thread but an I/O one.
  base::Expected<std::vector<std::uint16_t>, ListenerError> update_listeners(
      std::vector<ListenerOptions> listeners);
  // New values of services.max_connections and max_connections_per_ip (for new connections).
  void set_connection_limits(std::size_t max_connections, std::size_t max_connections_per_ip);
  // Runs the I/O threads until stop(); SIGINT and SIGTERM call stop(), SIGHUP on_hangup.
  void run();
  // Stops accepting; idle sessions get 421 4.3.2 at once, sessions inside a transaction
  // after it (or when services.shutdown_grace has passed); then the I/O threads end.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace net
