// endpoint.cpp — see endpoint.h.
#include "base/endpoint.h"

#include <sys/un.h>

#include "base/network.h"

namespace base {
namespace {

// 1..65535 (0 too when zero_ok), decimal digits only.
std::optional<std::uint16_t> parse_port(std::string_view digits, bool zero_ok) {
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535 || (value == 0 && !zero_ok)) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

bool is_ipv6_literal(std::string_view host) {
  return host.find(':') != std::string_view::npos && parse_ip(host).has_value();
}

}  // namespace

std::string to_string(const HostPort& address) {
  std::string port = std::to_string(address.port);
  if (address.host.find(':') != std::string::npos) return "[" + address.host + "]:" + port;
  return address.host + ":" + port;
}

Expected<HostPort, std::string> parse_host_port(std::string_view text, const HostPortForm& form) {
  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return unexpected(std::string("missing ']' after the IPv6 address"));
    }
    host = text.substr(1, close - 1);
    bracketed = true;
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return unexpected(std::string("unexpected text after ']'"));
      has_port = true;
      port_text = rest.substr(1);
    }
    if (!is_ipv6_literal(host)) {
      return unexpected(std::string("not an IPv6 address in the brackets"));
    }
  } else if (std::size_t colon = text.find(':'); colon == std::string_view::npos) {
    host = text;
  } else if (text.find(':', colon + 1) == std::string_view::npos) {
    host = text.substr(0, colon);
    has_port = true;
    port_text = text.substr(colon + 1);
  } else {
    // Several colons: only a bare IPv6 literal, where the form allows one.
    if (!form.bare_ipv6)
      return unexpected(std::string("an IPv6 address goes in brackets: [IPv6]:PORT"));
    if (!is_ipv6_literal(text)) return unexpected(std::string("not an IP address"));
    host = text;
  }
  if (host.empty()) return unexpected(std::string("no host"));
  if (!bracketed) {
    if (form.numeric_host && !parse_ip(host)) return unexpected(std::string("not an IP address"));
    if (host.find_first_of("/@?# \t[]") != std::string_view::npos) {
      return unexpected(std::string("not a host name"));
    }
  }
  HostPort out;
  out.host = std::string(host);
  if (has_port) {
    auto port = parse_port(port_text, form.port_zero);
    if (!port) {
      return unexpected(std::string(form.port_zero ? "the port must be 0 to 65535"
                                                   : "the port must be 1 to 65535"));
    }
    out.port = *port;
  } else if (form.default_port) {
    out.port = *form.default_port;
  } else {
    return unexpected(std::string("missing :PORT"));
  }
  return out;
}

Expected<std::vector<HostPort>, std::string> parse_host_port_list(std::string_view text,
                                                                  const HostPortForm& form) {
  std::vector<HostPort> out;
  while (true) {
    std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    if (item.empty()) return unexpected(std::string("an empty entry in the list"));
    auto parsed = parse_host_port(item, form);
    if (!parsed) return unexpected("'" + std::string(item) + "': " + parsed.error());
    out.push_back(std::move(parsed.value()));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::string to_string(const Endpoint& endpoint) {
  return endpoint.is_unix() ? "unix:" + endpoint.unix_path : to_string(endpoint.tcp);
}

Expected<Endpoint, std::string> parse_endpoint(std::string_view text, const HostPortForm& form) {
  Endpoint out;
  if (text.substr(0, 5) == "unix:") {
    std::string_view path = text.substr(5);
    if (path.size() < 2 || path.front() != '/') {
      return unexpected(std::string("a unix socket needs an absolute path (unix:/path)"));
    }
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return unexpected("the socket path is longer than " +
                        std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " octets");
    }
    out.unix_path = std::string(path);
    return out;
  }
  auto tcp = parse_host_port(text, form);
  if (!tcp) return unexpected(tcp.error());
  out.tcp = std::move(tcp.value());
  return out;
}

std::string to_string(const SmtpUrl& url) {
  return (url.implicit_tls ? "smtps://" : "smtp://") + to_string(HostPort{url.host, url.port});
}

Expected<SmtpUrl, std::string> parse_smtp_url(std::string_view text) {
  SmtpUrl url;
  HostPortForm form;
  if (text.substr(0, 8) == "smtps://") {
    url.implicit_tls = true;
    form.default_port = 465;
    text.remove_prefix(8);
  } else if (text.substr(0, 7) == "smtp://") {
    form.default_port = 587;
    text.remove_prefix(7);
  } else {
    return unexpected(std::string(
        "give smtps://HOST[:PORT] (implicit TLS, port 465) or smtp://HOST[:PORT] (STARTTLS, "
        "port 587)"));
  }
  if (!text.empty() && text.back() == '/') text.remove_suffix(1);
  auto server = parse_host_port(text, form);
  if (!server) return unexpected(server.error());
  url.host = std::move(server.value().host);
  url.port = server.value().port;
  return url;
}

}  // namespace base
