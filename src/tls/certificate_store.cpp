// certificate_store.cpp — see certificate_store.h. RFC 6066 §3 (server_name), RFC 6125 §6.4
// (name matching, wildcards), RFC 5280 §4.1.2.5 (validity), RFC 8446 §4.4.2 (chains) and
// §4.2.11 / RFC 5077 (tickets).
#include "tls/certificate_store.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>

#include "base/ascii.h"
#include "tls/openssl_error.h"
#include "tls/openssl_ptr.h"

namespace tls {
namespace {

// Lower-case, without a trailing dot (an absolute name is the same name, RFC 6066 §3 says
// the name is sent without it, but clients differ).
std::string normal_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return base::ascii_lowercase(name);
}

std::vector<std::string> normal_names(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& name : names)
    out.push_back(normal_name(name));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string utc_text(std::int64_t unix_seconds) {
  std::time_t time = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&time, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

base::Expected<std::int64_t, std::string> unix_time(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return base::unexpected("unreadable validity date: " + last_error_reason());
  }
  return static_cast<std::int64_t>(timegm(&tm));
}

// The whole file (certificates and keys are small; a bound keeps a wrong path such as a
// device or a huge file from eating memory). A file that cannot be read gives the system's
// reason ("No such file or directory", "Permission denied").
constexpr std::size_t kMaxPemFile = 1 << 20;

bool read_file(const std::string& file, std::string& contents, std::string& reason) {
  std::FILE* stream = std::fopen(file.c_str(), "rb");
  if (stream == nullptr) {
    reason = "cannot read the file: " + std::string(std::strerror(errno));
    return false;
  }
  contents.clear();
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, stream)) > 0) {
    contents.append(buffer, n);
    if (contents.size() > kMaxPemFile) {
      std::fclose(stream);
      reason = "larger than 1 MiB: not a PEM certificate or key";
      return false;
    }
  }
  const bool failed = std::ferror(stream) != 0;
  const int saved = errno;
  std::fclose(stream);
  if (failed) {
    reason = "cannot read the file: " + std::string(std::strerror(saved));
    return false;
  }
  return true;
}

BioPtr memory_bio(const std::string& contents) {
  return BioPtr(BIO_new_mem_buf(contents.data(), static_cast<int>(contents.size())));
}

// A PEM read that stopped at the end of the input rather than at a broken block.
bool at_end_of_pem() {
  const unsigned long error = ERR_peek_last_error();
  return ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
}

int no_passphrase(char* /*buffer*/, int /*size*/, int /*rwflag*/, void* /*data*/) {
  return 0;  // encrypted keys would need someone at a terminal: refuse them
}

std::string key_type_name(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_EC:
      return "ECDSA";
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    case EVP_PKEY_ED448:
      return "Ed448";
    default:
      return OBJ_nid2sn(EVP_PKEY_get_base_id(key));
  }
}

std::vector<std::string> subject_names(X509* leaf) {
  std::vector<std::string> names;
  auto* alt_names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (alt_names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(alt_names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_STRING* text = name->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                         static_cast<std::size_t>(ASN1_STRING_length(text)));
    }
    GENERAL_NAMES_free(alt_names);
  }
  if (names.empty()) {  // RFC 6125 §6.4.4: the CN only when there is no DNS SAN
    const X509_NAME* subject = X509_get_subject_name(leaf);
    const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index >= 0) {
      const ASN1_STRING* text = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                         static_cast<std::size_t>(ASN1_STRING_length(text)));
    }
  }
  ERR_clear_error();
  return names;
}

std::string fingerprint(X509* leaf) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(leaf, EVP_sha256(), digest, &length) != 1) {
    ERR_clear_error();
    return {};
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

}  // namespace

struct CertificateStore::LoadedPair {
  CertificateDetails details;
  X509Ptr leaf;
  ChainPtr chain;  // intermediates, in file order
  KeyPtr key;
  int key_type = 0;
};

