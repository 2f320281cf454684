// mx_resolver.cpp — MX, then A and AAAA lookups through dns::Resolver (see mx_resolver.h).
//
// One resolve() runs at most two rounds of lookups: the MX lookup, then the A and AAAA
// lookups of every MX host at once, all within one deadline. The resolver's statuses are
// read as RFC 5321 §5.1 needs: NODATA for MX means the implicit MX, NXDOMAIN is permanent,
// SERVFAIL, REFUSED, timeouts and DNSSEC failures (kBogus) are temporary (§4.5.4.1: retry).
// CNAME chains are followed by the resolver (§5.1 allows the domain to be an alias; the MX
// exchange SHOULD NOT be one but is resolved all the same).
#include "delivery/mx_resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <utility>

#include "base/ascii.h"

namespace delivery {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxDomainLength = 253;  // RFC 1035 §2.3.4, without the final dot
constexpr std::size_t kMaxLabelLength = 63;

// The resolver's failure in words, as the DSN and the log show it.
std::string describe(const dns::Answer& answer) {
  if (answer.status == dns::Status::kBogus)
    return "DNSSEC validation failed (" + answer.detail + ")";
  if (answer.detail == "timed out") return "DNS timeout";
  if (answer.detail == "SERVFAIL") return "DNS server failure (SERVFAIL)";
  if (answer.detail == "REFUSED") return "DNS query refused (REFUSED)";
  if (answer.detail.starts_with("DNS ")) return answer.detail;  // "DNS server unreachable …"
  return "DNS error: " + answer.detail;
}

bool is_temporary(const dns::Answer& answer) {
  return answer.status == dns::Status::kTemporary || answer.status == dns::Status::kBogus;
}

// Lookups started all at once, waited for together until every answer is in or deadline.
class Round {
 public:
  explicit Round(dns::Resolver& resolver)
      : resolver_(resolver), shared_(std::make_shared<Shared>()) {}

  // Index of the lookup, for answer().
  std::size_t add(const std::string& name, dns::Type type) {
    std::size_t index;
    {
      std::lock_guard lock(shared_->mutex);
      index = shared_->answers.size();
      shared_->answers.emplace_back();
    }
    // The callback may run after this round gave up waiting: it holds the shared state.
    resolver_.lookup(name, type, [shared = shared_, index](dns::AnswerPtr answer) {
      std::lock_guard lock(shared->mutex);
      shared->answers[index] = std::move(answer);
      ++shared->done;
      shared->ready.notify_all();
    });
    return index;
  }

  // Waits; lookups not answered by deadline get kTemporary "timed out".
  void wait(Clock::time_point deadline) {
    std::unique_lock lock(shared_->mutex);
    shared_->ready.wait_until(lock, deadline,
                              [&] { return shared_->done == shared_->answers.size(); });
    answers_ = shared_->answers;
  }

  const dns::Answer& answer(std::size_t index) const {
    static const dns::Answer timed_out{
        dns::Status::kTemporary, false, {}, {}, {}, {}, {}, {}, {}, "timed out"};
    return answers_[index] != nullptr ? *answers_[index] : timed_out;
  }

 private:
  struct Shared {
    std::mutex mutex;
    std::condition_variable ready;
    std::vector<dns::AnswerPtr> answers;
    std::size_t done = 0;
  };
  dns::Resolver& resolver_;
  std::shared_ptr<Shared> shared_;
  std::vector<dns::AnswerPtr> answers_;
};

// text for a log line or DSN: at most 255 bytes, control and non-ASCII bytes as '?'.
std::string printable(std::string_view text) {
  std::string result(text.substr(0, 255));
  for (char& ch : result) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) ch = '?';
  }
  return result;
}

// A host name as DNS can carry it in a query: LDH labels (and '_', seen in the wild), each
// 1..63 octets, 253 in all. Non-ASCII (a U-label) is refused: IDNA is the caller's.
bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxDomainLength) return false;
  std::size_t label_length = 0;
  for (char ch : name) {
    if (ch == '.') {
      if (label_length == 0) return false;
      label_length = 0;
      continue;
    }
    auto c = static_cast<unsigned char>(ch);
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
    if (++label_length > kMaxLabelLength) return false;
  }
  return label_length > 0;
}

