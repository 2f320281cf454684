// certificate_store_test.cpp — tls::CertificateStore (loading, refusals, dates) and
// tls::ServerContexts (SNI choice, ECDSA and RSA per set, tickets across sets and reloads),
// with real in-memory handshakes against certificates made here.
#include "tls/certificate_store.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "tls_test_support.h"

namespace tls {
namespace {

using testing::run_handshake;
using testing::SessionPtr;
using testing::TempDir;

std::int64_t now_unix() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

// A self-signed leaf for `names` (DNS SANs, CN = first), valid from now+from to now+until
// seconds; ECDSA P-256 or RSA 2048. Writes NAME.pem and NAME.key.
CertificatePair make_pair(const TempDir& dir, const std::string& file_name,
                          const std::vector<std::string>& names, long from = -3600,
                          long until = 90L * 86400, bool rsa = false) {
  EVP_PKEY* key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  X509* certificate = X509_new();
  X509_set_version(certificate, X509_VERSION_3);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(certificate), serial++);
  X509_gmtime_adj(X509_getm_notBefore(certificate), from);
  X509_gmtime_adj(X509_getm_notAfter(certificate), until);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(certificate), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(names.front().c_str()), -1, -1,
                             0);
  X509_set_issuer_name(certificate, X509_get_subject_name(certificate));
  X509_set_pubkey(certificate, key);
  std::string san;
  for (const std::string& name : names)
    san += (san.empty() ? "DNS:" : ",DNS:") + name;
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension =
      X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, san.c_str());
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
  X509_sign(certificate, key, EVP_sha256());
  CertificatePair pair{dir.file(file_name + ".pem"), dir.file(file_name + ".key")};
  BIO* out = BIO_new_file(pair.certificate_file.c_str(), "w");
  PEM_write_bio_X509(out, certificate);
  BIO_free(out);
  out = BIO_new_file(pair.key_file.c_str(), "w");
  PEM_write_bio_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
  BIO_free(out);
  X509_free(certificate);
  EVP_PKEY_free(key);
  return pair;
}

CertificatePair named(CertificatePair pair, std::vector<std::string> names) {
  pair.names = std::move(names);
  return pair;
}

SslCtxPtr trusting_client() {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  return ctx;
}

// The subject CN the server presented.
std::string served_name(const testing::Handshake& handshake) {
  X509* leaf = SSL_get0_peer_certificate(handshake.client.get());
  if (leaf == nullptr) return "";
  char buffer[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, buffer, sizeof buffer);
  return buffer;
}

int served_key_type(const testing::Handshake& handshake) {
  X509* leaf = SSL_get0_peer_certificate(handshake.client.get());
  return leaf == nullptr ? 0 : EVP_PKEY_get_base_id(X509_get0_pubkey(leaf));
}

std::function<void(SSL*)> asking_for(const char* name, const char* sigalgs = nullptr) {
  return [name, sigalgs](SSL* ssl) {
    SSL_set_tlsext_host_name(ssl, name);  // nullptr: no SNI at all
    if (sigalgs != nullptr) SSL_set1_sigalgs_list(ssl, sigalgs);
  };
}

LoadOptions strict() {
  LoadOptions options;
  options.now_unix = now_unix();
  return options;
}

