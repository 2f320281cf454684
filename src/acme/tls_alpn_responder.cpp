// tls_alpn_responder.cpp — see tls_alpn_responder.h.
#include "acme/tls_alpn_responder.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "acme/http01_responder.h"
#include "base/ascii.h"
#include "obs/log.h"
#include "tls/openssl_error.h"

namespace acme {
namespace {

constexpr const char* kAcmeIdentifierOid = "1.3.6.1.5.5.7.1.31";  // RFC 8737 §6.1

// A name the CA asks about: letters, digits, '-' and '.', as RFC 8555 §7.1.4 identifiers of
// type "dns" are (no wildcard: tls-alpn-01 cannot validate one, RFC 8737 §3).
bool plain_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Whether the ALPN extension's ProtocolNameList (RFC 7301 §3.1) names "acme-tls/1".
bool offers_acme_tls(const unsigned char* data, std::size_t size) {
  if (size < 2) return false;
  const std::size_t list = static_cast<std::size_t>(data[0]) << 8 | data[1];
  if (list + 2 != size) return false;
  const std::string_view wanted = TlsAlpnResponder::kProtocol;
  for (std::size_t at = 2; at < size;) {
    const std::size_t length = data[at];
    if (at + 1 + length > size) return false;
    if (std::string_view(reinterpret_cast<const char*>(data + at + 1), length) == wanted)
      return true;
    at += 1 + length;
  }
  return false;
}

int select_acme_tls(SSL*, const unsigned char** out, unsigned char* out_length,
                    const unsigned char* in, unsigned int in_length, void*) {
  // RFC 8737 §3: "acme-tls/1" and nothing else.
  for (unsigned int at = 0; at < in_length;) {
    const unsigned int length = in[at];
    if (at + 1 + length > in_length) break;
    if (std::string_view(reinterpret_cast<const char*>(in + at + 1), length) ==
        TlsAlpnResponder::kProtocol) {
      *out = in + at + 1;
      *out_length = static_cast<unsigned char>(length);
      return SSL_TLSEXT_ERR_OK;
    }
    at += 1 + length;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

base::Expected<tls::X509Ptr, std::string> make_tls_alpn_certificate(
    const std::string& name, const std::string& key_authorization, EVP_PKEY* key) {
  if (!plain_dns_name(name)) return base::unexpected("not a DNS name: " + name);
  tls::X509Ptr certificate(X509_new());
  if (!certificate) return base::unexpected(std::string("cannot make a certificate"));
  X509_set_version(certificate.get(), 2);
  unsigned char serial_bytes[16];
  RAND_bytes(serial_bytes, sizeof(serial_bytes));
  serial_bytes[0] &= 0x7f;  // a positive INTEGER
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate.get()));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 7 * 86400);
  X509_NAME* subject = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("ACME tls-alpn-01 challenge"),
                             -1, -1, 0);
  X509_set_issuer_name(certificate.get(), subject);
  // §3: exactly one subjectAltName entry, the dNSName being validated.
  GENERAL_NAMES* names = GENERAL_NAMES_new();
  GENERAL_NAME* entry = GENERAL_NAME_new();
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  ASN1_STRING_set(text, name.data(), static_cast<int>(name.size()));
  GENERAL_NAME_set0_value(entry, GEN_DNS, text);
  sk_GENERAL_NAME_push(names, entry);
  const int san = X509_add1_ext_i2d(certificate.get(), NID_subject_alt_name, names, 0, 0);
  GENERAL_NAMES_free(names);
  // §3: the critical acmeIdentifier extension, its extnValue the DER of an OCTET STRING
  // (§6.1: Authorization ::= OCTET STRING (SIZE (32))) holding SHA-256(key authorization).
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  EVP_Digest(key_authorization.data(), key_authorization.size(), digest, &digest_size, EVP_sha256(),
             nullptr);
  ASN1_OCTET_STRING* inner = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(inner, digest, static_cast<int>(digest_size));
  unsigned char* der = nullptr;
  const int der_size = i2d_ASN1_OCTET_STRING(inner, &der);
  ASN1_OCTET_STRING_free(inner);
  ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(value, der, der_size);
  OPENSSL_free(der);
  ASN1_OBJECT* oid = OBJ_txt2obj(kAcmeIdentifierOid, 1);
  X509_EXTENSION* extension = X509_EXTENSION_create_by_OBJ(nullptr, oid, 1, value);
  ASN1_OBJECT_free(oid);
  ASN1_OCTET_STRING_free(value);
  const bool added = extension != nullptr && X509_add_ext(certificate.get(), extension, -1) == 1;
  X509_EXTENSION_free(extension);
  if (san != 1 || !added || X509_set_pubkey(certificate.get(), key) != 1 ||
      X509_sign(certificate.get(), key, EVP_sha256()) == 0) {
    return base::unexpected("cannot make the tls-alpn-01 certificate: " + tls::last_error_reason());
  }
  return certificate;
}

base::Expected<std::unique_ptr<TlsAlpnResponder>, std::string> TlsAlpnResponder::bind(
    const std::string& address, std::uint16_t port) {
  auto listener = listen_on(address, port, "tls-alpn-01 responder");
  if (!listener) return base::unexpected(listener.error());
  tls::KeyPtr key(EVP_EC_gen("P-256"));
  SSL_CTX* context = SSL_CTX_new(TLS_server_method());
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!key || context == nullptr || wake < 0) {
    ::close(listener->fd);
    if (wake >= 0) ::close(wake);
    SSL_CTX_free(context);
    return base::unexpected("tls-alpn-01 responder: cannot set up TLS: " +
                            tls::last_error_reason());
  }
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
  SSL_CTX_set_alpn_select_cb(context, select_acme_tls, nullptr);
  auto* responder =
      new TlsAlpnResponder(listener->fd, wake, listener->port, std::move(key), context);
  SSL_CTX_set_client_hello_cb(context, on_client_hello, responder);
  SSL_CTX_set_tlsext_servername_callback(context, on_server_name);
  SSL_CTX_set_tlsext_servername_arg(context, responder);
  return std::unique_ptr<TlsAlpnResponder>(responder);
}

