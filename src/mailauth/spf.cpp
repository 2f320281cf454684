// spf.cpp — RFC 7208: record parsing, macro expansion, check_host() over known answers, and
// the asynchronous driver. The invariants and decisions are in spf.h.
#include "mailauth/spf.h"

#include <arpa/inet.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "base/ascii.h"

namespace mailauth {
namespace {

// ---- addresses ----

struct Address {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};
};

std::optional<Address> parse_address(std::string_view text) {
  if (text.size() > 64) return std::nullopt;
  std::string copy(text);
  Address address;
  if (inet_pton(AF_INET, copy.c_str(), address.bytes.data()) == 1) return address;
  if (inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) == 1) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMapped, kMapped + 12, address.bytes.begin())) {  // RFC 4291 §2.5.5.2
      std::copy(address.bytes.begin() + 12, address.bytes.end(), address.bytes.begin());
      std::fill(address.bytes.begin() + 4, address.bytes.end(), 0);
      return address;
    }
    address.v6 = true;
    return address;
  }
  return std::nullopt;
}

bool in_network(const Address& address, const std::array<std::uint8_t, 16>& network,
                unsigned prefix) {
  for (unsigned bit = 0; bit < prefix; ++bit) {
    unsigned mask = 0x80u >> (bit % 8);
    if ((address.bytes[bit / 8] & mask) != (network[bit / 8] & mask)) return false;
  }
  return true;
}

std::string address_text(const Address& address) {  // %{c}: the usual forms
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(address.v6 ? AF_INET6 : AF_INET, address.bytes.data(), buffer, sizeof buffer);
  return buffer;
}

std::string address_dotted(const Address& address) {  // %{i}: §7.3, nibbles for IPv6
  if (!address.v6) return address_text(address);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t byte : address.bytes) {
    if (!out.empty()) out += '.';
    out += kHex[byte >> 4];
    out += '.';
    out += kHex[byte & 15];
  }
  return out;
}

std::string reverse_name(const Address& address) {  // RFC 1035 §3.5, RFC 3596 §2.5
  std::string out;
  if (!address.v6) {
    for (int i = 3; i >= 0; --i)
      out += std::to_string(address.bytes[i]) + ".";
    return out + "in-addr.arpa";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out += kHex[address.bytes[i] & 15];
    out += '.';
    out += kHex[address.bytes[i] >> 4];
    out += '.';
  }
  return out + "ip6.arpa";
}

// ---- names ----

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string normalized_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return base::ascii_lowercase(name);
}

// Labels of 1..63 octets, at most 253 octets in all (a trailing dot aside).
bool queryable_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (++label > 63) {
      return false;
    }
  }
  return label > 0;
}

// §4.3: a multi-label, well-formed domain (not an address literal) — else the result is none.
bool checkable_domain(std::string_view domain) {
  if (!queryable_name(domain)) return false;
  std::string_view trimmed = domain;
  if (trimmed.back() == '.') trimmed.remove_suffix(1);
  return trimmed.find('.') != std::string_view::npos && trimmed.front() != '[';
}

// §7.3: over 253 octets, remove labels on the left until it fits.
std::string truncate_name(std::string name) {
  while (name.size() > 253) {
    auto dot = name.find('.');
    if (dot == std::string::npos) return name;
    name.erase(0, dot + 1);
  }
  return name;
}

bool same_or_subdomain(std::string_view name, std::string_view domain) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (base::equals_ignoring_case(name, domain)) return true;
  return name.size() > domain.size() && name[name.size() - domain.size() - 1] == '.' &&
         base::equals_ignoring_case(name.substr(name.size() - domain.size()), domain);
}

// §4.6.1 toplabel: alphanumerics and inner hyphens, not all digits.
bool is_toplabel(std::string_view label) {
  if (label.empty() || label.front() == '-' || label.back() == '-') return false;
  bool letter = false;
  for (char c : label) {
    if (!is_alnum(c) && c != '-') return false;
    if (!is_digit(c)) letter = true;
  }
  return letter;
}

// ---- macros ----

bool is_delimiter(char c) {
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

std::string url_escaped(std::string_view value) {  // RFC 3986 §2.3 unreserved stay
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : value) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      auto octet = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[octet >> 4];
      out += kHex[octet & 15];
    }
  }
  return out;
}