TEST(CertificateSets, GroupedByNamesDefaultFirst) {
  std::vector<CertificatePair> pairs = {
      {"a.pem", "a.key", {"mail.example.com"}},
      {"b.pem", "b.key", {}},
      {"c.pem", "c.key", {"MAIL.example.com."}},  // the same set: case and dot do not matter
      {"d.pem", "d.key", {"x.example.org", "*.example.net"}},
      {"e.pem", "e.key", {"*.example.net", "x.example.org"}},
  };
  std::vector<CertificateSet> sets = group_into_sets(pairs);
  ASSERT_EQ(sets.size(), 3u);
  EXPECT_TRUE(sets[0].names.empty());
  ASSERT_EQ(sets[0].pairs.size(), 1u);
  EXPECT_EQ(sets[0].positions, std::vector<std::size_t>{1});
  EXPECT_EQ(sets[1].names, std::vector<std::string>{"mail.example.com"});
  EXPECT_EQ(sets[1].positions, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(sets[2].names, (std::vector<std::string>{"*.example.net", "x.example.org"}));
  EXPECT_EQ(sets[2].positions, (std::vector<std::size_t>{3, 4}));
  // Without an unnamed pair the first set is the default.
  sets = group_into_sets({pairs[3], pairs[0]});
  EXPECT_EQ(sets[0].names, (std::vector<std::string>{"*.example.net", "x.example.org"}));
}

TEST(CertificateSets, NameMatching) {
  EXPECT_TRUE(name_matches("mail.example.com", "mail.example.com"));
  EXPECT_TRUE(name_matches("mail.example.com", "MAIL.Example.Com."));
  EXPECT_FALSE(name_matches("mail.example.com", "example.com"));
  EXPECT_TRUE(name_matches("*.example.com", "smtp.example.com"));
  EXPECT_TRUE(name_matches("*.example.com", "SMTP.EXAMPLE.COM"));
  EXPECT_FALSE(name_matches("*.example.com", "example.com"));
  EXPECT_FALSE(name_matches("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(name_matches("*.example.com", ".example.com"));
  EXPECT_FALSE(name_matches("*.example.com", "smtp.example.org"));
}

TEST(CertificateStore, LoadsDetails) {
  TempDir dir;
  CertificatePair pair =
      named(make_pair(dir, "mail", {"mail.example.com", "mx.example.com"}), {"mail.example.com"});
  auto store = CertificateStore::load({pair}, strict());
  ASSERT_TRUE(store) << store.error().to_string();
  std::vector<CertificateDetails> all = store.value()->certificates();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].file, pair.certificate_file);
  EXPECT_EQ(all[0].key_file, pair.key_file);
  EXPECT_EQ(all[0].subject_names, (std::vector<std::string>{"mail.example.com", "mx.example.com"}));
  EXPECT_EQ(all[0].set_names, std::vector<std::string>{"mail.example.com"});
  EXPECT_EQ(all[0].key_type, "ECDSA");
  EXPECT_EQ(all[0].fingerprint.size(), 64u);
  EXPECT_NEAR(static_cast<double>(all[0].not_after), static_cast<double>(now_unix() + 90 * 86400),
              60);
  EXPECT_NEAR(static_cast<double>(all[0].not_before), static_cast<double>(now_unix() - 3600), 60);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CertificateStore, RefusalsNameTheFileAndTheReason) {
  TempDir dir;
  CertificatePair good = make_pair(dir, "good", {"localhost"});
  CertificatePair other = make_pair(dir, "other", {"localhost"});
  CertificatePair expired = make_pair(dir, "expired", {"localhost"}, -10 * 86400, -60);
  CertificatePair future = make_pair(dir, "future", {"localhost"}, 86400, 90 * 86400);
  const std::string garbage = dir.file("garbage.pem");
  std::ofstream(garbage) << "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  const std::string text = dir.file("text.pem");
  std::ofstream(text) << "hello\n";
  const std::string empty = dir.file("empty.pem");
  std::ofstream(empty).flush();
  const std::string encrypted = dir.file("encrypted.key");
  {
    BIO* in = BIO_new_file(good.key_file.c_str(), "r");
    EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
    BIO_free(in);
    BIO* out = BIO_new_file(encrypted.c_str(), "w");
    PEM_write_bio_PrivateKey(out, key, EVP_aes_256_cbc(), nullptr, 0, nullptr,
                             const_cast<char*>("secret"));
    BIO_free(out);
    EVP_PKEY_free(key);
  }
  const struct {
    CertificatePair pair;
    std::string file;
    std::string reason;
  } cases[] = {
      {{dir.file("missing.pem"), good.key_file},
       dir.file("missing.pem"),
       "cannot read the file: No such file or directory"},
      {{good.certificate_file, dir.file("missing.key")},
       dir.file("missing.key"),
       "cannot read the file: No such file or directory"},
      {{garbage, good.key_file}, garbage, "not a valid PEM certificate"},
      {{text, good.key_file}, text, "no PEM certificate in the file"},
      {{empty, good.key_file}, empty, "the file is empty"},
      {{good.certificate_file, text}, text, "no PEM private key in the file"},
      {{good.certificate_file, encrypted}, encrypted, "the private key is encrypted"},
      {{good.certificate_file, other.key_file},
       other.key_file,
       "private key does not match the certificate " + good.certificate_file},
      {expired, expired.certificate_file, "expired on 20"},
      {future, future.certificate_file, "not valid before 20"},
      {{dir.path(), good.key_file}, dir.path(), "cannot read the file: Is a directory"},
  };
  for (const auto& c : cases) {
    auto store = CertificateStore::load({c.pair}, strict());
    ASSERT_FALSE(store) << c.reason;
    EXPECT_EQ(store.error().file, c.file) << c.reason;
    EXPECT_EQ(store.error().reason.rfind(c.reason, 0), 0u)
        << store.error().reason << " / expected " << c.reason;
    EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left dirty: " << c.reason;
  }
  // Dates are not checked when told so (start-up serves an expired certificate).
  LoadOptions lenient = strict();
  lenient.refuse_out_of_date = false;
  EXPECT_TRUE(CertificateStore::load({expired}, lenient));
}

TEST(CertificateStore, WhatIsInServiceIsNotRefusedForItsDates) {
  TempDir dir;
  CertificatePair expired = make_pair(dir, "expired", {"localhost"}, -10 * 86400, -60);
  LoadOptions lenient = strict();
  lenient.refuse_out_of_date = false;
  auto serving = CertificateStore::load({expired}, lenient);
  ASSERT_TRUE(serving);
  LoadOptions reload = strict();
  reload.in_service = serving.value().get();
  EXPECT_TRUE(CertificateStore::load({expired}, reload));
  // A different expired certificate in the same file is refused.
  make_pair(dir, "expired", {"localhost"}, -10 * 86400, -120);
  auto replaced = CertificateStore::load({expired}, reload);
  ASSERT_FALSE(replaced);
  EXPECT_EQ(replaced.error().reason.rfind("expired on", 0), 0u);
}

TEST(CertificateStore, OneCertificatePerKeyTypeAndSet) {
  TempDir dir;
  CertificatePair first = make_pair(dir, "first", {"localhost"});
  CertificatePair second = make_pair(dir, "second", {"localhost"});
  auto store = CertificateStore::load({first, second}, strict());
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().file, second.certificate_file);
  EXPECT_EQ(store.error().pair_index, 1u);
  EXPECT_NE(store.error().reason.find("same key type (ECDSA) as " + first.certificate_file),
            std::string::npos);
  // In different sets they are fine.
  EXPECT_TRUE(CertificateStore::load({first, named(second, {"mail.example.com"})}, strict()));
}

class ServerContextsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pairs_ = {
        make_pair(dir_, "default-ec", {"default.test"}),
        make_pair(dir_, "default-rsa", {"default.test"}, -3600, 90L * 86400, true),
        named(make_pair(dir_, "mail-ec", {"mail.example.com"}), {"mail.example.com"}),
        named(make_pair(dir_, "mail-rsa", {"mail.example.com"}, -3600, 90L * 86400, true),
              {"mail.example.com"}),
        named(make_pair(dir_, "wild", {"*.example.org"}), {"*.example.org"}),
    };
  }
  std::shared_ptr<ServerContexts> contexts(const std::vector<CertificatePair>& pairs,
                                           const ServerContexts* previous = nullptr) {
    auto store = CertificateStore::load(pairs, strict());
    EXPECT_TRUE(store) << store.error().to_string();
    auto made = ServerContexts::create(Policy{}, store.value(), "", previous);
    EXPECT_TRUE(made) << made.error();
    return made.value();
  }

  TempDir dir_;
  std::vector<CertificatePair> pairs_;
};

TEST_F(ServerContextsTest, SniChoosesTheSetAndTheKeyType) {
  auto server = contexts(pairs_);
  SslCtxPtr client = trusting_client();
  const struct {
    const char* sni;
    const char* served;
  } cases[] = {
      {"mail.example.com", "mail.example.com"},
      {"MAIL.EXAMPLE.COM", "mail.example.com"},
      {"mx.example.org", "*.example.org"},
      {"a.b.example.org", "default.test"},
      {"example.org", "default.test"},
      {"other.test", "default.test"},
      {nullptr, "default.test"},
  };
  for (const auto& c : cases) {
    auto handshake = run_handshake(server->initial_context().get(), client.get(),
                                   asking_for(c.sni, "ECDSA+SHA256"));
    ASSERT_TRUE(handshake.ok) << handshake.client_error << " / " << handshake.server_error;
    EXPECT_EQ(served_name(handshake), c.served) << (c.sni ? c.sni : "(no SNI)");
    EXPECT_EQ(served_key_type(handshake), EVP_PKEY_EC);
  }
  for (const char* sni : {"mail.example.com", static_cast<const char*>(nullptr)}) {
    auto handshake = run_handshake(server->initial_context().get(), client.get(),
                                   asking_for(sni, "RSA-PSS+SHA256:RSA+SHA256"));
    ASSERT_TRUE(handshake.ok) << handshake.server_error;
    EXPECT_EQ(served_key_type(handshake), EVP_PKEY_RSA);
    EXPECT_EQ(served_name(handshake), sni ? "mail.example.com" : "default.test");
  }
  EXPECT_EQ(server->context_for("mail.example.com"), server->context_for("Mail.Example.Com."));
  EXPECT_EQ(server->context_for(""), server->initial_context().get());
}

