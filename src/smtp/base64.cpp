// base64.cpp — strict RFC 4648 §4 base64 (see base64.h). Decoding writes straight into the
// caller's buffer: a SASL response is never copied into a temporary the session cannot
// wipe.
#include "smtp/base64.h"

#include <array>
#include <cstdint>

namespace smtp {

namespace {

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

}  // namespace

void append_base64(std::string& out, std::string_view raw) {
  out.reserve(out.size() + (raw.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i])) << 16 |
                          static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + 1])) << 8 |
                          static_cast<unsigned char>(raw[i + 2]);
    out.push_back(kAlphabet[group >> 18 & 63]);
    out.push_back(kAlphabet[group >> 12 & 63]);
    out.push_back(kAlphabet[group >> 6 & 63]);
    out.push_back(kAlphabet[group & 63]);
  }
  const std::size_t rest = raw.size() - i;
  if (rest == 0) return;
  std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i])) << 16;
  if (rest == 2) group |= static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i + 1])) << 8;
  out.push_back(kAlphabet[group >> 18 & 63]);
  out.push_back(kAlphabet[group >> 12 & 63]);
  out.push_back(rest == 2 ? kAlphabet[group >> 6 & 63] : '=');
  out.push_back('=');
}

bool decode_base64(std::string_view text, std::string& out) {
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
      std::int8_t value = kDecode[static_cast<unsigned char>(text[i + j])];
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

}  // namespace smtp