// One %{...} body (letter, transformers, delimiters) applied to its value (§7.3).
std::string transformed(std::string_view value, unsigned keep, bool reverse,
                        std::string_view delimiters) {
  if (delimiters.empty()) delimiters = ".";
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delimiters.find(value[i]) != std::string_view::npos) {
      parts.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  if (reverse) std::reverse(parts.begin(), parts.end());
  std::size_t first = keep != 0 && keep < parts.size() ? parts.size() - keep : 0;
  std::string out;
  for (std::size_t i = first; i < parts.size(); ++i) {
    if (i != first) out += '.';
    out += parts[i];
  }
  return out;
}

// §4.6.1 domain-end: a domain-spec ends with a macro-expand or with "." toplabel ["."].
bool has_domain_end(std::string_view spec) {
  if (spec.empty()) return false;
  if (spec.back() == '}') return true;
  if (spec.size() >= 2 && spec[spec.size() - 2] == '%' &&
      (spec.back() == '%' || spec.back() == '_' || spec.back() == '-')) {
    // "%%" ends a spec only when that '%' is not itself the second of an earlier "%%".
    std::size_t percents = 0;
    for (std::size_t i = spec.size() - 1; i-- > 0 && spec[i] == '%';)
      ++percents;
    if (percents % 2 == 1) return true;
  }
  std::string_view trimmed = spec;
  if (trimmed.back() == '.') trimmed.remove_suffix(1);
  auto dot = trimmed.rfind('.');
  if (dot == std::string_view::npos) return false;
  return is_toplabel(trimmed.substr(dot + 1));
}

base::Expected<std::string, std::string> checked_domain_spec(std::string_view spec) {
  SpfMacroContext probe;
  auto expanded = expand_spf_macros(spec, probe, SpfMacroUse::kDomainSpec);
  if (!expanded) return base::unexpected(expanded.error());
  if (!has_domain_end(spec))
    return base::unexpected("domain-spec without a top label: " + std::string(spec.substr(0, 80)));
  return std::string(spec);
}

// dual-cidr-length (§5.6): "/n", "//m", "/n//m"; no leading zeros.
bool parse_prefix(std::string_view text, unsigned max, unsigned& out) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  for (char c : text) {
    if (!is_digit(c)) return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > max) return false;
  out = value;
  return true;
}

bool parse_dual_cidr(std::string_view text, SpfMechanism& mechanism) {
  if (text.empty()) return true;
  auto ip6 = text.find("//");
  std::string_view ip4_part = text.substr(0, ip6);
  if (!ip4_part.empty()) {
    if (ip4_part[0] != '/' || !parse_prefix(ip4_part.substr(1), 32, mechanism.ip4_prefix))
      return false;
  }
  if (ip6 != std::string_view::npos &&
      !parse_prefix(text.substr(ip6 + 2), 128, mechanism.ip6_prefix))
    return false;
  return true;
}

// Where a dual-cidr-length ("/n", "//m", "/n//m") ends the argument, else its size: the
// cidr is matched from the end, since a domain-spec may itself hold '/' (§5.6).
std::size_t cidr_start(std::string_view argument) {
  auto digits_before = [&](std::size_t end) {
    std::size_t start = end;
    while (start > 0 && is_digit(argument[start - 1]))
      --start;
    return start;
  };
  std::size_t end = argument.size();
  std::size_t start = digits_before(end);
  if (start == end || start == 0 || argument[start - 1] != '/') return argument.size();
  std::size_t cidr = start - 1;
  if (cidr > 0 && argument[cidr - 1] == '/') {  // "//m", perhaps after "/n"
    cidr -= 1;
    std::size_t ip4 = digits_before(cidr);
    if (ip4 < cidr && ip4 > 0 && argument[ip4 - 1] == '/') cidr = ip4 - 1;
  }
  return cidr;
}

