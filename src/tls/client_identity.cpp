// client_identity.cpp — reads the verified client certificate of a TLS session.
// RFC 5280 §4.2.1.6 (subjectAltName: rfc822Name and dNSName are IA5Strings), §4.1.2.6
// (subject); the chain was verified by OpenSSL during the handshake against the listener's
// client CA file (see make_server_context), with the "ssl_client" purpose, so a certificate
// whose extendedKeyUsage excludes clientAuth does not verify.
#include "tls/client_identity.h"

#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <optional>

namespace tls {
namespace {

// An IA5String (or any ASN1_STRING of single-byte text) as a std::string, unless it is empty
// or holds a NUL byte.
std::optional<std::string> ia5_text(const ASN1_STRING* value) {
  if (value == nullptr) return std::nullopt;
  const unsigned char* data = ASN1_STRING_get0_data(value);
  const int length = ASN1_STRING_length(value);
  if (data == nullptr || length <= 0) return std::nullopt;
  if (std::memchr(data, '\0', static_cast<std::size_t>(length)) != nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(length));
}

// The commonName of the subject as UTF-8, when there is exactly one (two CNs are ambiguous,
// and an ambiguous name never identifies anyone).
std::string single_common_name(X509* certificate) {
  const X509_NAME* subject = X509_get_subject_name(certificate);
  if (subject == nullptr) return {};
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) return {};
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length <= 0 || utf8 == nullptr) return {};
  std::string text(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  if (text.find('\0') != std::string::npos) return {};
  return text;
}

void read_alt_names(X509* certificate, ClientIdentity& identity) {
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_EMAIL) {
      if (auto text = ia5_text(name->d.rfc822Name)) identity.email_sans.push_back(*text);
    } else if (name->type == GEN_DNS) {
      if (auto text = ia5_text(name->d.dNSName)) identity.dns_sans.push_back(*text);
    }
  }
  GENERAL_NAMES_free(names);
}

}  // namespace

ClientIdentity client_identity(const SSL* ssl) {
  ClientIdentity identity;
  X509* certificate = ssl != nullptr ? SSL_get0_peer_certificate(ssl) : nullptr;
  if (certificate == nullptr) {
    identity.verify_error = "no client certificate";
    return identity;
  }
  identity.presented = true;
  // The verify callback of make_server_context accepts every certificate so that a bad one
  // only costs EXTERNAL, not the connection; OpenSSL keeps the error it met here.
  const long result = SSL_get_verify_result(ssl);
  identity.verified = result == X509_V_OK;
  if (!identity.verified) identity.verify_error = X509_verify_cert_error_string(result);
  identity.subject_cn = single_common_name(certificate);
  read_alt_names(certificate, identity);
  return identity;
}

}  // namespace tls
