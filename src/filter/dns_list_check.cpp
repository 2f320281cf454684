// dns_list_check.cpp — see dns_list_check.h.
#include "filter/dns_list_check.h"

#include <fmt/format.h>

#include <atomic>
#include <utility>

#include "base/ascii.h"
#include "obs/log.h"
#include "obs/server_metrics.h"

namespace filter {
namespace {

// One decision in flight: what the DNS callbacks (on the resolver's thread, or at once on
// the caller's for a cached answer) fill in. Each callback writes its own slot; the last
// one to finish (the counter reaching zero) decides, so no lock is needed.
struct Evaluation {
  std::vector<ListResult> results;
  std::atomic<std::size_t> pending{0};
  intake::Check::Done done;
  std::string session_id;
  std::string client;
  std::string recipient;
  intake::Stage stage = intake::Stage::kConnect;
};

}  // namespace

std::string_view to_string(DnsListPolicy::RefuseAt where) {
  return where == DnsListPolicy::RefuseAt::kConnect ? "connect" : "rcpt";
}

bool is_postmaster(std::string_view recipient) {
  const std::size_t at = recipient.rfind('@');
  return base::equals_ignoring_case(recipient.substr(0, at), "postmaster");
}

DnsListCheck::DnsListCheck(std::shared_ptr<dns::Resolver> resolver, DnsListPolicy policy)
    : resolver_(std::move(resolver)),
      policy_(std::make_shared<const DnsListPolicy>(std::move(policy))) {}

intake::StageMask DnsListCheck::stages() const {
  intake::StageMask stages = intake::mask(intake::Stage::kConnect);
  if (policy_->refuse_at == DnsListPolicy::RefuseAt::kRcpt)
    stages |= intake::mask(intake::Stage::kRcpt);
  return stages;
}

std::string DnsListCheck::summary() const {
  std::string lists;
  for (const DnsList& list : policy_->lists)
    lists += fmt::format("{}{}={}", lists.empty() ? "" : " ", list.zone, list.weight);
  return fmt::format("{}, threshold {}, refused at {}, {} allowed networks", lists,
                     policy_->threshold, to_string(policy_->refuse_at),
                     policy_->allow_networks.size());
}

void DnsListCheck::start_lookups(const std::string& client) const {
  for (const DnsList& list : policy_->lists) {
    const std::string name = query_name(client, list.zone);
    if (!name.empty()) resolver_->lookup(name, dns::Type::kA, [](dns::AnswerPtr) {});
  }
}

void DnsListCheck::run(intake::Stage stage, const intake::Context& context, Done done) {
  // Only smtp listeners run this check (app::with_screening); never a client that proved
  // who it is (AUTH on port 25).
  if (!context.authenticated_user.empty()) return done(intake::Verdict::pass());
  auto address = base::parse_ip(context.client_address);
  if (!address) return done(intake::Verdict::pass());  // not an IP client (cannot happen on smtp)
  for (const base::Network& network : policy_->allow_networks) {
    if (!network.contains(*address)) continue;
    if (stage == intake::Stage::kConnect) {
      obs::Log("dnsbl")
          .kv("session", context.session_id)
          .kv("client", context.client_address)
          .kv("result", "allowlisted")
          .kv("network", base::to_string(network));
      obs::server_metrics().dnsbl_decision("allowlisted");
    }
    return done(intake::Verdict::pass());
  }
  const std::string client(context.client_address);
  if (stage == intake::Stage::kConnect && policy_->refuse_at == DnsListPolicy::RefuseAt::kRcpt) {
    start_lookups(client);  // answers wait in the resolver's cache for the first RCPT
    return done(intake::Verdict::pass());
  }
  // RFC 5321 §4.5.1: postmaster must be reachable, also for a listed client.
  if (stage == intake::Stage::kRcpt && is_postmaster(context.recipient)) {
    return done(intake::Verdict::pass());
  }

  auto evaluation = std::make_shared<Evaluation>();
  evaluation->results.resize(policy_->lists.size());
  evaluation->pending = policy_->lists.size() + 1;  // + this function's own share, below
  evaluation->done = std::move(done);
  evaluation->session_id = std::string(context.session_id);
  evaluation->client = client;
  evaluation->recipient = std::string(context.recipient);
  evaluation->stage = stage;

  // Runs once, when every lookup is back: scores, fetches the reason, answers.
  auto decide = [policy = policy_, resolver = resolver_, evaluation]() {
    const int score = score_of(evaluation->results);
    std::string lists;
    const DnsList* reason_list = nullptr;
    int reason_weight = 0;
    for (std::size_t i = 0; i < policy->lists.size(); ++i) {
      const ListResult& result = evaluation->results[i];
      const DnsList& list = policy->lists[i];
      if (result.kind == ListResult::Kind::kError) {
        obs::Log("dnsbl_list_error", obs::Level::kWarning)
            .kv("session", evaluation->session_id)
            .kv("client", evaluation->client)
            .kv("zone", list.zone)
            .kv("answer", result.answer)
            .kv("detail",
                "a provider error code or an answer outside 127.0.0.0/8: counted as "
                "not listed (is the list reachable from this resolver?)");
        obs::server_metrics().dnsbl_list_error();
      }
      if (result.kind != ListResult::Kind::kListed) continue;
      lists += fmt::format("{}{}:{}:{}", lists.empty() ? "" : ",", list.zone, result.answer,
                           result.weight);
      if (result.weight > reason_weight) {
        reason_weight = result.weight;
        reason_list = &list;
      }
    }
    const bool listed = score >= policy->threshold && reason_list != nullptr;
    auto answer = [policy, evaluation, score, lists, listed](const std::string& zone,
                                                             const std::string& reason) {
      obs::Log line("dnsbl", listed ? obs::Level::kInfo : obs::Level::kDebug);
      line.kv("session", evaluation->session_id)
          .kv("client", evaluation->client)
          .kv("stage", intake::to_string(evaluation->stage))
          .kv_if("recipient", evaluation->recipient)
          .kv("result", listed ? "listed" : "not_listed")
          .kv("score", score)
          .kv("threshold", policy->threshold)
          .kv_if("lists", lists);
      obs::server_metrics().dnsbl_decision(listed ? "listed" : "not_listed");
      if (!listed) return evaluation->done(intake::Verdict::pass());
      // RFC 5321 §3.1: 554 instead of the greeting; §4.3.2: 550 (not 554) for RCPT.
      const bool at_connect = evaluation->stage == intake::Stage::kConnect;
      const std::string text = refusal_text(
          evaluation->client, zone, reason,
          at_connect ? connect_refusal_room(policy->hostname.size()) : kRcptRefusalRoom);
      evaluation->done(intake::Verdict::refuse(smtp::Reply{at_connect ? 554 : 550, "5.7.1", text}));
    };
    if (!listed) return answer({}, {});
    const std::string zone = reason_list->zone;
    resolver->lookup(query_name(evaluation->client, zone), dns::Type::kTxt,
                     [answer, zone](dns::AnswerPtr txt) {
                       std::string reason;  // made reply-safe and cut by refusal_text
                       if (txt && txt->status == dns::Status::kOk && !txt->texts.empty())
                         reason = txt->texts.front();
                       answer(zone, reason);
                     });
  };

  for (std::size_t i = 0; i < policy_->lists.size(); ++i) {
    const std::string name = query_name(client, policy_->lists[i].zone);
    resolver_->lookup(name, dns::Type::kA,
                      [policy = policy_, evaluation, decide, i](dns::AnswerPtr answer) {
                        ListResult& result = evaluation->results[i];
                        if (!answer || answer->status == dns::Status::kTemporary ||
                            answer->status == dns::Status::kBogus) {
                          result.kind = ListResult::Kind::kFailed;
                        } else if (answer->status == dns::Status::kOk) {
                          result = evaluate_answer(policy->lists[i], answer->addresses);
                        }
                        if (evaluation->pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
                          decide();
                      });
  }
  if (evaluation->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) decide();
}

}  // namespace filter