base::Expected<SpfMechanism, std::string> parse_mechanism(std::string_view term) {
  SpfMechanism mechanism;
  mechanism.text = std::string(term);
  std::string_view rest = term;
  switch (rest.front()) {
    case '+':
      rest.remove_prefix(1);
      break;
    case '-':
      mechanism.qualifier = SpfQualifier::kFail;
      rest.remove_prefix(1);
      break;
    case '~':
      mechanism.qualifier = SpfQualifier::kSoftFail;
      rest.remove_prefix(1);
      break;
    case '?':
      mechanism.qualifier = SpfQualifier::kNeutral;
      rest.remove_prefix(1);
      break;
    default:
      break;
  }
  auto name_end = rest.find_first_of(":/");
  std::string name = base::ascii_lowercase(rest.substr(0, name_end));
  std::string_view argument =
      name_end == std::string_view::npos ? std::string_view{} : rest.substr(name_end);
  auto bad = [&](std::string_view why) {
    return base::unexpected(std::string(why) + ": " + std::string(term.substr(0, 80)));
  };
  bool has_colon = !argument.empty() && argument[0] == ':';
  std::string_view value = has_colon ? argument.substr(1) : std::string_view{};

  if (name == "all") {
    mechanism.kind = SpfMechanismKind::kAll;
    if (!argument.empty()) return bad("all takes no argument");
  } else if (name == "include" || name == "exists") {
    mechanism.kind = name == "include" ? SpfMechanismKind::kInclude : SpfMechanismKind::kExists;
    if (!has_colon || value.empty()) return bad("a domain is required");
    auto spec = checked_domain_spec(value);
    if (!spec) return bad(spec.error());
    mechanism.domain_spec = *spec;
  } else if (name == "a" || name == "mx" || name == "ptr") {
    mechanism.kind = name == "a"    ? SpfMechanismKind::kA
                     : name == "mx" ? SpfMechanismKind::kMx
                                    : SpfMechanismKind::kPtr;
    std::string_view spec_text = value;
    std::string_view cidr;
    if (has_colon) {
      auto slash = cidr_start(value);
      spec_text = value.substr(0, slash);
      cidr = value.substr(slash);
      if (spec_text.empty()) return bad("an empty domain");
      auto spec = checked_domain_spec(spec_text);
      if (!spec) return bad(spec.error());
      mechanism.domain_spec = *spec;
    } else {
      cidr = argument;
    }
    if (mechanism.kind == SpfMechanismKind::kPtr && !cidr.empty()) return bad("ptr takes no cidr");
    if (!parse_dual_cidr(cidr, mechanism)) return bad("a bad cidr length");
  } else if (name == "ip4" || name == "ip6") {
    bool v6 = name == "ip6";
    mechanism.kind = v6 ? SpfMechanismKind::kIp6 : SpfMechanismKind::kIp4;
    if (!has_colon) return bad("an address is required");
    auto slash = value.find('/');
    std::string network(value.substr(0, slash));
    if (network.size() > 64) return bad("a bad address");
    if (inet_pton(v6 ? AF_INET6 : AF_INET, network.c_str(), mechanism.network.data()) != 1)
      return bad("a bad address");
    if (slash != std::string_view::npos &&
        !parse_prefix(value.substr(slash + 1), v6 ? 128 : 32,
                      v6 ? mechanism.ip6_prefix : mechanism.ip4_prefix))
      return bad("a bad cidr length");
  } else {
    return bad("an unknown mechanism");
  }
  return mechanism;
}

}  // namespace

bool is_spf_record(std::string_view text) {
  return base::starts_with_ignoring_case(text, "v=spf1") && (text.size() == 6 || text[6] == ' ');
}

