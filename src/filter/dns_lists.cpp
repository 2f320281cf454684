// dns_lists.cpp — see dns_lists.h.
#include "filter/dns_lists.h"

#include <fmt/format.h>

#include <algorithm>

#include "dns/resolver.h"

namespace filter {

std::string query_name(std::string_view client_address, std::string_view zone) {
  auto ip = base::parse_ip(client_address);
  if (!ip) return {};
  // RFC 5782 §2.1: the octets in reverse order (an IPv4-mapped client as its IPv4 address);
  // §2.4: the nibbles in reverse order, as in ip6.arpa (RFC 3596 §2.5).
  std::string name = dns::reverse_labels(base::format_ip(*ip));
  if (name.empty()) return {};
  std::string_view bare = zone;
  while (!bare.empty() && bare.back() == '.')
    bare.remove_suffix(1);
  return name.append(bare);
}

bool is_provider_error_code(const base::IpBytes& address) {
  return base::is_ipv4_mapped(address) && address[12] == 127 && address[13] == 255 &&
         address[14] == 255;
}

ListResult evaluate_answer(const DnsList& list, const std::vector<std::string>& addresses) {
  ListResult result;
  std::optional<int> best;
  for (const std::string& text : addresses) {
    auto address = base::parse_ip(text);
    // RFC 5782 §2.3: answers are in 127.0.0.0/8; anything else is not a list's answer.
    const bool loopback_range = address && base::is_ipv4_mapped(*address) && (*address)[12] == 127;
    if (!loopback_range || is_provider_error_code(*address)) {
      if (result.kind != ListResult::Kind::kListed) {
        result.kind = ListResult::Kind::kError;
        result.answer = text;
      }
      continue;
    }
    std::optional<int> weight;
    if (list.answers.empty()) {
      weight = list.weight;
    } else {
      for (const ListedAnswer& answer : list.answers) {
        if (!answer.network.contains(*address)) continue;
        const int w = answer.weight.value_or(list.weight);
        if (!weight || (list.weight >= 0 ? w > *weight : w < *weight)) weight = w;
      }
    }
    if (!weight) continue;
    if (!best || (list.weight >= 0 ? *weight > *best : *weight < *best)) {
      best = weight;
      result.kind = ListResult::Kind::kListed;
      result.answer = text;
    }
  }
  if (best) result.weight = *best;
  return result;
}

int score_of(const std::vector<ListResult>& results) {
  int score = 0;
  for (const ListResult& result : results) {
    if (result.kind == ListResult::Kind::kListed) score += result.weight;
  }
  return score;
}

std::string reply_safe_text(std::string_view text, std::size_t max_length) {
  std::string out;
  out.reserve(std::min(text.size(), max_length + 3));
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    char printable = (u >= 0x20 && u <= 0x7e) ? c : '?';
    if (u == '\t') printable = ' ';
    if (printable == ' ' && (out.empty() || out.back() == ' ')) continue;
    if (out.size() >= max_length) {
      while (!out.empty() && out.back() == ' ')
        out.pop_back();
      out.append("...");
      return out;
    }
    out.push_back(printable);
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return out;
}

std::string refusal_text(std::string_view client, std::string_view zone, std::string_view txt,
                         std::size_t room) {
  constexpr std::size_t kMaxReason = 200;
  constexpr std::string_view kSeparator = "; ";
  constexpr std::size_t kEllipsis = 3;  // reply_safe_text's "..." past max_length
  std::string text = fmt::format("Service unavailable; client [{}] blocked using {}", client, zone);
  if (text.size() > room) text.resize(room);
  if (txt.empty() || text.size() + kSeparator.size() + kEllipsis + 1 > room) return text;
  const std::string reason = reply_safe_text(
      txt, std::min(kMaxReason, room - text.size() - kSeparator.size() - kEllipsis));
  if (!reason.empty()) text.append(kSeparator).append(reason);
  return text;
}

}  // namespace filter