namespace {

// Chain file: the leaf first, then the intermediates (RFC 8446 §4.4.2: "The sender's
// certificate MUST come in the first CertificateEntry").
bool read_chain(const std::string& file, CertificateStore::LoadedPair& pair, std::string& reason) {
  std::string contents;
  if (!read_file(file, contents, reason)) return false;
  if (contents.find("-----BEGIN CERTIFICATE-----") == std::string::npos &&
      contents.find("-----BEGIN TRUSTED CERTIFICATE-----") == std::string::npos) {
    reason = contents.empty() ? "the file is empty" : "no PEM certificate in the file";
    return false;
  }
  BioPtr bio = memory_bio(contents);
  ERR_clear_error();
  pair.leaf.reset(PEM_read_bio_X509_AUX(bio.get(), nullptr, no_passphrase, nullptr));
  if (!pair.leaf) {
    reason = "not a valid PEM certificate: " + last_error_reason();
    return false;
  }
  pair.chain.reset(sk_X509_new_null());
  for (;;) {
    ERR_clear_error();
    X509Ptr next(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!next) {
      if (at_end_of_pem()) {
        ERR_clear_error();
        return true;
      }
      reason = "a certificate after the first one is not valid PEM: " + last_error_reason();
      return false;
    }
    if (sk_X509_push(pair.chain.get(), next.get()) == 0) {
      reason = "out of memory";
      return false;
    }
    next.release();
  }
}

bool read_key(const std::string& file, CertificateStore::LoadedPair& pair, std::string& reason) {
  std::string contents;
  if (!read_file(file, contents, reason)) return false;
  const bool has_key = contents.find("PRIVATE KEY-----") != std::string::npos;
  const bool encrypted =
      contents.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string::npos ||
      contents.find("Proc-Type: 4,ENCRYPTED") != std::string::npos;
  if (!has_key) {
    reason = contents.empty() ? "the file is empty" : "no PEM private key in the file";
    return false;
  }
  if (encrypted) {
    reason = "the private key is encrypted (a server cannot ask for a passphrase)";
    return false;
  }
  BioPtr bio = memory_bio(contents);
  ERR_clear_error();
  pair.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  OPENSSL_cleanse(contents.data(), contents.size());
  if (!pair.key) {
    reason = "not a valid PEM private key: " + last_error_reason();
    return false;
  }
  return true;
}

// The certificate with this fingerprint from this file, if it is in service.
bool in_service(const CertificateStore* store, const CertificateDetails& details) {
  if (store == nullptr) return false;
  for (const CertificateDetails& serving : store->certificates()) {
    if (serving.file == details.file && serving.fingerprint == details.fingerprint) return true;
  }
  return false;
}

}  // namespace

std::vector<CertificateSet> group_into_sets(const std::vector<CertificatePair>& pairs) {
  std::vector<CertificateSet> sets;
  std::map<std::vector<std::string>, std::size_t> by_names;
  std::size_t position = 0;
  for (const CertificatePair& pair : pairs) {
    std::vector<std::string> names = normal_names(pair.names);
    auto [it, inserted] = by_names.emplace(names, sets.size());
    if (inserted) sets.push_back(CertificateSet{std::move(names), {}});
    sets[it->second].pairs.push_back(pair);
    sets[it->second].positions.push_back(position++);
  }
  auto unnamed = std::find_if(sets.begin(), sets.end(),
                              [](const CertificateSet& set) { return set.names.empty(); });
  if (unnamed != sets.end()) std::rotate(sets.begin(), unnamed, unnamed + 1);
  return sets;
}

bool name_matches(std::string_view pattern, std::string_view server_name) {
  std::string name = normal_name(server_name);
  if (pattern.rfind("*.", 0) == 0) {
    const std::size_t dot = name.find('.');
    return dot != std::string::npos && dot > 0 && name.substr(dot + 1) == pattern.substr(2);
  }
  return name == pattern;
}

CertificateStore::~CertificateStore() = default;

base::Expected<std::shared_ptr<const CertificateStore>, LoadError> CertificateStore::load(
    const std::vector<CertificatePair>& pairs, const LoadOptions& options) {
  std::vector<CertificateSet> sets = group_into_sets(pairs);
  std::shared_ptr<CertificateStore> store(new CertificateStore());
  for (CertificateSet& set : sets) {
    LoadedSet loaded_set;
    loaded_set.names = set.names;
    for (std::size_t k = 0; k < set.pairs.size(); ++k) {
      const CertificatePair& pair = set.pairs[k];
      const std::size_t index = set.positions[k];
      auto fail = [&](const std::string& file, std::string reason) {
        return base::unexpected(LoadError{file, std::move(reason), index});
      };
      auto loaded = std::make_unique<LoadedPair>();
      std::string reason;
      if (!read_chain(pair.certificate_file, *loaded, reason)) {
        return fail(pair.certificate_file, reason);
      }
      if (!read_key(pair.key_file, *loaded, reason)) return fail(pair.key_file, reason);
      ERR_clear_error();
      if (X509_check_private_key(loaded->leaf.get(), loaded->key.get()) != 1) {
        ERR_clear_error();
        return fail(pair.key_file,
                    "private key does not match the certificate " + pair.certificate_file);
      }
      loaded->key_type = EVP_PKEY_get_base_id(loaded->key.get());
      CertificateDetails& details = loaded->details;
      details.file = pair.certificate_file;
      details.key_file = pair.key_file;
      details.set_names = set.names;
      details.subject_names = subject_names(loaded->leaf.get());
      details.key_type = key_type_name(loaded->key.get());
      details.fingerprint = fingerprint(loaded->leaf.get());
      auto not_before = unix_time(X509_get0_notBefore(loaded->leaf.get()));
      if (!not_before) return fail(pair.certificate_file, not_before.error());
      auto not_after = unix_time(X509_get0_notAfter(loaded->leaf.get()));
      if (!not_after) return fail(pair.certificate_file, not_after.error());
      details.not_before = not_before.value();
      details.not_after = not_after.value();
      if (options.refuse_out_of_date && !in_service(options.in_service, details)) {
        if (details.not_after < options.now_unix) {
          return fail(pair.certificate_file, "expired on " + utc_text(details.not_after));
        }
        if (details.not_before > options.now_unix) {
          return fail(pair.certificate_file, "not valid before " + utc_text(details.not_before));
        }
      }
      // OpenSSL keeps one certificate per key type in a context: a second one would silently
      // replace the first.
      for (const auto& earlier : loaded_set.pairs) {
        if (earlier->key_type == loaded->key_type) {
          return fail(pair.certificate_file,
                      "same key type (" + details.key_type + ") as " + earlier->details.file +
                          " in the same certificate set (one ECDSA and one RSA per set)");
        }
      }
      loaded_set.pairs.push_back(std::move(loaded));
    }
    store->sets_.push_back(std::move(loaded_set));
  }
  if (store->sets_.empty()) {
    return base::unexpected(LoadError{"", "no certificate configured", 0});
  }
  return std::shared_ptr<const CertificateStore>(std::move(store));
}

