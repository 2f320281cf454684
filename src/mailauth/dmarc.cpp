// dmarc.cpp — RFC 7489 record parsing, organizational domain, discovery and alignment; the
// decisions are in dmarc.h.
#include "mailauth/dmarc.h"

#include <libpsl.h>

#include <memory>
#include <mutex>

#include "base/ascii.h"

namespace mailauth {
namespace {

bool is_space_or_line_end(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && is_space_or_line_end(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space_or_line_end(text.back()))
    text.remove_suffix(1);
  return text;
}

std::optional<DmarcPolicy> parse_policy(std::string_view value) {
  if (base::equals_ignoring_case(value, "none")) return DmarcPolicy::kNone;
  if (base::equals_ignoring_case(value, "quarantine")) return DmarcPolicy::kQuarantine;
  if (base::equals_ignoring_case(value, "reject")) return DmarcPolicy::kReject;
  return std::nullopt;
}

std::optional<std::uint64_t> parse_number(std::string_view value, std::uint64_t max) {
  if (value.empty() || value.size() > 10) return std::nullopt;
  std::uint64_t number = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    number = number * 10 + static_cast<unsigned>(c - '0');
  }
  if (number > max) return std::nullopt;
  return number;
}

bool is_uri(std::string_view uri) {  // RFC 3986 §3.1 scheme ":" something
  auto colon = uri.find(':');
  if (colon == 0 || colon == std::string_view::npos || colon + 1 == uri.size()) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    char c = uri[i];
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!letter && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')))
      return false;
  }
  return true;
}

// §6.4 dmarc-uri list: mailto: URIs kept, "!size" dropped; returns whether any URI was valid.
bool parse_uris(std::string_view value, std::vector<std::string>& out) {
  bool any = false;
  while (!value.empty()) {
    auto comma = value.find(',');
    std::string_view uri = trimmed(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    auto bang = uri.find('!');
    if (bang != std::string_view::npos) uri = uri.substr(0, bang);
    if (!is_uri(uri)) continue;
    any = true;
    if (base::starts_with_ignoring_case(uri, "mailto:") &&
        uri.find('@') != std::string_view::npos && out.size() < 16)
      out.emplace_back(uri);
  }
  return any;
}

bool valid_failure_options(std::string_view value) {  // §6.3 fo: 0, 1, d, s, colon-separated
  if (value.empty()) return false;
  while (!value.empty()) {
    auto colon = value.find(':');
    std::string_view option = trimmed(value.substr(0, colon));
    if (option != "0" && option != "1" && option != "d" && option != "s") return false;
    value = colon == std::string_view::npos ? std::string_view{} : value.substr(colon + 1);
  }
  return true;
}

const psl_ctx_t* public_suffixes() {
  // The list the publicsuffix package keeps current, else the one libpsl was built with.
  static const psl_ctx_t* context = [] {
    const psl_ctx_t* latest = psl_latest(nullptr);
    return latest ? latest : psl_builtin();
  }();
  return context;
}

DmarcPolicy sampled(DmarcPolicy policy, bool applies) {  // §6.6.4
  if (applies) return policy;
  return policy == DmarcPolicy::kReject ? DmarcPolicy::kQuarantine : DmarcPolicy::kNone;
}

}  // namespace

bool is_dmarc_record(std::string_view text) {
  text = trimmed(text);
  if (text.empty() || text.front() != 'v') return false;
  text = trimmed(text.substr(1));
  if (text.empty() || text.front() != '=') return false;
  text = trimmed(text.substr(1));
  if (!base::starts_with_ignoring_case(text, "DMARC1")) return false;
  text = trimmed(text.substr(6));
  return text.empty() || text.front() == ';';
}

