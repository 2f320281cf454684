// authenticity_check.cpp — see authenticity_check.h.
#include "intake/authenticity_check.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <random>
#include <utility>

#include "base/ascii.h"
#include "mailauth/arc_verifier.h"
#include "mailauth/authentication_results.h"
#include "mailauth/dkim_verifier.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"
#include "mailauth/from_header.h"
#include "mailauth/spf.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace intake {
namespace {

constexpr std::size_t kMaxFromDomains = 5;  // DMARC evaluations per message

bool verifies(const Context& context) {
  return context.role == "smtp" && context.authenticated_user.empty();
}

// Counters per method and result, registered once (metrics.h: bounded label sets).
struct ResultCounters {
  std::array<obs::Counter*, 7> spf{};
  std::array<obs::Counter*, 7> dkim{};
  std::array<obs::Counter*, 5> dmarc{};
  std::array<obs::Counter*, 3> arc{};
  std::array<obs::Counter*, 3> disposition{};
  ResultCounters() {
    constexpr std::string_view help = "Sender authentication results of messages on port 25";
    for (std::size_t i = 0; i < spf.size(); ++i) {
      spf[i] = &obs::metrics().counter(
          "smtpsd_authenticity_results_total", help,
          {{"method", "spf"},
           {"result", std::string(mailauth::to_string(static_cast<mailauth::SpfResult>(i)))}});
    }
    for (std::size_t i = 0; i < dkim.size(); ++i) {
      dkim[i] = &obs::metrics().counter(
          "smtpsd_authenticity_results_total", help,
          {{"method", "dkim"},
           {"result", std::string(mailauth::to_string(static_cast<mailauth::DkimResult>(i)))}});
    }
    for (std::size_t i = 0; i < dmarc.size(); ++i) {
      dmarc[i] = &obs::metrics().counter(
          "smtpsd_authenticity_results_total", help,
          {{"method", "dmarc"},
           {"result", std::string(mailauth::to_string(static_cast<mailauth::DmarcResult>(i)))}});
    }
    for (std::size_t i = 0; i < arc.size(); ++i) {
      arc[i] = &obs::metrics().counter(
          "smtpsd_authenticity_results_total", help,
          {{"method", "arc"},
           {"result", std::string(mailauth::to_string(static_cast<mailauth::ArcResult>(i)))}});
    }
    for (std::size_t i = 0; i < disposition.size(); ++i) {
      disposition[i] = &obs::metrics().counter(
          "smtpsd_dmarc_dispositions_total", "DMARC dispositions applied to messages on port 25",
          {{"disposition",
            std::string(mailauth::to_string(static_cast<mailauth::DmarcPolicy>(i)))}});
    }
  }
};

ResultCounters& counters() {
  static ResultCounters instance;
  return instance;
}

// What DNS callbacks fill, from the resolver's thread; shared with the message's state and
// with the end-of-data job, so a late callback writes into memory that is still alive.
struct Lookups {
  std::mutex mutex;
  bool spf_started = false;
  std::optional<mailauth::SpfOutcome> spf;
  std::vector<dns::AnswerPtr> keys;  // per DKIM signature (null: not back yet, or no key needed)
  std::vector<dns::AnswerPtr> arc_keys;  // per ArcVerifier::key_names() entry
  std::size_t keys_pending = 0;
  std::function<void()> when_ready;  // set at the end of data; runs once everything is back

  bool ready() const { return (!spf_started || spf.has_value()) && keys_pending == 0; }
  // Called with the mutex held; returns the continuation to run (after unlocking) if it is time.
  std::function<void()> take_if_ready() {
    if (!when_ready || !ready()) return {};
    return std::exchange(when_ready, nullptr);
  }
};

}  // namespace

struct AuthenticityCheck::State final : CheckState {
  bool verify = false;
  std::shared_ptr<Lookups> lookups = std::make_shared<Lookups>();
  std::unique_ptr<mailauth::DkimVerifier> verifier;
  std::unique_ptr<mailauth::ArcVerifier> arc;  // only for a message with ARC fields
  std::vector<std::string> from_domains;
  std::string sender;  // MAIL FROM, for Authentication-Results
  std::string helo;
};

AuthenticityCheck::AuthenticityCheck(std::shared_ptr<dns::Resolver> resolver,
                                     AuthenticityPolicy policy, Offload offload)
    : resolver_(std::move(resolver)), policy_(std::move(policy)), offload_(std::move(offload)) {
  counters();
}