std::vector<CertificateDetails> CertificateStore::certificates() const {
  std::vector<CertificateDetails> out;
  for (const LoadedSet& set : sets_) {
    for (const auto& pair : set.pairs)
      out.push_back(pair->details);
  }
  return out;
}

base::Expected<base::Ok, std::string> CertificateStore::install(std::size_t set,
                                                                SSL_CTX* ctx) const {
  for (const auto& pair : sets_.at(set).pairs) {
    ERR_clear_error();
    if (SSL_CTX_use_cert_and_key(ctx, pair->leaf.get(), pair->key.get(), pair->chain.get(), 1) !=
        1) {
      return base::unexpected("tls: cannot use certificate " + pair->details.file + ": " +
                              last_error_reason());
    }
  }
  return base::Ok{};
}

base::Expected<std::shared_ptr<ServerContexts>, std::string> ServerContexts::create(
    const Policy& policy, std::shared_ptr<const CertificateStore> store,
    const std::string& client_ca_file, const ServerContexts* previous) {
  std::shared_ptr<ServerContexts> self(new ServerContexts());
  self->store_ = std::move(store);
  auto session_id = session_id_context(client_ca_file);
  if (!session_id) return base::unexpected(session_id.error());
  self->session_id_context_ = std::move(session_id.value());
  // RFC 5077 / RFC 8446 §4.6.1: tickets are sealed with the keys of the context a connection
  // started on. Keeping them across a reload lets clients resume instead of paying for a
  // full handshake; under other client CA contents (another session id context) a session
  // could not resume anyway, so those start afresh.
  self->ticket_keys_ =
      previous != nullptr && previous->session_id_context_ == self->session_id_context_
          ? previous->ticket_keys_
          : std::make_shared<TicketKeys>();
  for (std::size_t set = 0; set < self->store_->set_count(); ++set) {
    auto ctx =
        make_server_context_without_certificates(policy, client_ca_file, self->session_id_context_);
    if (!ctx) return base::unexpected(ctx.error());
    // On every set's context: OpenSSL seals with the initial one's callback, which finds
    // the keys through the context the connection is on now.
    if (auto installed = self->ticket_keys_->install(ctx.value().get()); !installed) {
      return base::unexpected(installed.error());
    }
    if (auto installed = self->store_->install(set, ctx.value().get()); !installed) {
      return base::unexpected(installed.error());
    }
    self->contexts_.push_back(std::move(ctx.value()));
    for (const std::string& name : self->store_->set_names(set)) {
      if (name.rfind("*.", 0) == 0) {
        self->wildcard_.emplace(name.substr(2), set);
      } else {
        self->exact_.emplace(name, set);
      }
    }
  }
  SSL_CTX* initial = self->contexts_.front().get();
  if (self->contexts_.size() > 1) {
    SSL_CTX_set_tlsext_servername_callback(initial, &ServerContexts::on_server_name);
    SSL_CTX_set_tlsext_servername_arg(initial, self.get());
  }
  return self;
}

std::shared_ptr<SSL_CTX> ServerContexts::initial_context() {
  return std::shared_ptr<SSL_CTX>(shared_from_this(), contexts_.front().get());
}

std::size_t ServerContexts::set_for(std::string_view server_name) const {
  if (server_name.empty()) return 0;
  const std::string name = normal_name(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  const std::size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return it->second;
  }
  return 0;
}

SSL_CTX* ServerContexts::context_for(std::string_view server_name) const {
  return contexts_[set_for(server_name)].get();
}

// RFC 6066 §3: called once the ClientHello's server_name is known. A name no set has, or none
// at all, stays on the default context (no unrecognized_name alert: many senders would give
// up on the whole connection).
int ServerContexts::on_server_name(SSL* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const ServerContexts*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  const std::size_t set = self->set_for(name);
  if (set == 0) return SSL_TLSEXT_ERR_OK;
  if (SSL_set_SSL_CTX(ssl, self->contexts_[set].get()) == nullptr) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace tls
