// Tests for acme/tls_alpn_responder.cpp (RFC 8737): the challenge certificate (one dNSName,
// the critical acmeIdentifier with SHA-256 of the key authorization), and a real socket on its
// own thread that completes a handshake only for "acme-tls/1" and a name under way.
#include "acme/tls_alpn_responder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* kAuthorization = "token-abc.thumbprint-xyz";

struct Handshake {
  bool ok = false;
  std::string alpn;
  int alert = 0;  // the alert the server sent, when it refused
  tls::X509Ptr certificate;
};

int last_alert = 0;
void note_alert(const SSL*, int where, int value) {
  if ((where & SSL_CB_READ_ALERT) != 0) last_alert = value & 0xff;
}

// A TLS client: SNI name (none when empty), the ALPN protocols offered (wire format).
Handshake connect(std::uint16_t port, const std::string& name, const std::string& alpn_wire) {
  Handshake result;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(context);
  SSL_set_fd(ssl, fd);
  SSL_set_info_callback(ssl, note_alert);
  if (!name.empty()) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (!alpn_wire.empty())
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                        static_cast<unsigned>(alpn_wire.size()));
  last_alert = 0;
  result.ok = SSL_connect(ssl) == 1;
  result.alert = last_alert;
  if (result.ok) {
    const unsigned char* chosen = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl, &chosen, &length);
    result.alpn.assign(reinterpret_cast<const char*>(chosen), length);
    result.certificate.reset(SSL_get1_peer_certificate(ssl));
  }
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(context);
  ::close(fd);
  return result;
}

const std::string kAcmeTls = std::string("\x0a") + "acme-tls/1";
const std::string kH2 = std::string("\x02") + "h2";

void expect_challenge_certificate(X509* certificate, const std::string& name) {
  // Exactly one subjectAltName, the dNSName.
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_GENERAL_NAME_num(names), 1);
  const GENERAL_NAME* entry = sk_GENERAL_NAME_value(names, 0);
  ASSERT_EQ(entry->type, GEN_DNS);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(entry->d.dNSName)),
                        ASN1_STRING_length(entry->d.dNSName)),
            name);
  GENERAL_NAMES_free(names);
  // id-pe-acmeIdentifier, critical, extnValue = DER OCTET STRING (32) of SHA-256(keyAuth).
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  const int at = X509_get_ext_by_OBJ(certificate, oid, -1);
  ASN1_OBJECT_free(oid);
  ASSERT_GE(at, 0);
  X509_EXTENSION* extension = X509_get_ext(certificate, at);
  EXPECT_EQ(X509_EXTENSION_get_critical(extension), 1);
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(extension);
  unsigned char digest[32];
  unsigned int size = 0;
  EVP_Digest(kAuthorization, std::strlen(kAuthorization), digest, &size, EVP_sha256(), nullptr);
  std::string expected("\x04\x20", 2);
  expected.append(reinterpret_cast<const char*>(digest), size);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                        ASN1_STRING_length(value)),
            expected);
}

TEST(TlsAlpnResponderTest, TheCertificateOfRfc8737) {
  tls::KeyPtr key(EVP_EC_gen("P-256"));
  auto certificate = acme::make_tls_alpn_certificate("mx.example.org", kAuthorization, key.get());
  ASSERT_TRUE(certificate.has_value()) << certificate.error();
  expect_challenge_certificate(certificate->get(), "mx.example.org");
  EXPECT_FALSE(acme::make_tls_alpn_certificate("*.example.org", kAuthorization, key.get()));
  EXPECT_FALSE(acme::make_tls_alpn_certificate("a,DNS:b", kAuthorization, key.get()));
}

TEST(TlsAlpnResponderTest, HandshakesOnlyForAcmeTlsAndANameUnderWay) {
  std::signal(SIGPIPE, SIG_IGN);  // as smtpsd does: a peer that hangs up is no signal
  auto responder = acme::TlsAlpnResponder::bind("127.0.0.1", 0);
  ASSERT_TRUE(responder.has_value()) << responder.error();
  acme::TlsAlpnResponder& r = *responder.value();
  ASSERT_NE(r.port(), 0);
  r.start();
  // No challenge under way: unrecognized_name (112).
  Handshake none = connect(r.port(), "mx.example.org", kAcmeTls);
  EXPECT_FALSE(none.ok);
  EXPECT_EQ(none.alert, SSL_AD_UNRECOGNIZED_NAME);
  r.publish("MX.example.org", kAuthorization);
  Handshake good = connect(r.port(), "mx.example.org", kAcmeTls);
  ASSERT_TRUE(good.ok);
  EXPECT_EQ(good.alpn, "acme-tls/1");
  expect_challenge_certificate(good.certificate.get(), "MX.example.org");
  // acme-tls/1 among others is still the CA's; it is the one chosen.
  Handshake among = connect(r.port(), "mx.example.org", kH2 + kAcmeTls);
  ASSERT_TRUE(among.ok);
  EXPECT_EQ(among.alpn, "acme-tls/1");
  // Another protocol, or none: no_application_protocol (120), no certificate shown.
  Handshake h2 = connect(r.port(), "mx.example.org", kH2);
  EXPECT_FALSE(h2.ok);
  EXPECT_EQ(h2.alert, SSL_AD_NO_APPLICATION_PROTOCOL);
  Handshake plain = connect(r.port(), "mx.example.org", "");
  EXPECT_FALSE(plain.ok);
  EXPECT_EQ(plain.alert, SSL_AD_NO_APPLICATION_PROTOCOL);
  // Another name, or none at all.
  EXPECT_EQ(connect(r.port(), "other.example.org", kAcmeTls).alert, SSL_AD_UNRECOGNIZED_NAME);
  EXPECT_FALSE(connect(r.port(), "", kAcmeTls).ok);
  r.withdraw("mx.example.org");
  EXPECT_EQ(connect(r.port(), "mx.example.org", kAcmeTls).alert, SSL_AD_UNRECOGNIZED_NAME);
  r.stop();
}

}  // namespace

namespace {

// Clients that connect and say nothing: each held the old one-at-a-time responder for
// kHandshakeTimeout (20 of them: 40 s); the CA's handshake now goes through at once. More
// than kMaxHandshakes of them: the oldest are closed, the CA's still answered.
TEST(TlsAlpnResponderTest, SilentConnectionsDoNotDelayTheCasHandshake) {
  std::signal(SIGPIPE, SIG_IGN);  // as smtpsd does: a peer that hangs up is no signal
  auto responder = acme::TlsAlpnResponder::bind("127.0.0.1", 0);
  ASSERT_TRUE(responder.has_value()) << responder.error();
  acme::TlsAlpnResponder& r = *responder.value();
  ASSERT_TRUE(r.publish("mx.example.org", kAuthorization).has_value());
  r.start();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(r.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> idle;
  for (std::size_t i = 0; i < acme::TlsAlpnResponder::kMaxHandshakes + 6; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    idle.push_back(fd);
  }
  const auto started = std::chrono::steady_clock::now();
  Handshake handshake = connect(r.port(), "mx.example.org", kAcmeTls);
  EXPECT_LT(std::chrono::steady_clock::now() - started, acme::TlsAlpnResponder::kHandshakeTimeout);
  EXPECT_TRUE(handshake.ok);
  EXPECT_EQ(handshake.alpn, "acme-tls/1");
  ASSERT_TRUE(handshake.certificate);
  expect_challenge_certificate(handshake.certificate.get(), "mx.example.org");
  for (int fd : idle)
    ::close(fd);
  r.stop();
}

}  // namespace
