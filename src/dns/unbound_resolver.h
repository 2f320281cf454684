// unbound_resolver.h — the dns::Resolver of the server, on libunbound's asynchronous API.
//
// One thread of its own (the "resolver thread") owns the libunbound context: it polls the
// context's descriptor and an eventfd that lookup() writes to, starts the queries handed
// over, runs ub_process (whose callbacks therefore run on this thread) and ends each lookup
// at its deadline (ub_cancel, kTemporary "timed out"). Identical lookups in flight share one
// query. Answers go through dns::Cache first: a cached answer calls back at once on the
// caller's thread (resolver.h).
//
// Modes: kSystem forwards to the servers of /etc/resolv.conf, kForward to the configured
// servers, kRecursive asks the authorities from the root hints. Validation: kOn validates
// DNSSEC with the root trust anchor (RFC 4033 §5); kOff never does; kAuto probes at start
// (". DNSKEY" must come back secure) and runs without validation, with a warning, when the
// path to the root strips DNSSEC — a forwarder that drops signatures would otherwise make
// every answer bogus. See docs/architecture.md "DNS".
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "base/endpoint.h"
#include "base/expected.h"
#include "dns/cache.h"
#include "dns/resolver.h"

namespace dns {

struct Options {
  enum class Mode { kSystem, kForward, kRecursive };
  enum class Validation { kAuto, kOn, kOff };

  // kForward when servers are given; kSystem reads resolv_conf; kRecursive needs neither.
  Mode mode = Mode::kSystem;
  std::vector<base::HostPort> servers;  // IP literals and ports (kForward)
  std::string resolv_conf = "/etc/resolv.conf";
  Validation validation = Validation::kAuto;
  std::string trust_anchor = "/usr/share/dns/root.key";  // Debian dns-root-data
  std::chrono::milliseconds timeout{5000};               // per lookup, from lookup() to answer
  CacheLimits cache;
  Cache::Now now = &Cache::Clock::now;  // the cache's clock
};

std::string_view to_string(Options::Mode mode);  // "system", "forward", "recursive"

// Builds the resolver and, for kAuto, runs the validation probe (at most options.timeout).
// Fails on options libunbound refuses (a malformed server, an unreadable resolv.conf or
// trust anchor).
base::Expected<std::unique_ptr<Resolver>, std::string> create_resolver(const Options& options);

}  // namespace dns