base::Expected<std::string, std::string> expand_spf_macros(std::string_view text,
                                                           const SpfMacroContext& context,
                                                           SpfMacroUse use) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '%') {
      auto octet = static_cast<unsigned char>(c);
      bool literal = use == SpfMacroUse::kExplanation ? (octet >= 0x20 && octet <= 0x7e)
                                                      : (octet >= 0x21 && octet <= 0x7e);
      if (!literal) return base::unexpected(std::string("a character outside the macro grammar"));
      out += c;
    } else {
      if (++i == text.size()) return base::unexpected(std::string("a lone % at the end"));
      char next = text[i];
      if (next == '%') {
        out += '%';
      } else if (next == '_') {
        out += ' ';
      } else if (next == '-') {
        out += "%20";
      } else if (next == '{') {
        auto close = text.find('}', i);
        if (close == std::string_view::npos) return base::unexpected(std::string("an unclosed %{"));
        std::string_view body = text.substr(i + 1, close - i - 1);
        i = close;
        if (body.empty()) return base::unexpected(std::string("an empty %{}"));
        char letter = body[0];
        bool escape = letter >= 'A' && letter <= 'Z';
        std::string value;
        switch (base::ascii_lower(letter)) {
          case 's':
            value = context.sender;
            break;
          case 'l':
            value = context.local_part;
            break;
          case 'o':
            value = context.sender_domain;
            break;
          case 'd':
            value = context.domain;
            break;
          case 'i':
          case 'c':
          case 'v': {
            auto address = parse_address(context.client_ip);
            char lower = base::ascii_lower(letter);
            if (lower == 'v')
              value = address && address->v6 ? "ip6" : "in-addr";
            else if (address)
              value = lower == 'i' ? address_dotted(*address) : address_text(*address);
            break;
          }
          case 'p':
            value = context.validated_name;
            break;
          case 'h':
            value = context.helo;
            break;
          case 'r':
          case 't':
            if (use != SpfMacroUse::kExplanation)
              return base::unexpected(std::string("%{") + letter + "} outside exp");
            value = base::ascii_lower(letter) == 'r'
                        ? (context.receiver.empty() ? "unknown" : context.receiver)
                        : std::to_string(context.now);
            break;
          default:
            return base::unexpected(std::string("an unknown macro letter"));
        }
        if (base::ascii_lower(letter) == 'c' && use != SpfMacroUse::kExplanation)
          return base::unexpected(std::string("%{c} outside exp"));
        std::size_t at = 1;
        unsigned keep = 0;
        bool digits = false;
        while (at < body.size() && is_digit(body[at])) {
          digits = true;
          keep = std::min(keep * 10 + static_cast<unsigned>(body[at] - '0'), 1000u);
          ++at;
        }
        if (digits && keep == 0) return base::unexpected(std::string("a zero transformer"));
        bool reverse = false;
        if (at < body.size() && (body[at] == 'r' || body[at] == 'R')) {
          reverse = true;
          ++at;
        }
        std::string_view delimiters = body.substr(at);
        for (char d : delimiters)
          if (!is_delimiter(d)) return base::unexpected(std::string("a bad macro delimiter"));
        value = transformed(value, keep, reverse, delimiters);
        out += escape ? url_escaped(value) : value;
      } else {
        return base::unexpected(std::string("a % not followed by %, _, - or {"));
      }
    }
    if (out.size() > kMaxExpansionOctets)
      return base::unexpected(std::string("a macro expansion too long"));
  }
  return out;
}

base::Expected<SpfRecord, std::string> parse_spf_record(std::string_view text) {
  if (text.size() > kMaxRecordOctets) return base::unexpected(std::string("record too long"));
  if (!is_spf_record(text)) return base::unexpected(std::string("not an SPF version 1 record"));
  for (char c : text) {
    auto octet = static_cast<unsigned char>(c);
    if (octet < 0x20 || octet > 0x7e)
      return base::unexpected(std::string("a character outside printable ASCII"));
  }
  SpfRecord record;
  std::string_view rest = text.substr(6);
  while (!rest.empty()) {
    auto space = rest.find(' ');
    std::string_view term = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    if (term.empty()) continue;
    // A modifier is name "=" macro-string, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
    std::size_t name_end = 0;
    if (is_alpha(term[0])) {
      name_end = 1;
      while (name_end < term.size() && (is_alnum(term[name_end]) || term[name_end] == '-' ||
                                        term[name_end] == '_' || term[name_end] == '.'))
        ++name_end;
    }
    if (name_end > 0 && name_end < term.size() && term[name_end] == '=') {
      std::string name = base::ascii_lowercase(term.substr(0, name_end));
      std::string_view value = term.substr(name_end + 1);
      if (name == "redirect" || name == "exp") {
        auto& slot = name == "redirect" ? record.redirect : record.explanation;
        if (slot) return base::unexpected(name + "= twice");
        auto spec = checked_domain_spec(value);
        if (!spec) return base::unexpected(name + "=: " + spec.error());
        slot = *spec;
      } else {
        SpfMacroContext probe;  // unknown modifiers are ignored, but must be well-formed
        auto expanded = expand_spf_macros(value, probe, SpfMacroUse::kDomainSpec);
        if (!expanded) return base::unexpected(name + "=: " + expanded.error());
      }
      continue;
    }
    auto mechanism = parse_mechanism(term);
    if (!mechanism) return base::unexpected(mechanism.error());
    record.mechanisms.push_back(std::move(*mechanism));
  }
  return record;
}

namespace {

// check_host() over the answers known so far. A run stops at the first answer it lacks
// (needed_) and unwinds with kSuspended.
enum class Match { kMatch, kNoMatch, kSuspended, kTempError, kPermError };

struct HostResult {
  bool suspended = false;
  SpfResult result = SpfResult::kNone;
  std::string mechanism;
  std::string explanation;
  std::string problem;
};

class Evaluation {
 public:
  Evaluation(const SpfRequest& request, const SpfAnswers& answers)
      : request_(request), answers_(answers) {}

