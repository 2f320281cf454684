// dns01_hook.h — dns-01 (RFC 8555 §8.4) through an operator's hook command: publishing a
// challenge runs `<hook…> add _acme-challenge.<name> <value>` (value: base64url of the
// SHA-256 of the key authorization, the TXT record's data), then waits until our resolver
// sees that TXT record before the CA is told to look; withdrawing runs `<hook…> remove …`.
// contrib/acme-dns-nsupdate is such a hook (RFC 2136 dynamic update with a TSIG key, by
// nsupdate).
//
// Invariants: the hook runs without a shell (posix_spawn, argv as configured plus the three
// words), stdin /dev/null, stdout and stderr captured (the first 2 KiB go into the error), with
// the server's environment; it is killed (SIGKILL) when it runs longer than hook_timeout. A
// hook that exits non-zero, or a record not visible within propagation_timeout, fails the
// challenge with the reason. Blocking, on the renewal thread only; a stop (the cancel flag)
// ends the wait for the record.
// XXX: the record is looked for through the configured resolver, which caches: a stale answer
// (the value of the other key's challenge a moment before, when the CA does not reuse the
// authorization) holds until its TTL ends, at least dns::CacheLimits::min_ttl (5 s). Asking the
// zone's authoritative servers directly, as the DANE rollover's TLSA wait does
// (acme/dane_rollover.h), would avoid it; the tests' authoritative servers listen on loopback
// ports other than 53, where Pebble (not in a network namespace) can reach them.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "acme/client.h"
#include "base/expected.h"
#include "dns/resolver.h"

namespace acme {

// The TXT data of a dns-01 challenge: base64url(SHA-256(key_authorization)) (§8.4).
std::string dns01_txt_value(const std::string& key_authorization);

struct HookResult {
  int exit_status = -1;  // -1: killed or not run
  bool timed_out = false;
  std::string output;  // stdout and stderr, at most 2 KiB
};
// Runs argv (argv[0] a path) without a shell, bounded by timeout.
base::Expected<HookResult, std::string> run_hook(const std::vector<std::string>& argv,
                                                 std::chrono::milliseconds timeout);

class Dns01HookPublisher : public ChallengePublisher {
 public:
  Dns01HookPublisher(std::vector<std::string> hook, std::chrono::milliseconds hook_timeout,
                     std::shared_ptr<dns::Resolver> resolver,
                     std::chrono::milliseconds propagation_timeout,
                     const std::atomic<bool>* cancel = nullptr);
  // name: the identifier being validated (a wildcard's base name).
  base::Expected<base::Ok, std::string> publish(const std::string& name,
                                                const std::string& key_authorization) override;
  void withdraw(const std::string& name) override;

 private:
  base::Expected<base::Ok, std::string> run(const std::string& verb, const std::string& record,
                                            const std::string& value);

  std::vector<std::string> hook_;
  std::chrono::milliseconds hook_timeout_;
  std::shared_ptr<dns::Resolver> resolver_;
  std::chrono::milliseconds propagation_timeout_;
  const std::atomic<bool>* cancel_;
  std::mutex mutex_;
  std::map<std::string, std::string> values_;  // name → the value added, for remove
};

}  // namespace acme
