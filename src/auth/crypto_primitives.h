// crypto_primitives.h — the few primitives the auth layer needs, as values: base64
// (RFC 4648 §4, strict; the codec of base/base64.h returning strings), SHA-256 and HMAC-SHA-256
// (libsodium: no per-call fetch nor allocation), PBKDF2-HMAC-SHA-256 (OpenSSL), and the
// one-time libsodium initialisation.
//
// Invariants: decoders refuse anything that is not canonical padded base64 (no spaces, no
// missing padding) — SCRAM (RFC 5802 §7) and the users file both use that form.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace auth {

using Digest = std::array<unsigned char, 32>;

// sodium_init() once per process; safe to call from any thread.
void ensure_sodium();

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

Digest sha256(std::string_view data);
Digest hmac_sha256(std::string_view key, std::string_view data);
// The HMAC of the parts' concatenation, without building it.
Digest hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts);
// RFC 5802 §2.2 Hi(): PBKDF2 with HMAC-SHA-256 and a 32-byte output.
Digest pbkdf2_sha256(std::string_view password, std::string_view salt, std::uint32_t iterations);

inline std::string_view as_view(const Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

}  // namespace auth