  SpfStep run() {
    SpfOutcome outcome;
    std::string sender = request_.sender;
    if (sender.empty()) {  // §2.4: <> → the HELO identity, postmaster@helo
      outcome.identity = "helo";
      sender = "postmaster@" + request_.helo;
    } else {
      outcome.identity = "mailfrom";
    }
    auto at = sender.rfind('@');
    std::string local = at == std::string::npos ? std::string{} : sender.substr(0, at);
    std::string domain = at == std::string::npos ? sender : sender.substr(at + 1);
    if (local.empty()) local = "postmaster";  // §4.3
    context_.sender = local + "@" + domain;
    context_.local_part = local;
    context_.sender_domain = domain;
    context_.client_ip = request_.client_ip;
    context_.helo = request_.helo;
    context_.receiver = request_.receiver;
    context_.now = request_.now;
    outcome.domain = domain;
    auto address = parse_address(request_.client_ip);
    HostResult host;
    if (!address) {
      host.result = SpfResult::kPermError;
      host.problem = "the client address is not an IP literal";
    } else if (!checkable_domain(domain)) {
      host.result = SpfResult::kNone;  // §4.3
      host.problem = "not a well-formed multi-label domain";
    } else {
      address_ = *address;
      host = check_host(domain, true);
    }
    SpfStep step;
    if (host.suspended) {
      step.next = *needed_;
      return step;
    }
    outcome.result = host.result;
    outcome.mechanism = host.mechanism;
    outcome.explanation = host.explanation;
    outcome.problem = host.problem;
    outcome.dns_lookups = dns_terms_;
    outcome.void_lookups = void_lookups_;
    step.outcome = std::move(outcome);
    return step;
  }

 private:
  // The answer, or nullptr when it is not known yet (needed_ then names it).
  const dns::Answer* answer(std::string_view name, dns::Type type) {
    auto key = std::make_pair(normalized_name(name), type);
    auto found = answers_.find(key);
    if (found == answers_.end() || !found->second) {
      needed_ = SpfQuery{key.first, type};
      return nullptr;
    }
    return found->second.get();
  }

  static bool failed(const dns::Answer& answer) {
    return answer.status == dns::Status::kTemporary || answer.status == dns::Status::kBogus;
  }

  HostResult suspended() {
    HostResult result;
    result.suspended = true;
    return result;
  }
  static HostResult ended(SpfResult result, std::string problem) {
    HostResult out;
    out.result = result;
    out.problem = std::move(problem);
    return out;
  }

  // Counts one term that queries DNS (§4.6.4).
  bool count_term() { return ++dns_terms_ <= kMaxDnsTerms; }
  bool count_void() { return ++void_lookups_ <= kMaxVoidLookups; }

  // Expands a domain-spec into a name to query ("" → the current domain). `usable` is false
  // when the name has an empty or over-long label. Returns kSuspended when %{p} needs DNS.
  Match target_name(std::string_view spec, std::string_view domain, std::string& out, bool& usable,
                    std::string& problem) {
    if (spec.empty()) {
      out = std::string(domain);
      usable = queryable_name(out);
      return Match::kMatch;
    }
    SpfMacroContext context = context_;
    context.domain = std::string(domain);
    if (spec.find("%{p") != std::string_view::npos || spec.find("%{P") != std::string_view::npos) {
      std::string validated;
      Match found = validated_name(domain, validated);
      if (found == Match::kSuspended) return found;
      context.validated_name = validated.empty() ? "unknown" : validated;
    }
    auto expanded = expand_spf_macros(spec, context, SpfMacroUse::kDomainSpec);
    if (!expanded) {
      problem = expanded.error();
      return Match::kPermError;
    }
    out = truncate_name(std::move(*expanded));
    usable = queryable_name(out);
    return Match::kMatch;
  }

