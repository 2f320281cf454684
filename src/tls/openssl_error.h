// openssl_error.h — the one place that turns the thread's OpenSSL error queue into a reason
// for a log line or an error text (every layer and tool uses this, never ERR_* itself).
// Invariant: every call drains the whole queue, so a stale entry never explains a later
// failure on the same thread (OpenSSL keeps the queue per thread, and net/ runs many
// connections per thread).
#pragma once

#include <string>

namespace tls {

// Drains the queue and returns the reason of its first (root-cause) entry: OpenSSL's own
// words ("wrong version number", "no shared cipher", "key values mismatch") or, for an errno
// OpenSSL recorded, strerror's ("No such file or directory"). Never empty: "unknown OpenSSL
// error" when the queue held nothing.
std::string last_error_reason();

}  // namespace tls
