// certificate_files.h — the files ACME keeps under <data_dir>/acme/ (0700): the account key
// and, per key type, the certificate's private key and its chain, which [[tls.certificates]]
// serves (config adds the pairs when [acme] is on). Keys are made here (ES256 account key;
// ECDSA P-256 and RSA-2048 certificate keys), CSRs (RFC 2986, RFC 8555 §7.4) and the
// self-signed placeholder that lets the server start before its first certificate.
//
// Invariants: every file is written whole (base::write_file_atomically: temporary file,
// fsync, rename, fsync of the directory), keys mode 0600, chains 0644; a key is made once
// and kept across renewals, so a published TLSA "3 1 1" record (the key's SPKI) stays
// valid; only a revocation replaces it (renewal.h). A chain is written only after it parsed and its
// leaf matches the key, so the hot reload (app/smtpsd/reload.cpp) never sees a pair that does not
// belong together; the chain is written after its key (the key is never replaced, so the pair stays
// consistent).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.h"
#include "tls/openssl_ptr.h"

namespace acme {

enum class KeyType { kEcdsaP256, kRsa2048 };
std::string_view to_string(KeyType type);  // "ecdsa", "rsa"

struct CertificatePaths {
  KeyType type;
  std::string key;    // <dir>/<type>.key
  std::string chain;  // <dir>/<type>.crt
  // A key rollover (renewal.h): the staged next key, and its certificate between the two
  // renames that put the pair in service.
  std::string next_key;    // <dir>/<type>.next.key
  std::string next_chain;  // <dir>/<type>.next.crt
};
// Both key types, ECDSA first (as the server serves them today).
std::vector<CertificatePaths> certificate_paths(const std::string& acme_dir);
std::string account_key_path(const std::string& acme_dir);

// The key of this type in path; an error naming the file when it cannot be read or holds no
// key of this type.
base::Expected<tls::KeyPtr, std::string> load_key(const std::string& path, KeyType type);
// The key in path, or a new one written there (0600) when the file does not exist. A file
// that exists but does not hold a key of this type is an error, never overwritten.
base::Expected<tls::KeyPtr, std::string> load_or_create_key(const std::string& path, KeyType type);

// A new key of the type, in memory (a revocation replaces the key: renewal.h).
base::Expected<tls::KeyPtr, std::string> make_key(KeyType type);
// Writes key to path (PEM, 0600), replacing what is there, atomically.
base::Expected<base::Ok, std::string> write_key(const std::string& path, EVP_PKEY* key);
// rename(2) from over to, then an fsync of their directory (both in one directory).
base::Expected<base::Ok, std::string> rename_durably(const std::string& from,
                                                     const std::string& to);

// A DER CSR for names (the first one as CN, all as dNSName SANs), signed by key.
base::Expected<std::string, std::string> make_csr(EVP_PKEY* key,
                                                  const std::vector<std::string>& names);

struct ChainInfo {
  std::int64_t not_before = 0;  // unix seconds, of the leaf
  std::int64_t not_after = 0;
  std::string issuer;        // the leaf's issuer, one line (RFC 2253)
  bool self_signed = false;  // the placeholder
  std::size_t certificates = 0;
  std::vector<std::string> dns_names;  // the leaf's DNS subjectAltNames, as written
  std::string serial;                  // the leaf's serial number, lower-case hex
};
// Reads a PEM chain (leaf first); with key, checks that the leaf belongs to it.
base::Expected<ChainInfo, std::string> inspect_chain(const std::string& pem, EVP_PKEY* key);
base::Expected<std::string, std::string> read_file(const std::string& path);

// Writes a self-signed certificate for names with key into chain_path, valid from now - 1 h
// for 90 days: what serves until ACME's first certificate arrives.
base::Expected<base::Ok, std::string> write_placeholder(const std::string& chain_path,
                                                        EVP_PKEY* key,
                                                        const std::vector<std::string>& names);

}  // namespace acme
