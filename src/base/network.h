// network.h — IP addresses and networks, below every layer (host:port: base/endpoint.h).
//
// One parser for each: an IPv4 or IPv6 literal (inet_pton, no name resolution), a network in
// CIDR form. IPv4 is held IPv4-mapped in 16 bytes so one comparison serves both families.
// And the one rule by which every per-client limit names a client (client_network).
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
// Whether ip is IPv4-mapped (::ffff:a.b.c.d), the form parse_ip gives IPv4 addresses.
bool is_ipv4_mapped(const IpBytes& ip);

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

// The network every per-client limit counts a client as — connections open at once,
// connections per minute, AUTH failures (docs/architecture.md "Security rules"): an IPv4
// address as itself (a /32), also when it comes IPv4-mapped (::ffff:a.b.c.d, as a socket
// or a PROXY v2 header may give it); an IPv6 address as its /ipv6_prefix. A site gets at
// least a /64 (RFC 6177) and a host may use any of its 2^64 addresses, so a count per
// IPv6 address would let one client take as many as it likes.
constexpr unsigned kDefaultIpv6ClientPrefix = 64;
constexpr unsigned kMinIpv6ClientPrefix = 32;
constexpr unsigned kMaxIpv6ClientPrefix = 128;
// `ipv6_prefix` is clamped to kMinIpv6ClientPrefix..kMaxIpv6ClientPrefix; the address bits
// past the prefix are zero in the result.
Network client_network(const IpBytes& ip, unsigned ipv6_prefix);
// nullopt when `address` is not an IP literal.
std::optional<Network> client_network(std::string_view address, unsigned ipv6_prefix);
// client_network() as text, the key the limits use and show: "192.0.2.7" for IPv4,
// "2001:db8:1:2::/64" for IPv6; text that is not an IP literal is kept (cut at 64 bytes),
// so that all such clients share one key.
std::string client_key(std::string_view address, unsigned ipv6_prefix);

// 127.0.0.0/8 or ::1.
bool is_loopback_address(std::string_view host);

}  // namespace base