// "192.0.2.1" / "::1" -> the canonical text of the address; "" when text is not one.
std::string canonical_address(std::string_view text) {
  std::string input(text);
  unsigned char buffer[sizeof(in6_addr)];
  char output[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, input.c_str(), buffer) == 1) {
    return inet_ntop(AF_INET, buffer, output, sizeof output);
  }
  if (inet_pton(AF_INET6, input.c_str(), buffer) == 1) {
    return inet_ntop(AF_INET6, buffer, output, sizeof output);
  }
  return "";
}

// RFC 5321 §4.1.3: "[" IPv4-address-literal "]" or "[IPv6:" IPv6-addr "]". A General-
// address-literal (another tag) names nothing we can reach. Returns the address, or "".
std::string domain_literal_address(std::string_view literal) {
  if (literal.size() < 3 || literal.front() != '[' || literal.back() != ']') return "";
  std::string_view inside = literal.substr(1, literal.size() - 2);
  constexpr std::string_view kIpv6Tag = "IPv6:";
  if (inside.size() > kIpv6Tag.size() &&
      base::ascii_lowercase(inside.substr(0, kIpv6Tag.size())) == "ipv6:") {
    std::string_view address = inside.substr(kIpv6Tag.size());
    std::string input(address);
    in6_addr parsed;
    if (inet_pton(AF_INET6, input.c_str(), &parsed) != 1) return "";
    return canonical_address(address);
  }
  std::string input(inside);
  in_addr parsed;
  if (inet_pton(AF_INET, input.c_str(), &parsed) != 1) return "";
  return canonical_address(inside);
}

MxAnswer single_address(std::string_view name, const std::string& address) {
  MxAnswer answer;
  answer.status = MxStatus::kOk;
  answer.targets.push_back(MxTarget{std::string(name), 0, {address}, false, false, {}});
  answer.detail = std::string(name) + " is an address literal (no DNS lookup)";
  return answer;
}

std::string_view strip_final_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

struct MxRecord {
  std::string host;
  unsigned preference;
};

// The A and AAAA lookups of one host.
struct HostLookup {
  std::string host;
  std::size_t aaaa = 0;
  std::size_t a = 0;
};

enum class HostOutcome { kAddresses, kNone, kNoSuchHost, kTemporary };

// Addresses of one host, IPv6 first (RFC 6724 prefers it by default), deduplicated and
// bounded. reason says why there are none.
HostOutcome collect(const HostLookup& lookup, const Round& round,
                    std::vector<std::string>* addresses, bool* secure, std::string* canonical,
                    std::string* reason) {
  const dns::Answer* answers[2] = {&round.answer(lookup.aaaa), &round.answer(lookup.a)};
  const char* types[2] = {"AAAA", "A"};
  for (const dns::Answer* answer : answers) {
    if (answer->status != dns::Status::kOk) continue;
    for (const auto& address : answer->addresses) {
      if (addresses->size() >= kMaxAddressesPerTarget) break;
      if (std::find(addresses->begin(), addresses->end(), address) == addresses->end()) {
        addresses->push_back(address);
      }
    }
  }
  // Secure only when both families are proven: an address or a validated absence each.
  *secure = std::all_of(std::begin(answers), std::end(answers), [](const dns::Answer* answer) {
    return answer->secure &&
           (answer->status == dns::Status::kOk || answer->status == dns::Status::kNoData);
  });
  for (const dns::Answer* answer : answers)
    if (*secure && canonical->empty() && !answer->canonical_name.empty())
      *canonical = answer->canonical_name;
  if (!addresses->empty()) return HostOutcome::kAddresses;
  // No address: temporary if either family could not be answered, else permanent.
  for (int i = 0; i < 2; ++i) {
    if (is_temporary(*answers[i])) {
      *reason = describe(*answers[i]) + " looking up " + types[i] + " of " + lookup.host;
      return HostOutcome::kTemporary;
    }
  }
  if (answers[0]->status == dns::Status::kNxDomain ||
      answers[1]->status == dns::Status::kNxDomain) {
    *reason = "host " + lookup.host + " does not exist (NXDOMAIN)";
    return HostOutcome::kNoSuchHost;
  }
  *reason = "no A/AAAA record for " + lookup.host;
  return HostOutcome::kNone;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string result;
  for (const auto& part : parts) {
    if (!result.empty()) result += separator;
    result += part;
  }
  return result;
}

