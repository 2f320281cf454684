// base64.h — the base64 of RFC 4648 §4, the one codec of the project: SMTP AUTH (RFC 4954
// §4: 334 challenges and client responses), SCRAM attributes and the users file use it;
// base64url (§5) for the keys of ACME's External Account Binding.
// Strict: the standard alphabet only, padding required, no line breaks or white space,
// and the unused bits of the last group must be zero (RFC 4648 §3.5, canonical encoding),
// so that one value has exactly one form. Decoding writes straight into the caller's
// buffer: a SASL response is never copied into a temporary the session cannot wipe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace base {

namespace base64_detail {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& entry : table)
    entry = -1;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i)
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}

constexpr std::array<std::int8_t, 256> kDecode = make_decode_table();

}  // namespace base64_detail

// Appends the encoding of raw to out.
inline void append_base64(std::string& out, std::string_view raw) {
  out.reserve(out.size() + (raw.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i])) << 16 |
                          static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + 1])) << 8 |
                          static_cast<unsigned char>(raw[i + 2]);
    out.push_back(base64_detail::kAlphabet[group >> 18 & 63]);
    out.push_back(base64_detail::kAlphabet[group >> 12 & 63]);
    out.push_back(base64_detail::kAlphabet[group >> 6 & 63]);
    out.push_back(base64_detail::kAlphabet[group & 63]);
  }
  const std::size_t rest = raw.size() - i;
  if (rest == 0) return;
  std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i])) << 16;
  if (rest == 2) group |= static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + 1])) << 8;
  out.push_back(base64_detail::kAlphabet[group >> 18 & 63]);
  out.push_back(base64_detail::kAlphabet[group >> 12 & 63]);
  out.push_back(rest == 2 ? base64_detail::kAlphabet[group >> 6 & 63] : '=');
  out.push_back('=');
}

// The encoding of raw.
inline std::string to_base64(std::string_view raw) {
  std::string out;
  append_base64(out, raw);
  return out;
}

// Appends the decoded octets of text to out; false (out left with a partial result the
// caller must discard) when text is not canonical base64. The empty text decodes to
// nothing and is valid.
inline bool decode_base64(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::size_t padding = 0;
    if (last) {
      if (text[i + 3] == '=') padding = text[i + 2] == '=' ? 2 : 1;
    }
    std::uint32_t group = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      if (j >= 4 - padding) {
        group <<= 6;
        continue;
      }
      std::int8_t value = base64_detail::kDecode[static_cast<unsigned char>(text[i + j])];
      if (value < 0) return false;  // also '=' anywhere but the end
      group = group << 6 | static_cast<std::uint32_t>(value);
    }
    out.push_back(static_cast<char>(group >> 16 & 0xFF));
    if (padding == 2) {
      if ((group & 0xFFFF) != 0) return false;  // non-zero unused bits (RFC 4648 §3.5)
      return true;
    }
    out.push_back(static_cast<char>(group >> 8 & 0xFF));
    if (padding == 1) {
      if ((group & 0xFF) != 0) return false;
      return true;
    }
    out.push_back(static_cast<char>(group & 0xFF));
  }
  return true;
}

// The URL-safe alphabet of RFC 4648 §5 without padding (RFC 7515 §2: JOSE, ACME's External
// Account Binding keys): appends the decoded octets of text to out; false when text is not
// canonical unpadded base64url ('+', '/' and '=' refused).
inline bool decode_base64url(std::string_view text, std::string& out) {
  if (text.size() % 4 == 1 || text.find_first_of("+/=") != std::string_view::npos) return false;
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  standard.append((4 - standard.size() % 4) % 4, '=');
  return decode_base64(standard, out);
}

}  // namespace base