  // The PTR names of the client whose address records lead back to it (§5.5), first 10.
  Match validated_names(std::vector<std::string>& out, bool& void_answer) {
    const dns::Answer* ptr = answer(reverse_name(address_), dns::Type::kPtr);
    if (!ptr) return Match::kSuspended;
    void_answer = ptr->status == dns::Status::kNxDomain || ptr->status == dns::Status::kNoData;
    if (ptr->status != dns::Status::kOk) return Match::kNoMatch;  // errors: no match (§5.5)
    dns::Type type = address_.v6 ? dns::Type::kAaaa : dns::Type::kA;
    std::size_t count = std::min<std::size_t>(ptr->names.size(), kMaxNamesPerLookup);
    for (std::size_t i = 0; i < count; ++i) {
      const std::string& name = ptr->names[i];
      if (!queryable_name(name)) continue;
      const dns::Answer* addresses = answer(name, type);
      if (!addresses) return Match::kSuspended;
      if (addresses->status != dns::Status::kOk) continue;
      for (const auto& text : addresses->addresses) {
        auto address = parse_address(text);
        if (address && address->v6 == address_.v6 && address->bytes == address_.bytes) {
          out.push_back(normalized_name(name));
          break;
        }
      }
    }
    return Match::kMatch;
  }

  // %{p} (§7.3): the validated name equal to the domain, else a subdomain of it, else any.
  Match validated_name(std::string_view domain, std::string& out) {
    std::vector<std::string> names;
    bool void_answer = false;
    Match found = validated_names(names, void_answer);
    if (found == Match::kSuspended) return found;
    for (const auto& name : names)
      if (base::equals_ignoring_case(name, domain)) return out = name, Match::kMatch;
    for (const auto& name : names)
      if (same_or_subdomain(name, domain)) return out = name, Match::kMatch;
    if (!names.empty()) out = names.front();
    return Match::kMatch;
  }

  bool address_matches(const dns::Answer& addresses, const SpfMechanism& mechanism) {
    for (const auto& text : addresses.addresses) {
      auto address = parse_address(text);
      if (!address || address->v6 != address_.v6) continue;
      if (in_network(address_, address->bytes,
                     address_.v6 ? mechanism.ip6_prefix : mechanism.ip4_prefix))
        return true;
    }
    return false;
  }

  Match evaluate(const SpfMechanism& mechanism, std::string_view domain, std::string& problem) {
    dns::Type address_type = address_.v6 ? dns::Type::kAaaa : dns::Type::kA;
    switch (mechanism.kind) {
      case SpfMechanismKind::kAll:
        return Match::kMatch;
      case SpfMechanismKind::kIp4:
        return !address_.v6 && in_network(address_, mechanism.network, mechanism.ip4_prefix)
                   ? Match::kMatch
                   : Match::kNoMatch;
      case SpfMechanismKind::kIp6:
        return address_.v6 && in_network(address_, mechanism.network, mechanism.ip6_prefix)
                   ? Match::kMatch
                   : Match::kNoMatch;
      default:
        break;
    }
    if (!count_term()) {
      problem = "more than 10 DNS-querying terms";
      return Match::kPermError;
    }
    std::string target;
    bool usable = true;
    Match expanded = target_name(mechanism.domain_spec, domain, target, usable, problem);
    if (expanded != Match::kMatch) return expanded;

    if (mechanism.kind == SpfMechanismKind::kInclude) {
      if (!usable) {
        problem = "include of a malformed name";
        return Match::kPermError;
      }
      HostResult included = check_host(target, false);
      if (included.suspended) return Match::kSuspended;
      switch (included.result) {  // §5.2 table
        case SpfResult::kPass:
          return Match::kMatch;
        case SpfResult::kFail:
        case SpfResult::kSoftFail:
        case SpfResult::kNeutral:
          return Match::kNoMatch;
        case SpfResult::kTempError:
          problem = included.problem;
          return Match::kTempError;
        case SpfResult::kPermError:
          problem = included.problem;
          return Match::kPermError;
        case SpfResult::kNone:
          problem = "include of " + target + ", which has no SPF record";
          return Match::kPermError;
      }
      return Match::kPermError;
    }
    if (mechanism.kind == SpfMechanismKind::kPtr) {
      std::vector<std::string> names;
      bool void_answer = false;
      Match found = validated_names(names, void_answer);
      if (found == Match::kSuspended) return found;
      if (void_answer && !count_void()) {
        problem = "more than 2 void lookups";
        return Match::kPermError;
      }
      for (const auto& name : names)
        if (same_or_subdomain(name, target)) return Match::kMatch;
      return Match::kNoMatch;
    }
    if (!usable) return Match::kNoMatch;  // never asked: a name with a bad label has no data

    dns::Type type = mechanism.kind == SpfMechanismKind::kExists ? dns::Type::kA
                     : mechanism.kind == SpfMechanismKind::kMx   ? dns::Type::kMx
                                                                 : address_type;
    const dns::Answer* found = answer(target, type);
    if (!found) return Match::kSuspended;
    if (failed(*found)) {
      problem = "DNS " + std::string(dns::to_string(type)) + " " + target + ": " +
                std::string(dns::to_string(found->status));
      return Match::kTempError;
    }
    if (found->status != dns::Status::kOk ||
        (mechanism.kind == SpfMechanismKind::kMx ? found->mx.empty() : found->addresses.empty())) {
      if (!count_void()) {
        problem = "more than 2 void lookups";
        return Match::kPermError;
      }
      return Match::kNoMatch;
    }
    if (mechanism.kind == SpfMechanismKind::kExists) return Match::kMatch;
    if (mechanism.kind == SpfMechanismKind::kA)
      return address_matches(*found, mechanism) ? Match::kMatch : Match::kNoMatch;
    // mx (§5.4): at most 10 MX names, then their addresses.
    if (found->mx.size() > kMaxNamesPerLookup) {
      problem = "more than 10 MX records for " + target;
      return Match::kPermError;
    }
    for (const auto& mx : found->mx) {
      if (mx.exchange.empty() || !queryable_name(mx.exchange)) continue;
      const dns::Answer* addresses = answer(mx.exchange, address_type);
      if (!addresses) return Match::kSuspended;
      if (failed(*addresses)) {
        problem = "DNS " + std::string(dns::to_string(address_type)) + " " + mx.exchange + ": " +
                  std::string(dns::to_string(addresses->status));
        return Match::kTempError;
      }
      if (address_matches(*addresses, mechanism)) return Match::kMatch;
    }
    return Match::kNoMatch;
  }

