// ascii.h — ASCII case folding for protocol tokens (domains, verbs, header names, mechanism
// names). Only A-Z change: UTF-8 octets pass through untouched, locale never matters.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace base {

constexpr char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
constexpr char ascii_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

inline void lower_in_place(std::string& text) {
  for (char& c : text)
    c = ascii_lower(c);
}
inline std::string ascii_lowercase(std::string_view text) {
  std::string out(text);
  lower_in_place(out);
  return out;
}
inline std::string ascii_uppercase(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = ascii_upper(c);
  return out;
}
inline bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}
inline bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         equals_ignoring_case(text.substr(0, prefix.size()), prefix);
}

// WSP of RFC 5234: a space or a horizontal tab.
constexpr bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

// The domain of a mailbox address (what follows its last '@'), lowercased; empty without '@'.
inline std::string address_domain(std::string_view address) {
  const std::size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : ascii_lowercase(address.substr(at + 1));
}

}  // namespace base
