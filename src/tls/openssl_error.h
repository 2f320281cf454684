// openssl_error.h — turns the thread's OpenSSL error queue into one reason for an error text.
// Invariant: every call drains the whole queue, so a stale entry never explains a later
// failure on the same thread (OpenSSL keeps the queue per thread, and net/ runs many
// connections per thread).
#pragma once

#include <string>

namespace tls {

// Drains the queue and returns the reason of its first (root-cause) entry, e.g. "No such file
// or directory" or "key values mismatch"; an empty string when the queue was empty.
std::string drain_openssl_errors();

// As drain_openssl_errors(), but never empty.
std::string openssl_reason();

}  // namespace tls
