// network.h — IP addresses, networks and numeric host:port endpoints, below every layer.
//
// One parser for each: an IPv4 or IPv6 literal (inet_pton, no name resolution), a network in
// CIDR form, "host:port" with IPv6 in brackets. IPv4 is held IPv4-mapped in 16 bytes so one
// comparison serves both families.
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
};
// "192.0.2.0/24", "2001:db8::/32", or a single address (a /32 or /128).
Expected<Network, std::string> parse_network(std::string_view text);

// 127.0.0.0/8 or ::1.
bool is_loopback_address(std::string_view host);

// "127.0.0.1:9464" or "[::1]:9464" (numeric host only; IPv6 needs the brackets).
bool split_host_port(std::string_view address, std::string& host, std::uint16_t& port);

}  // namespace base
