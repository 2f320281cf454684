// network.cpp — see network.h.
#include "base/network.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace base {

std::optional<IpBytes> parse_ip(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  IpBytes bytes{};
  if (::inet_pton(AF_INET, buffer, bytes.data() + 12) == 1) {
    bytes[10] = 0xFF;
    bytes[11] = 0xFF;
    return bytes;
  }
  if (::inet_pton(AF_INET6, buffer, bytes.data()) == 1) return bytes;
  return std::nullopt;
}

bool Network::contains(const IpBytes& ip) const {
  unsigned full_bytes = prefix_length / 8;
  if (std::memcmp(ip.data(), address.data(), full_bytes) != 0) return false;
  unsigned bits = prefix_length % 8;
  if (bits == 0) return true;
  auto mask = static_cast<unsigned char>(0xFF << (8 - bits));
  return (ip[full_bytes] & mask) == (address[full_bytes] & mask);
}

Expected<Network, std::string> parse_network(std::string_view text) {
  auto bad = [&] { return unexpected("bad network \"" + std::string(text) + "\""); };
  std::size_t slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return bad();
  bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  unsigned max_prefix = v4 ? 32 : 128;
  unsigned prefix = max_prefix;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() ||
        prefix > max_prefix) {
      return bad();
    }
  }
  Network network;
  network.address = *ip;
  network.prefix_length = v4 ? prefix + 96 : prefix;
  return network;
}

bool is_ipv4_mapped(const IpBytes& ip) {
  static constexpr IpBytes kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return std::memcmp(ip.data(), kMapped.data(), 12) == 0;
}

std::string format_ip(const IpBytes& ip) {
  char buffer[INET6_ADDRSTRLEN];
  const bool v4 = is_ipv4_mapped(ip);
  if (::inet_ntop(v4 ? AF_INET : AF_INET6, ip.data() + (v4 ? 12 : 0), buffer, sizeof buffer) ==
      nullptr) {
    return std::string();  // cannot happen with these buffer sizes
  }
  return buffer;
}

std::string to_string(const Network& network) {
  const bool v4 = is_ipv4_mapped(network.address) && network.prefix_length >= 96;
  return format_ip(network.address) + "/" +
         std::to_string(v4 ? network.prefix_length - 96 : network.prefix_length);
}

Network client_network(const IpBytes& ip, unsigned ipv6_prefix) {
  Network network;
  network.address = ip;
  network.prefix_length = is_ipv4_mapped(ip)
                              ? 128
                              : std::clamp(ipv6_prefix, kMinIpv6ClientPrefix, kMaxIpv6ClientPrefix);
  for (unsigned bit = network.prefix_length; bit < 128; ++bit) {
    network.address[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
  }
  return network;
}

std::optional<Network> client_network(std::string_view address, unsigned ipv6_prefix) {
  auto ip = parse_ip(address);
  if (!ip) return std::nullopt;
  return client_network(*ip, ipv6_prefix);
}

std::string client_key(std::string_view address, unsigned ipv6_prefix) {
  auto network = client_network(address, ipv6_prefix);
  if (!network) return std::string(address.substr(0, 64));
  if (is_ipv4_mapped(network->address)) return format_ip(network->address);
  return to_string(*network);
}

bool is_loopback_address(std::string_view host) {
  auto ip = parse_ip(host);
  if (!ip) return false;
  if (is_ipv4_mapped(*ip)) return (*ip)[12] == 127;
  static constexpr IpBytes kLoopback6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return *ip == kLoopback6;
}

}  // namespace base