StageMask AuthenticityCheck::stages() const {
  StageMask stages = mask(Stage::kDataStart) | mask(Stage::kEndOfHeaders) | mask(Stage::kBody) |
                     mask(Stage::kEndOfData);
  // Domains with DMARC settings of their own: one transaction holds one enforcement.
  if (!policy_.domain_dmarc.empty()) stages |= mask(Stage::kRcpt);
  return stages;
}

AuthenticityPolicy::Dmarc AuthenticityCheck::enforcement_of(std::string_view recipient) const {
  const std::string domain = base::address_domain(recipient);
  for (const auto& [name, setting] : policy_.domain_dmarc)
    if (name == domain) return setting;
  return policy_.dmarc;
}

// The one reply at the end of data covers every recipient, so a recipient whose domain
// enforces DMARC and one whose domain only monitors cannot share a message: the forged mail
// would reach the first because of the second. The later one is told 452 4.5.3 (RFC 5321
// §4.5.3.1.10: the client sends it again in another transaction, nothing is lost).
Verdict AuthenticityCheck::recipient(const Context& context) const {
  if (!verifies(context) || context.envelope == nullptr || context.envelope->recipients.empty())
    return Verdict::pass();
  if (enforcement_of(context.recipient) ==
      enforcement_of(context.envelope->recipients.front().address))
    return Verdict::pass();
  return Verdict::refuse(smtp::Reply{
      452, "4.5.3",
      "Recipients of domains with another DMARC policy go in another transaction, send again"});
}

std::string AuthenticityCheck::summary() const {
  static constexpr std::array<std::string_view, 4> spf{"off", "record", "dmarc", "strict"};
  static constexpr std::array<std::string_view, 3> dmarc{"off", "monitor", "enforce"};
  return "port 25: SPF " + std::string(spf[static_cast<std::size_t>(policy_.spf)]) +
         ", DKIM, DMARC " + std::string(dmarc[static_cast<std::size_t>(policy_.dmarc)]) +
         ", Authentication-Results as " + policy_.authserv_id;
}

Verdict AuthenticityCheck::timeout_verdict(Stage stage) const {
  if (stage != Stage::kEndOfData) return Verdict::pass();
  if (policy_.defer_on_temperror) {
    return Verdict::refuse(
        smtp::Reply{451, "4.4.3", "Temporary DNS failure checking the sender, try again later"});
  }
  Verdict verdict;
  verdict.header_edits.push_back(
      HeaderEdit{HeaderEdit::Kind::kAdd, "Authentication-Results",
                 mailauth::results_value(policy_.authserv_id) + "; none (checks timed out)", 1});
  return verdict;
}

void AuthenticityCheck::run(Stage stage, const Context& context, Done done) {
  if (stage == Stage::kRcpt) return done(recipient(context));
  if (context.state == nullptr) return done(Verdict::pass());
  if (stage == Stage::kDataStart) return data_start(context, done);
  auto* state = static_cast<State*>(context.state->get());
  if (state == nullptr) return done(Verdict::pass());
  // Forged verdicts go for every role (a user could mail one to a local mailbox).
  if (stage == Stage::kEndOfHeaders) return end_of_headers(context, done);
  if (!state->verify) return done(Verdict::pass());
  switch (stage) {
    case Stage::kBody:
      if (state->verifier && state->verifier->signature_count() > 0)
        state->verifier->body(context.body_chunk);
      if (state->arc) state->arc->body(context.body_chunk);
      return done(Verdict::pass());
    case Stage::kEndOfData:
      if (context.header_section_too_large) {
        // No header events: neither the forged verdicts nor the From domains were seen.
        return done(Verdict::refuse(
            smtp::Reply{552, "5.3.4", "Header section too large (over 1 MiB), not accepted"}));
      }
      return end_of_data(context, done);
    default:
      return done(Verdict::pass());
  }
}

