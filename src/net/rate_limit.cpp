// rate_limit.cpp — see rate_limit.h.
#include "net/rate_limit.h"

#include <cstring>

#include "base/network.h"

namespace net {

AddressKey address_key(std::string_view address) {
  AddressKey key{};
  auto parsed = base::parse_ip(address);
  if (!parsed) return key;  // "unknown": all such clients share one key
  key = *parsed;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(key.data(), kMapped, sizeof kMapped) != 0) {
    std::memset(key.data() + 8, 0, 8);  // IPv6: the /64
  }
  return key;
}

std::size_t AddressKeyHash::operator()(const AddressKey& key) const {
  std::uint64_t high = 0, low = 0;
  std::memcpy(&high, key.data(), 8);
  std::memcpy(&low, key.data() + 8, 8);
  return std::hash<std::uint64_t>{}(high * 0x9E3779B97F4A7C15ull ^ low);
}

}  // namespace net
