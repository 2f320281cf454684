// session_loop.h — one client session from accept to close: the PROXY header (if the
// listener has one), the TLS handshake, then the action loop that carries out what
// smtp::ServerSession asks (read, write, STARTTLS, message begin/data/end, checks, AUTH).
//
// The loop decides nothing about SMTP: the session does. What it waits on belongs to other
// parts — intake::MessageIntake and intake::StageRun (messages and checks),
// auth::Authenticator (AUTH; password verification hops to a worker pool),
// queue::GroupCommitter (fsync) — and every wait yields the I/O thread. The connection
// leaves the admission tables when serve() ends, however it ends.
//
// Back-pressure: a client that pipelines commands and never reads the replies must not
// make the server hold them. While the session waits for commands a read takes at most
// kCommandReadSize (1 KiB), and the replies to it are written before the next read; the
// write waits for a client that does not read, so reading stops, and the socket's send
// buffer is capped (Connection::limit_send_buffer): what such a client costs is bounded
// (docs/architecture.md "Budgets").
#pragma once

#include <asio.hpp>
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "auth/verification_queue.h"
#include "net/admission.h"
#include "net/connection.h"
#include "net/pregreet_passes.h"
#include "net/rate_limit.h"

namespace net {

struct ListenerOptions;
struct ServerServices;

// What a session uses of the server around it; all outlive every session.
struct SessionHost {
  const ServerServices& services;
  Admission& admission;
  PregreetPasses& pregreet_passes;         // clients that waited out the pre-greet wait
  asio::thread_pool& auth_pool;            // argon2id verification, off the I/O threads
  auth::VerificationQueue& verifications;  // the bound on what waits for auth_pool
  const std::atomic<bool>& stopping;       // a drain has begun: end once no transaction is open
  const std::atomic<bool>& grace_over;     // the drain's grace period is over: end now
  std::function<void()> on_released;       // after a connection has left the tables
};

asio::awaitable<void> serve(SessionHost& host, std::shared_ptr<Connection> connection,
                            std::shared_ptr<const ListenerOptions> options, std::string session_id,
                            std::string client);

}  // namespace net
