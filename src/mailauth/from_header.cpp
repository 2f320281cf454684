// from_header.cpp — the From: field's mailbox domains; the grammar it accepts is in
// from_header.h.
#include "mailauth/from_header.h"

#include <optional>

#include "base/ascii.h"

namespace mailauth {
namespace {

enum class TokenKind { kAtom, kQuoted, kLiteral, kSpecial };
struct Token {
  TokenKind kind;
  std::string_view text;  // kSpecial: the one character
};

bool is_special(char c) {
  return c == '<' || c == '>' || c == '@' || c == ',' || c == ':' || c == ';' || c == '.';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_atom_octet(char c) {  // RFC 5322 §3.2.3 atext, plus UTF-8 (RFC 6532 §3.2)
  auto octet = static_cast<unsigned char>(c);
  if (octet >= 0x80) return true;
  if (octet <= 0x20 || octet == 0x7f) return false;
  return !is_special(c) && c != '(' && c != ')' && c != '"' && c != '[' && c != ']' && c != '\\';
}

// RFC 5322 §3.2: atoms, quoted strings, domain literals and specials; comments dropped.
bool tokenize(std::string_view value, std::vector<Token>& out, std::string& problem) {
  std::size_t i = 0;
  while (i < value.size()) {
    char c = value[i];
    if (is_space(c)) {
      ++i;
    } else if (c == '(') {
      int depth = 0;
      for (; i < value.size(); ++i) {
        if (value[i] == '\\') {
          ++i;
        } else if (value[i] == '(') {
          ++depth;
        } else if (value[i] == ')' && --depth == 0) {
          break;
        }
      }
      if (i >= value.size()) return problem = "an unclosed comment", false;
      ++i;
    } else if (c == '"' || c == '[') {
      char close = c == '"' ? '"' : ']';
      std::size_t start = i++;
      for (; i < value.size() && value[i] != close; ++i)
        if (value[i] == '\\') ++i;
      if (i >= value.size()) return problem = "an unclosed quoted string or literal", false;
      ++i;
      out.push_back(
          {c == '"' ? TokenKind::kQuoted : TokenKind::kLiteral, value.substr(start, i - start)});
    } else if (is_special(c)) {
      out.push_back({TokenKind::kSpecial, value.substr(i, 1)});
      ++i;
    } else if (is_atom_octet(c)) {
      std::size_t start = i;
      while (i < value.size() && is_atom_octet(value[i]))
        ++i;
      out.push_back({TokenKind::kAtom, value.substr(start, i - start)});
    } else {
      return problem = "a character outside the address grammar", false;
    }
  }
  return true;
}

bool is(const Token& token, char special) {
  return token.kind == TokenKind::kSpecial && token.text[0] == special;
}

// addr-spec = local-part "@" domain (obsolete: CFWS between the dots, already dropped).
std::optional<std::string> domain_of(const std::vector<Token>& tokens, std::size_t begin,
                                     std::size_t end, std::string& problem) {
  std::size_t at = end;
  for (std::size_t i = begin; i < end; ++i)
    if (is(tokens[i], '@')) at = i;
  if (at == end || at == begin)
    return problem = "a mailbox without local-part@domain", std::nullopt;
  for (std::size_t i = begin; i < at; ++i)
    if (tokens[i].kind != TokenKind::kAtom && tokens[i].kind != TokenKind::kQuoted &&
        !is(tokens[i], '.'))
      return problem = "a malformed local part", std::nullopt;
  if (at + 1 < end && tokens[at + 1].kind == TokenKind::kLiteral)
    return problem = "a domain literal, which has no DMARC policy", std::nullopt;
  std::string domain;
  bool expect_label = true;
  for (std::size_t i = at + 1; i < end; ++i) {
    if (expect_label && tokens[i].kind == TokenKind::kAtom) {
      domain += base::ascii_lowercase(tokens[i].text);
      expect_label = false;
    } else if (!expect_label && is(tokens[i], '.')) {
      domain += '.';
      expect_label = true;
    } else {
      return problem = "a malformed domain", std::nullopt;
    }
  }
  if (domain.empty() || expect_label) return problem = "a malformed domain", std::nullopt;
  return domain;
}

// One element of the list: [display-name] "<" [obs-route] addr-spec ">" / addr-spec.
bool mailbox(const std::vector<Token>& tokens, std::size_t begin, std::size_t end,
             std::vector<std::string>& domains, std::string& problem) {
  if (begin == end) return true;  // obs-mbox-list: empty elements
  std::size_t open = end;
  for (std::size_t i = begin; i < end; ++i) {
    if (is(tokens[i], '<')) {
      open = i;
      break;
    }
  }
  std::size_t spec_begin = begin, spec_end = end;
  if (open != end) {
    for (std::size_t i = begin; i < open; ++i)  // display-name = phrase (obs: with dots)
      if (tokens[i].kind == TokenKind::kSpecial && !is(tokens[i], '.'))
        return problem = "a malformed display name", false;
    if (!is(tokens[end - 1], '>')) return problem = "text after an angle address", false;
    spec_begin = open + 1;
    spec_end = end - 1;
    for (std::size_t i = spec_begin; i < spec_end; ++i) {
      if (is(tokens[i], ':')) spec_begin = i + 1;  // obs-route "@a,@b:"
      if (is(tokens[i], '<') || is(tokens[i], '>')) return problem = "nested angles", false;
    }
  }
  auto domain = domain_of(tokens, spec_begin, spec_end, problem);
  if (!domain) return false;
  domains.push_back(std::move(*domain));
  return true;
}

bool parse_value(std::string_view value, std::vector<std::string>& domains, std::string& problem) {
  std::vector<Token> tokens;
  if (!tokenize(value, tokens, problem)) return false;
  std::size_t count_before = domains.size();
  bool in_angle = false, in_group = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= tokens.size(); ++i) {
    if (i < tokens.size()) {
      const Token& token = tokens[i];
      if (is(token, '<')) {
        if (in_angle) return problem = "nested angles", false;
        in_angle = true;
        continue;
      }
      if (is(token, '>')) {
        if (!in_angle) return problem = "a '>' without '<'", false;
        in_angle = false;
        continue;
      }
      if (in_angle) continue;
      if (is(token, ':')) {  // a group: its display name is dropped
        if (in_group) return problem = "a group inside a group", false;
        in_group = true;
        start = i + 1;
        continue;
      }
      if (!is(token, ',') && !is(token, ';')) continue;
      if (is(token, ';')) {
        if (!in_group) return problem = "a ';' outside a group", false;
        in_group = false;
      }
    } else if (in_angle) {
      return problem = "an unclosed angle address", false;
    } else if (in_group) {
      return problem = "an unclosed group", false;
    }
    if (!mailbox(tokens, start, i, domains, problem)) return false;
    start = i + 1;
  }
  if (domains.size() == count_before) return problem = "a From field without a mailbox", false;
  return true;
}

}  // namespace

FromDomains from_domains(std::string_view header_section) {
  FromDomains result;
  std::vector<std::string> values;  // the unfolded From values
  bool in_from = false;
  while (!header_section.empty()) {
    auto newline = header_section.find('\n');
    std::string_view line = header_section.substr(0, newline);
    header_section =
        newline == std::string_view::npos ? std::string_view{} : header_section.substr(newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;                            // the end of the header section
    if (line.front() == ' ' || line.front() == '\t') {  // folding (RFC 5322 §2.2.3)
      if (in_from) values.back().append(" ").append(line);
      continue;
    }
    auto colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))  // obs: "From :"
      name.remove_suffix(1);
    in_from = colon != std::string_view::npos && base::equals_ignoring_case(name, "from");
    if (in_from) {
      ++result.from_fields;
      values.emplace_back(line.substr(colon + 1));
    }
  }
  if (values.empty()) {
    result.problem = "no From field";
    return result;
  }
  for (const auto& value : values) {
    if (!parse_value(value, result.domains, result.problem)) {
      result.domains.clear();
      return result;
    }
  }
  return result;
}

}  // namespace mailauth
