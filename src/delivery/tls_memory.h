// tls_memory.h — the best TLS each destination domain has been reached with, so that a later
// weaker offer is refused instead of used (no silent downgrade: an attacker who strips
// STARTTLS or substitutes a certificate gets a deferred message and a log line, not the
// mail). The idea is that of TOFU / "TLS-RPT pinning"; MTA-STS (RFC 8461) and DANE
// (RFC 7672) are the standard ways to publish such a policy, and this is the local memory
// for domains that publish none.
//
// It also keeps the operator's exceptions: a destination whose published policy is broken
// (a stale TLSA record, say) may be excepted until a given time; while excepted its mail
// goes with opportunistic TLS whatever DANE, the table or the memory say (logged and
// counted by the delivery). An exception always ends: at most 30 days.
//
// Invariants: levels only go up by record(); only forget() (an operator) lowers one. The
// file <path> is rewritten atomically (temporary file, fsync, rename) on every change, one
// line per domain: "<domain> <none|encrypted|verified> <unix time first seen at that level>",
// and one per exception: "<domain> exception <unix time it ends>".
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace delivery {

enum class SeenTls { kNone = 0, kEncrypted = 1, kVerified = 2 };
std::string_view to_string(SeenTls level);

class TlsMemory {
 public:
  // Reads path if it exists; unreadable lines are skipped (and logged by the caller via
  // load_errors()).
  explicit TlsMemory(std::string path);
  SeenTls best(std::string_view domain) const;
  // Remembers level if it is better than what is known; returns true if it changed.
  bool record(std::string_view domain, SeenTls level, std::int64_t now_unix);
  bool forget(std::string_view domain);                          // false if nothing was remembered
  std::vector<std::pair<std::string, SeenTls>> entries() const;  // sorted by domain
  const std::string& load_errors() const { return load_errors_; }

  // The operator's exception for domain until until_unix (replacing one it had); 0 ends it
  // (false if there was none).
  bool except(std::string_view domain, std::int64_t until_unix);
  // When domain's exception ends, if it has one that has not ended by now_unix.
  std::optional<std::int64_t> exception_until(std::string_view domain, std::int64_t now_unix) const;
  std::vector<std::pair<std::string, std::int64_t>> exceptions() const;  // sorted by domain

 private:
  void save() const;  // with mutex_ held
  std::string path_;
  std::string load_errors_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::pair<SeenTls, std::int64_t>> domains_;
  std::unordered_map<std::string, std::int64_t> exceptions_;
};

}  // namespace delivery
