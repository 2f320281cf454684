// control_commands.h — what the control socket (app/common/control_socket.h) answers. Pure
// over the objects it is given, so that it is unit-tested without a socket.
//
// Requests (one line, words separated by spaces; the smtpsctl option each word comes from
// in brackets):
//   auth lockouts | auth unlock IP_OR_USER           unlock also lifts a user's sending hold
//   auth held                                         users whose mail the sending limits hold
//   queue list [SELECTION] [json]                     every message, its pending recipients
//   queue show ID [body] [json]                       one message; body: its content (postcat)
//   queue flush [ID | SELECTION] [json]               deferred messages tried now (bare: all)
//   queue delete|hold|release|requeue (ID | SELECTION) [json]
//   tls memory | tls forget DOMAIN | tls policy DOMAIN
//   cert status | cert renew                          [acme] certificates (acme/renewal.h)
//   cert revoke ecdsa|rsa|all REASON                  … revoked, then a new key (renewal.h)
//   cert rollover ecdsa|rsa|all wait|force           … a staged next key (renewal.h)
// SELECTION is "all" [--all] alone, or "to-domain=DOMAIN" [--to-domain], "from=ADDRESS"
// [--from] ("from=<>" selects bounces) and/or "user=NAME" [--user]: a message is selected
// when its sender is ADDRESS, one of its pending recipients is at DOMAIN and/or the user who
// authenticated to send it is NAME (all that are given); a verb acts on the whole message
// (as postsuper). "queue release user=NAME" also lifts NAME's hold by the sending limits
// (auth/sending_limiter.h), even when no message is selected. requeue also forgets what delivery
// learnt about next hops (cached connections, host backoff), then tries the messages now.
//
// Who may ask what (ControlCaller, decided from SO_PEERCRED by the daemon, docs/architecture.md
// "Security rules"): the owner-only control socket gives full access; the read-only listing
// socket ([server] mailq_socket) answers "queue list" only, with every message for root and
// the server's own user, and for anyone else only the messages whose envelope sender is that
// user's login name at one of this server's domains. Anything else, or a failure, gets
// "error: …" (the listing socket never says whether another user's message exists).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "auth/failure_limiter.h"
#include "auth/sending_limiter.h"
#include "delivery/tls_memory.h"
#include "queue/scheduler.h"
#include "queue/spool.h"

namespace app {

struct ControlCaller {
  bool read_only = false;    // the listing socket: "queue list" only
  bool all_messages = true;  // false: only messages sent by user (see is_own_message)
  std::string user;          // the caller's login name (getpwuid of its uid)
};

struct ControlContext {
  auth::FailureLimiter* limiter = nullptr;
  auth::SendingLimiter* sending_limiter = nullptr;  // none: no hold to lift
  std::chrono::steady_clock::time_point now{};
  queue::Scheduler* scheduler = nullptr;  // none: "this server has no queue to manage"
  delivery::TlsMemory* tls_memory = nullptr;
  queue::Spool* spool = nullptr;           // for "queue show ID body"
  std::int64_t now_unix = 0;               // dates the ages and next attempts
  std::function<void()> forget_next_hops;  // for requeue; none: nothing to forget
  // Whether an address is at one of this server's domains (delivery::Router::stays_here).
  std::function<bool(std::string_view address)> is_local_address;
  // "tls policy DOMAIN": what decides its TLS (delivery::Outbound::describe_policy; blocking,
  // the control socket has its own thread); none: not available.
  std::function<std::string(std::string_view domain)> describe_tls_policy;
  // "cert status|renew": the ACME service's answer (app/smtpsd/acme_service.h); none: [acme]
  // is off.
  // The words after "cert": {"status"}, {"renew"}, {"revoke", "ecdsa"|"rsa"|"all", "N"},
  // {"rollover", "ecdsa"|"rsa"|"all", "wait"|"force"}.
  std::function<std::string(const std::vector<std::string>& words)> certificates;
};

std::string handle_control_request(const std::string& request, const ControlContext& context,
                                   const ControlCaller& caller = {});

// The same with full access (the owner-only socket), as the first callers wrote it.
std::string handle_control_request(const std::string& request, auth::FailureLimiter& limiter,
                                   std::chrono::steady_clock::time_point now,
                                   queue::Scheduler* scheduler = nullptr,
                                   delivery::TlsMemory* tls_memory = nullptr,
                                   std::int64_t now_unix = 0);

// Whether a queued message counts as the caller's own: its envelope sender's local part is
// the caller's login name (ASCII case-insensitive) and its domain is one of this server's.
// XXX: the envelope sender is what the client said at MAIL FROM, so a message forged in
// a local user's name shows in that user's listing too (as its bounce would reach them).
bool is_own_message(const queue::QueueEntryView& entry, const ControlCaller& caller,
                    const std::function<bool(std::string_view address)>& is_local_address);

}  // namespace app
