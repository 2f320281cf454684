// proxy_protocol.h — sans-I/O parser of the PROXY protocol header, versions 1 and 2.
//
// A load balancer such as HAProxy (`send-proxy`, `send-proxy-v2`) opens its connection to
// us with one header that names the client it accepted the connection from; everything
// after the header is the client's own byte stream (a TLS ClientHello on implicit TLS, or
// nothing until our greeting). Spec: HAProxy's "proxy-protocol.txt" (2.6):
//   v1 (§2.1): "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") [SP src SP dst SP sport SP dport] CRLF,
//              at most 107 bytes including the CRLF; UNKNOWN ignores the rest of the line.
//   v2 (§2.2): a 12-byte binary signature, a version/command byte (0x20 LOCAL, 0x21 PROXY),
//              a family/transport byte, a 16-bit big-endian length, then the addresses
//              (AF_INET 12 bytes, AF_INET6 36 bytes, AF_UNIX 216 bytes) and TLVs.
//
// Invariants: parse() never reads past the bytes it is given, never allocates more than the
// two address strings, and decides from a prefix alone: kNeedMore means "every byte so far
// could still start a valid header", so a caller may consume those bytes and read on. A
// header is at most kMaxV1Length (v1) or kMaxV2Length (v2) bytes; anything longer is
// kInvalid. TLVs are skipped unread (we trust no CRC or SSL claim of the proxy).
// LOCAL (v2), UNKNOWN (v1) and families we do not route on (AF_UNSPEC, AF_UNIX) give a
// header with `use_socket_address`: the connection's own peer address stays the client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace net::proxy_protocol {

inline constexpr std::size_t kMaxV1Length = 107;  // spec §2.1, CRLF included
inline constexpr std::size_t kV2HeaderLength = 16;
// Address block and TLVs of v2. The spec allows up to 65535; real proxies send a few
// dozen bytes (216 for AF_UNIX), so a longer one is refused rather than buffered.
inline constexpr std::size_t kMaxV2Payload = 2048;
inline constexpr std::size_t kMaxV2Length = kV2HeaderLength + kMaxV2Payload;
inline constexpr std::size_t kMaxLength = kMaxV2Length;

enum class Status { kNeedMore, kDone, kInvalid };

struct Header {
  int version = 0;                  // 1 or 2
  bool use_socket_address = false;  // LOCAL, UNKNOWN, AF_UNSPEC or AF_UNIX
  std::string source_address;       // the client: "192.0.2.7", "2001:db8::7" (textual form)
  std::uint16_t source_port = 0;
  std::string destination_address;  // the address the client connected to at the proxy
  std::uint16_t destination_port = 0;
};

struct Result {
  Status status = Status::kNeedMore;
  std::size_t length = 0;  // kDone: bytes of the header (the client's stream starts after)
  Header header;           // kDone only
  std::string_view error;  // kInvalid only: why, for the log (static text)
};

// Parses the header at the start of `bytes` (all bytes received so far).
Result parse(std::string_view bytes);

}  // namespace net::proxy_protocol
