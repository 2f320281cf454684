// outbound.h — delivery to other servers: through a smarthost (relay) or straight to each
// domain's MX hosts, and to local mailboxes through an LMTP server; with per-destination
// TLS levels, the no-downgrade memory, per-destination connection limits and connection
// reuse.
//
// Invariants:
// - A recipient's result says what the server said about it: 2xx delivered, 4xx
//   temporary, 5xx permanent (RFC 5321 §4.2.1); a connection that failed before the server
//   answered is always temporary.
// - TLS: the level of the destination (none, may, encrypt, verify; tls/policy.h) is a floor;
//   so is the best TLS the domain was reached with before (tls_memory.h). A host below the
//   floor is skipped with a log line and the next MX is tried; nothing is sent to it.
// - MX delivery follows RFC 5321 §5.1: MX hosts in preference order, each of their
//   addresses, the domain's own address without MX records; a null MX (RFC 7505) is a
//   permanent failure (5.1.10).
// - At most max_per_destination connections are open to one destination at a time; an idle
//   connection is reused for the next message to the same destination within
//   connection_cache, for at most max_messages_per_connection messages.
// - At most max_per_host transactions run at once with one server address, whatever domains
//   they are for (many domains share one MX); a server that went silent (a timeout) gets
//   half as many for each such attempt in a row, down to one, until it answers again, and
//   a delivery that finds it busy moves on instead of waiting for it.
// - No attempt lasts longer than attempt_timeout, from the first connection to the last reply.
// - Without a validating resolver DANE cannot apply (the daemon says so at start); a domain
//   whose MX host publishes TLSA records (seen unvalidated) gets a `dane_unavailable`
//   warning of its own, at most once a day per domain (a bounded set of domains).
// - The smarthost's and the LMTP server's names are looked up as the system does (/etc/hosts,
//   then DNS: system_resolver.h); only MX hosts go through DNS alone.
// Blocking; called from the queue's delivery threads.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/endpoint.h"
#include "base/expected.h"
#include "base/recent_keys.h"
#include "delivery/mx_resolver.h"
#include "delivery/next_hop.h"
#include "delivery/posture.h"
#include "delivery/smtp_transport.h"
#include "delivery/tls_memory.h"
#include "delivery/tls_report.h"
#include "queue/scheduler.h"
#include "tls/policy.h"

namespace delivery {

class MtaSts;

struct OutboundOptions {
  std::string helo_name = "localhost";
  // Smarthost (its host lower-case); none: MX delivery.
  std::optional<base::SmtpUrl> relay;
  tls::OutboundLevel relay_tls = tls::OutboundLevel::kVerify;
  std::string relay_user;
  std::string relay_password;
  // MX delivery.
  std::uint16_t mx_port = 25;
  tls::OutboundLevel default_tls = tls::OutboundLevel::kMay;
  std::vector<std::pair<std::string, tls::OutboundLevel>> tls_policy;  // lower-case domains
  std::string ca_file;  // empty: the system trust store
  // MX lookups: the server's one resolver, and the bound on one domain's MX and address
  // lookups together (mx_resolver.h).
  std::shared_ptr<dns::Resolver> dns;
  std::chrono::milliseconds mx_deadline{10000};
  // Local mailboxes: a unix socket or HOST:PORT (an IP literal or localhost); none: no LMTP.
  std::optional<base::Endpoint> lmtp;
  unsigned max_per_destination = 4;
  unsigned max_per_host = 4;
  std::chrono::milliseconds attempt_timeout{900000};
  std::chrono::milliseconds connection_cache{5000};
  unsigned max_messages_per_connection = 100;
  std::chrono::milliseconds connect_timeout{30000};
  std::chrono::milliseconds command_timeout{300000};
  std::string tls_memory_file;  // where the no-downgrade memory lives
  // SMTP TLS reporting (tls_report.h): every MX session is counted here; none: not counted.
  std::shared_ptr<TlsReportCounts> tls_reports;
  // MTA-STS (mta_sts.h) for MX delivery; none: not applied.
  std::shared_ptr<MtaSts> mta_sts;
};

class Outbound {
 public:
  // Decisions (connect_failed, tls_refused, tls_fallback, tls_memory) are logged with
  // obs::Log.
  static base::Expected<std::unique_ptr<Outbound>, std::string> create(OutboundOptions options);
  ~Outbound();  // closes the idle connections
  Outbound(const Outbound&) = delete;
  Outbound& operator=(const Outbound&) = delete;

