// dev_pki.cpp — creates the development CA and server certificates with the OpenSSL 3 API
// (no openssl binary). Invariants: a key file is complete and mode 0600 from the moment it has
// its final name (O_EXCL temp file, fsync, rename); an existing key is reused, never replaced;
// a certificate is only created for a key that exists on disk. Certificate profile: RFC 5280
// (v3, SKI/AKI, critical basicConstraints and keyUsage), names for RFC 6125 / RFC 9525 checks
// in subjectAltName only, serverAuth EKU, SHA-256 signatures.
#include "tls/dev_pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "tls/openssl_error.h"
#include "tls/openssl_ptr.h"

namespace tls {
namespace {

constexpr long kSecondsInADay = 24 * 60 * 60;
constexpr long kCaValidityDays = 10 * 365 + 2;
// CA/Browser Forum's former ceiling; Apple platforms refuse longer-lived TLS leaves.
constexpr long kLeafValidityDays = 825;
constexpr long kBackdateSeconds = 60 * 60;  // tolerate clients whose clock is a little behind

enum class KeyKind { kEcdsa, kRsa };

base::Expected<std::string, std::string> random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    return base::unexpected("tls: no randomness: " + last_error_reason());
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : raw) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0x0f];
  }
  return hex;
}

bool is_ip_literal(const std::string& name) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buffer) == 1;
}

// A DNS name as a certificate may carry it (letters, digits, '-', '.', '_' and a leading "*."
// wildcard); anything else would be a name no client can match.
bool is_dns_name(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_';
    const bool wildcard = c == '*' && i == 0 && name.size() > 2 && name[1] == '.';
    if (!plain && !wildcard) return false;
  }
  return true;
}

// Writes `content` to `path` so that the file appears complete, with `mode`, or not at all.
base::Expected<base::Ok, std::string> write_file_atomically(const std::string& path,
                                                            const std::string& content,
                                                            mode_t mode) {
  auto suffix = random_hex(8);
  if (!suffix) return base::unexpected(suffix.error());
  const std::string temporary = path + ".tmp-" + suffix.value();
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return base::unexpected("tls: cannot create " + temporary + ": " + std::strerror(errno));
  }
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(fd);
      unlink(temporary.c_str());
      return base::unexpected("tls: cannot write " + temporary + ": " + std::strerror(error));
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const int error = errno;
    unlink(temporary.c_str());
    return base::unexpected("tls: cannot write " + temporary + ": " + std::strerror(error));
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    unlink(temporary.c_str());
    return base::unexpected("tls: cannot rename " + temporary + " to " + path + ": " +
                            std::strerror(error));
  }
  return base::Ok{};
}

base::Expected<std::string, std::string> bio_contents(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  if (length < 0 || data == nullptr) {
    return base::unexpected("tls: cannot encode PEM: " + last_error_reason());
  }
  return std::string(data, static_cast<size_t>(length));
}

base::Expected<std::string, std::string> key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return base::unexpected("tls: cannot encode key: " + last_error_reason());
  }
  return bio_contents(bio.get());
}

base::Expected<std::string, std::string> certificate_pem(X509* certificate) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), certificate) != 1) {
    return base::unexpected("tls: cannot encode certificate: " + last_error_reason());
  }
  return bio_contents(bio.get());
}

base::Expected<KeyPtr, std::string> read_key(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return base::unexpected("tls: cannot load key " + path + ": " + last_error_reason());
  return key;
}

base::Expected<X509Ptr, std::string> read_certificate(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  X509Ptr certificate(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!certificate) {
    return base::unexpected("tls: cannot load certificate " + path + ": " + last_error_reason());
  }
  return certificate;
}

base::Expected<KeyPtr, std::string> generate_key(KeyKind kind) {
  KeyPtr key(kind == KeyKind::kEcdsa ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048));
  if (!key) return base::unexpected("tls: cannot generate key: " + last_error_reason());
  return key;
}

// Loads the key at `path`, or generates one and writes it there (mode 0600).
base::Expected<KeyPtr, std::string> ensure_key(const std::string& path, KeyKind kind) {
  std::error_code error;
  if (std::filesystem::exists(path, error)) return read_key(path);
  auto key = generate_key(kind);
  if (!key) return key;
  auto pem = key_pem(key->get());
  if (!pem) return base::unexpected(pem.error());
  if (auto written = write_file_atomically(path, pem.value(), 0600); !written) {
    return base::unexpected(written.error());
  }
  return key;
}

// RFC 5280 §4.1.2.2: positive, non-zero, at most 20 octets. 128 random bits (BIGNUM is
// unsigned, so the DER integer is positive; 17 octets at most with the sign byte).
bool set_random_serial(X509* certificate) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  BIGNUM* number = BN_bin2bn(bytes, sizeof bytes, nullptr);
  if (number == nullptr) return false;
  if (BN_is_zero(number)) BN_one(number);
  ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(number, nullptr);
  BN_free(number);
  if (serial == nullptr) return false;
  const bool ok = X509_set_serialNumber(certificate, serial) == 1;
  ASN1_INTEGER_free(serial);
  return ok;
}

