// policy_test.cpp — tls::Policy, validate() and the contexts built from it, checked with real
// in-memory handshakes (BIO pairs) against a development PKI made in a temporary directory.
#include "tls/policy.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>

#include "tls/dev_pki.h"
#include "tls_test_support.h"

namespace tls {
namespace {

using testing::Handshake;
using testing::run_handshake;
using testing::SessionPtr;
using testing::TempDir;

class PolicyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto paths = ensure_dev_pki(dir_->path(), {"localhost", "127.0.0.1", "::1"});
    ASSERT_TRUE(paths) << paths.error();
    paths_ = new DevPkiPaths(paths.value());
  }
  static void TearDownTestSuite() {
    delete paths_;
    delete dir_;
    paths_ = nullptr;
    dir_ = nullptr;
  }

  static std::vector<CertificatePair> both_pairs() {
    return {{paths_->ecdsa_chain, paths_->ecdsa_key}, {paths_->rsa_chain, paths_->rsa_key}};
  }
  static SslCtxPtr server(const Policy& policy = Policy{}) {
    auto ctx = make_server_context(policy, both_pairs());
    EXPECT_TRUE(ctx) << ctx.error();
    return ctx ? std::move(ctx.value()) : nullptr;
  }
  static SslCtxPtr client() {
    auto ctx = make_client_context(paths_->ca_certificate);
    EXPECT_TRUE(ctx) << ctx.error();
    return ctx ? std::move(ctx.value()) : nullptr;
  }
  static int peer_key_type(const Handshake& handshake) {
    X509* leaf = SSL_get0_peer_certificate(handshake.client.get());
    return leaf == nullptr ? 0 : EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
  }

  static TempDir* dir_;
  static DevPkiPaths* paths_;
};

TempDir* PolicyTest::dir_ = nullptr;
DevPkiPaths* PolicyTest::paths_ = nullptr;

TEST_F(PolicyTest, DefaultPolicyIsValid) {
  auto valid = validate(Policy{});
  EXPECT_TRUE(valid) << valid.error();
}

TEST_F(PolicyTest, DefaultHandshakeIsTls13AndVerified) {
  auto server_ctx = server();
  auto client_ctx = client();
  Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(),
                                      [](SSL* ssl) { SSL_set1_host(ssl, "localhost"); });
  ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
  EXPECT_EQ(SSL_get_verify_result(handshake.client.get()), X509_V_OK);
  SessionDescription description = describe(handshake.server.get());
  EXPECT_EQ(description.version, "TLSv1.3");
  EXPECT_EQ(description.cipher, "TLS_AES_256_GCM_SHA384");  // server preference, first listed
  EXPECT_EQ(description.sni, "localhost");
  EXPECT_FALSE(description.resumed);
  EXPECT_EQ(describe(handshake.client.get()).version, "TLSv1.3");
}

TEST_F(PolicyTest, Tls12ClientGetsEcdheAeadCipher) {
  auto server_ctx = server();
  auto client_ctx = client();
  Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(), [](SSL* ssl) {
    SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
  });
  ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
  EXPECT_EQ(describe(handshake.server.get()).version, "TLSv1.2");
  const SSL_CIPHER* cipher = SSL_get_current_cipher(handshake.server.get());
  ASSERT_NE(cipher, nullptr);
  EXPECT_EQ(SSL_CIPHER_get_kx_nid(cipher), NID_kx_ecdhe);
  EXPECT_EQ(SSL_CIPHER_is_aead(cipher), 1);
}

TEST_F(PolicyTest, ServerCipherPreferenceWinsInTls12) {
  auto server_ctx = server();
  auto client_ctx = client();
  Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(), [](SSL* ssl) {
    SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
    SSL_set_cipher_list(ssl, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384");
  });
  ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
  EXPECT_EQ(describe(handshake.server.get()).cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");
}

TEST_F(PolicyTest, Tls11ClientIsRefused) {
  auto server_ctx = server();
  auto client_ctx = client();
  // The client really offers TLS 1.1 (security level 0 lets it); the server must refuse.
  Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(), [](SSL* ssl) {
    SSL_set_security_level(ssl, 0);
    SSL_set_cipher_list(ssl, "DEFAULT:@SECLEVEL=0");
    SSL_set_min_proto_version(ssl, TLS1_VERSION);
    SSL_set_max_proto_version(ssl, TLS1_1_VERSION);
  });
  EXPECT_FALSE(handshake.ok);
  EXPECT_EQ(handshake.server_error, "unsupported protocol");
  EXPECT_FALSE(handshake.client_error.empty());
}

