// system_resolver.cpp — see system_resolver.h.
#include "delivery/system_resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

#include "base/network.h"

namespace delivery {

base::Expected<std::vector<std::string>, std::string> resolve_with_system(std::string_view host) {
  std::string name(host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  if (base::parse_ip(name)) return std::vector<std::string>{name};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int status = ::getaddrinfo(name.c_str(), nullptr, &hints, &found);
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  if (status != 0) {
    if (status == EAI_NONAME || status == EAI_NODATA) {
      return base::unexpected("host " + name + " not found (not in /etc/hosts, not in DNS)");
    }
    return base::unexpected("cannot look up host " + name + ": " + ::gai_strerror(status));
  }
  std::vector<std::string> addresses;
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = nullptr;
    if (entry->ai_family == AF_INET) {
      raw = &reinterpret_cast<const sockaddr_in*>(entry->ai_addr)->sin_addr;
    } else if (entry->ai_family == AF_INET6) {
      raw = &reinterpret_cast<const sockaddr_in6*>(entry->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (::inet_ntop(entry->ai_family, raw, text, sizeof text) == nullptr) continue;
    if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.emplace_back(text);
    }
  }
  if (addresses.empty()) return base::unexpected("host " + name + " has no IP address");
  return addresses;
}

}  // namespace delivery
