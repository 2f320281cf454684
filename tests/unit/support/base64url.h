// base64url.h — decoding base64url without padding (RFC 4648 §5), for tests that read what
// our code encodes that way (ACME's JWS, RFC 7515).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace test_support {

inline std::string decode_base64url(std::string_view text) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    bits = (bits << 6) | static_cast<std::uint32_t>(alphabet.find(c));
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  return out;
}

}  // namespace test_support
