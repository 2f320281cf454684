// policy.cpp — Policy → OpenSSL SSL_CTX (server and client), handshake descriptions and
// error reasons. Invariants: every OpenSSL error queue entry we cause is drained into an error
// text (never left for the next connection on this thread to misreport); no deprecated
// OpenSSL 3 API; nothing here does I/O except reading certificate and key files.
// RFC 8446 (TLS 1.3), RFC 7525 / RFC 9325 (BCP 195) for versions, ciphers and options,
// RFC 8314 (implicit TLS for submission), RFC 8996 (TLS 1.0 and 1.1 deprecated).
#include "tls/policy.h"

#include "tls/openssl_error.h"
#include "tls/openssl_ptr.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

namespace tls {
namespace {

// Session id context: tickets and cached sessions made by one smtpsd are only resumed by
// smtpsd (OpenSSL refuses to resume across contexts with different ids), and, with client
// CAs, only under the same CA file contents (session_id_context()).
constexpr std::string_view kSessionIdContext = "smtpsd";

// Versions by name; the unsafe ones are only reachable with allow_unsafe_tls_versions.
struct VersionName {
  std::string_view name;
  int version;
  bool unsafe;
};
constexpr VersionName kVersions[] = {
    {"TLSv1", TLS1_VERSION, true},
    {"TLSv1.1", TLS1_1_VERSION, true},
    {"TLSv1.2", TLS1_2_VERSION, false},
    {"TLSv1.3", TLS1_3_VERSION, false},
};

const VersionName* find_version(std::string_view name) {
  for (const VersionName& entry : kVersions) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::vector<std::string> split_colons(const std::string& list) {
  std::vector<std::string> items;
  std::string::size_type start = 0;
  while (start <= list.size()) {
    std::string::size_type end = list.find(':', start);
    if (end == std::string::npos) end = list.size();
    if (end > start) items.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

// A scratch context to let OpenSSL parse the lists exactly as it will in production.
SslCtxPtr scratch_context() {
  return SslCtxPtr(SSL_CTX_new(TLS_server_method()));
}

std::string join_cipher_names(const STACK_OF(SSL_CIPHER) * ciphers) {
  std::string names;
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    if (!names.empty()) names += ':';
    names += SSL_CIPHER_get_name(sk_SSL_CIPHER_value(ciphers, i));
  }
  return names;
}

// The TLS 1.2 ciphers `ciphers` selects (TLS 1.3 suites excluded), or an error.
// TLS 1.0 and 1.1 have no AEAD cipher: a policy that opted into them (allow_unsafe_tls_versions
// with such a min_version) gets these ECDHE CBC ciphers after its own list, and only then.
constexpr const char* kLegacyCiphers =
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA";

bool legacy_versions(const Policy& policy) {
  return policy.allow_unsafe_tls_versions &&
         (policy.min_version == "TLSv1" || policy.min_version == "TLSv1.1");
}

base::Expected<std::string, std::string> resolve_ciphers(const std::string& ciphers,
                                                         bool allow_cbc = false) {
  SslCtxPtr ctx = scratch_context();
  if (!ctx) return base::unexpected("tls: cannot create SSL_CTX: " + last_error_reason());
  // With no TLS 1.3 suites configured, the list holds only what `ciphers` selected.
  if (SSL_CTX_set_ciphersuites(ctx.get(), "") != 1 ||
      SSL_CTX_set_cipher_list(ctx.get(), ciphers.c_str()) != 1) {
    return base::unexpected("tls: ciphers \"" + ciphers +
                            "\" selects no cipher: " + last_error_reason());
  }
  const STACK_OF(SSL_CIPHER)* selected = SSL_CTX_get_ciphers(ctx.get());
  if (selected == nullptr || sk_SSL_CIPHER_num(selected) == 0) {
    return base::unexpected("tls: ciphers \"" + ciphers + "\" selects no cipher");
  }
  // BCP 195 (RFC 9325 §4.2): forward secrecy and AEAD only. ECDHE rather than DHE: finite-field
  // DHE parameters are negotiated badly by TLS 1.2 clients (RFC 7919) and cost more CPU.
  for (int i = 0; i < sk_SSL_CIPHER_num(selected); ++i) {
    const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(selected, i);
    const std::string name = SSL_CIPHER_get_name(cipher);
    const int auth = SSL_CIPHER_get_auth_nid(cipher);
    if (auth != NID_auth_ecdsa && auth != NID_auth_rsa) {
      return base::unexpected("tls: cipher " + name +
                              " in ciphers is not authenticated by an ECDSA or RSA certificate");
    }
    if (SSL_CIPHER_get_kx_nid(cipher) != NID_kx_ecdhe) {
      return base::unexpected("tls: cipher " + name +
                              " in ciphers has no forward secrecy (key exchange is not ECDHE)");
    }
    if (SSL_CIPHER_is_aead(cipher) != 1 && !allow_cbc) {
      return base::unexpected("tls: cipher " + name + " in ciphers is not AEAD (CBC or stream)");
    }
  }
  return join_cipher_names(selected);
}

// The TLS 1.3 suites `ciphersuites` selects, or an error. OpenSSL silently skips unknown
// names, so each name is checked on its own.
base::Expected<std::string, std::string> resolve_ciphersuites(const std::string& ciphersuites) {
  SslCtxPtr ctx = scratch_context();
  if (!ctx) return base::unexpected("tls: cannot create SSL_CTX: " + last_error_reason());
  const std::vector<std::string> names = split_colons(ciphersuites);
  if (names.empty()) {
    return base::unexpected("tls: ciphersuites \"" + ciphersuites +
                            "\" selects no TLS 1.3 cipher suite");
  }
  for (const std::string& name : names) {
    if (SSL_CTX_set_ciphersuites(ctx.get(), name.c_str()) != 1 ||
        sk_SSL_CIPHER_num(SSL_CTX_get_ciphers(ctx.get())) == 0) {
      ERR_clear_error();
      return base::unexpected("tls: unknown TLS 1.3 cipher suite " + name + " in ciphersuites");
    }
  }
  if (SSL_CTX_set_ciphersuites(ctx.get(), ciphersuites.c_str()) != 1) {
    return base::unexpected("tls: ciphersuites \"" + ciphersuites + "\": " + last_error_reason());
  }
  return ciphersuites;
}

base::Expected<base::Ok, std::string> check_groups(const std::string& groups) {
  SslCtxPtr ctx = scratch_context();
  if (!ctx) return base::unexpected("tls: cannot create SSL_CTX: " + last_error_reason());
  if (groups.empty() || SSL_CTX_set1_groups_list(ctx.get(), groups.c_str()) != 1) {
    ERR_clear_error();
    return base::unexpected("tls: groups \"" + groups + "\" names an unknown group or none");
  }
  return base::Ok{};
}

// A cipher list is only needed when a version below TLS 1.3 can be negotiated.
bool needs_tls12_ciphers(const Policy& policy) {
  return !(policy.min_version == "TLSv1.3" && policy.ciphers.empty());
}

// Applies versions, lists and options common to the policy; validate() ran before.
base::Expected<base::Ok, std::string> apply_policy(SSL_CTX* ctx, const Policy& policy) {
  const VersionName* min_version = find_version(policy.min_version);
  // TLS 1.0/1.1 (opted into): OpenSSL 3 refuses them above security level 0, and they need
  // the CBC ciphers of kLegacyCiphers. Everything else keeps the strict policy.
  if (legacy_versions(policy)) SSL_CTX_set_security_level(ctx, 0);
  if (SSL_CTX_set_min_proto_version(ctx, min_version->version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return base::unexpected("tls: cannot set protocol versions: " + last_error_reason());
  }
  if (needs_tls12_ciphers(policy)) {
    std::string ciphers = policy.ciphers;
    if (legacy_versions(policy)) ciphers += std::string(":") + kLegacyCiphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
      return base::unexpected("tls: cannot set ciphers: " + last_error_reason());
    }
  }
  if (SSL_CTX_set_ciphersuites(ctx, policy.ciphersuites.c_str()) != 1) {
    return base::unexpected("tls: cannot set ciphersuites: " + last_error_reason());
  }
  if (SSL_CTX_set1_groups_list(ctx, policy.groups.c_str()) != 1) {
    return base::unexpected("tls: cannot set groups: " + last_error_reason());
  }
  return base::Ok{};
}

base::Expected<base::Ok, std::string> load_pair(SSL_CTX* ctx, const CertificatePair& pair,
                                                std::set<int>& key_types) {
  const std::string& certificate = pair.certificate_file;
  const std::string& key_file = pair.key_file;
  // The chain file: leaf first, then intermediates, all sent in the Certificate message
  // (RFC 8446 §4.4.2). OpenSSL keeps one chain per key type.
  if (SSL_CTX_use_certificate_chain_file(ctx, certificate.c_str()) != 1) {
    return base::unexpected("tls: cannot load certificate " + certificate + ": " +
                            last_error_reason());
  }
  // The key is read separately so that "cannot read" and "does not match" are told apart.
  BioPtr bio(BIO_new_file(key_file.c_str(), "r"));
  if (!bio)
    return base::unexpected("tls: cannot load key " + key_file + ": " + last_error_reason());
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return base::unexpected("tls: cannot load key " + key_file + ": " + last_error_reason());
  // Two certificates of one key type would silently replace each other.
  if (!key_types.insert(EVP_PKEY_get_base_id(key.get())).second) {
    return base::unexpected("tls: certificate " + certificate +
                            " has the same key type as an earlier certificate (one ECDSA and "
                            "one RSA certificate at most)");
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return base::unexpected("tls: key " + key_file + " does not match certificate " + certificate +
                            ": " + last_error_reason());
  }
  return base::Ok{};
}

// Mutual TLS for SASL EXTERNAL. The verify callback accepts every certificate: OpenSSL still
// records the verification error (SSL_get_verify_result is then not X509_V_OK), and a client
// whose certificate does not verify is refused by EXTERNAL with 535 rather than losing the
// connection, so it can still authenticate with a password on the same listener.
int accept_and_record(int /*preverify_ok*/, X509_STORE_CTX* /*store*/) {
  return 1;
}

base::Expected<base::Ok, std::string> request_client_certificates(SSL_CTX* ctx,
                                                                  const std::string& ca_file) {
  // Only these CAs vouch for clients: the context's store holds nothing else (no system
  // store), so a certificate from a public CA does not verify here.
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return base::unexpected("tls: cannot load client CA file " + ca_file + ": " +
                            last_error_reason());
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str());
  if (names == nullptr || sk_X509_NAME_num(names) == 0) {
    if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
    ERR_clear_error();
    return base::unexpected("tls: client CA file " + ca_file + " holds no CA certificate");
  }
  SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
  // SSL_VERIFY_PEER without SSL_VERIFY_FAIL_IF_NO_PEER_CERT: the certificate is optional.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_and_record);
  return base::Ok{};
}

}  // namespace

void SslCtxDeleter::operator()(SSL_CTX* ctx) const {
  SSL_CTX_free(ctx);
}

base::Expected<base::Ok, std::string> validate(const Policy& policy) {
  const VersionName* version = find_version(policy.min_version);
  if (version == nullptr) {
    return base::unexpected("tls: unknown min_version \"" + policy.min_version +
                            "\" (expected TLSv1.2 or TLSv1.3)");
  }
  if (version->unsafe && !policy.allow_unsafe_tls_versions) {
    return base::unexpected("tls: min_version " + policy.min_version +
                            " is deprecated (RFC 8996); set allow_unsafe_tls_versions to use it");
  }
  if (needs_tls12_ciphers(policy)) {
    if (auto ciphers = resolve_ciphers(policy.ciphers, legacy_versions(policy)); !ciphers) {
      return base::unexpected(ciphers.error());
    }
  }
  if (auto suites = resolve_ciphersuites(policy.ciphersuites); !suites) {
    return base::unexpected(suites.error());
  }
  if (auto groups = check_groups(policy.groups); !groups) {
    return base::unexpected(groups.error());
  }
  return base::Ok{};
}

base::Expected<std::string, std::string> session_id_context(const std::string& client_ca_file) {
  if (client_ca_file.empty()) return std::string(kSessionIdContext);
  std::ifstream in(client_ca_file, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (!in && !in.eof()) {
    return base::unexpected("tls: cannot read client CA file " + client_ca_file);
  }
  const std::string text = contents.str();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(md, kSessionIdContext.data(), kSessionIdContext.size()) == 1 &&
                  EVP_DigestUpdate(md, text.data(), text.size()) == 1 &&
                  EVP_DigestFinal_ex(md, digest, &size) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) return base::unexpected("tls: cannot digest client CA file: " + last_error_reason());
  return std::string(reinterpret_cast<const char*>(digest), size);
}

base::Expected<SslCtxPtr, std::string> make_server_context_without_certificates(
    const Policy& policy, const std::string& client_ca_file, std::string_view session_id_context) {
  if (auto valid = validate(policy); !valid) return base::unexpected(valid.error());

  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return base::unexpected("tls: cannot create SSL_CTX: " + last_error_reason());
  if (auto applied = apply_policy(ctx.get(), policy); !applied) {
    return base::unexpected(applied.error());
  }

  // BCP 195 §3.3 (no compression: CRIME) and §3.5 (no renegotiation: TLS 1.3 has none).
  uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
  if (policy.prefer_server_ciphers) options |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (!policy.session_tickets) options |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(ctx.get(), options);
  // Idle connections give their read/write buffers back (docs/architecture.md "Budgets": ≤ 64 KiB
  // each).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);

  // Resumption is by stateless tickets only (RFC 8446 §4.6.1 in TLS 1.3, RFC 5077 in 1.2): the
  // server keeps no per-session cache, so memory does not grow with the number of past
  // clients and every io_context thread can resume any session without a shared lock.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // One TLS 1.3 ticket per handshake, not OpenSSL's two: a mail client holds one connection
  // to its server at a time, and a resumed handshake brings it a fresh ticket
  // (tls/ticket_keys.cpp). Each ticket costs the server a sealed session, about 8 % of its
  // CPU for a connection that sends one message (bench/README.md).
  // SSL_OP_NO_TICKET alone makes TLS 1.3 send stateful tickets; 0 tickets means none.
  SSL_CTX_set_num_tickets(ctx.get(), policy.session_tickets ? 1 : 0);
  // Digested before the CAs are loaded below: if the file changes in between, the id names
  // older contents than the CAs in use, and the next reload (which digests the new ones)
  // refuses these sessions; never the other way round.
  std::string digested;
  if (session_id_context.empty()) {
    auto computed = tls::session_id_context(client_ca_file);
    if (!computed) return base::unexpected(computed.error());
    digested = std::move(computed.value());
    session_id_context = digested;
  }
  if (SSL_CTX_set_session_id_context(
          ctx.get(), reinterpret_cast<const unsigned char*>(session_id_context.data()),
          static_cast<unsigned int>(session_id_context.size())) != 1) {
    return base::unexpected("tls: cannot set session id context: " + last_error_reason());
  }
  if (!client_ca_file.empty()) {
    if (auto requested = request_client_certificates(ctx.get(), client_ca_file); !requested) {
      return base::unexpected(requested.error());
    }
  }
  return ctx;
}

base::Expected<SslCtxPtr, std::string> make_server_context(
    const Policy& policy, const std::vector<CertificatePair>& certificates,
    const std::string& client_ca_file) {
  if (auto valid = validate(policy); !valid) return base::unexpected(valid.error());
  if (certificates.empty()) return base::unexpected(std::string("tls: no certificate configured"));
  auto ctx = make_server_context_without_certificates(policy, client_ca_file);
  if (!ctx) return base::unexpected(ctx.error());
  std::set<int> key_types;
  for (const CertificatePair& pair : certificates) {
    if (auto loaded = load_pair(ctx.value().get(), pair, key_types); !loaded) {
      return base::unexpected(loaded.error());
    }
  }
  return std::move(ctx.value());
}

base::Expected<std::size_t, std::string> load_system_trust(SSL_CTX* ctx) {
  if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return base::unexpected("tls: cannot load the system trust store: " + last_error_reason());
  }
  std::size_t certificates = 0;
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, i)) == X509_LU_X509) ++certificates;
  }
  return certificates;
}