base::Expected<DmarcRecord, std::string> parse_dmarc_record(std::string_view text) {
  if (text.size() > kMaxDmarcRecordOctets) return base::unexpected(std::string("record too long"));
  if (!is_dmarc_record(text)) return base::unexpected(std::string("does not start with v=DMARC1"));
  DmarcRecord record;
  bool have_policy = false, bad_subdomain_policy = false, valid_rua = false;
  std::vector<std::string> seen;
  bool first = true;
  while (!text.empty()) {
    auto semicolon = text.find(';');
    std::string_view tag = trimmed(text.substr(0, semicolon));
    text = semicolon == std::string_view::npos ? std::string_view{} : text.substr(semicolon + 1);
    if (first) {  // v=DMARC1, checked above
      first = false;
      continue;
    }
    if (tag.empty()) continue;
    auto equals = tag.find('=');
    if (equals == std::string_view::npos) continue;  // not a tag: ignored like a bad value
    std::string name = base::ascii_lowercase(trimmed(tag.substr(0, equals)));
    std::string_view value = trimmed(tag.substr(equals + 1));
    bool repeated = false;
    for (const auto& s : seen)
      repeated = repeated || s == name;
    if (repeated) continue;  // the first occurrence counts
    seen.push_back(name);
    if (name == "p") {
      if (auto policy = parse_policy(value)) {
        record.policy = *policy;
        have_policy = true;
      }
    } else if (name == "sp") {
      record.subdomain_policy = parse_policy(value);
      bad_subdomain_policy = !record.subdomain_policy;
    } else if (name == "pct") {
      if (auto number = parse_number(value, 100)) record.percent = static_cast<unsigned>(*number);
    } else if (name == "adkim" || name == "aspf") {
      bool& strict = name == "adkim" ? record.strict_dkim : record.strict_spf;
      if (base::equals_ignoring_case(value, "s")) strict = true;
      if (base::equals_ignoring_case(value, "r")) strict = false;
    } else if (name == "rua") {
      valid_rua = parse_uris(value, record.aggregate_addresses);
    } else if (name == "ruf") {
      parse_uris(value, record.failure_addresses);
    } else if (name == "fo") {
      if (valid_failure_options(value)) record.failure_options = std::string(value);
    } else if (name == "ri") {
      if (auto number = parse_number(value, 0xffffffffu))
        record.report_interval = static_cast<std::uint32_t>(*number);
    }
  }
  if (!have_policy || bad_subdomain_policy) {  // §6.6.3 step 6
    if (!valid_rua)
      return base::unexpected(std::string(have_policy ? "an invalid sp= tag" : "no valid p= tag") +
                              " and no valid rua=");
    record.policy = DmarcPolicy::kNone;
    record.subdomain_policy.reset();
  }
  return record;
}

std::string organizational_domain(std::string_view domain) {
  std::string lower = base::ascii_lowercase(domain);
  if (!lower.empty() && lower.back() == '.') lower.pop_back();
  const char* registrable = psl_registrable_domain(public_suffixes(), lower.c_str());
  return registrable ? std::string(registrable) : lower;
}

bool dmarc_aligned(std::string_view identifier, std::string_view from_domain, bool strict) {
  if (identifier.empty() || from_domain.empty()) return false;
  if (!identifier.empty() && identifier.back() == '.') identifier.remove_suffix(1);
  if (!from_domain.empty() && from_domain.back() == '.') from_domain.remove_suffix(1);
  if (strict) return base::equals_ignoring_case(identifier, from_domain);
  return organizational_domain(identifier) == organizational_domain(from_domain);
}

