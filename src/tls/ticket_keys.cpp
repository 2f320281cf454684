// ticket_keys.cpp — TicketKeys (ticket_keys.h) and its OpenSSL ticket callback.
//
// The callback follows SSL_CTX_set_tlsext_ticket_key_evp_cb(3): on sealing (enc=1) it fills
// the key name and a random IV and readies AES-256-CBC and HMAC-SHA-256 with the current
// key; on opening it returns 0 for a name it does not know (full handshake), else 2: accept
// and issue a new ticket. Always renewed: OpenSSL sends a resumed TLS 1.3 connection a new
// ticket only then, and a TLS 1.3 client should use each ticket once (RFC 8446 §C.4), so
// without it every other connection would make a full handshake; a ticket sealed with the
// previous key is also replaced by one under the current key that way.
#include "tls/ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>

#include "tls/openssl_error.h"

namespace tls {
namespace {

TicketKeys::Key random_key() {
  TicketKeys::Key key;
  if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
      RAND_bytes(key.hmac.data(), static_cast<int>(key.hmac.size())) != 1 ||
      RAND_bytes(key.aes.data(), static_cast<int>(key.aes.size())) != 1) {
    std::abort();  // no randomness: nothing here can be sealed safely
  }
  return key;
}

void wipe(TicketKeys::Key& key) {
  OPENSSL_cleanse(&key, sizeof key);
}

int ex_data_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

bool ready_mac(EVP_MAC_CTX* mac, TicketKeys::Key& key) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac.data(), key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  return EVP_MAC_CTX_set_params(mac, params) == 1;
}

// AES-256-CBC fetched once: EVP_aes_256_cbc() would make every ticket look the cipher up
// again in the provider (OpenSSL 3's implicit fetch).
const EVP_CIPHER* ticket_cipher() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

int on_ticket(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
              EVP_MAC_CTX* mac, int enc) {
  auto* keys = static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_data_index()));
  if (keys == nullptr) return -1;
  if (enc == 1) {
    TicketKeys::Key key = keys->for_sealing();
    int ok = RAND_bytes(iv, EVP_MAX_IV_LENGTH) == 1 &&
             EVP_EncryptInit_ex(cipher, ticket_cipher(), nullptr, key.aes.data(), iv) == 1 &&
             ready_mac(mac, key);
    std::copy(key.name.begin(), key.name.end(), key_name);
    wipe(key);
    return ok ? 1 : -1;
  }
  std::optional<TicketKeys::Key> key =
      keys->for_opening(std::span<const unsigned char, 16>(key_name, 16));
  if (!key) return 0;
  int ok = EVP_DecryptInit_ex(cipher, ticket_cipher(), nullptr, key->aes.data(), iv) == 1 &&
           ready_mac(mac, *key);
  wipe(*key);
  return ok ? 2 : -1;
}

}  // namespace

TicketKeys::TicketKeys(std::chrono::seconds rotation, Clock clock)
    : rotation_(rotation),
      clock_(std::move(clock)),
      current_(random_key()),
      current_since_(clock_()) {}

TicketKeys::~TicketKeys() {
  wipe(current_);
  if (previous_) wipe(*previous_);
}

void TicketKeys::rotate_if_due_locked() {
  const auto now = clock_();
  if (now - current_since_ < rotation_) return;
  if (previous_) wipe(*previous_);
  if (now - current_since_ >= 2 * rotation_) {
    // Idle for two periods: the current key is too old to keep even for opening.
    previous_.reset();
    wipe(current_);
  } else {
    previous_ = current_;
  }
  current_ = random_key();
  current_since_ = now;
}

TicketKeys::Key TicketKeys::for_sealing() {
  std::lock_guard lock(mutex_);
  rotate_if_due_locked();
  return current_;
}

std::optional<TicketKeys::Key> TicketKeys::for_opening(std::span<const unsigned char, 16> name) {
  std::lock_guard lock(mutex_);
  rotate_if_due_locked();
  if (std::equal(name.begin(), name.end(), current_.name.begin())) return current_;
  if (previous_ && std::equal(name.begin(), name.end(), previous_->name.begin())) {
    return previous_;
  }
  return std::nullopt;
}

base::Expected<base::Ok, std::string> TicketKeys::install(SSL_CTX* ctx) {
  if (ex_data_index() < 0 || SSL_CTX_set_ex_data(ctx, ex_data_index(), this) != 1 ||
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &on_ticket) != 1) {
    return base::unexpected("tls: cannot install the session ticket keys: " + last_error_reason());
  }
  return base::Ok{};
}

}  // namespace tls