TlsAlpnResponder::TlsAlpnResponder(int listen_fd, int wake_fd, std::uint16_t port, tls::KeyPtr key,
                                   SSL_CTX* context)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      key_(std::move(key)),
      context_(context) {}

TlsAlpnResponder::~TlsAlpnResponder() {
  stop();
  ::close(listen_fd_);
  ::close(wake_fd_);
  SSL_CTX_free(context_);
}

void TlsAlpnResponder::start() {
  thread_ = std::thread([this] { run(); });
}

void TlsAlpnResponder::stop() {
  stopping_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

base::Expected<base::Ok, std::string> TlsAlpnResponder::publish(
    const std::string& name, const std::string& key_authorization) {
  auto certificate = make_tls_alpn_certificate(name, key_authorization, key_.get());
  if (!certificate) return base::unexpected(certificate.error());
  std::lock_guard lock(mutex_);
  certificates_[base::ascii_lowercase(name)] =
      std::shared_ptr<X509>(certificate->release(), X509_free);
  return base::Ok{};
}

void TlsAlpnResponder::withdraw(const std::string& name) {
  std::lock_guard lock(mutex_);
  certificates_.erase(base::ascii_lowercase(name));
}

int TlsAlpnResponder::on_client_hello(SSL* ssl, int* alert, void*) {
  // Before anything else: a ClientHello that does not offer "acme-tls/1" is not the CA's
  // (RFC 8737 §3), and one without ALPN would otherwise get a handshake.
  const unsigned char* data = nullptr;
  std::size_t size = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &data,
                                &size) != 1 ||
      !offers_acme_tls(data, size)) {
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

int TlsAlpnResponder::on_server_name(SSL* ssl, int* alert, void* self) {
  auto* responder = static_cast<TlsAlpnResponder*>(self);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::shared_ptr<X509> certificate;
  if (name != nullptr) {
    std::lock_guard lock(responder->mutex_);
    if (auto found = responder->certificates_.find(base::ascii_lowercase(name));
        found != responder->certificates_.end())
      certificate = found->second;
  }
  if (!certificate || SSL_use_certificate(ssl, certificate.get()) != 1 ||
      SSL_use_PrivateKey(ssl, responder->key_.get()) != 1) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

namespace {

// One handshake under way: its socket, its TLS state, its deadline and what it waits for.
struct Handshake {
  int fd;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl;
  std::chrono::steady_clock::time_point deadline;
  short events = POLLIN;
};

// One step of the handshake; false when it is over (done, refused or broken).
bool advance(Handshake& handshake) {
  const int done = SSL_accept(handshake.ssl.get());
  if (done == 1) {
    // §3: the handshake is the whole conversation.
    SSL_shutdown(handshake.ssl.get());
    return false;
  }
  const int error = SSL_get_error(handshake.ssl.get(), done);
  if (error == SSL_ERROR_WANT_READ) {
    handshake.events = POLLIN;
    return true;
  }
  if (error == SSL_ERROR_WANT_WRITE) {
    handshake.events = POLLOUT;
    return true;
  }
  tls::last_error_reason();  // a refused handshake leaves its reason: not ours to keep
  return false;
}

}  // namespace

void TlsAlpnResponder::run() {
  std::vector<Handshake> open;
  auto finish = [&](std::size_t index) {
    ::close(open[index].fd);
    open.erase(open.begin() + static_cast<std::ptrdiff_t>(index));
  };
  std::vector<pollfd> waiting;
  while (!stopping_) {
    waiting.assign({{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
    auto now = std::chrono::steady_clock::now();
    int timeout = -1;
    for (const Handshake& handshake : open) {
      waiting.push_back({handshake.fd, handshake.events, 0});
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(handshake.deadline - now);
      const int ms = static_cast<int>(std::max<std::int64_t>(left.count(), 0)) + 1;
      timeout = timeout < 0 ? ms : std::min(timeout, ms);
    }
    if (::poll(waiting.data(), waiting.size(), timeout) < 0) {
      if (errno == EINTR) continue;
      obs::Log("acme_tls_alpn_failed", obs::Level::kError).kv("error", std::strerror(errno));
      break;
    }
    if (stopping_) break;
    // Backwards, so that finishing one leaves the indexes of the others as polled.
    now = std::chrono::steady_clock::now();
    for (std::size_t i = open.size(); i-- > 0;) {
      if (now >= open[i].deadline) {
        finish(i);
      } else if (waiting[i + 2].revents != 0 && !advance(open[i])) {
        finish(i);
      }
    }
    if (waiting[0].revents == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: pause instead of a poll that wakes at once, forever.
      if (errno == EMFILE || errno == ENFILE) ::poll(nullptr, 0, 100);
      continue;
    }
    // Full: the oldest goes (a client that holds connections open cannot keep the CA out).
    if (open.size() >= kMaxHandshakes) finish(0);
    Handshake handshake{fd, {SSL_new(context_), SSL_free}, now + kHandshakeTimeout};
    if (!handshake.ssl || SSL_set_fd(handshake.ssl.get(), fd) != 1) {
      ::close(fd);
      continue;
    }
    open.push_back(std::move(handshake));
    if (!advance(open.back())) finish(open.size() - 1);
  }
  while (!open.empty())
    finish(open.size() - 1);
}

}  // namespace acme
