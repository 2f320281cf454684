// network.cpp — see network.h.
#include "base/network.h"

#include <arpa/inet.h>
#include <netinet/in.h>

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

bool is_loopback_address(std::string_view host) {
  auto ip = parse_ip(host);
  if (!ip) return false;
  static constexpr IpBytes kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::memcmp(ip->data(), kMapped.data(), 12) == 0) return (*ip)[12] == 127;
  static constexpr IpBytes kLoopback6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return *ip == kLoopback6;
}

bool split_host_port(std::string_view address, std::string& host, std::uint16_t& port) {
  std::size_t colon;
  if (!address.empty() && address.front() == '[') {
    std::size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':')
      return false;
    host = std::string(address.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = address.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    host = std::string(address.substr(0, colon));
    if (host.find(':') != std::string::npos) return false;  // IPv6 needs brackets
  }
  std::string_view digits = address.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value > 65535)
    return false;
  port = static_cast<std::uint16_t>(value);
  return parse_ip(host).has_value();
}

}  // namespace base