std::pair<std::string, std::string> system_trust_paths() {
  const char* file = std::getenv(X509_get_default_cert_file_env());
  const char* dir = std::getenv(X509_get_default_cert_dir_env());
  return {file != nullptr ? file : X509_get_default_cert_file(),
          dir != nullptr ? dir : X509_get_default_cert_dir()};
}

base::Expected<SslCtxPtr, std::string> make_client_context(const std::string& ca_file,
                                                           SystemTrust system) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return base::unexpected("tls: cannot create SSL_CTX: " + last_error_reason());
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
    return base::unexpected("tls: cannot set protocol versions: " + last_error_reason());
  }
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // The same strength as our listeners (BCP 195): TLS 1.2 only with ECDHE and AEAD.
  const Policy defaults;
  if (SSL_CTX_set_cipher_list(ctx.get(), defaults.ciphers.c_str()) != 1 ||
      SSL_CTX_set_ciphersuites(ctx.get(), defaults.ciphersuites.c_str()) != 1) {
    return base::unexpected("tls: cannot set the client ciphers: " + last_error_reason());
  }
  if (ca_file.empty()) {
    if (system == SystemTrust::kNow) {
      if (auto loaded = load_system_trust(ctx.get()); !loaded) {
        return base::unexpected(loaded.error());
      }
    }
  } else if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
    return base::unexpected("tls: cannot load CA file " + ca_file + ": " + last_error_reason());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

