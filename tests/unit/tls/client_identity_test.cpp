// client_identity_test.cpp — mutual TLS for SASL EXTERNAL: a context built with a client CA
// file asks for a certificate, verifies it against that CA only, and never fails the
// handshake over it; client_identity() then reports what verified and the names it holds.
// Real in-memory handshakes (BIO pairs) with certificates made here with the OpenSSL API: a
// client CA and its leaf (SAN email demo@localhost), and an unrelated CA with its own leaf.
#include "tls/client_identity.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <string>

#include "tls/dev_pki.h"
#include "tls/policy.h"
#include "tls_test_support.h"

namespace tls {
namespace {

using testing::Handshake;
using testing::run_handshake;
using testing::TempDir;

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Deleter {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

struct Issued {
  KeyPtr key;
  X509Ptr certificate;
};

void add_extension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  ASSERT_NE(extension, nullptr) << value;
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
}

// A P-256 certificate for `common_name`, signed by `issuer` (self-signed CA when null).
Issued issue(const char* common_name, const Issued* issuer, const char* alt_names = nullptr) {
  Issued out;
  out.key.reset(EVP_EC_gen("P-256"));
  out.certificate.reset(X509_new());
  X509* x = out.certificate.get();
  X509_set_version(x, X509_VERSION_3);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer->certificate.get() : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  X509_set_pubkey(x, out.key.get());
  if (issuer == nullptr) {
    add_extension(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(x, signer, NID_key_usage, "critical,digitalSignature");
    add_extension(x, signer, NID_ext_key_usage, "clientAuth");
    if (alt_names != nullptr) add_extension(x, signer, NID_subject_alt_name, alt_names);
  }
  add_extension(x, signer, NID_subject_key_identifier, "hash");
  X509_sign(x, issuer != nullptr ? issuer->key.get() : out.key.get(), EVP_sha256());
  return out;
}

void write_certificate(const std::string& path, X509* certificate) {
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr) << path;
  PEM_write_X509(file, certificate);
  std::fclose(file);
}

class ClientIdentityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto paths = ensure_dev_pki(dir_->path(), {"localhost"});
    ASSERT_TRUE(paths) << paths.error();
    paths_ = new DevPkiPaths(paths.value());
    client_ca_ = new Issued(issue("Test Client CA", nullptr));
    demo_ = new Issued(issue("demo", client_ca_, "email:demo@localhost,DNS:device.example"));
    other_ca_ = new Issued(issue("Other CA", nullptr));
    stranger_ = new Issued(issue("demo", other_ca_, "email:demo@localhost"));
    write_certificate(dir_->file("client-ca.pem"), client_ca_->certificate.get());
  }
  static void TearDownTestSuite() {
    delete demo_;
    delete stranger_;
    delete client_ca_;
    delete other_ca_;
    delete paths_;
    delete dir_;
  }

  static SslCtxPtr server(const std::string& client_ca = dir_->file("client-ca.pem")) {
    auto ctx = make_server_context(Policy{}, {{paths_->ecdsa_chain, paths_->ecdsa_key}}, client_ca);
    EXPECT_TRUE(ctx) << ctx.error();
    return ctx ? std::move(ctx.value()) : nullptr;
  }
  static SslCtxPtr client() {
    auto ctx = make_client_context(paths_->ca_certificate);
    EXPECT_TRUE(ctx) << ctx.error();
    return ctx ? std::move(ctx.value()) : nullptr;
  }
  // Handshake where the client presents `who` (nothing when null), at most `max_version`.
  static Handshake connect(SSL_CTX* server_ctx, const Issued* who,
                           int max_version = TLS1_3_VERSION) {
    auto client_ctx = client();
    return run_handshake(server_ctx, client_ctx.get(), [who, max_version](SSL* ssl) {
      SSL_set1_host(ssl, "localhost");
      SSL_set_max_proto_version(ssl, max_version);
      if (who != nullptr) {
        SSL_use_certificate(ssl, who->certificate.get());
        SSL_use_PrivateKey(ssl, who->key.get());
      }
    });
  }

