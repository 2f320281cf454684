// openssl_error.cpp — see openssl_error.h.
#include "tls/openssl_error.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>

namespace tls {

std::string last_error_reason() {
  // The reason texts are loaded on first use of libssl; a failure that happens before any
  // context exists (or in a process that never made one) would otherwise read "reason(193)".
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, nullptr);
  std::string reason;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    if (!reason.empty()) continue;
    if (ERR_SYSTEM_ERROR(code)) {
      // errno recorded by OpenSSL (fopen and friends); its reason table has no text for it.
      reason = std::strerror(static_cast<int>(ERR_GET_REASON(code)));
    } else if (const char* text = ERR_reason_error_string(code); text != nullptr) {
      reason = text;
    } else {
      char buffer[256];
      ERR_error_string_n(code, buffer, sizeof buffer);
      reason = buffer;
    }
  }
  return reason.empty() ? "unknown OpenSSL error" : reason;
}

}  // namespace tls