std::string_view to_string(OutboundLevel level) {
  switch (level) {
    case OutboundLevel::kNone:
      return "none";
    case OutboundLevel::kMay:
      return "may";
    case OutboundLevel::kEncrypt:
      return "encrypt";
    case OutboundLevel::kVerify:
      return "verify";
  }
  return "may";
}

bool parse_outbound_level(std::string_view text, OutboundLevel& level) {
  for (OutboundLevel candidate : {OutboundLevel::kNone, OutboundLevel::kMay,
                                  OutboundLevel::kEncrypt, OutboundLevel::kVerify}) {
    if (text == to_string(candidate)) {
      level = candidate;
      return true;
    }
  }
  return false;
}

SessionDescription describe(const SSL* ssl) {
  SessionDescription description;
  description.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl); cipher != nullptr) {
    description.cipher = SSL_CIPHER_get_name(cipher);
  }
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name); sni != nullptr) {
    description.sni = sni;
  }
  description.resumed = SSL_session_reused(ssl) == 1;
  return description;
}

std::string describe_policy(const Policy& policy) {
  std::string text;
  if (auto valid = validate(policy); !valid) {
    return "invalid: " + valid.error() + "\n";
  }
  text += "versions: " + policy.min_version + " .. TLSv1.3\n";
  if (needs_tls12_ciphers(policy)) {
    auto ciphers = resolve_ciphers(policy.ciphers);
    text += "ciphers (TLS 1.2 and below): " + ciphers.value() + "\n";
  } else {
    text += "ciphers (TLS 1.2 and below): none (TLS 1.3 only)\n";
  }
  text += "ciphersuites (TLS 1.3): " + policy.ciphersuites + "\n";
  text += "groups: " + policy.groups + "\n";
  text += std::string("session tickets: ") + (policy.session_tickets ? "on" : "off") + "\n";
  text += std::string("server cipher preference: ") +
          (policy.prefer_server_ciphers ? "on" : "off") + "\n";
  text += "compression: off\nrenegotiation: off\n";
  return text;
}

}  // namespace tls