TEST_F(ServerContextsTest, TicketsResumeOnNamedSetsAndAcrossReloads) {
  auto server = contexts(pairs_);
  SslCtxPtr client = trusting_client();
  auto first =
      run_handshake(server->initial_context().get(), client.get(), asking_for("mail.example.com"));
  ASSERT_TRUE(first.ok);
  SessionPtr session(SSL_get1_session(first.client.get()));
  ASSERT_TRUE(session);
  auto again = run_handshake(server->initial_context().get(), client.get(),
                             asking_for("mail.example.com"), session.get());
  ASSERT_TRUE(again.ok);
  EXPECT_TRUE(SSL_session_reused(again.client.get()));
  EXPECT_EQ(served_name(again), "mail.example.com");
  // A reload (new store, new contexts) keeps the ticket keys: the session still resumes.
  auto reloaded = contexts(pairs_, server.get());
  auto after = run_handshake(reloaded->initial_context().get(), client.get(),
                             asking_for("mail.example.com"), session.get());
  ASSERT_TRUE(after.ok);
  EXPECT_TRUE(SSL_session_reused(after.client.get()));
  // Without the previous contexts it does not (new random keys).
  auto fresh = contexts(pairs_);
  auto full = run_handshake(fresh->initial_context().get(), client.get(),
                            asking_for("mail.example.com"), session.get());
  ASSERT_TRUE(full.ok);
  EXPECT_FALSE(SSL_session_reused(full.client.get()));
}