  // Recipients (indices into message.envelope.recipients) that all belong to domain; via
  // (when set) is the server to hand them to instead of the relay or the MX hosts.
  std::vector<queue::DeliveryResult> deliver_remote(const queue::StoredMessage& message,
                                                    std::span<const std::size_t> recipients,
                                                    std::string_view domain,
                                                    const NextHop* via = nullptr);
  // What decides the TLS of mail to domain, in words for `smtpsctl tls policy` (several
  // lines): the relay, or the static level, the memory and the domain's published posture
  // with the decision each MX host gets (posture.h: the same decide_host() delivery uses).
  // Blocking (DNS, an MTA-STS fetch): never on an I/O thread.
  std::string describe_policy(std::string_view domain);
  // Recipients to hand to the LMTP server (their addresses as the LMTP server knows them):
  // server, or options' lmtp when it is null.
  std::vector<queue::DeliveryResult> deliver_lmtp(const queue::StoredMessage& message,
                                                  std::span<const std::size_t> recipients,
                                                  const base::Endpoint* server = nullptr);
  bool has_lmtp() const { return options_.lmtp.has_value(); }
  TlsMemory& tls_memory() { return memory_; }
  // `smtpsctl queue requeue`: closes the cached idle connections and forgets each host's
  // record of timeouts, so the next attempts resolve and connect afresh at full
  // concurrency. The TLS memory stays (forgetting it is `smtpsctl tls forget`, on purpose).
  void forget_next_hops();
  // The level a domain must be reached with (policy table, else the default).
  tls::OutboundLevel level_for(std::string_view domain) const;

 private:
  struct Destination {
    unsigned active = 0;
    std::vector<std::unique_ptr<Connection>> idle;
  };
  explicit Outbound(OutboundOptions options);
  // What applies to all MX hosts of domain (lower-case): the table, the memory, relaxation.
  DomainTls domain_tls(const std::string& domain, Relaxation relaxation) const;
  // Waits for a free slot for key; returns an idle connection to reuse, if any.
  // got_slot is false when no slot freed up in time (all connections busy).
  std::unique_ptr<Connection> acquire(const std::string& key, bool& got_slot);
  void release(const std::string& key, std::unique_ptr<Connection> connection);
  void janitor();
  // Takes a transaction slot with the server at address (see the invariants); false, with
  // why in busy, when it has none free (waits a little for a healthy server, not at all for
  // one that timed out).
  bool acquire_host(const std::string& address, std::string& busy);
  // Gives the slot back: timed_out when the server went silent, else (it answered) its
  // record of timeouts is cleared.
  void release_host(const std::string& address, bool timed_out);
  enum class Outcome {
    kDone,          // results hold the server's answers
    kTryElsewhere,  // broke before anything could have been accepted: another host may do
    kUncertain,     // broke after the end of data: results are temporary, try nothing else
  };
  // Sends over one connection and turns the replies into results (a reason in failure when
  // it broke). On a reused connection, a 421 or a failed MAIL/RSET means "open a fresh one".
  Outcome transact(Connection& connection, const queue::StoredMessage& message,
                   std::span<const std::size_t> recipients, const std::string& transport,
                   std::vector<queue::DeliveryResult>& results, std::string& failure, bool reused);
  // Why this TLS (of the server at where) is not good enough for the level or for what the
  // destination was reached with before, or "".
  std::string below_floor(const TlsOutcome& tls, const std::string& where, tls::OutboundLevel level,
                          SeenTls remembered) const;
  // The resolver does not validate: warns, once a day per domain, when a host of targets
  // publishes TLSA records, i.e. the domain asks for DANE that this delivery cannot give.
  void warn_dane_unavailable(const std::string& domain, const std::vector<MxTarget>& targets,
                             std::uint16_t port);

  // tls_context_ with the system trust store read into it, the first time (without a
  // ca_file; tls::load_system_trust): the delivery threads' first SSL_new waits for it.
  SSL_CTX* trusted_context();

  OutboundOptions options_;
  tls::SslCtxPtr tls_context_;
  std::once_flag trust_loaded_;
  std::unique_ptr<MxResolver> resolver_;
  TlsMemory memory_;
  Endpoint lmtp_;
  base::RecentKeys dane_unavailable_warned_;  // domains warned about (warn_dane_unavailable)

  std::mutex pool_mutex_;
  std::condition_variable pool_changed_;
  std::unordered_map<std::string, Destination> pool_;  // pool_mutex_
  struct Host {
    unsigned active = 0;
    unsigned timeouts = 0;  // attempts in a row that timed out
  };
  std::unordered_map<std::string, Host> hosts_;  // pool_mutex_, by IP address
  bool stopping_ = false;                        // pool_mutex_
  std::thread janitor_;
};

}  // namespace delivery