  // §6.2: the explanation of a fail, "" whenever anything about it goes wrong. Returns
  // false when it needs an answer not known yet.
  bool explanation(const SpfRecord& record, std::string_view domain, std::string& out) {
    if (!record.explanation) return true;
    std::string target, problem;
    bool usable = true;
    Match expanded = target_name(*record.explanation, domain, target, usable, problem);
    if (expanded == Match::kSuspended) return false;
    if (expanded != Match::kMatch || !usable) return true;
    const dns::Answer* found = answer(target, dns::Type::kTxt);
    if (!found) return false;
    if (found->status != dns::Status::kOk || found->texts.size() != 1) return true;
    SpfMacroContext context = context_;
    context.domain = std::string(domain);
    std::string_view text = found->texts.front();
    if (text.find("%{p") != std::string_view::npos || text.find("%{P") != std::string_view::npos) {
      std::string validated;
      if (validated_name(domain, validated) == Match::kSuspended) return false;
      context.validated_name = validated.empty() ? "unknown" : validated;
    }
    auto expanded_text = expand_spf_macros(text, context, SpfMacroUse::kExplanation);
    if (!expanded_text) return true;
    for (char c : *expanded_text) {
      if (out.size() >= kMaxExplanationOctets) break;
      auto octet = static_cast<unsigned char>(c);
      if (octet >= 0x20 && octet <= 0x7e) out += c;
    }
    return true;
  }

  HostResult check_host(const std::string& domain, bool top) {
    if (!checkable_domain(domain))
      return ended(SpfResult::kNone, "not a well-formed multi-label domain: " + domain);
    const dns::Answer* txt = answer(domain, dns::Type::kTxt);
    if (!txt) return suspended();
    if (failed(*txt))
      return ended(SpfResult::kTempError,
                   "DNS TXT " + domain + ": " + std::string(dns::to_string(txt->status)));
    const std::string* text = nullptr;
    std::size_t records = 0;
    if (txt->status == dns::Status::kOk) {
      for (const auto& candidate : txt->texts) {
        if (is_spf_record(candidate)) {
          text = &candidate;
          ++records;
        }
      }
    }
    if (records == 0) return ended(SpfResult::kNone, "no SPF record at " + domain);
    if (records > 1) return ended(SpfResult::kPermError, "several SPF records at " + domain);
    auto record = parse_spf_record(*text);
    if (!record) return ended(SpfResult::kPermError, domain + ": " + record.error());

    for (const auto& mechanism : record->mechanisms) {
      std::string problem;
      Match match = evaluate(mechanism, domain, problem);
      switch (match) {
        case Match::kSuspended:
          return suspended();
        case Match::kTempError:
          return ended(SpfResult::kTempError, problem);
        case Match::kPermError:
          return ended(SpfResult::kPermError, problem);
        case Match::kNoMatch:
          continue;
        case Match::kMatch:
          break;
      }
      HostResult result;
      result.mechanism = mechanism.text;
      switch (mechanism.qualifier) {
        case SpfQualifier::kPass:
          result.result = SpfResult::kPass;
          break;
        case SpfQualifier::kFail:
          result.result = SpfResult::kFail;
          if (top && !explanation(*record, domain, result.explanation)) return suspended();
          break;
        case SpfQualifier::kSoftFail:
          result.result = SpfResult::kSoftFail;
          break;
        case SpfQualifier::kNeutral:
          result.result = SpfResult::kNeutral;
          break;
      }
      return result;
    }
    if (record->redirect) {  // §6.1
      if (!count_term()) return ended(SpfResult::kPermError, "more than 10 DNS-querying terms");
      std::string target, problem;
      bool usable = true;
      Match expanded = target_name(*record->redirect, domain, target, usable, problem);
      if (expanded == Match::kSuspended) return suspended();
      if (expanded != Match::kMatch) return ended(SpfResult::kPermError, problem);
      HostResult redirected =
          usable ? check_host(target, top) : ended(SpfResult::kNone, "a malformed redirect name");
      if (redirected.suspended) return redirected;
      if (redirected.result == SpfResult::kNone)
        return ended(SpfResult::kPermError, "redirect to " + target + ", which has no SPF record");
      return redirected;
    }
    HostResult result;
    result.result = SpfResult::kNeutral;  // §4.7
    result.mechanism = "default";
    return result;
  }