bool add_extension(X509* certificate, X509V3_CTX* context, int nid, const char* value) {
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, context, nid, value);
  if (extension == nullptr) return false;
  const bool ok = X509_add_ext(certificate, extension, -1) == 1;
  X509_EXTENSION_free(extension);
  return ok;
}

// subjectAltName with DNS: and IP: entries; RFC 9525 §6.3 has clients match these, not CN.
bool add_subject_alt_names(X509* certificate, const std::vector<std::string>& names) {
  GENERAL_NAMES* general_names = sk_GENERAL_NAME_new_null();
  if (general_names == nullptr) return false;
  bool ok = true;
  for (const std::string& name : names) {
    GENERAL_NAME* general_name = GENERAL_NAME_new();
    if (general_name == nullptr) {
      ok = false;
      break;
    }
    if (is_ip_literal(name)) {
      ASN1_OCTET_STRING* address = a2i_IPADDRESS(name.c_str());
      ok = address != nullptr;
      if (ok) GENERAL_NAME_set0_value(general_name, GEN_IPADD, address);
    } else {
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      ok = dns != nullptr && ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) == 1;
      if (ok) {
        GENERAL_NAME_set0_value(general_name, GEN_DNS, dns);
      } else {
        ASN1_IA5STRING_free(dns);
      }
    }
    if (!ok || sk_GENERAL_NAME_push(general_names, general_name) == 0) {
      GENERAL_NAME_free(general_name);
      ok = false;
      break;
    }
  }
  ok = ok && X509_add1_ext_i2d(certificate, NID_subject_alt_name, general_names, 0,
                               X509V3_ADD_DEFAULT) == 1;
  GENERAL_NAMES_free(general_names);
  return ok;
}

struct CertificateRequest {
  std::string common_name;
  std::vector<std::string> alt_names;  // empty for the CA
  bool is_ca = false;
  KeyKind kind = KeyKind::kEcdsa;
  long validity_days = 0;
};

// Builds and signs a certificate for `subject_key`; `issuer` null means self-signed.
base::Expected<X509Ptr, std::string> make_certificate(const CertificateRequest& request,
                                                      EVP_PKEY* subject_key, X509* issuer,
                                                      EVP_PKEY* issuer_key) {
  X509Ptr certificate(X509_new());
  if (!certificate)
    return base::unexpected("tls: cannot create certificate: " + last_error_reason());
  X509* x = certificate.get();
  const auto fail = [&](const std::string& step) {
    return base::unexpected("tls: cannot " + step + " for " + request.common_name + ": " +
                            last_error_reason());
  };
  if (X509_set_version(x, X509_VERSION_3) != 1 || !set_random_serial(x)) {
    return fail("set version and serial");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(x), -kBackdateSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(x), static_cast<int>(request.validity_days), 0,
                       nullptr) == nullptr) {
    return fail("set validity");
  }
  X509_NAME* subject = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(
          subject, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(request.common_name.c_str()), -1, -1, 0) != 1) {
    return fail("set subject CN");
  }
  if (X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : subject) != 1 ||
      X509_set_pubkey(x, subject_key) != 1) {
    return fail("set issuer and key");
  }

  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
  const char* key_usage = request.is_ca ? "critical,keyCertSign,cRLSign"
                          : request.kind == KeyKind::kRsa
                              ? "critical,digitalSignature,keyEncipherment"
                              : "critical,digitalSignature";
  // SKI before AKI: for the self-signed CA the AKI is taken from its own SKI.
  bool ok = add_extension(x, &context, NID_basic_constraints,
                          request.is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") &&
            add_extension(x, &context, NID_key_usage, key_usage) &&
            add_extension(x, &context, NID_subject_key_identifier, "hash") &&
            add_extension(x, &context, NID_authority_key_identifier, "keyid:always");
  if (ok && !request.is_ca) {
    ok = add_extension(x, &context, NID_ext_key_usage, "serverAuth") &&
         add_subject_alt_names(x, request.alt_names);
  }
  if (!ok) return fail("add extensions");
  if (X509_sign(x, issuer_key, EVP_sha256()) <= 0) return fail("sign certificate");
  return certificate;
}

// The key and certificate of the CA, creating what is missing.
struct Authority {
  KeyPtr key;
  X509Ptr certificate;
};

