// certificate_store.h — the server's certificates in memory: certificate sets chosen by the
// name a client asks for (SNI, RFC 6066 §3), each with up to one ECDSA and one RSA pair, and
// the SSL_CTXs of one listener built from them.
//
// Invariants: a CertificateStore is immutable once loaded and holds exactly what was read in
// one pass over the files (so every listener serves the same bytes); a pair is only in it if
// its certificate parsed, its key parsed and matches, and — unless it was already in service —
// its dates include now. A ServerContexts keeps its store alive, and anyone holding the
// SSL_CTX of initial_context() keeps the ServerContexts alive (the servername callback points
// at it), so a reload never frees what a connection in its handshake still uses.
//
// Name matching (RFC 6125 §6.4): exact names first, ASCII case-insensitive, a trailing dot
// ignored; then "*.example.com", which matches exactly one more leftmost label
// ("mail.example.com", not "example.com" nor "a.b.example.com"); anything else, and a client
// without SNI, gets the default set.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/expected.h"
#include "tls/policy.h"
#include "tls/ticket_keys.h"

namespace tls {

// One certificate set: the names it serves (lower-case; empty for the default set without
// names) and its pairs, in configuration order.
struct CertificateSet {
  std::vector<std::string> names;
  std::vector<CertificatePair> pairs = {};
  std::vector<std::size_t> positions = {};  // of each pair in the list given to group_into_sets
};

// Groups pairs into sets: pairs whose `names` hold the same names (in any order and case)
// form one set. The default set comes first: the set without names, or else the first set.
std::vector<CertificateSet> group_into_sets(const std::vector<CertificatePair>& pairs);

// True for "example.com" against "example.com" and for "*.example.com" against
// "mail.example.com" (one label), ASCII case-insensitive; `pattern` is lower-case.
bool name_matches(std::string_view pattern, std::string_view server_name);

// What is known about one loaded certificate: for the expiry watch, metrics and logs.
struct CertificateDetails {
  std::string file;                        // the certificate (chain) file as configured
  std::string key_file;                    // its key file
  std::vector<std::string> set_names;      // names of its set; empty: the unnamed default
  std::vector<std::string> subject_names;  // DNS subjectAltNames of the leaf, else its CN
  std::string key_type;                    // "ECDSA", "RSA", …
  std::int64_t not_before = 0;             // unix seconds
  std::int64_t not_after = 0;              // unix seconds
  std::string fingerprint;                 // SHA-256 of the leaf (DER), lower-case hex
};

// Why a file was refused; `file` is the file at fault, `reason` says what is wrong with it
// ("cannot read the file: Permission denied", "expired on 2026-01-01T00:00:00Z", …).
struct LoadError {
  std::string file;
  std::string reason;
  std::size_t pair_index = 0;  // which entry of the pairs given to load()
  std::string to_string() const { return file + ": " + reason; }
};

struct LoadOptions {
  std::int64_t now_unix = 0;
  // Refuse a certificate that has expired or is not yet valid — unless the same certificate
  // (same file, same fingerprint) is in `in_service`: what already serves is never refused
  // for its dates (that would only turn a reload of other settings into a failure).
  bool refuse_out_of_date = true;
  const class CertificateStore* in_service = nullptr;
};

class CertificateStore {
 public:
  // Reads every pair once: chain (leaf first) and key, PEM. Errors name the file.
  static base::Expected<std::shared_ptr<const CertificateStore>, LoadError> load(
      const std::vector<CertificatePair>& pairs, const LoadOptions& options);

  ~CertificateStore();
  CertificateStore(const CertificateStore&) = delete;
  CertificateStore& operator=(const CertificateStore&) = delete;

  // Every certificate, default set first, in configuration order within a set.
  std::vector<CertificateDetails> certificates() const;
  std::size_t set_count() const { return sets_.size(); }
  const std::vector<std::string>& set_names(std::size_t set) const { return sets_[set].names; }

  // Puts the pairs of `set` into ctx (certificate, chain, key; one slot per key type).
  base::Expected<base::Ok, std::string> install(std::size_t set, SSL_CTX* ctx) const;

  struct LoadedPair;  // X509, chain and key (certificate_store.cpp)

 private:
  CertificateStore() = default;
  struct LoadedSet {
    std::vector<std::string> names;
    std::vector<std::unique_ptr<LoadedPair>> pairs;
  };
  std::vector<LoadedSet> sets_;
};

// The SSL_CTXs of one listener: one per certificate set, all with the same policy, tickets
// and client CA; connections start on the default set's context and its servername callback
// moves them to the set their SNI names (SSL_set_SSL_CTX). Resumption keeps working across
// sets: every context shares one TicketKeys (rotated every 12 hours, ticket_keys.h) and one
// session id context, which digests the client CA file's contents (policy.h
// session_id_context), so a session is resumed only under the client CAs it was made under.
class ServerContexts : public std::enable_shared_from_this<ServerContexts> {
 public:
  // `previous` (the same listener's contexts before a reload, or null): its ticket keys are
  // carried over when the client CA contents are the same, so tickets issued before the
  // reload still resume after it.
  static base::Expected<std::shared_ptr<ServerContexts>, std::string> create(
      const Policy& policy, std::shared_ptr<const CertificateStore> store,
      const std::string& client_ca_file, const ServerContexts* previous = nullptr);

  // The context a new connection starts on; holding it keeps this object (and its store)
  // alive.
  std::shared_ptr<SSL_CTX> initial_context();
  // The context for a server name (empty: no SNI); the default one when nothing matches.
  SSL_CTX* context_for(std::string_view server_name) const;
  const CertificateStore& store() const { return *store_; }

 private:
  ServerContexts() = default;
  std::size_t set_for(std::string_view server_name) const;
  static int on_server_name(SSL* ssl, int* alert, void* self);

  std::shared_ptr<const CertificateStore> store_;
  std::vector<SslCtxPtr> contexts_;                     // by set; [0] is the default
  std::string session_id_context_;                      // policy.h session_id_context()
  std::shared_ptr<TicketKeys> ticket_keys_;             // shared with the contexts after a reload
  std::unordered_map<std::string, std::size_t> exact_;  // name → set
  std::unordered_map<std::string, std::size_t> wildcard_;  // "example.com" for "*.example.com"
};

}  // namespace tls
