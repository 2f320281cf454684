// authentication_results.cpp — see authentication_results.h.
#include "mailauth/authentication_results.h"

#include <algorithm>

#include "base/ascii.h"

namespace mailauth {
namespace {

// RFC 2045 §5.1 token characters (RFC 8601 §2.2 "value" is a token or a quoted-string),
// plus "@", which RFC 8601 §2.2 allows in a pvalue for addresses.
bool token_char(char c, bool allow_at) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  if (c == '@') return allow_at;
  return std::string_view("()<>,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

std::string pvalue(std::string_view text) {
  bool token = !text.empty();
  std::size_t at = 0;
  for (char c : text) {
    if (c == '@') ++at;
    if (!token_char(c, true)) token = false;
  }
  if (token && at <= 1 && text.front() != '@') return std::string(text);
  return results_value(text);
}

// A comment's text: printable ASCII without parentheses or backslash, bounded.
std::string comment(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (out.size() >= 200) break;
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '(' || c == ')' || c == '\\') continue;
    out += c;
  }
  return out;
}

// Skips whitespace, folding and (nested) comments: RFC 5322 §3.2.2 CFWS.
std::size_t skip_cfws(std::string_view text, std::size_t at) {
  int depth = 0;
  while (at < text.size()) {
    const char c = text[at];
    if (depth > 0) {
      if (c == '\\') {
        at += 2;
        continue;
      }
      if (c == '(') ++depth;
      if (c == ')') --depth;
      ++at;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++at;
      continue;
    }
    if (c == '(') {
      depth = 1;
      ++at;
      continue;
    }
    break;
  }
  return at;
}

}  // namespace

std::string results_value(std::string_view text) {
  bool token = !text.empty();
  for (char c : text)
    if (!token_char(c, false)) token = false;
  if (token) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (out.size() >= 512) break;
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string authentication_results(std::string_view authserv_id, const AuthResults& results) {
  std::vector<std::string> parts;
  if (results.spf) {
    const AuthResults::Spf& spf = *results.spf;
    std::string part = "spf=" + std::string(to_string(spf.result));
    if (!spf.problem.empty()) part += " (" + comment(spf.problem) + ")";
    part += spf.helo ? " smtp.helo=" : " smtp.mailfrom=";
    part += pvalue(spf.identity.empty() ? std::string_view("<>") : spf.identity);
    parts.push_back(std::move(part));
  }
  if (results.dkim_checked && results.dkim.empty()) parts.push_back("dkim=none");
  for (const AuthResults::Dkim& dkim : results.dkim) {
    std::string part = "dkim=" + std::string(to_string(dkim.result));
    if (!dkim.problem.empty()) part += " (" + comment(dkim.problem) + ")";
    if (!dkim.domain.empty()) part += " header.d=" + pvalue(dkim.domain);
    if (!dkim.selector.empty()) part += " header.s=" + pvalue(dkim.selector);
    if (!dkim.algorithm.empty()) part += " header.a=" + pvalue(dkim.algorithm);
    if (!dkim.b_prefix.empty()) part += " header.b=" + pvalue(dkim.b_prefix.substr(0, 8));
    parts.push_back(std::move(part));
  }
  if (results.arc) {
    const AuthResults::Arc& arc = *results.arc;
    std::string part = "arc=" + std::string(to_string(arc.result));
    std::string note = arc.problem;
    if (!arc.sealer.empty()) note += (note.empty() ? "" : "; ") + ("sealer " + arc.sealer);
    if (!note.empty()) part += " (" + comment(note) + ")";
    if (arc.result != ArcResult::kNone && !arc.remote_ip.empty())
      part += " smtp.remote-ip=" + pvalue(arc.remote_ip);
    parts.push_back(std::move(part));
  }
  if (results.dmarc) {
    const AuthResults::Dmarc& dmarc = *results.dmarc;
    std::string part = "dmarc=" + std::string(to_string(dmarc.result));
    std::string note;
    if (!dmarc.policy.empty()) note = "p=" + comment(dmarc.policy);
    if (!dmarc.disposition.empty())
      note += (note.empty() ? "" : " ") + ("dis=" + comment(dmarc.disposition));
    if (!dmarc.problem.empty()) note += (note.empty() ? "" : " ") + comment(dmarc.problem);
    if (!note.empty()) part += " (" + note + ")";
    if (!dmarc.from_domain.empty()) part += " header.from=" + pvalue(dmarc.from_domain);
    parts.push_back(std::move(part));
  }
  std::string out = results_value(authserv_id) + ";";
  if (parts.empty()) return out + " none";
  for (std::size_t i = 0; i < parts.size(); ++i) {
    out += "\r\n\t" + parts[i];
    if (i + 1 < parts.size()) out += ';';
  }
  return out;
}

bool claims_authserv_id(std::string_view value, std::string_view authserv_id) {
  std::size_t at = skip_cfws(value, 0);
  std::string id;
  if (at < value.size() && value[at] == '"') {
    ++at;
    while (at < value.size() && value[at] != '"') {
      if (value[at] == '\\' && at + 1 < value.size()) ++at;
      id += value[at++];
    }
  } else {
    while (at < value.size() && token_char(value[at], false))
      id += value[at++];
  }
  return !id.empty() && base::equals_ignoring_case(id, authserv_id);
}

std::vector<unsigned> forged_fields(std::string_view header_section, std::string_view authserv_id) {
  std::vector<unsigned> positions;
  unsigned seen = 0;
  std::size_t at = 0;
  while (at < header_section.size()) {
    std::size_t end = header_section.find("\r\n", at);
    if (end == std::string_view::npos || end == at) break;
    while (end + 2 < header_section.size() &&
           (header_section[end + 2] == ' ' || header_section[end + 2] == '\t')) {
      const std::size_t next = header_section.find("\r\n", end + 2);
      if (next == std::string_view::npos) break;
      end = next;
    }
    const std::string_view field = header_section.substr(at, end - at);
    at = end + 2;
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = field.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
      name.remove_suffix(1);
    if (!base::equals_ignoring_case(name, "Authentication-Results")) continue;
    ++seen;
    if (claims_authserv_id(field.substr(colon + 1), authserv_id)) positions.push_back(seen);
  }
  std::reverse(positions.begin(), positions.end());
  return positions;
}

}  // namespace mailauth
