// tls_test_support.h — helpers for the tls unit tests: a temporary directory and real TLS
// handshakes run in memory between two SSL objects joined by a BIO pair (no sockets).
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "tls/openssl_error.h"
#include "tls/policy.h"

namespace tls::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "smtpsd-tls-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code error;
    if (!path_.empty()) std::filesystem::remove_all(path_, error);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

struct SessionDeleter {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionDeleter>;

struct Handshake {
  SslPtr client;
  SslPtr server;
  bool ok = false;
  std::string client_error;  // last_error_reason() where the client failed
  std::string server_error;
};

// Runs a handshake between a fresh server and a fresh client SSL. `configure_client` may
// restrict the client (versions, sigalgs, expected host name) before the first flight.
// After success the client reads once so that TLS 1.3 NewSessionTicket messages are taken in.
inline Handshake run_handshake(SSL_CTX* server_ctx, SSL_CTX* client_ctx,
                               const std::function<void(SSL*)>& configure_client = {},
                               SSL_SESSION* resume = nullptr) {
  Handshake result;
  result.server.reset(SSL_new(server_ctx));
  result.client.reset(SSL_new(client_ctx));
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
  SSL_set_bio(result.client.get(), client_bio, client_bio);
  SSL_set_bio(result.server.get(), server_bio, server_bio);
  SSL_set_connect_state(result.client.get());
  SSL_set_accept_state(result.server.get());
  SSL_set_tlsext_host_name(result.client.get(), "localhost");
  if (resume != nullptr) SSL_set_session(result.client.get(), resume);
  if (configure_client) configure_client(result.client.get());

  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 50 && !(client_done && server_done); ++round) {
    if (!client_done) {
      const int rc = SSL_do_handshake(result.client.get());
      if (rc == 1) {
        client_done = true;
      } else {
        const int error = SSL_get_error(result.client.get(), rc);
        if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
          result.client_error = last_error_reason();
          // Let the server take in the alert, if any, to report its side too.
          SSL_do_handshake(result.server.get());
          result.server_error = last_error_reason();
          return result;
        }
      }
    }
    if (!server_done) {
      const int rc = SSL_do_handshake(result.server.get());
      if (rc == 1) {
        server_done = true;
      } else {
        const int error = SSL_get_error(result.server.get(), rc);
        if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
          result.server_error = last_error_reason();
          SSL_do_handshake(result.client.get());
          result.client_error = last_error_reason();
          return result;
        }
      }
    }
  }
  result.ok = client_done && server_done;
  if (result.ok) {
    char byte;
    SSL_read(result.client.get(), &byte, 1);  // WANT_READ; processes session tickets
    ERR_clear_error();
  }
  return result;
}

}  // namespace tls::testing
