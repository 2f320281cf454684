// network.h — IP addresses and networks, below every layer (host:port: base/endpoint.h).
//
// One parser for each: an IPv4 or IPv6 literal (inet_pton, no name resolution), a network in
// CIDR form. IPv4 is held IPv4-mapped in 16 bytes so one comparison serves both families.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/expected.h"

namespace base {

using IpBytes = std::array<unsigned char, 16>;

// A literal IPv4 or IPv6 address as 16 bytes (IPv4-mapped for IPv4); nullopt otherwise.
std::optional<IpBytes> parse_ip(std::string_view text);

// An IPv4 or IPv6 network; IPv4 is held as IPv4-mapped IPv6 (::ffff:a.b.c.d/96+n).
struct Network {
  IpBytes address{};
  unsigned prefix_length = 0;  // 0..128 over the 16 bytes
  bool contains(const IpBytes& ip) const;
  bool operator==(const Network&) const = default;
};
// "192.0.2.0/24", "2001:db8::/32", or a single address (a /32 or /128).
Expected<Network, std::string> parse_network(std::string_view text);

// The address as text: dotted IPv4 for an IPv4-mapped address, else RFC 5952 IPv6.
std::string format_ip(const IpBytes& ip);
// "192.0.2.0/24", "2001:db8::/32" (an IPv4 network without its 96 mapped bits).
std::string to_string(const Network& network);

// 127.0.0.0/8 or ::1.
bool is_loopback_address(std::string_view host);

}  // namespace base