base::Expected<Authority, std::string> ensure_authority(const DevPkiPaths& paths) {
  std::error_code error;
  const bool has_certificate = std::filesystem::exists(paths.ca_certificate, error);
  const bool has_key = std::filesystem::exists(paths.ca_key, error);
  if (has_certificate && !has_key) {
    return base::unexpected("tls: " + paths.ca_certificate + " exists but its key " + paths.ca_key +
                            " is missing; remove the directory to start over");
  }
  auto key = ensure_key(paths.ca_key, KeyKind::kEcdsa);
  if (!key) return base::unexpected(key.error());
  if (has_certificate) {
    auto certificate = read_certificate(paths.ca_certificate);
    if (!certificate) return base::unexpected(certificate.error());
    if (X509_check_private_key(certificate->get(), key->get()) != 1) {
      return base::unexpected("tls: key " + paths.ca_key + " does not match certificate " +
                              paths.ca_certificate + ": " + last_error_reason());
    }
    return Authority{std::move(key.value()), std::move(certificate.value())};
  }
  auto tag = random_hex(4);
  if (!tag) return base::unexpected(tag.error());
  CertificateRequest request;
  request.common_name = "smtpsd development CA " + tag.value();
  request.is_ca = true;
  request.validity_days = kCaValidityDays;
  auto certificate = make_certificate(request, key->get(), nullptr, key->get());
  if (!certificate) return base::unexpected(certificate.error());
  auto pem = certificate_pem(certificate->get());
  if (!pem) return base::unexpected(pem.error());
  if (auto written = write_file_atomically(paths.ca_certificate, pem.value(), 0644); !written) {
    return base::unexpected(written.error());
  }
  return Authority{std::move(key.value()), std::move(certificate.value())};
}

base::Expected<base::Ok, std::string> ensure_leaf(const std::string& chain_path,
                                                  const std::string& key_path, KeyKind kind,
                                                  const std::vector<std::string>& names,
                                                  const Authority& authority) {
  std::error_code error;
  const bool has_chain = std::filesystem::exists(chain_path, error);
  const bool has_key = std::filesystem::exists(key_path, error);
  if (has_chain && has_key) return base::Ok{};
  if (has_chain) {
    return base::unexpected("tls: " + chain_path + " exists but its key " + key_path +
                            " is missing; remove both to recreate them");
  }
  auto key = ensure_key(key_path, kind);
  if (!key) return base::unexpected(key.error());
  CertificateRequest request;
  request.common_name = names.front();
  request.alt_names = names;
  request.kind = kind;
  request.validity_days = kLeafValidityDays;
  auto leaf =
      make_certificate(request, key->get(), authority.certificate.get(), authority.key.get());
  if (!leaf) return base::unexpected(leaf.error());
  // Full chain, leaf first (RFC 8446 §4.4.2); the root is included so that clients which were
  // given only the leaf's issuer name can still see it.
  auto leaf_pem = certificate_pem(leaf->get());
  auto ca_pem = certificate_pem(authority.certificate.get());
  if (!leaf_pem) return base::unexpected(leaf_pem.error());
  if (!ca_pem) return base::unexpected(ca_pem.error());
  return write_file_atomically(chain_path, leaf_pem.value() + ca_pem.value(), 0644);
}

}  // namespace

base::Expected<DevPkiPaths, std::string> ensure_dev_pki(const std::string& dir,
                                                        const std::vector<std::string>& names) {
  if (names.empty()) {
    return base::unexpected(std::string("tls: the development PKI needs at least one name"));
  }
  for (const std::string& name : names) {
    if (!is_ip_literal(name) && !is_dns_name(name)) {
      return base::unexpected("tls: \"" + name + "\" is neither a DNS name nor an IP address");
    }
  }
  if (names.front().size() > 64) {  // RFC 5280 ub-common-name
    return base::unexpected("tls: \"" + names.front() + "\" is too long for a common name");
  }
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return base::unexpected("tls: cannot create " + dir + ": " + error.message());

  const std::filesystem::path base(dir);
  DevPkiPaths paths;
  paths.ca_certificate = (base / "ca.pem").string();
  paths.ca_key = (base / "ca.key").string();
  paths.ecdsa_chain = (base / "server-ecdsa.pem").string();
  paths.ecdsa_key = (base / "server-ecdsa.key").string();
  paths.rsa_chain = (base / "server-rsa.pem").string();
  paths.rsa_key = (base / "server-rsa.key").string();

  auto authority = ensure_authority(paths);
  if (!authority) return base::unexpected(authority.error());
  if (auto leaf = ensure_leaf(paths.ecdsa_chain, paths.ecdsa_key, KeyKind::kEcdsa, names,
                              authority.value());
      !leaf) {
    return base::unexpected(leaf.error());
  }
  if (auto leaf =
          ensure_leaf(paths.rsa_chain, paths.rsa_key, KeyKind::kRsa, names, authority.value());
      !leaf) {
    return base::unexpected(leaf.error());
  }
  return paths;
}

base::Expected<long, std::string> days_until_expiry(const std::string& certificate_file) {
  auto certificate = read_certificate(certificate_file);
  if (!certificate) return base::unexpected(certificate.error());
  int days = 0;
  int seconds = 0;
  if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(certificate->get())) != 1) {
    return base::unexpected("tls: cannot read the expiry of " + certificate_file + ": " +
                            last_error_reason());
  }
  // Rounded down (toward the past): one second after expiry is day -1, not day 0.
  const long total = static_cast<long>(days) * kSecondsInADay + seconds;
  const long whole_days = total / kSecondsInADay;
  return (total % kSecondsInADay < 0) ? whole_days - 1 : whole_days;
}

}  // namespace tls
