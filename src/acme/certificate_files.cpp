// certificate_files.cpp — see certificate_files.h.
#include "acme/certificate_files.h"

#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/file_write.h"
#include "tls/openssl_error.h"

namespace acme {
namespace {

bool key_has_type(EVP_PKEY* key, KeyType type) {
  if (type == KeyType::kRsa2048) return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) >= 2048;
  return EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) == 256;
}

std::string key_pem(EVP_PKEY* key) {
  tls::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// subjectAltName "DNS:a,DNS:b".
std::string san_text(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names)
    out += (out.empty() ? "DNS:" : ",DNS:") + name;
  return out;
}

std::int64_t unix_of(const ASN1_TIME* time) {
  struct tm parts {};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&parts));
}

}  // namespace

std::string_view to_string(KeyType type) {
  return type == KeyType::kEcdsaP256 ? "ecdsa" : "rsa";
}

std::vector<CertificatePaths> certificate_paths(const std::string& acme_dir) {
  std::vector<CertificatePaths> out;
  for (KeyType type : {KeyType::kEcdsaP256, KeyType::kRsa2048}) {
    const std::string stem = acme_dir + "/" + std::string(to_string(type));
    out.push_back(CertificatePaths{type, stem + ".key", stem + ".crt", stem + ".next.key",
                                   stem + ".next.crt"});
  }
  return out;
}

std::string account_key_path(const std::string& acme_dir) {
  return acme_dir + "/account.key";
}

base::Expected<std::string, std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return base::unexpected(path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

base::Expected<tls::KeyPtr, std::string> load_key(const std::string& path, KeyType type) {
  auto text = read_file(path);
  if (!text) return base::unexpected(text.error());
  tls::BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  tls::KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return base::unexpected(path + ": not a private key: " + tls::last_error_reason());
  if (!key_has_type(key.get(), type))
    return base::unexpected(path + ": not an " + std::string(to_string(type)) + " key");
  return key;
}

base::Expected<tls::KeyPtr, std::string> load_or_create_key(const std::string& path, KeyType type) {
  if (std::ifstream(path)) return load_key(path, type);
  if (errno != ENOENT) return base::unexpected(path + ": " + std::strerror(errno));
  auto key = make_key(type);
  if (!key) return key;
  auto written = write_key(path, key->get());
  if (!written) return base::unexpected(written.error());
  return key;
}

base::Expected<tls::KeyPtr, std::string> make_key(KeyType type) {
  tls::KeyPtr key(type == KeyType::kEcdsaP256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048));
  if (!key) return base::unexpected("cannot make a key: " + tls::last_error_reason());
  return key;
}

base::Expected<base::Ok, std::string> write_key(const std::string& path, EVP_PKEY* key) {
  const std::string pem = key_pem(key);
  if (pem.empty()) return base::unexpected("cannot write a key: " + tls::last_error_reason());
  return base::write_file_atomically(path, pem, 0600);
}

base::Expected<base::Ok, std::string> rename_durably(const std::string& from,
                                                     const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return base::unexpected("cannot rename " + from + " to " + to + ": " + std::strerror(errno));
  const std::size_t slash = to.rfind('/');
  const std::string directory = slash == std::string::npos ? "." : to.substr(0, slash);
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return base::unexpected(directory + ": " + std::strerror(errno));
  const bool synced = ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!synced) return base::unexpected("fsync " + directory + ": " + std::strerror(saved));
  return base::Ok{};
}

base::Expected<std::string, std::string> make_csr(EVP_PKEY* key,
                                                  const std::vector<std::string>& names) {
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> request(X509_REQ_new(), X509_REQ_free);
  if (!request || names.empty()) return base::unexpected(std::string("cannot make a CSR"));
  X509_REQ_set_version(request.get(), 0);
  X509_NAME* subject = X509_REQ_get_subject_name(request.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(names.front().c_str()), -1, -1,
                             0);
  STACK_OF(X509_EXTENSION)* extensions = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san_text(names).c_str());
  if (san == nullptr) {
    sk_X509_EXTENSION_free(extensions);
    return base::unexpected("bad names for a CSR: " + tls::last_error_reason());
  }
  sk_X509_EXTENSION_push(extensions, san);
  const int added = X509_REQ_add_extensions(request.get(), extensions);
  sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
  if (added != 1 || X509_REQ_set_pubkey(request.get(), key) != 1 ||
      X509_REQ_sign(request.get(), key, EVP_sha256()) <= 0) {
    return base::unexpected("cannot sign the CSR: " + tls::last_error_reason());
  }
  unsigned char* der = nullptr;
  const int size = i2d_X509_REQ(request.get(), &der);
  if (size <= 0) return base::unexpected(std::string("cannot encode the CSR"));
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(size));
  OPENSSL_free(der);
  return out;
}

base::Expected<ChainInfo, std::string> inspect_chain(const std::string& pem, EVP_PKEY* key) {
  tls::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ChainInfo info;
  tls::X509Ptr leaf;
  while (true) {
    tls::X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!certificate) break;
    ++info.certificates;
    if (!leaf) leaf = std::move(certificate);
  }
  tls::last_error_reason();  // the end of the PEM text leaves an entry
  if (!leaf) return base::unexpected(std::string("no certificate in the chain"));
  if (key != nullptr && X509_check_private_key(leaf.get(), key) != 1) {
    tls::last_error_reason();
    return base::unexpected(std::string("the certificate does not belong to our key"));
  }
  info.not_before = unix_of(X509_get0_notBefore(leaf.get()));
  info.not_after = unix_of(X509_get0_notAfter(leaf.get()));
  if (auto* names = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type != GEN_DNS) continue;
      const ASN1_IA5STRING* text = name->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                                  static_cast<std::size_t>(ASN1_STRING_length(text)));
    }
    GENERAL_NAMES_free(names);
  }
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf.get()), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      info.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(serial);
    for (char& c : info.serial)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  info.self_signed =
      X509_NAME_cmp(X509_get_subject_name(leaf.get()), X509_get_issuer_name(leaf.get())) == 0;
  tls::BioPtr name(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(name.get(), X509_get_issuer_name(leaf.get()), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(name.get(), &data);
  info.issuer.assign(data, static_cast<std::size_t>(size));
  return info;
}

base::Expected<base::Ok, std::string> write_placeholder(const std::string& chain_path,
                                                        EVP_PKEY* key,
                                                        const std::vector<std::string>& names) {
  tls::X509Ptr certificate(X509_new());
  if (!certificate || names.empty())
    return base::unexpected(std::string("cannot make a certificate"));
  X509_set_version(certificate.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 90L * 86400);
  X509_NAME* name = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(names.front().c_str()), -1, -1,
                             0);
  X509_set_issuer_name(certificate.get(), name);
  X509_set_pubkey(certificate.get(), key);
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, certificate.get(), certificate.get(), nullptr, nullptr, 0);
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, &context, NID_subject_alt_name, san_text(names).c_str());
  if (san == nullptr) return base::unexpected("bad names: " + tls::last_error_reason());
  X509_add_ext(certificate.get(), san, -1);
  X509_EXTENSION_free(san);
  if (X509_sign(certificate.get(), key, EVP_sha256()) <= 0)
    return base::unexpected("cannot sign: " + tls::last_error_reason());
  tls::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), certificate.get());
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return base::write_file_atomically(chain_path,
                                     std::string_view(data, static_cast<std::size_t>(size)), 0644);
}

}  // namespace acme
