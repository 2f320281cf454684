// rate_limit.cpp — see rate_limit.h.
#include "net/rate_limit.h"

#include <cstring>

#include "base/network.h"

namespace net {

AddressKey address_key(std::string_view address, unsigned ipv6_prefix) {
  auto network = base::client_network(address, ipv6_prefix);
  return network ? network->address : AddressKey{};  // "unknown": all such share one key
}

std::size_t AddressKeyHash::operator()(const AddressKey& key) const {
  std::uint64_t high = 0, low = 0;
  std::memcpy(&high, key.data(), 8);
  std::memcpy(&low, key.data() + 8, 8);
  return std::hash<std::uint64_t>{}(high * 0x9E3779B97F4A7C15ull ^ low);
}

}  // namespace net
