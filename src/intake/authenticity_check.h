// authenticity_check.h — SPF, DKIM and DMARC for mail that arrives on port 25, and the
// Authentication-Results field that records them (docs/architecture.md "Mail authenticity").
//
// Who: sessions of role "smtp" without AUTH. Submission, an authenticated sender and local
// submission pass at once (their mail is signed by DkimSignCheck instead).
//
// When (each step overlaps the transfer of the message, so the end of data rarely waits):
//   kDataStart     SPF (RFC 7208) of MAIL FROM (HELO when MAIL FROM is <>) starts.
//   kEndOfHeaders  the From fields are read: every domain of every From field is evaluated
//                  and the strictest outcome applies (RFC 7489 §6.6.1: a second From field
//                  is the classic way around DMARC); Authentication-Results fields claiming our
//                  authserv-id are deleted (RFC 8601 §5) — here, synchronously, so even a timeout
//                  cannot keep them; the DKIM-Signature fields are parsed and their keys and the
//                  From domains' DMARC records looked up (warming the DNS cache).
//                  A message with ARC fields (RFC 8617) gets an ARC verifier: its sets are
//                  collected and checked and their keys looked up (none without ARC fields).
//   kBody          DKIM (and ARC) body hashes, streaming (no second pass over the message).
//   kEndOfData     RSA/Ed25519 verification on the offload pool (never on the I/O thread),
//                  the ARC chain's too (at most 50 seals and one AMS, RFC 8617 §5.2),
//                  DMARC (RFC 7489) per From domain, then the verdict: p=reject → 550 5.7.1,
//                  p=quarantine → the quarantine folder and X-Spam-Flag: YES (unless an
//                  override applies: a trusted forwarder, a trusted list's DKIM pass, or a
//                  passing ARC chain last sealed by a trusted sealer), SPF per the
//                  SPF enforcement, a DNS temperror → accepted (or 451 4.4.3 when deferring);
//                  every accepted message gets our Authentication-Results on top.
// One `event=auth_results` log line per message and metrics counters per result.
//
// State: the per-message CheckState holds the streaming DKIM verifier and a shared "Lookups"
// object that DNS callbacks fill from the resolver's thread (under its mutex), so a callback
// that comes after the deadline touches nothing the host has freed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/network.h"
#include "dns/resolver.h"
#include "intake/check.h"
#include "mailauth/results.h"

namespace mailauth {
struct SpfOutcome;
struct DmarcEvaluation;
}  // namespace mailauth

namespace intake {

struct AuthenticityPolicy {
  enum class Spf { kOff, kRecord, kDmarc, kStrict };
  enum class Dmarc { kOff, kMonitor, kEnforce };
  std::string authserv_id;  // RFC 8601 §2.5
  std::string receiver;     // our host name (SPF %{r})
  Spf spf = Spf::kDmarc;
  Dmarc dmarc = Dmarc::kEnforce;
  // Per recipient domain (lower case): its own DMARC enforcement. One message holds
  // recipients of one enforcement: a recipient whose domain differs from the first one's
  // is answered 452 4.5.3 at RCPT (sent again in another transaction).
  std::vector<std::pair<std::string, Dmarc>> domain_dmarc;
  bool defer_on_temperror = false;
  unsigned max_signatures = 8;
  std::string quarantine_folder = "Junk";
  std::vector<base::Network> trusted_forwarders;
  std::vector<std::string> mailing_lists;  // DKIM d= of lists whose DMARC fails are overridden
  // ARC-Seal d= (lower case) whose passing chains override a DMARC fail (RFC 8617 §7.2).
  std::vector<std::string> trusted_arc_sealers;
  std::chrono::milliseconds deadline{8000};
  // Called (from any thread) with each DMARC evaluation of a domain that asks for aggregate
  // reports (rua=), for the daily reports (mailauth/dmarc_report.h); none: not recorded.
  std::function<void(const mailauth::DmarcEvaluation&)> record_dmarc;
};

// Shared so that a DNS answer or a verification that completes after a reload replaced the
// pipeline still finds its check (continuations hold shared_from_this()).
class AuthenticityCheck final : public Check,
                                public std::enable_shared_from_this<AuthenticityCheck> {
 public:
  // Runs CPU work (signature verification) off the calling thread.
  using Offload = std::function<void(std::function<void()>)>;
  AuthenticityCheck(std::shared_ptr<dns::Resolver> resolver, AuthenticityPolicy policy,
                    Offload offload);

  std::string_view name() const override { return "authenticity"; }
  StageMask stages() const override;
  std::string summary() const override;
  std::chrono::milliseconds deadline() const override { return policy_.deadline; }
  // Late DNS: the message is accepted with "none" recorded (or deferred when the policy
  // defers on temperror): never refused for our resolver's slowness.
  Verdict timeout_verdict(Stage stage) const override;
  void run(Stage stage, const Context& context, Done done) override;

  const AuthenticityPolicy& policy() const { return policy_; }

 private:
  struct State;
  struct Job;
  Verdict decide(Job& job, const mailauth::SpfOutcome& spf) const;
  AuthenticityPolicy::Dmarc enforcement_of(std::string_view recipient) const;
  Verdict recipient(const Context& context) const;
  void record(const Job& job, const mailauth::SpfOutcome& spf, mailauth::DmarcPolicy applied,
              const std::string& override_reason, const std::string& override_comment) const;
  void data_start(const Context& context, Done& done);
  void end_of_headers(const Context& context, Done& done);
  void end_of_data(const Context& context, Done& done);

  std::shared_ptr<dns::Resolver> resolver_;
  AuthenticityPolicy policy_;
  Offload offload_;
};

}  // namespace intake
