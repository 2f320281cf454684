// bench_command.h — `smtpsctl bench`: an event-driven, multi-threaded SMTP load generator
// (messages/s, TLS handshakes/s, latency from the end of data to the final reply).
//
//   smtpsctl bench --server smtps://HOST:PORT | smtp://HOST:PORT [--connect ADDRESS:PORT]
//                  [--connections C] [--messages N | --duration SECONDS] [--per-connection K]
//                  [--size OCTETS] [--from ADDRESS] [--to ADDRESS]
//                  [--user USER --password-file FILE] [--pipelining] [--resume]
//                  [--cafile FILE] [--threads T] [--timeout SECONDS] [--handshake-only] [--json]
//
// Shape: T threads, each running one Asio io_context; the C connection slots are spread over
// them, one coroutine per slot. A slot opens a connection, sends up to K messages on it
// through smtp::ClientSession (the sans-I/O client), says QUIT and starts over until the
// work is done (N messages claimed, or the duration elapsed). OpenSSL runs directly over the
// non-blocking socket, Asio only waits for readiness (as in net/server.cpp).
//
// Invariants:
// - Every claimed message ends either accepted (counted, its latency kept) or as one failure,
//   keyed by the server's reply code ("550") or, without a reply, by the stage that failed
//   ("connect", "tls", "timeout", "protocol"...). So in --messages mode accepted + failed = N.
// - TLS is verified (chain to --cafile or the system store, and the host name or IP literal)
//   and required: STARTTLS must succeed on smtp://. AUTH is only ever sent inside TLS.
// - Each wait on the network has a deadline (--timeout, default 30 s).
// - Traffic goes only to the given server; a connection refused before any connection
//   succeeded stops the run with one clear error (the server is not there).
//
// --connect ADDRESS:PORT (an IP literal; as curl's --connect-to): the TCP connections go
// there and the --server host is not resolved; SNI and the certificate check still use the
// --server host. So a test can load a server under the name its certificate carries (an ACME
// CA validates names, not 127.0.0.1) without the system resolver knowing that name.
//
// --handshake-only (smtps:// only): connect, TLS handshake, close_notify, close — the figure
// to compare with `openssl s_time -new`; --messages then counts handshakes.
//
// Exit codes: 0 every message accepted, 1 failures or error, 2 usage.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace app {

// args: what follows "bench".
int run_bench_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace app