TEST_F(PolicyTest, UnsafeVersionsWorkOnlyWhenOptedIn) {
  // An administrator who sets allow_unsafe_tls_versions with min_version TLSv1 really gets
  // TLS 1.0 (with ECDHE CBC ciphers), while modern clients still get TLS 1.3.
  Policy policy;
  policy.min_version = "TLSv1";
  policy.allow_unsafe_tls_versions = true;
  ASSERT_TRUE(validate(policy).has_value());
  auto server_ctx = server(policy);
  auto client_ctx = client();
  Handshake old = run_handshake(server_ctx.get(), client_ctx.get(), [](SSL* ssl) {
    SSL_set_security_level(ssl, 0);
    SSL_set_cipher_list(ssl, "DEFAULT:@SECLEVEL=0");
    SSL_set_min_proto_version(ssl, TLS1_VERSION);
    SSL_set_max_proto_version(ssl, TLS1_VERSION);
  });
  ASSERT_TRUE(old.ok) << old.server_error << " / " << old.client_error;
  EXPECT_EQ(describe(old.server.get()).version, "TLSv1");
  EXPECT_NE(describe(old.server.get()).cipher.find("ECDHE"), std::string::npos);
  Handshake modern = run_handshake(server_ctx.get(), client_ctx.get());
  ASSERT_TRUE(modern.ok);
  EXPECT_EQ(describe(modern.server.get()).version, "TLSv1.3");
}

TEST_F(PolicyTest, Tls13OnlyPolicyRefusesTls12Client) {
  Policy policy;
  policy.min_version = "TLSv1.3";
  auto server_ctx = server(policy);
  auto client_ctx = client();
  Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(), [](SSL* ssl) {
    SSL_set_max_proto_version(ssl, TLS1_2_VERSION);
  });
  EXPECT_FALSE(handshake.ok);
  EXPECT_EQ(handshake.server_error, "unsupported protocol");
}

TEST_F(PolicyTest, EcdsaOnlyClientGetsEcdsaCertificate) {
  auto server_ctx = server();
  auto client_ctx = client();
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(), [&](SSL* ssl) {
      SSL_set_max_proto_version(ssl, version);
      SSL_set1_sigalgs_list(ssl, "ECDSA+SHA256");
    });
    ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
    EXPECT_EQ(peer_key_type(handshake), EVP_PKEY_EC) << version;
  }
}

TEST_F(PolicyTest, RsaOnlyClientGetsRsaCertificate) {
  auto server_ctx = server();
  auto client_ctx = client();
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(), [&](SSL* ssl) {
      SSL_set_max_proto_version(ssl, version);
      SSL_set1_sigalgs_list(ssl, "RSA-PSS+SHA256:RSA+SHA256");
    });
    ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
    EXPECT_EQ(peer_key_type(handshake), EVP_PKEY_RSA) << version;
  }
}

TEST_F(PolicyTest, FullChainIsPresentedForBothCertificates) {
  auto server_ctx = server();
  auto client_ctx = client();
  for (const char* sigalgs : {"ECDSA+SHA256", "RSA-PSS+SHA256"}) {
    Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(),
                                        [&](SSL* ssl) { SSL_set1_sigalgs_list(ssl, sigalgs); });
    ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
    // On the client side the chain includes the leaf: leaf + CA.
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(handshake.client.get());
    ASSERT_NE(chain, nullptr);
    EXPECT_EQ(sk_X509_num(chain), 2) << sigalgs;
  }
}