void AuthenticityCheck::data_start(const Context& context, Done& done) {
  auto state = std::make_unique<State>();
  state->verify = verifies(context);
  state->helo = std::string(context.helo);
  if (context.envelope != nullptr) state->sender = context.envelope->reverse_path;
  if (state->verify && policy_.spf != AuthenticityPolicy::Spf::kOff) {
    mailauth::SpfRequest request;
    request.client_ip = std::string(context.client_address);
    request.sender = state->sender;
    request.helo = state->helo;
    request.receiver = policy_.receiver;
    request.now = static_cast<std::int64_t>(std::time(nullptr));
    // A quarter of the check's time: with the last lookup's own timeout the SPF answer is in
    // before the deadline, however slow the sender's DNS (its includes are sequential).
    request.deadline = std::chrono::steady_clock::now() + policy_.deadline / 4;
    std::shared_ptr<Lookups> lookups = state->lookups;
    lookups->spf_started = true;
    mailauth::check_spf(*resolver_, std::move(request), [lookups](mailauth::SpfOutcome outcome) {
      std::function<void()> next;
      {
        std::lock_guard lock(lookups->mutex);
        lookups->spf = std::move(outcome);
        next = lookups->take_if_ready();
      }
      if (next) next();
    });
  }
  *context.state = std::move(state);
  done(Verdict::pass());
}

void AuthenticityCheck::end_of_headers(const Context& context, Done& done) {
  auto* state = static_cast<State*>(context.state->get());
  Verdict verdict;
  // RFC 8601 §5: remove what claims to be our verdict, before anything can fail.
  for (unsigned position : mailauth::forged_fields(context.header_section, policy_.authserv_id)) {
    verdict.header_edits.push_back(
        HeaderEdit{HeaderEdit::Kind::kDelete, "Authentication-Results", "", position});
  }
  if (!state->verify || context.header_section.empty()) return done(std::move(verdict));
  // Every domain of every From field is evaluated (RFC 7489 §6.6.1), the strictest outcome
  // applies: a second From field cannot hide the first from DMARC. Without a From field there
  // is no author domain to protect: DMARC records "none". A From field that cannot be read,
  // or more author domains than are evaluated, is refused: either would let a forged author
  // pass unchecked while mail clients still show it (RFC 7489 §6.6.1 allows refusing both).
  const mailauth::FromDomains from = mailauth::from_domains(context.header_section);
  if (policy_.dmarc != AuthenticityPolicy::Dmarc::kOff && from.from_fields > 0 &&
      from.domains.empty()) {
    return done(Verdict::refuse(smtp::Reply{
        550, "5.7.1", "The From: field cannot be read (RFC 5322 §3.6.2): " + from.problem}));
  }
  for (const std::string& domain : from.domains) {
    if (std::find(state->from_domains.begin(), state->from_domains.end(), domain) ==
        state->from_domains.end()) {
      state->from_domains.push_back(domain);
    }
  }
  if (state->from_domains.size() > kMaxFromDomains) {
    return done(Verdict::refuse(
        smtp::Reply{550, "5.7.1",
                    "Too many From: domains (" + std::to_string(state->from_domains.size()) +
                        ", at most " + std::to_string(kMaxFromDomains) + ")"}));
  }
  // Warm the cache with each From domain's DMARC record: check_dmarc will find it there.
  if (policy_.dmarc != AuthenticityPolicy::Dmarc::kOff) {
    for (const std::string& domain : state->from_domains)
      resolver_->lookup("_dmarc." + domain, dns::Type::kTxt, [](dns::AnswerPtr) {});
  }
  state->verifier = std::make_unique<mailauth::DkimVerifier>(policy_.max_signatures);
  state->verifier->header_section(context.header_section);
  const std::size_t count = state->verifier->signature_count();
  std::shared_ptr<Lookups> lookups = state->lookups;
  {
    std::lock_guard lock(lookups->mutex);
    lookups->keys.assign(count, nullptr);
  }
  for (std::size_t index = 0; index < count; ++index) {
    const std::string name = state->verifier->key_name(index);
    if (name.empty()) continue;
    {
      std::lock_guard lock(lookups->mutex);
      ++lookups->keys_pending;
    }
    // Each key lookup ends by the resolver's timeout, and they run side by side.
    resolver_->lookup(name, dns::Type::kTxt, [lookups, index](dns::AnswerPtr answer) {
      std::function<void()> next;
      {
        std::lock_guard lock(lookups->mutex);
        lookups->keys[index] = std::move(answer);
        --lookups->keys_pending;
        next = lookups->take_if_ready();
      }
      if (next) next();
    });
  }
  // ARC (RFC 8617): only a message that carries ARC fields pays for it.
  if (mailauth::ArcVerifier::has_arc_fields(context.header_section)) {
    state->arc = std::make_unique<mailauth::ArcVerifier>();
    state->arc->header_section(context.header_section);
    const std::vector<std::string>& names = state->arc->key_names();
    {
      std::lock_guard lock(lookups->mutex);
      lookups->arc_keys.assign(names.size(), nullptr);
      lookups->keys_pending += names.size();
    }
    for (std::size_t index = 0; index < names.size(); ++index) {
      resolver_->lookup(names[index], dns::Type::kTxt, [lookups, index](dns::AnswerPtr answer) {
        std::function<void()> next;
        {
          std::lock_guard lock(lookups->mutex);
          lookups->arc_keys[index] = std::move(answer);
          --lookups->keys_pending;
          next = lookups->take_if_ready();
        }
        if (next) next();
      });
    }
  }
  done(std::move(verdict));
}

