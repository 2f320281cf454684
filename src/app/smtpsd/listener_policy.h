// listener_policy.h — the listener roles of docs/architecture.md (RFC 8314 names) as code:
// from a configured [[listeners]] entry to the session policy (smtp::SessionConfig) and the
// listener the network host opens (net::ListenerOptions).
//
//   role         TLS                                   AUTH           accepts mail for
//   submissions  implicit, from the first byte         required       anyone, once authenticated
//   submission   STARTTLS, required before AUTH/MAIL   required       anyone, once authenticated
//   smtp         STARTTLS offered; require_tls: must   never offered  local domains only
//   local        none (a unix socket, local_submission.h)  the peer's uid   anyone
//
// Invariants: AUTH is never offered before TLS (smtp::ServerSession enforces it; RFC 4954
// §4); the smtp role never relays, not even for a session that claims a user; submission
// roles refuse the null sender (bounces come from servers) and check that the envelope
// sender belongs to the authenticated user. The session's callbacks hold the configuration
// snapshot they were made from: a session keeps it alive after a reload has put another in
// service.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "auth/alias_table.h"
#include "auth/user_store.h"
#include "base/expected.h"
#include "config/config.h"
#include "dns/resolver.h"
#include "intake/pipeline.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/dmarc_report.h"
#include "milter/workers.h"
#include "net/server.h"
#include "smtp/server_session.h"

namespace app {

// One row of the table above.
struct RolePolicy {
  bool implicit_tls = false;              // TLS from the first byte (RFC 8314 §3)
  bool require_auth = false;              // MAIL before AUTH gets 530 (RFC 4954 §6)
  bool relays_for_authenticated = false;  // an authenticated user may send anywhere
  bool allow_null_sender = true;          // MAIL FROM:<> (RFC 5321 §4.5.5)
};
RolePolicy role_policy(config::Role role);

// The TLS mode of a listener: its role's, or STARTTLS required on an smtp listener with
// require_tls.
smtp::TlsMode tls_mode(const config::Listener& listener);

// The session policy of listener (one of snapshot->listeners). may_send_as asks users at
// each MAIL, check_recipient the users and aliases in service at each RCPT
// (local_recipients.h); users and aliases (may be null: no aliases) must outlive every
// session.
smtp::SessionConfig session_config(std::shared_ptr<const config::Config> snapshot,
                                   const config::Listener& listener, auth::UserDirectory& users,
                                   const auth::AliasDirectory* aliases = nullptr);

// What the sender-authentication checks need from the running server.
struct CheckServices {
  std::shared_ptr<dns::Resolver> resolver;  // the server's one resolver (dns/resolver.h)
  // Runs CPU work (DKIM signing and verification) on a worker pool, never an I/O thread.
  std::function<void(std::function<void()>)> offload;
  // Where DMARC evaluations go for the aggregate reports ([dmarc_reports]); none: nowhere.
  std::function<void(const mailauth::DmarcEvaluation&)> record_dmarc;
  // The milter threads (milter/workers.h) every milter check's conversations run on; none:
  // the [[milters]] are described, never run.
  std::shared_ptr<milter::Workers> milter_workers;
};
// The signing keys of a domain's `dkim` entries, in order; fails naming the file, line and
// key of one the signer cannot use. Empty for a client's reading (keys are not read).
base::Expected<std::vector<std::shared_ptr<const mailauth::DkimSigningKey>>, std::string>
dkim_keys_of(const config::Config& config, const config::Domain& domain);

// The DNS list check of config's smtp listeners (filter/dns_list_check.h, "Screening" in
// docs/architecture.md): nullptr without [[screening.dns_lists]] or without a resolver in
// services. Built once per snapshot, shared by its smtp listeners.
std::shared_ptr<intake::Check> dns_list_check(const config::Config& config,
                                              const CheckServices& services);
// The pipeline of an smtp listener: screening (dns_list_check) first, then checks; checks
// itself when screening is nullptr. The other roles run checks without it: they pay no
// check round for a check that would pass them anyway.
std::shared_ptr<const intake::Pipeline> with_screening(
    const std::shared_ptr<const intake::Pipeline>& checks,
    const std::shared_ptr<intake::Check>& screening);
// The checks every listener of config runs (intake/check.h), built in and on by default, in
// this order (docs/architecture.md "Checks"): the received-loop check (intake/loop_check.h)
// at limits.max_received_headers (left out when that is 0), the authenticity check for port
// 25 ([authenticity] verify, with a resolver in services: SPF, DKIM, DMARC,
// Authentication-Results) and last DKIM signing for the domains with keys. Built once per
// configuration snapshot (the reload engine passes it to every listener_options of the
// snapshot), immutable, shared by every session of those listeners. Fails, naming the file,
// line and key, on a DKIM key the signer cannot use.
base::Expected<std::shared_ptr<const intake::Pipeline>, std::string> built_in_checks(
    const config::Config& config, const CheckServices& services);
// One check per [[milters]] entry of config (intake/milter_check.h), by name; shared by the
// snapshot's listeners (each keeps its own sessions' conversations).
std::map<std::string, std::shared_ptr<intake::Check>> milter_checks(const config::Config& config,
                                                                    const CheckServices& services);
// The pipeline of a listener that names `milters` (in that order): the built-in checks with the
// milters after the authenticity check and before dkim-sign (docs/architecture.md "Checks"):
// they read our Authentication-Results' verdict only as SMTP replies, and what they change is
// signed. `checks` itself when `milters` is empty.
std::shared_ptr<const intake::Pipeline> with_milters(
    const std::shared_ptr<const intake::Pipeline>& checks,
    const std::map<std::string, std::shared_ptr<intake::Check>>& all,
    const std::vector<std::string>& milters);
// One line per check for start-up output: "received-loop (end of headers, 554 5.4.6 at 50
// Received fields)"; "none" without checks.
std::string describe_checks(const intake::Pipeline& pipeline);
// The same for the checks a server with `config` runs (built_in_checks with services), for
// the start-up lines of `smtpsd dev`; a DKIM key the signer refuses is named instead.
std::string describe_configured_checks(const config::Config& config);
// The early-talker screen of the smtp listeners in a few words, for `smtpsd dev`:
// "pre-greet wait 1s (passes remembered 1d), improper pipelining refused".
std::string describe_screening(const config::Config& config);
// [sending_limits] in words, for the start-up lines of `smtpsd dev` and `smtpsd check`:
// "per user: 1000 messages an hour (then 451 4.7.1); 50 distinct external recipients an
// hour, 200 a day (then held: smtpsctl queue release --user USER)".
std::string describe_sending_limits(const config::Config& config);

// What the network host needs for snapshot->listeners[index]: the session policy, the checks
// (built_in_checks(*snapshot), shared by the snapshot's listeners), the TLS context new
// connections start on, timeouts and PROXY settings. has_room_for is the storage check asked
// at each MAIL.
net::ListenerOptions listener_options(std::shared_ptr<const config::Config> snapshot,
                                      std::size_t index,
                                      std::shared_ptr<const intake::Pipeline> checks,
                                      std::shared_ptr<SSL_CTX> tls_context,
                                      auth::UserDirectory& users,
                                      std::function<bool(std::uint64_t declared_size)> has_room_for,
                                      const auth::AliasDirectory* aliases = nullptr);

}  // namespace app