TEST_F(PolicyTest, HostNameVerification) {
  auto server_ctx = server();
  auto client_ctx = client();
  for (const char* name : {"localhost", "127.0.0.1", "::1"}) {
    Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(),
                                        [&](SSL* ssl) { SSL_set1_host(ssl, name); });
    EXPECT_TRUE(handshake.ok) << name << ": " << handshake.client_error;
    EXPECT_EQ(SSL_get_verify_result(handshake.client.get()), X509_V_OK) << name;
  }
  for (const char* name : {"example.com", "127.0.0.2"}) {
    Handshake handshake = run_handshake(server_ctx.get(), client_ctx.get(),
                                        [&](SSL* ssl) { SSL_set1_host(ssl, name); });
    EXPECT_FALSE(handshake.ok) << name;
    EXPECT_EQ(handshake.client_error, "certificate verify failed") << name;
    const long expected = std::string(name) == "example.com" ? X509_V_ERR_HOSTNAME_MISMATCH
                                                             : X509_V_ERR_IP_ADDRESS_MISMATCH;
    EXPECT_EQ(SSL_get_verify_result(handshake.client.get()), expected) << name;
  }
}

TEST_F(PolicyTest, ClientTrustingAnotherCaFails) {
  TempDir other_dir;
  auto other = ensure_dev_pki(other_dir.path(), {"localhost"});
  ASSERT_TRUE(other) << other.error();
  auto server_ctx = server();
  auto client_ctx = make_client_context(other->ca_certificate);
  ASSERT_TRUE(client_ctx) << client_ctx.error();
  Handshake handshake = run_handshake(server_ctx.get(), client_ctx->get());
  EXPECT_FALSE(handshake.ok);
  EXPECT_EQ(handshake.client_error, "certificate verify failed");
}

// Connects twice with the session of the first connection; returns whether the second resumed.
std::optional<bool> second_connection_resumes(SSL_CTX* server_ctx, SSL_CTX* client_ctx,
                                              int max_version) {
  auto limit = [&](SSL* ssl) { SSL_set_max_proto_version(ssl, max_version); };
  Handshake first = run_handshake(server_ctx, client_ctx, limit);
  if (!first.ok) return std::nullopt;
  SessionPtr session(SSL_get1_session(first.client.get()));
  if (!session) return std::nullopt;
  Handshake second = run_handshake(server_ctx, client_ctx, limit, session.get());
  if (!second.ok) return std::nullopt;
  EXPECT_EQ(describe(second.server.get()).resumed, SSL_session_reused(second.client.get()) == 1);
  return describe(second.server.get()).resumed;
}

TEST_F(PolicyTest, SessionTicketsResume) {
  auto server_ctx = server();
  auto client_ctx = client();
  EXPECT_EQ(second_connection_resumes(server_ctx.get(), client_ctx.get(), TLS1_3_VERSION), true);
  EXPECT_EQ(second_connection_resumes(server_ctx.get(), client_ctx.get(), TLS1_2_VERSION), true);
}

TEST_F(PolicyTest, NoResumptionWithoutTickets) {
  Policy policy;
  policy.session_tickets = false;
  auto server_ctx = server(policy);
  auto client_ctx = client();
  EXPECT_EQ(second_connection_resumes(server_ctx.get(), client_ctx.get(), TLS1_3_VERSION), false);
  EXPECT_EQ(second_connection_resumes(server_ctx.get(), client_ctx.get(), TLS1_2_VERSION), false);
}