// The end-of-data work of one message, kept alive by its continuations.
struct AuthenticityCheck::Job {
  std::shared_ptr<Lookups> lookups;
  std::unique_ptr<mailauth::DkimVerifier> verifier;
  std::unique_ptr<mailauth::ArcVerifier> arc;
  mailauth::ArcOutcome arc_outcome;  // none without ARC fields
  std::vector<std::string> from_domains;
  std::string sender, helo, session_id, queue_id, client, first_recipient_domain;
  bool trusted_forwarder = false;
  bool enforce = true;
  std::vector<mailauth::DkimOutcome> dkim;
  std::vector<mailauth::DmarcOutcome> dmarc;
  std::size_t dmarc_pending = 0;
  std::mutex mutex;  // guards dmarc, dmarc_pending
  Check::Done done;
};

void AuthenticityCheck::end_of_data(const Context& context, Done& done) {
  auto* state = static_cast<State*>(context.state->get());
  auto job = std::make_shared<Job>();
  job->lookups = state->lookups;
  job->verifier = std::move(state->verifier);
  if (job->verifier && job->verifier->signature_count() > 0) job->verifier->end_of_body();
  job->arc = std::move(state->arc);
  if (job->arc) job->arc->end_of_body();
  job->from_domains = state->from_domains;
  job->sender = state->sender;
  job->helo = state->helo;
  job->session_id = std::string(context.session_id);
  job->queue_id = std::string(context.queue_id);
  job->client = std::string(context.client_address);
  if (auto address = base::parse_ip(context.client_address)) {
    for (const base::Network& network : policy_.trusted_forwarders)
      if (network.contains(*address)) job->trusted_forwarder = true;
  }
  // Enforced only when every recipient's domain enforces (one refusal covers them all).
  if (context.envelope != nullptr) {
    if (!context.envelope->recipients.empty())
      job->first_recipient_domain =
          base::address_domain(context.envelope->recipients.front().address);
    for (const smtp::Recipient& recipient : context.envelope->recipients)
      if (enforcement_of(recipient.address) != AuthenticityPolicy::Dmarc::kEnforce)
        job->enforce = false;
  }
  if (policy_.dmarc != AuthenticityPolicy::Dmarc::kEnforce && policy_.domain_dmarc.empty())
    job->enforce = false;
  job->done = std::move(done);

  // Step 3 (after DKIM): DMARC per From domain, then the verdict.
  std::shared_ptr<const AuthenticityCheck> self = shared_from_this();
  auto finish = [self, job]() {
    const AuthenticityPolicy& policy = self->policy_;
    mailauth::SpfOutcome spf;  // SPF off: none
    {
      std::lock_guard lock(job->lookups->mutex);
      if (job->lookups->spf) spf = *job->lookups->spf;
    }
    std::vector<std::string> passing;
    for (const mailauth::DkimOutcome& outcome : job->dkim) {
      // A key in testing mode (t=y) counts as unsigned (RFC 6376 §3.6.1).
      if (outcome.result == mailauth::DkimResult::kPass && !outcome.testing)
        passing.push_back(outcome.domain);
    }
    if (policy.dmarc == AuthenticityPolicy::Dmarc::kOff || job->from_domains.empty()) {
      job->done(self->decide(*job, spf));
      return;
    }
    {
      std::lock_guard lock(job->mutex);
      job->dmarc_pending = job->from_domains.size();
    }
    static thread_local std::mt19937 random{std::random_device{}()};
    for (const std::string& domain : job->from_domains) {
      mailauth::DmarcRequest request;
      request.from_domain = domain;
      request.spf = spf.result;
      request.spf_domain = spf.domain;
      request.dkim_pass_domains = passing;
      request.sample = std::uniform_real_distribution<double>(0, 100)(random);
      mailauth::check_dmarc(
          *self->resolver_, std::move(request), [self, job, spf](mailauth::DmarcOutcome outcome) {
            bool last = false;
            {
              std::lock_guard lock(job->mutex);
              job->dmarc.push_back(std::move(outcome));
              last = --job->dmarc_pending == 0;
            }
            // On the pool, not the resolver's thread: decide()
            // writes the DMARC record file and log lines.
            if (last) self->offload_([self, job, spf] { job->done(self->decide(*job, spf)); });
          });
    }
  };

  // Step 2 (every DNS answer back): verify the signatures off the I/O thread.
  auto verify = [self, job, finish]() {
    self->offload_([job, finish]() {
      if (job->verifier) {
        const auto now = static_cast<std::int64_t>(std::time(nullptr));
        dns::Answer missing;
        missing.status = dns::Status::kTemporary;
        missing.detail = "no key lookup";
        for (std::size_t index = 0; index < job->verifier->signature_count(); ++index) {
          dns::AnswerPtr key;
          {
            std::lock_guard lock(job->lookups->mutex);
            key = job->lookups->keys[index];
          }
          job->dkim.push_back(job->verifier->verify(index, key ? *key : missing, now));
        }
      }
      if (job->arc) {
        std::vector<dns::AnswerPtr> keys;
        {
          std::lock_guard lock(job->lookups->mutex);
          keys = job->lookups->arc_keys;
        }
        job->arc_outcome = job->arc->verify(keys);
      }
      finish();
    });
  };

  std::function<void()> now;
  {
    std::lock_guard lock(job->lookups->mutex);
    job->lookups->when_ready = verify;
    now = job->lookups->take_if_ready();
  }
  if (now) now();
}

