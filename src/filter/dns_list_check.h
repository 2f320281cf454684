// dns_list_check.h — the DNS block/allow list check of the intake pipeline ("dnsbl"), in
// the pipelines of the `smtp` listeners only (app::with_screening: the submission roles
// authenticate their clients); a session that has authenticated is never screened either.
//
// Lookups go through the server's one dns::Resolver (asynchronous, cached): they start at
// connect, so by the time a client gets to RCPT the answers are usually in the resolver's
// cache and the verdict costs nothing (a lookup still in flight is shared, never asked
// twice). The check holds no per-session state: at each decision it asks again and the
// cache answers.
//
// Where it refuses (RefuseAt):
// - kRcpt (the default, as Postfix's reject_rbl_client): connect only starts the lookups;
//   each RCPT is refused with "550 5.7.1" (RFC 5321 §4.3.2: 554 is not a reply to RCPT),
//   except postmaster (RFC 5321 §4.5.1: it must be reachable, so a listed client can still
//   ask why), and each refused recipient is logged. The client's sender and recipients are
//   in the log, which helps an administrator judge a false positive.
// - kConnect (as postscreen): the verdict waits for the lookups (at most the check's
//   deadline), and a listed client gets "554" instead of the greeting (RFC 5321 §3.1); the
//   session then answers 503 to everything but QUIT (smtp::ServerSession).
// The reason is the TXT record of the list that weighed most, made reply-safe
// (dns_lists.h reply_safe_text). A lookup that fails or passes the deadline counts as not
// listed (timeout_verdict passes): a broken list must not stop mail.
//
// Logged: one `dnsbl` line per decision (result, score, the lists that counted and their
// answers); provider error codes as `dnsbl_list_error` (warning). Counted in metrics
// (smtpsd_dnsbl_decisions_total, smtpsd_dnsbl_list_errors_total).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/network.h"
#include "dns/resolver.h"
#include "filter/dns_lists.h"
#include "intake/check.h"

namespace filter {

struct DnsListPolicy {
  enum class RefuseAt { kRcpt, kConnect };
  std::vector<DnsList> lists;
  int threshold = 1;  // listed when the score reaches it
  RefuseAt refuse_at = RefuseAt::kRcpt;
  // Clients that are never looked up (the administrator's own networks, partners).
  std::vector<base::Network> allow_networks;
  // How long a verdict may wait for the lookups ([dns] timeout bounds each one anyway).
  std::chrono::milliseconds deadline{6000};
  // The host name of the greeting (server.hostname): a refusal at connect replaces the
  // greeting and follows it, "554 <hostname> <text>", within 512 octets as every reply.
  std::string hostname;
};

std::string_view to_string(DnsListPolicy::RefuseAt where);  // "rcpt", "connect"

class DnsListCheck final : public intake::Check {
 public:
  DnsListCheck(std::shared_ptr<dns::Resolver> resolver, DnsListPolicy policy);

  std::string_view name() const override { return "dnsbl"; }
  intake::StageMask stages() const override;
  std::string summary() const override;
  std::chrono::milliseconds deadline() const override { return policy_->deadline; }
  intake::Verdict timeout_verdict(intake::Stage) const override { return intake::Verdict::pass(); }
  void run(intake::Stage stage, const intake::Context& context, Done done) override;

 private:
  void start_lookups(const std::string& client) const;
  std::shared_ptr<dns::Resolver> resolver_;
  // Shared with the lookups in flight, which may end after a reload dropped this check.
  std::shared_ptr<const DnsListPolicy> policy_;
};

// Whether a recipient is the postmaster mailbox (RFC 5321 §4.5.1: "postmaster" in any case,
// with or without a domain).
bool is_postmaster(std::string_view recipient);

}  // namespace filter