// A session made while the listener trusted one set of client CAs is not resumed after a
// reload under other CA contents, even from the same file name: its client certificate was
// verified against CAs that may no longer be trusted.
TEST_F(ServerContextsTest, TicketsResumeOnlyUnderTheSameClientCaContents) {
  const std::string ca_file = dir_.file("client-ca.pem");
  const auto write_ca = [&](const std::string& from) {
    std::ifstream in(from, std::ios::binary);
    std::ofstream out(ca_file, std::ios::binary | std::ios::trunc);
    out << in.rdbuf();
  };
  write_ca(make_pair(dir_, "ca-a", {"ca-a.test"}).certificate_file);
  const CertificatePair other_ca = make_pair(dir_, "ca-b", {"ca-b.test"});
  auto store = CertificateStore::load(pairs_, strict());
  ASSERT_TRUE(store);
  auto made = [&](const ServerContexts* previous) {
    auto contexts = ServerContexts::create(Policy{}, store.value(), ca_file, previous);
    EXPECT_TRUE(contexts) << contexts.error();
    return contexts.value();
  };
  auto server = made(nullptr);
  SslCtxPtr client = trusting_client();
  auto first = run_handshake(server->initial_context().get(), client.get(), asking_for(nullptr));
  ASSERT_TRUE(first.ok) << first.server_error;
  SessionPtr session(SSL_get1_session(first.client.get()));
  ASSERT_TRUE(session);

  auto unchanged = made(server.get());  // reload, same CA contents: resumes
  auto again = run_handshake(unchanged->initial_context().get(), client.get(), asking_for(nullptr),
                             session.get());
  ASSERT_TRUE(again.ok);
  EXPECT_TRUE(SSL_session_reused(again.client.get()));

  write_ca(other_ca.certificate_file);  // the same path, another CA
  auto changed = made(unchanged.get());
  auto after = run_handshake(changed->initial_context().get(), client.get(), asking_for(nullptr),
                             session.get());
  ASSERT_TRUE(after.ok) << after.server_error;
  EXPECT_FALSE(SSL_session_reused(after.client.get()));
}

// Ticket keys rotate while the process runs: a ticket from two rotation periods ago makes
// a full handshake, one from the previous period still resumes.
TEST(TicketKeysRotation, OldTicketsStopResumingAfterTwoPeriods) {
  TempDir dir;
  auto server = make_server_context(Policy{}, {make_pair(dir, "leaf", {"leaf.test"})});
  ASSERT_TRUE(server) << server.error();
  auto now = std::chrono::steady_clock::time_point(std::chrono::hours(1000));
  TicketKeys keys(std::chrono::hours(12), [&now] { return now; });
  ASSERT_TRUE(keys.install(server.value().get()));
  SslCtxPtr client = trusting_client();
  auto first = run_handshake(server.value().get(), client.get(), asking_for(nullptr));
  ASSERT_TRUE(first.ok) << first.server_error;
  SessionPtr session(SSL_get1_session(first.client.get()));
  ASSERT_TRUE(session);

  now += std::chrono::hours(13);  // rotated once: the previous key still opens
  auto next_period =
      run_handshake(server.value().get(), client.get(), asking_for(nullptr), session.get());
  ASSERT_TRUE(next_period.ok);
  EXPECT_TRUE(SSL_session_reused(next_period.client.get()));

  // A resumed connection gets a new ticket (TLS 1.3 clients use each once), sealed with the
  // key of its period.
  SessionPtr renewed(SSL_get1_session(next_period.client.get()));
  ASSERT_TRUE(renewed);

  now += std::chrono::hours(12);  // rotated twice: the first key is gone
  auto later =
      run_handshake(server.value().get(), client.get(), asking_for(nullptr), session.get());
  ASSERT_TRUE(later.ok);
  EXPECT_FALSE(SSL_session_reused(later.client.get()));
  auto renewed_later =
      run_handshake(server.value().get(), client.get(), asking_for(nullptr), renewed.get());
  ASSERT_TRUE(renewed_later.ok);
  EXPECT_TRUE(SSL_session_reused(renewed_later.client.get()));
}

TEST_F(ServerContextsTest, InitialContextKeepsEverythingAlive) {
  std::shared_ptr<SSL_CTX> initial = contexts(pairs_)->initial_context();
  // The ServerContexts and its store are gone from every other owner now; a handshake that
  // switches to a named set must still work.
  SslCtxPtr client = trusting_client();
  auto handshake = run_handshake(initial.get(), client.get(), asking_for("mx.example.org"));
  ASSERT_TRUE(handshake.ok);
  EXPECT_EQ(served_name(handshake), "*.example.org");
}

}  // namespace
}  // namespace tls