void AuthenticityCheck::record(const Job& job, const mailauth::SpfOutcome& spf,
                               mailauth::DmarcPolicy applied, const std::string& override_reason,
                               const std::string& override_comment) const {
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (const mailauth::DmarcOutcome& outcome : job.dmarc) {
    if (!outcome.record || outcome.record->aggregate_addresses.empty()) continue;
    const mailauth::DmarcRecord& published = *outcome.record;
    mailauth::DmarcEvaluation e;
    e.time = now;
    e.source_ip = job.client;
    e.header_from = outcome.from_domain;
    e.envelope_from =
        job.sender.empty() ? base::ascii_lowercase(job.helo) : base::address_domain(job.sender);
    e.envelope_to = job.first_recipient_domain;
    e.policy_domain = outcome.policy_domain;
    e.strict_dkim = published.strict_dkim;
    e.strict_spf = published.strict_spf;
    e.policy = std::string(mailauth::to_string(published.policy));
    e.subdomain_policy =
        std::string(mailauth::to_string(published.subdomain_policy.value_or(published.policy)));
    e.percent = published.percent;
    e.rua = published.aggregate_addresses;
    const bool failed = outcome.result == mailauth::DmarcResult::kFail;
    mailauth::DmarcPolicy disposition = failed ? outcome.disposition : mailauth::DmarcPolicy::kNone;
    if (failed && outcome.disposition != outcome.policy) e.override_reason = "sampled_out";
    if (failed && !override_reason.empty() && disposition != mailauth::DmarcPolicy::kNone) {
      e.override_reason = override_reason;
      e.override_comment = override_comment;
      disposition = mailauth::DmarcPolicy::kNone;
    }
    if (disposition > applied) disposition = applied;  // what was done to the message
    e.disposition = std::string(mailauth::to_string(disposition));
    e.dkim_aligned_pass = outcome.dkim_aligned;
    e.spf_aligned_pass = outcome.spf_aligned;
    for (const mailauth::DkimOutcome& dkim : job.dkim)
      e.dkim.push_back({dkim.domain, dkim.selector, std::string(mailauth::to_string(dkim.result))});
    e.spf_domain = spf.domain;
    e.spf_scope = spf.identity == "helo" ? "helo" : "mfrom";
    e.spf_result = std::string(mailauth::to_string(spf.result));
    policy_.record_dmarc(e);
  }
}

