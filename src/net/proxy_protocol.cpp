// proxy_protocol.cpp — see proxy_protocol.h.
#include "net/proxy_protocol.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace net::proxy_protocol {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::array<char, 12> kV2Signature = {'\r', '\n', '\r', '\n', '\0', '\r',
                                               '\n', 'Q',  'U',  'I',  'T',  '\n'};

Result invalid(std::string_view why) {
  Result result;
  result.status = Status::kInvalid;
  result.error = why;
  return result;
}

// Textual form of a 4- or 16-byte address; an IPv4-mapped IPv6 address is written as
// IPv4, as the server writes the peer of a socket (one client, one spelling).
std::string format_address(const unsigned char* bytes, bool v6) {
  char text[INET6_ADDRSTRLEN] = {};
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (v6 && std::memcmp(bytes, kMapped, sizeof kMapped) == 0) {
    v6 = false;
    bytes += 12;
  }
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, text, sizeof text);
  return text;
}

// A port in v1: 1 to 5 decimal digits, no leading zero (spec §2.1: "0..65535").
bool parse_port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

// A v1 address of the declared family; the text form must be what inet_pton accepts
// (so "1.2.3.4" for TCP4 and no IPv4 in a TCP4-declared IPv6 slot).
bool parse_address(std::string_view text, bool v6, std::string& out) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  char copy[INET6_ADDRSTRLEN] = {};
  std::memcpy(copy, text.data(), text.size());
  unsigned char bytes[16];
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, copy, bytes) != 1) return false;
  out = format_address(bytes, v6);
  return true;
}

// Splits off the next field ending at one space (spec: exactly one space between fields).
bool next_field(std::string_view& rest, std::string_view& field) {
  std::size_t space = rest.find(' ');
  if (space == std::string_view::npos || space == 0) return false;
  field = rest.substr(0, space);
  rest.remove_prefix(space + 1);
  return true;
}

Result parse_v1(std::string_view bytes) {
  // Every byte received so far must still fit the prefix "PROXY ".
  std::size_t prefix = std::min(bytes.size(), kV1Prefix.size());
  if (bytes.substr(0, prefix) != kV1Prefix.substr(0, prefix)) {
    return invalid("not a PROXY protocol header");
  }
  std::size_t scan = std::min(bytes.size(), kMaxV1Length);
  std::size_t cr = bytes.substr(0, scan).find('\r');
  std::size_t lf = bytes.substr(0, scan).find('\n');
  if (lf != std::string_view::npos && (cr == std::string_view::npos || lf < cr)) {
    return invalid("v1 header: bare LF (the line must end with CRLF)");
  }
  if (cr == std::string_view::npos) {
    if (bytes.size() >= kMaxV1Length) return invalid("v1 header longer than 107 bytes");
    return Result{};  // kNeedMore
  }
  if (cr + 1 >= bytes.size()) {
    if (cr + 1 >= kMaxV1Length) return invalid("v1 header longer than 107 bytes");
    return Result{};  // the LF has not arrived yet
  }
  if (cr + 2 > kMaxV1Length) return invalid("v1 header longer than 107 bytes");
  if (bytes[cr + 1] != '\n') return invalid("v1 header: CR not followed by LF");
  Result result;
  result.status = Status::kDone;
  result.length = cr + 2;
  result.header.version = 1;
  std::string_view line = bytes.substr(kV1Prefix.size(), cr - kV1Prefix.size());
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) {
    // §2.1: "the receiver must ignore anything presented before the CRLF".
    result.header.use_socket_address = true;
    return result;
  }
  bool v6 = false;
  if (line.starts_with("TCP4 ")) {
    v6 = false;
  } else if (line.starts_with("TCP6 ")) {
    v6 = true;
  } else {
    return invalid("v1 header: protocol is not TCP4, TCP6 or UNKNOWN");
  }
  std::string_view rest = line.substr(5);
  std::string_view source, destination, source_port;
  if (!next_field(rest, source) || !next_field(rest, destination) ||
      !next_field(rest, source_port) || rest.empty() || rest.find(' ') != std::string_view::npos) {
    return invalid("v1 header: expected source, destination and two ports");
  }
  Header& header = result.header;
  if (!parse_address(source, v6, header.source_address) ||
      !parse_address(destination, v6, header.destination_address)) {
    return invalid("v1 header: address does not match the protocol family");
  }
  if (!parse_port(source_port, header.source_port) || !parse_port(rest, header.destination_port)) {
    return invalid("v1 header: bad port");
  }
  return result;
}

Result parse_v2(std::string_view bytes) {
  std::size_t prefix = std::min(bytes.size(), kV2Signature.size());
  if (std::memcmp(bytes.data(), kV2Signature.data(), prefix) != 0) {
    return invalid("not a PROXY protocol header");
  }
  if (bytes.size() >= 13 && (static_cast<unsigned char>(bytes[12]) >> 4) != 2) {
    return invalid("v2 header: unsupported version");
  }
  if (bytes.size() < kV2HeaderLength) return Result{};
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  unsigned command = byte(12) & 0x0f;
  unsigned family = byte(13) >> 4;
  unsigned transport = byte(13) & 0x0f;
  std::size_t payload = (std::size_t{byte(14)} << 8) | byte(15);
  if (command > 1) return invalid("v2 header: unknown command");
  if (payload > kMaxV2Payload) return invalid("v2 header: address block and TLVs too long");
  if (bytes.size() < kV2HeaderLength + payload) return Result{};
  Result result;
  result.status = Status::kDone;
  result.length = kV2HeaderLength + payload;
  result.header.version = 2;
  // §2.2: LOCAL ("health checks") — the receiver must use the real connection endpoints
  // and ignore the protocol block whatever it says.
  if (command == 0) {
    result.header.use_socket_address = true;
    return result;
  }
  if (family > 3 || transport > 2) return invalid("v2 header: unknown family or transport");
  // AF_UNSPEC (unknown protocol) and AF_UNIX: nothing we can limit or log on.
  if (family == 0 || family == 3) {
    result.header.use_socket_address = true;
    return result;
  }
  if (transport != 1) return invalid("v2 header: transport is not a stream");
  const bool v6 = family == 2;
  const std::size_t address_length = v6 ? 16 : 4;
  if (payload < 2 * address_length + 4) {
    return invalid("v2 header: address block shorter than its family needs");
  }
  const auto* block = reinterpret_cast<const unsigned char*>(bytes.data()) + kV2HeaderLength;
  Header& header = result.header;
  header.source_address = format_address(block, v6);
  header.destination_address = format_address(block + address_length, v6);
  const unsigned char* ports = block + 2 * address_length;
  header.source_port = static_cast<std::uint16_t>((ports[0] << 8) | ports[1]);
  header.destination_port = static_cast<std::uint16_t>((ports[2] << 8) | ports[3]);
  // TLVs (the rest of the block) are skipped: we act on none of them.
  return result;
}

}  // namespace

Result parse(std::string_view bytes) {
  if (bytes.empty()) return Result{};
  if (bytes[0] == 'P') return parse_v1(bytes);
  if (bytes[0] == '\r') return parse_v2(bytes);
  return invalid("not a PROXY protocol header");
}

}  // namespace net::proxy_protocol