TEST_F(PolicyTest, ServerContextOptions) {
  auto server_ctx = server();
  const uint64_t options = SSL_CTX_get_options(server_ctx.get());
  EXPECT_NE(options & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(options & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_NE(options & SSL_OP_CIPHER_SERVER_PREFERENCE, 0u);
  EXPECT_EQ(options & SSL_OP_NO_TICKET, 0u);
  EXPECT_NE(SSL_CTX_get_mode(server_ctx.get()) & SSL_MODE_RELEASE_BUFFERS, 0u);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(server_ctx.get()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(server_ctx.get()), TLS1_3_VERSION);
  EXPECT_GT(SSL_CTX_get_num_tickets(server_ctx.get()), 0u);

  Policy policy;
  policy.session_tickets = false;
  policy.prefer_server_ciphers = false;
  auto quiet_ctx = server(policy);
  EXPECT_NE(SSL_CTX_get_options(quiet_ctx.get()) & SSL_OP_NO_TICKET, 0u);
  EXPECT_EQ(SSL_CTX_get_options(quiet_ctx.get()) & SSL_OP_CIPHER_SERVER_PREFERENCE, 0u);
  EXPECT_EQ(SSL_CTX_get_num_tickets(quiet_ctx.get()), 0u);
}

TEST(PolicyValidate, RefusesUnsafeVersionWithoutFlag) {
  Policy policy;
  for (const char* version : {"TLSv1", "TLSv1.1"}) {
    policy.min_version = version;
    policy.allow_unsafe_tls_versions = false;
    auto refused = validate(policy);
    ASSERT_FALSE(refused) << version;
    EXPECT_NE(refused.error().find(version), std::string::npos) << refused.error();
    EXPECT_NE(refused.error().find("allow_unsafe_tls_versions"), std::string::npos);
    policy.allow_unsafe_tls_versions = true;
    EXPECT_TRUE(validate(policy)) << version;
  }
}

TEST(PolicyValidate, RefusesUnknownVersion) {
  Policy policy;
  for (const char* version : {"SSLv3", "TLSv1.4", "", "tlsv1.2"}) {
    policy.min_version = version;
    policy.allow_unsafe_tls_versions = true;
    auto refused = validate(policy);
    ASSERT_FALSE(refused) << version;
    EXPECT_NE(refused.error().find("unknown min_version"), std::string::npos) << refused.error();
  }
}

TEST(PolicyValidate, RefusesCipherWithoutForwardSecrecy) {
  Policy policy;
  policy.ciphers = "ECDHE-RSA-AES256-GCM-SHA384:AES256-SHA";
  auto refused = validate(policy);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("AES256-SHA"), std::string::npos) << refused.error();
  EXPECT_NE(refused.error().find("forward secrecy"), std::string::npos) << refused.error();

  policy.ciphers = "DHE-RSA-AES256-GCM-SHA384";
  EXPECT_FALSE(validate(policy));
}

TEST(PolicyValidate, RefusesNonAeadCipher) {
  Policy policy;
  policy.ciphers = "ECDHE-RSA-AES256-SHA";
  auto refused = validate(policy);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("ECDHE-RSA-AES256-SHA"), std::string::npos) << refused.error();
  EXPECT_NE(refused.error().find("not AEAD"), std::string::npos) << refused.error();
}

TEST(PolicyValidate, RefusesPskCipher) {
  Policy policy;
  policy.ciphers = "ECDHE-PSK-CHACHA20-POLY1305";
  auto refused = validate(policy);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("ECDSA or RSA"), std::string::npos) << refused.error();
}

TEST(PolicyValidate, RefusesCipherStringThatSelectsNothing) {
  Policy policy;
  policy.ciphers = "NO-SUCH-CIPHER";
  auto refused = validate(policy);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("selects no cipher"), std::string::npos) << refused.error();
  policy.ciphers = "";
  EXPECT_FALSE(validate(policy));
  // With TLS 1.3 as the floor no TLS 1.2 list is needed.
  policy.min_version = "TLSv1.3";
  EXPECT_TRUE(validate(policy));
}

TEST(PolicyValidate, RefusesBadCiphersuitesAndGroups) {
  Policy policy;
  policy.ciphersuites = "TLS_AES_256_GCM_SHA384:TLS_NO_SUCH_SUITE";
  auto refused = validate(policy);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("TLS_NO_SUCH_SUITE"), std::string::npos) << refused.error();
  policy.ciphersuites = "";
  EXPECT_FALSE(validate(policy));

  policy = Policy{};
  policy.groups = "X25519:no-such-group";
  refused = validate(policy);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("groups"), std::string::npos) << refused.error();
  EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left dirty";
}

TEST_F(PolicyTest, MakeServerContextRefusesInvalidPolicy) {
  Policy policy;
  policy.min_version = "TLSv1";
  auto ctx = make_server_context(policy, both_pairs());
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().find("TLSv1"), std::string::npos);
}