Verdict AuthenticityCheck::decide(Job& job, const mailauth::SpfOutcome& spf) const {
  mailauth::AuthResults results;
  if (policy_.spf != AuthenticityPolicy::Spf::kOff) {
    mailauth::AuthResults::Spf entry;
    entry.result = spf.result;
    entry.helo = spf.identity == "helo";
    entry.identity = entry.helo ? job.helo : job.sender;
    entry.problem = spf.problem;
    results.spf = entry;
  }
  results.dkim_checked = true;
  for (const mailauth::DkimOutcome& outcome : job.dkim) {
    results.dkim.push_back(mailauth::AuthResults::Dkim{outcome.result, outcome.domain,
                                                       outcome.selector, outcome.b_prefix,
                                                       outcome.algorithm, outcome.problem});
  }
  results.arc = mailauth::AuthResults::Arc{job.arc_outcome.result, job.arc_outcome.sealer,
                                           job.arc_outcome.problem, job.client};
  // The strictest DMARC outcome among the From domains decides.
  const mailauth::DmarcOutcome* worst = nullptr;
  bool temperror = spf.result == mailauth::SpfResult::kTempError;
  bool dmarc_published = false;
  for (const mailauth::DmarcOutcome& outcome : job.dmarc) {
    if (outcome.result == mailauth::DmarcResult::kTempError) temperror = true;
    if (outcome.record) dmarc_published = true;
    if (worst == nullptr || outcome.disposition > worst->disposition ||
        (outcome.disposition == worst->disposition &&
         outcome.result == mailauth::DmarcResult::kFail))
      worst = &outcome;
  }
  mailauth::DmarcPolicy applied = mailauth::DmarcPolicy::kNone;
  std::string override_reason, override_comment;
  if (worst != nullptr) {
    applied = worst->result == mailauth::DmarcResult::kFail ? worst->disposition
                                                            : mailauth::DmarcPolicy::kNone;
    const bool from_list =
        std::any_of(job.dkim.begin(), job.dkim.end(), [this](const mailauth::DkimOutcome& outcome) {
          return outcome.result == mailauth::DkimResult::kPass &&
                 std::find(policy_.mailing_lists.begin(), policy_.mailing_lists.end(),
                           base::ascii_lowercase(outcome.domain)) != policy_.mailing_lists.end();
        });
    if (applied != mailauth::DmarcPolicy::kNone && job.trusted_forwarder) {
      override_reason = "trusted_forwarder";
      applied = mailauth::DmarcPolicy::kNone;
    } else if (applied != mailauth::DmarcPolicy::kNone && from_list) {
      override_reason = "mailing_list";
      applied = mailauth::DmarcPolicy::kNone;
    } else if (applied != mailauth::DmarcPolicy::kNone &&
               job.arc_outcome.result == mailauth::ArcResult::kPass &&
               std::find(policy_.trusted_arc_sealers.begin(), policy_.trusted_arc_sealers.end(),
                         job.arc_outcome.sealer) != policy_.trusted_arc_sealers.end()) {
      // RFC 8617 §7.2: a receiver may use a chain sealed by an intermediary it trusts to
      // override DMARC; RFC 7489 has no PolicyOverrideType for ARC, so local_policy, with
      // the sealer in the comment.
      override_reason = "local_policy";
      override_comment = "arc=pass sealer=" + job.arc_outcome.sealer;
      applied = mailauth::DmarcPolicy::kNone;
    } else if (applied != mailauth::DmarcPolicy::kNone && !job.enforce) {
      override_reason = "local_policy";
      applied = mailauth::DmarcPolicy::kNone;
    }
    mailauth::AuthResults::Dmarc entry;
    entry.result = worst->result;
    entry.from_domain = worst->from_domain;
    if (worst->record) entry.policy = std::string(mailauth::to_string(worst->policy));
    entry.disposition = std::string(mailauth::to_string(applied));
    entry.problem = worst->problem;
    results.dmarc = entry;
  }

  // The reply, if any: DMARC reject, then SPF per its enforcement, then temperror deferral.
  std::optional<smtp::Reply> refusal;
  std::string why;
  if (applied == mailauth::DmarcPolicy::kReject) {
    refusal = smtp::Reply{550, "5.7.1",
                          "Message refused: DMARC policy of " + worst->from_domain +
                              " says reject (no aligned SPF or DKIM pass)"};
    why = "dmarc";
  } else if (!job.trusted_forwarder &&
             (policy_.spf == AuthenticityPolicy::Spf::kStrict ||
              (policy_.spf == AuthenticityPolicy::Spf::kDmarc && !dmarc_published))) {
    if (spf.result == mailauth::SpfResult::kFail) {
      std::string text = "SPF of " + spf.domain + " does not allow " + job.client + " to send";
      if (!spf.explanation.empty()) text += ": " + spf.explanation;
      refusal = smtp::Reply{550, "5.7.1", text};
      why = "spf";
    } else if (policy_.spf == AuthenticityPolicy::Spf::kStrict &&
               spf.result == mailauth::SpfResult::kPermError) {
      refusal =
          smtp::Reply{550, "5.5.2", "SPF record of " + spf.domain + " is broken: " + spf.problem};
      why = "spf";
    } else if (policy_.spf == AuthenticityPolicy::Spf::kStrict &&
               spf.result == mailauth::SpfResult::kTempError) {
      refusal = smtp::Reply{451, "4.4.3", "Temporary DNS failure checking SPF, try again later"};
      why = "spf";
    }
  }
  if (!refusal && temperror && policy_.defer_on_temperror) {
    refusal =
        smtp::Reply{451, "4.4.3", "Temporary DNS failure checking the sender, try again later"};
    why = "temperror";
  }

  ResultCounters& count = counters();
  if (results.spf) count.spf[static_cast<std::size_t>(spf.result)]->inc();
  for (const mailauth::DkimOutcome& outcome : job.dkim)
    count.dkim[static_cast<std::size_t>(outcome.result)]->inc();
  if (job.dkim.empty()) count.dkim[static_cast<std::size_t>(mailauth::DkimResult::kNone)]->inc();
  count.arc[static_cast<std::size_t>(job.arc_outcome.result)]->inc();
  if (results.dmarc) {
    count.dmarc[static_cast<std::size_t>(results.dmarc->result)]->inc();
    count.disposition[static_cast<std::size_t>(applied)]->inc();
  }

  obs::Log line("auth_results");
  line.kv("session", job.session_id).kv("id", job.queue_id);
  if (results.spf) {
    line.kv("spf", mailauth::to_string(spf.result)).kv("spf_domain", spf.domain);
    if (!spf.problem.empty()) line.kv("spf_problem", spf.problem);
  }
  std::string dkim_summary;
  for (const mailauth::DkimOutcome& outcome : job.dkim) {
    if (!dkim_summary.empty()) dkim_summary += ',';
    dkim_summary += std::string(mailauth::to_string(outcome.result)) + ":" + outcome.domain;
  }
  line.kv("dkim", dkim_summary.empty() ? std::string("none") : dkim_summary);
  line.kv("arc", mailauth::to_string(job.arc_outcome.result));
  if (!job.arc_outcome.sealer.empty()) line.kv("arc_sealer", job.arc_outcome.sealer);
  if (!job.arc_outcome.problem.empty()) line.kv("arc_problem", job.arc_outcome.problem);
  if (results.dmarc) {
    line.kv("dmarc", mailauth::to_string(results.dmarc->result))
        .kv("from_domain", results.dmarc->from_domain)
        .kv("policy", results.dmarc->policy.empty() ? std::string("none") : results.dmarc->policy)
        .kv("disposition", mailauth::to_string(applied));
    if (!override_reason.empty()) line.kv("override", override_reason);
  }
  if (refusal) line.kv("refused", why);
  if (policy_.record_dmarc) record(job, spf, applied, override_reason, override_comment);

  if (refusal) return Verdict::refuse(*refusal);
  Verdict verdict;
  verdict.header_edits.push_back(
      HeaderEdit{HeaderEdit::Kind::kAdd, "Authentication-Results",
                 mailauth::authentication_results(policy_.authserv_id, results), 1});
  if (applied == mailauth::DmarcPolicy::kQuarantine) {
    verdict.header_edits.push_back(HeaderEdit{HeaderEdit::Kind::kAdd, "X-Spam-Flag", "YES", 1});
    verdict.folder = policy_.quarantine_folder;
  }
  return verdict;
}

}  // namespace intake