  const SpfRequest& request_;
  const SpfAnswers& answers_;
  SpfMacroContext context_;
  Address address_;
  unsigned dns_terms_ = 0;
  unsigned void_lookups_ = 0;
  std::optional<SpfQuery> needed_;
};

// The asynchronous driver: one lookup at a time; answers that arrive at once (cached) are
// handled by the loop in run(), not by recursion, so the stack stays flat.
class SpfDriver : public std::enable_shared_from_this<SpfDriver> {
 public:
  SpfDriver(dns::Resolver& resolver, SpfRequest request, std::function<void(SpfOutcome)> done)
      : resolver_(resolver), request_(std::move(request)), done_(std::move(done)) {}

  void run() {
    for (;;) {
      SpfStep step = evaluate_spf(request_, answers_);
      const bool late = !step.outcome && std::chrono::steady_clock::now() > request_.deadline;
      if (step.outcome || ++lookups_ > kMaxLookups || late) {
        if (!step.outcome) {
          step.outcome = SpfOutcome{};
          step.outcome->result = SpfResult::kTempError;
          step.outcome->identity = request_.sender.empty() ? "helo" : "mailfrom";
          step.outcome->problem =
              late ? "DNS too slow: the time for SPF ran out" : "too many DNS lookups";
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
      auto key = std::make_pair(step.next.name, step.next.type);
      auto self = shared_from_this();
      resolver_.lookup(step.next.name, step.next.type, [self, key](dns::AnswerPtr answer) {
        bool resume = false;
        {
          std::lock_guard lock(self->mutex_);
          self->answers_[key] = answer ? std::move(answer) : failed_answer();
          self->answered_ = true;
          resume = !self->in_lookup_;
        }
        if (resume) self->run();  // answered later, on the resolver's thread
      });
      std::lock_guard lock(mutex_);
      in_lookup_ = false;
      if (!answered_) return;  // the callback resumes when the answer comes
    }
  }

 private:
  static dns::AnswerPtr failed_answer() {
    auto answer = std::make_shared<dns::Answer>();
    answer->detail = "no answer";
    return answer;
  }

  // 10 terms with 10 MX names each, the PTR names, exp and %{p}: well under this.
  static constexpr unsigned kMaxLookups = 200;

  dns::Resolver& resolver_;
  SpfRequest request_;
  std::function<void(SpfOutcome)> done_;
  SpfAnswers answers_;
  unsigned lookups_ = 0;
  std::mutex mutex_;
  bool in_lookup_ = false;  // inside resolver_.lookup(): an answer now is handled by run()
  bool answered_ = false;
};

}  // namespace

SpfStep evaluate_spf(const SpfRequest& request, const SpfAnswers& answers) {
  return Evaluation(request, answers).run();
}

void check_spf(dns::Resolver& resolver, SpfRequest request, std::function<void(SpfOutcome)> done) {
  auto driver = std::make_shared<SpfDriver>(resolver, std::move(request), std::move(done));
  driver->run();
}

}  // namespace mailauth