std::mt19937& random_engine() {
  thread_local std::mt19937 engine{std::random_device{}()};
  return engine;
}

}  // namespace

std::string_view to_string(MxStatus status) {
  switch (status) {
    case MxStatus::kOk:
      return "ok";
    case MxStatus::kNullMx:
      return "null-mx";
    case MxStatus::kNoDomain:
      return "no-domain";
    case MxStatus::kTemporary:
      return "temporary";
  }
  return "unknown";
}

MxResolver::MxResolver(std::shared_ptr<dns::Resolver> resolver, std::chrono::milliseconds deadline)
    : resolver_(std::move(resolver)), deadline_(deadline) {}

MxAnswer MxResolver::resolve(std::string_view domain_text) {
  MxAnswer answer;
  if (domain_text.starts_with('[')) {
    std::string address = domain_literal_address(domain_text);
    if (address.empty()) {
      answer.status = MxStatus::kNoDomain;
      answer.detail = "invalid address literal " + printable(domain_text) + " (RFC 5321 §4.1.3)";
      return answer;
    }
    return single_address(domain_text, address);
  }
  std::string domain = base::ascii_lowercase(strip_final_dot(domain_text));
  if (!is_valid_name(domain)) {
    answer.status = MxStatus::kNoDomain;
    answer.detail = "invalid domain name \"" + printable(domain_text) + "\"";
    return answer;
  }

  const auto deadline = Clock::now() + deadline_;

  // Round 1: MX.
  Round mx_round(*resolver_);
  const std::size_t mx_index = mx_round.add(domain, dns::Type::kMx);
  mx_round.wait(deadline);
  const dns::Answer& mx_answer = mx_round.answer(mx_index);
  if (mx_answer.status == dns::Status::kNxDomain) {
    answer.status = MxStatus::kNoDomain;
    answer.detail = "domain " + domain + " does not exist (NXDOMAIN)";
    return answer;
  }
  if (is_temporary(mx_answer)) {
    answer.status = MxStatus::kTemporary;
    answer.detail = describe(mx_answer) + " looking up MX of " + domain;
    return answer;
  }
  answer.secure = mx_answer.secure;
  std::vector<MxRecord> records;
  for (const dns::MxRecord& record : mx_answer.mx)
    records.push_back({record.exchange, record.preference});

  // RFC 7505 §3: a null MX is the only MX of its domain; "." with any other record is a
  // broken zone, and the "." entry is skipped (it cannot be connected to either way).
  std::vector<std::string> notes;
  if (records.size() == 1 && (records[0].host.empty() || records[0].host == ".")) {
    answer.status = MxStatus::kNullMx;
    answer.detail = domain + " accepts no mail (null MX, RFC 7505)";
    return answer;
  }

  std::vector<MxTarget> targets;
  if (records.empty()) {
    // RFC 5321 §5.1: "If an empty list of MXs is returned, the address is treated as if it
    // was associated with an implicit MX RR, with a preference of 0, pointing to that host."
    targets.push_back(MxTarget{domain, 0, {}, true, false, {}});
  } else {
    std::map<std::string, unsigned> best;  // one target per host, at its best preference
    for (auto& record : records) {
      std::string host = base::ascii_lowercase(strip_final_dot(record.host));
      if (host.empty()) {
        notes.push_back("null MX \".\" among other MX records skipped (RFC 7505 §3)");
        continue;
      }
      if (!canonical_address(host).empty() || host.starts_with('[')) {
        notes.push_back("MX " + host +
                        " is an IP address, not a host name: skipped (RFC 5321 §5.1)");
        continue;
      }
      if (!is_valid_name(host)) {
        notes.push_back("MX \"" + printable(host) + "\" is not a valid host name: skipped");
        continue;
      }
      auto [where, inserted] = best.emplace(host, record.preference);
      if (!inserted) where->second = std::min(where->second, record.preference);
    }
    for (auto& [host, preference] : best)
      targets.push_back(MxTarget{host, preference, {}, false, false, {}});
    // §5.1: "If there are multiple destinations with the same preference and there is no
    // clear reason to favor one ... the SMTP client SHOULD pick one of them at random".
    std::shuffle(targets.begin(), targets.end(), random_engine());
    std::stable_sort(targets.begin(), targets.end(), [](const MxTarget& a, const MxTarget& b) {
      return a.preference < b.preference;
    });
    if (targets.size() > kMaxMxTargets) {
      notes.push_back(std::to_string(targets.size() - kMaxMxTargets) +
                      " MX records beyond the first " + std::to_string(kMaxMxTargets) + " ignored");
      targets.resize(kMaxMxTargets);
    }
    if (targets.empty()) {
      // §5.1: with MX records present the implicit MX does not apply; none can be used.
      answer.status = MxStatus::kNoDomain;
      answer.detail = "no usable MX for " + domain + ": " + join(notes, "; ");
      return answer;
    }
  }

  // Round 2: A and AAAA of every target, all at once.
  Round address_round(*resolver_);
  std::vector<HostLookup> lookups(targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    lookups[i].host = targets[i].host;
    lookups[i].aaaa = address_round.add(lookups[i].host, dns::Type::kAaaa);
    lookups[i].a = address_round.add(lookups[i].host, dns::Type::kA);
  }
  address_round.wait(deadline);

  bool implicit = records.empty();
  std::vector<std::string> failures;
  bool any_temporary = false;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    std::string reason;
    switch (collect(lookups[i], address_round, &targets[i].addresses, &targets[i].secure,
                    &targets[i].canonical, &reason)) {
      case HostOutcome::kAddresses:
        break;
      case HostOutcome::kTemporary:
        any_temporary = true;
        failures.push_back(reason);
        break;
      case HostOutcome::kNone:
      case HostOutcome::kNoSuchHost:
        failures.push_back(reason);
        break;
    }
  }

  if (implicit) {
    if (targets[0].addresses.empty()) {
      answer.status = any_temporary ? MxStatus::kTemporary : MxStatus::kNoDomain;
      answer.detail = any_temporary ? failures[0] + " (no MX record for " + domain + ")"
                                    : "no MX or A/AAAA record for " + domain;
      if (any_temporary) answer.targets = std::move(targets);
      return answer;
    }
    answer.status = MxStatus::kOk;
    answer.detail = "no MX record for " + domain + ": its own A/AAAA (implicit MX, RFC 5321 §5.1)";
    answer.targets = std::move(targets);
    return answer;
  }

  std::vector<MxTarget> reachable;
  for (auto& target : targets) {
    if (!target.addresses.empty()) reachable.push_back(std::move(target));
  }
  notes.insert(notes.end(), failures.begin(), failures.end());
  if (reachable.empty()) {
    // XXX: an MX host that does not exist is a broken zone, and a retry may find it fixed;
    // no address for any MX host is reported as temporary, with every host kept.
    answer.status = MxStatus::kTemporary;
    answer.detail = "no address for any MX host of " + domain + ": " + join(notes, "; ");
    answer.targets = std::move(targets);
    return answer;
  }
  answer.status = MxStatus::kOk;
  answer.detail = std::to_string(reachable.size()) + " MX host" +
                  (reachable.size() == 1 ? "" : "s") + " for " + domain;
  if (!notes.empty()) answer.detail += " (" + join(notes, "; ") + ")";
  answer.targets = std::move(reachable);
  return answer;
}

}  // namespace delivery