DmarcStep evaluate_dmarc(const DmarcRequest& request, const DmarcAnswers& answers) {
  DmarcStep step;
  DmarcOutcome outcome;
  std::string from = base::ascii_lowercase(request.from_domain);
  if (!from.empty() && from.back() == '.') from.pop_back();
  outcome.from_domain = from;
  auto finish = [&](DmarcResult result, std::string problem) {
    outcome.result = result;
    outcome.problem = std::move(problem);
    step.outcome = std::move(outcome);
    return step;
  };
  if (from.empty() || from.size() > 253 - 7)
    return finish(DmarcResult::kNone, "no usable From domain");
  std::string organizational = organizational_domain(from);
  std::vector<std::string> candidates{from};
  if (organizational != from) candidates.push_back(organizational);  // §6.6.3 step 4

  for (const auto& domain : candidates) {
    std::string name = "_dmarc." + domain;
    auto found = answers.find(name);
    if (found == answers.end() || !found->second) {
      step.next = name;
      return step;
    }
    const dns::Answer& answer = *found->second;
    if (answer.status == dns::Status::kTemporary || answer.status == dns::Status::kBogus)
      return finish(DmarcResult::kTempError,
                    "DNS TXT " + name + ": " + std::string(dns::to_string(answer.status)));
    std::vector<const std::string*> records;
    if (answer.status == dns::Status::kOk)
      for (const auto& text : answer.texts)
        if (is_dmarc_record(text)) records.push_back(&text);
    if (records.empty()) continue;
    outcome.policy_domain = domain;
    if (records.size() > 1) return finish(DmarcResult::kNone, "several DMARC records at " + name);
    auto record = parse_dmarc_record(*records.front());
    if (!record) return finish(DmarcResult::kPermError, name + ": " + record.error());
    outcome.record = *record;
    outcome.policy =
        domain != from && record->subdomain_policy ? *record->subdomain_policy : record->policy;
    outcome.spf_aligned = request.spf == SpfResult::kPass &&
                          dmarc_aligned(request.spf_domain, from, record->strict_spf);
    for (const auto& d : request.dkim_pass_domains)
      outcome.dkim_aligned = outcome.dkim_aligned || dmarc_aligned(d, from, record->strict_dkim);
    if (outcome.spf_aligned || outcome.dkim_aligned) {
      outcome.disposition = DmarcPolicy::kNone;
      return finish(DmarcResult::kPass, "");
    }
    outcome.disposition = sampled(outcome.policy, request.sample < record->percent);
    return finish(DmarcResult::kFail, "neither SPF nor DKIM aligned with " + from);
  }
  return finish(DmarcResult::kNone, "no DMARC record for " + from);
}

namespace {

// The driver of spf.cpp's pattern, for at most two TXT lookups.
class DmarcDriver : public std::enable_shared_from_this<DmarcDriver> {
 public:
  DmarcDriver(dns::Resolver& resolver, DmarcRequest request, std::function<void(DmarcOutcome)> done)
      : resolver_(resolver), request_(std::move(request)), done_(std::move(done)) {}

  void run() {
    for (;;) {
      DmarcStep step = evaluate_dmarc(request_, answers_);
      if (step.outcome || ++lookups_ > 4) {
        if (!step.outcome) {
          step.outcome = DmarcOutcome{};
          step.outcome->result = DmarcResult::kTempError;
          step.outcome->problem = "too many DNS lookups";
        }
        auto done = std::move(done_);
        done(std::move(*step.outcome));
        return;
      }
      {
        std::lock_guard lock(mutex_);
        in_lookup_ = true;
        answered_ = false;
      }
      auto self = shared_from_this();
      std::string name = step.next;
      resolver_.lookup(name, dns::Type::kTxt, [self, name](dns::AnswerPtr answer) {
        bool resume = false;
        {
          std::lock_guard lock(self->mutex_);
          if (!answer) answer = std::make_shared<dns::Answer>();  // kTemporary
          self->answers_[name] = std::move(answer);
          self->answered_ = true;
          resume = !self->in_lookup_;
        }
        if (resume) self->run();
      });
      std::lock_guard lock(mutex_);
      in_lookup_ = false;
      if (!answered_) return;
    }
  }

 private:
  dns::Resolver& resolver_;
  DmarcRequest request_;
  std::function<void(DmarcOutcome)> done_;
  DmarcAnswers answers_;
  unsigned lookups_ = 0;
  std::mutex mutex_;
  bool in_lookup_ = false;
  bool answered_ = false;
};

}  // namespace

void check_dmarc(dns::Resolver& resolver, DmarcRequest request,
                 std::function<void(DmarcOutcome)> done) {
  std::make_shared<DmarcDriver>(resolver, std::move(request), std::move(done))->run();
}

}  // namespace mailauth