  static inline TempDir* dir_ = nullptr;
  static inline DevPkiPaths* paths_ = nullptr;
  static inline Issued* client_ca_ = nullptr;
  static inline Issued* demo_ = nullptr;
  static inline Issued* other_ca_ = nullptr;
  static inline Issued* stranger_ = nullptr;
};

TEST_F(ClientIdentityTest, CertificateFromTheClientCaVerifies) {
  auto server_ctx = server();
  for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    Handshake handshake = connect(server_ctx.get(), demo_, version);
    ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
    ClientIdentity identity = client_identity(handshake.server.get());
    EXPECT_TRUE(identity.presented);
    EXPECT_TRUE(identity.verified) << identity.verify_error;
    EXPECT_EQ(identity.subject_cn, "demo");
    EXPECT_EQ(identity.email_sans, std::vector<std::string>{"demo@localhost"});
    EXPECT_EQ(identity.dns_sans, std::vector<std::string>{"device.example"});
  }
}

TEST_F(ClientIdentityTest, CertificateFromAnotherCaConnectsButDoesNotVerify) {
  auto server_ctx = server();
  Handshake handshake = connect(server_ctx.get(), stranger_);
  ASSERT_TRUE(handshake.ok) << "a bad client certificate must not cost the connection: "
                            << handshake.client_error << " / " << handshake.server_error;
  ClientIdentity identity = client_identity(handshake.server.get());
  EXPECT_TRUE(identity.presented);
  EXPECT_FALSE(identity.verified);
  EXPECT_FALSE(identity.verify_error.empty());
  EXPECT_EQ(identity.email_sans, std::vector<std::string>{"demo@localhost"})
      << "names are read, but only verified ones may be used";
}

TEST_F(ClientIdentityTest, SelfSignedCertificateDoesNotVerify) {
  auto server_ctx = server();
  Handshake handshake = connect(server_ctx.get(), other_ca_);
  ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
  ClientIdentity identity = client_identity(handshake.server.get());
  EXPECT_TRUE(identity.presented);
  EXPECT_FALSE(identity.verified);
}

TEST_F(ClientIdentityTest, NoCertificateStillConnects) {
  auto server_ctx = server();
  Handshake handshake = connect(server_ctx.get(), nullptr);
  ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
  ClientIdentity identity = client_identity(handshake.server.get());
  EXPECT_FALSE(identity.presented);
  EXPECT_FALSE(identity.verified) << "X509_V_OK without a certificate must not count";
  EXPECT_EQ(identity.verify_error, "no client certificate");
  EXPECT_FALSE(client_identity(nullptr).verified);
}

TEST_F(ClientIdentityTest, ServerNamesTheClientCa) {
  auto server_ctx = server();
  Handshake handshake = connect(server_ctx.get(), nullptr);
  ASSERT_TRUE(handshake.ok);
  const STACK_OF(X509_NAME)* names = SSL_get0_peer_CA_list(handshake.client.get());
  ASSERT_NE(names, nullptr);
  ASSERT_EQ(sk_X509_NAME_num(names), 1);
  EXPECT_EQ(X509_NAME_cmp(sk_X509_NAME_value(names, 0),
                          X509_get_subject_name(client_ca_->certificate.get())),
            0);
}

TEST_F(ClientIdentityTest, WithoutClientCaNoCertificateIsAskedFor) {
  auto server_ctx = server("");
  Handshake handshake = connect(server_ctx.get(), demo_);
  ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
  ClientIdentity identity = client_identity(handshake.server.get());
  EXPECT_FALSE(identity.presented);
  EXPECT_FALSE(identity.verified);
}

TEST_F(ClientIdentityTest, BadClientCaFileIsAnError) {
  auto missing = make_server_context(Policy{}, {{paths_->ecdsa_chain, paths_->ecdsa_key}},
                                     dir_->file("missing.pem"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("missing.pem"), std::string::npos) << missing.error();
  // A key file is PEM but holds no certificate.
  auto key_only =
      make_server_context(Policy{}, {{paths_->ecdsa_chain, paths_->ecdsa_key}}, paths_->ecdsa_key);
  ASSERT_FALSE(key_only);
  EXPECT_NE(key_only.error().find(paths_->ecdsa_key), std::string::npos) << key_only.error();
}

}  // namespace
}  // namespace tls
