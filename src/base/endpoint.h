// endpoint.h — where to connect or listen, written as text in configuration files and on
// command lines: "HOST:PORT" / "[IPv6]:PORT", "unix:/path", and "smtps://HOST[:PORT]" /
// "smtp://HOST[:PORT]". One parser for each form; every caller uses these (docs/architecture.md
// "Where is X").
//
// Invariants:
// - An IPv6 literal with a port is written in brackets (RFC 3986 §3.2.2); a parsed host never
//   holds the brackets, and to_string() puts them back.
// - A port is 1..65535 unless the form allows 0 (a listener: the kernel picks one).
// - A failure is a short reason that does not repeat the text: the caller names the key or
//   argument and the text, in its own words.
// - No name resolution: a host name is only checked to be one (no '/', '@', '?', '#', space,
//   brackets or ':').
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace base {

// A host (an IP literal, IPv6 without brackets, or a name) and a port.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const HostPort&) const = default;
};
// "192.0.2.1:25", "[2001:db8::1]:25", "mx.example.net:25".
std::string to_string(const HostPort& address);

// What a HOST:PORT text may be.
struct HostPortForm {
  // When set, ":PORT" may be left out and this is the port (0 may stand for "not given").
  std::optional<std::uint16_t> default_port;
  bool numeric_host = false;  // an IP literal only, never a name
  bool port_zero = false;     // ":0" is allowed (a listener: the kernel picks the port)
  bool bare_ipv6 = false;     // "2001:db8::1" without brackets (then without a port)
};

// "HOST:PORT" or "[IPv6]:PORT", and per the form "HOST", "[IPv6]" or a bare IPv6 literal.
Expected<HostPort, std::string> parse_host_port(std::string_view text,
                                                const HostPortForm& form = {});

// A comma-separated list of parse_host_port texts ("127.0.0.1:5353,[::1]:53"), at least one.
Expected<std::vector<HostPort>, std::string> parse_host_port_list(std::string_view text,
                                                                  const HostPortForm& form = {});

// A stream socket to connect to: a unix socket (its path) or TCP (host and port).
struct Endpoint {
  std::string unix_path;  // absolute; non-empty for a unix socket
  HostPort tcp;           // otherwise
  bool is_unix() const { return !unix_path.empty(); }
  bool operator==(const Endpoint&) const = default;
};
// "unix:/run/dovecot/lmtp" or to_string(tcp).
std::string to_string(const Endpoint& endpoint);

// "unix:/absolute/path" (shorter than sockaddr_un's sun_path), else HOST:PORT in the form.
Expected<Endpoint, std::string> parse_endpoint(std::string_view text,
                                               const HostPortForm& form = {});

// An SMTP server named by a URL: "smtps://" is implicit TLS (RFC 8314 §3.3, port 465 by
// default), "smtp://" is STARTTLS on submission (RFC 6409, port 587 by default). The host is
// a name, an IPv4 literal or a bracketed IPv6 literal; one trailing '/' is allowed.
struct SmtpUrl {
  bool implicit_tls = false;
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const SmtpUrl&) const = default;
};
// "smtps://mail.example.net:465" (the port always written).
std::string to_string(const SmtpUrl& url);
Expected<SmtpUrl, std::string> parse_smtp_url(std::string_view text);

}  // namespace base