TEST_F(PolicyTest, MissingCertificateFileIsNamed) {
  const std::string missing = dir_->file("missing.pem");
  auto ctx = make_server_context(Policy{}, {{missing, paths_->ecdsa_key}});
  ASSERT_FALSE(ctx);
  EXPECT_EQ(ctx.error(), "tls: cannot load certificate " + missing + ": No such file or directory");
  EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left dirty";
}

TEST_F(PolicyTest, MissingKeyFileIsNamed) {
  const std::string missing = dir_->file("missing.key");
  auto ctx = make_server_context(Policy{}, {{paths_->ecdsa_chain, missing}});
  ASSERT_FALSE(ctx);
  EXPECT_EQ(ctx.error(), "tls: cannot load key " + missing + ": No such file or directory");
}

TEST_F(PolicyTest, MismatchedKeyIsNamed) {
  // Same key type, another key: OpenSSL compares the public halves.
  TempDir other_dir;
  auto other = ensure_dev_pki(other_dir.path(), {"localhost"});
  ASSERT_TRUE(other) << other.error();
  auto ctx = make_server_context(Policy{}, {{paths_->ecdsa_chain, other->ecdsa_key}});
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().find("tls: key " + other->ecdsa_key + " does not match certificate " +
                             paths_->ecdsa_chain),
            std::string::npos)
      << ctx.error();
  // Another key type altogether.
  ctx = make_server_context(Policy{}, {{paths_->ecdsa_chain, paths_->rsa_key}});
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().find("tls: key " + paths_->rsa_key + " does not match certificate " +
                             paths_->ecdsa_chain),
            std::string::npos)
      << ctx.error();
  EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left dirty";
}

TEST_F(PolicyTest, RefusesNoCertificateAndDuplicateKeyTypes) {
  EXPECT_FALSE(make_server_context(Policy{}, {}));
  auto ctx = make_server_context(Policy{}, {{paths_->ecdsa_chain, paths_->ecdsa_key},
                                            {paths_->ecdsa_chain, paths_->ecdsa_key}});
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().find("same key type"), std::string::npos) << ctx.error();
}

TEST_F(PolicyTest, SingleCertificateServesAnyClient) {
  auto server_ctx = make_server_context(Policy{}, {{paths_->ecdsa_chain, paths_->ecdsa_key}});
  ASSERT_TRUE(server_ctx) << server_ctx.error();
  auto client_ctx = client();
  Handshake handshake = run_handshake(server_ctx->get(), client_ctx.get());
  ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
  EXPECT_EQ(peer_key_type(handshake), EVP_PKEY_EC);
}

TEST(PolicyClientContext, MissingCaFileIsNamed) {
  auto ctx = make_client_context("/nonexistent/ca.pem");
  ASSERT_FALSE(ctx);
  EXPECT_NE(ctx.error().find("/nonexistent/ca.pem"), std::string::npos) << ctx.error();
  auto system = make_client_context("");
  EXPECT_TRUE(system) << system.error();
}

TEST(PolicyDescribe, DescribesEffectivePolicy) {
  Policy policy;
  const std::string text = describe_policy(policy);
  EXPECT_NE(text.find("versions: TLSv1.2 .. TLSv1.3"), std::string::npos) << text;
  EXPECT_NE(text.find("ECDHE-ECDSA-AES256-GCM-SHA384"), std::string::npos) << text;
  EXPECT_NE(text.find("TLS_AES_256_GCM_SHA384"), std::string::npos) << text;
  EXPECT_NE(text.find("groups: X25519:P-256:P-384"), std::string::npos) << text;
  EXPECT_NE(text.find("session tickets: on"), std::string::npos) << text;

  // Aliases are expanded to what OpenSSL really selects.
  policy.ciphers = "ECDHE+AESGCM";
  policy.session_tickets = false;
  const std::string expanded = describe_policy(policy);
  EXPECT_NE(expanded.find("ECDHE-RSA-AES128-GCM-SHA256"), std::string::npos) << expanded;
  EXPECT_NE(expanded.find("session tickets: off"), std::string::npos) << expanded;

  policy.min_version = "TLSv9";
  EXPECT_EQ(describe_policy(policy).rfind("invalid: ", 0), 0u);
}

}  // namespace
}  // namespace tls
