// dkim_crypto.cpp — OpenSSL 3 EVP for DKIM (see dkim_crypto.h for the schemes).
#include "mailauth/dkim_crypto.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>

namespace mailauth {

namespace {

struct MdContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using MdContext = std::unique_ptr<EVP_MD_CTX, MdContextFree>;
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

// OpenSSL keeps the reasons of a failed decode or verification in a per-thread queue; a key
// from the network fails often, and a stale entry would be read as the cause of the next
// failure of anything else on the thread (TLS too). Every entry point leaves it empty.
struct OpensslErrorsCleared {
  ~OpensslErrorsCleared() { ERR_clear_error(); }
};

const unsigned char* bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  // An allocation failure here is a broken invariant (no memory): abort loudly.
  if (context_ == nullptr || EVP_DigestInit_ex(context_, EVP_sha256(), nullptr) != 1) std::abort();
}
Sha256::~Sha256() {
  EVP_MD_CTX_free(context_);
}
Sha256::Sha256(Sha256&& other) noexcept : context_(other.context_) {
  other.context_ = nullptr;
}
Sha256& Sha256::operator=(Sha256&& other) noexcept {
  std::swap(context_, other.context_);
  return *this;
}
void Sha256::update(std::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(context_, data.data(), data.size());
}
std::string Sha256::finish() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(context_, digest, &size);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string sha256(std::string_view data) {
  Sha256 hash;
  hash.update(data);
  return hash.finish();
}

void PkeyFree::operator()(evp_pkey_st* key) const {
  EVP_PKEY_free(key);
}

namespace {

// Decoded public keys by their record's key data: decoding an RSA key through OpenSSL 3's
// decoders costs ~0.2 ms, several times the verification itself, and the same few keys sign
// most mail. Shared by every thread; an EVP_PKEY is reference-counted and only read once
// made, so one cached key serves verifications at once. Bounded: when full it starts afresh.
class PublicKeyCache {
 public:
  static constexpr std::size_t kMaxKeys = 1024;

  Pkey find(DkimKeyType type, std::string_view p) {
    const std::string name = key_of(type, p);
    std::lock_guard lock(mutex_);
    auto it = keys_.find(name);
    if (it == keys_.end()) return nullptr;
    EVP_PKEY_up_ref(it->second.get());
    return Pkey(it->second.get());
  }
  void add(DkimKeyType type, std::string_view p, const Pkey& key) {
    std::string name = key_of(type, p);
    EVP_PKEY_up_ref(key.get());
    Pkey shared(key.get());
    std::lock_guard lock(mutex_);
    if (keys_.size() >= kMaxKeys) keys_.clear();
    keys_.try_emplace(std::move(name), std::move(shared));  // not inserted: the ref is freed
  }

 private:
  static std::string key_of(DkimKeyType type, std::string_view p) {
    std::string name(1, type == DkimKeyType::kEd25519 ? 'e' : 'r');
    name.append(p);
    return name;
  }
  std::mutex mutex_;
  std::unordered_map<std::string, Pkey> keys_;
};

PublicKeyCache& public_key_cache() {
  static PublicKeyCache cache;
  return cache;
}

base::Expected<Pkey, std::string> decode_public_key(DkimKeyType type, std::string_view p);

}  // namespace

base::Expected<Pkey, std::string> public_key_from_record(DkimKeyType type, std::string_view p) {
  if (Pkey cached = public_key_cache().find(type, p)) return cached;
  auto decoded = decode_public_key(type, p);
  if (decoded) public_key_cache().add(type, p, decoded.value());
  return decoded;
}

namespace {

base::Expected<Pkey, std::string> decode_public_key(DkimKeyType type, std::string_view p) {
  const OpensslErrorsCleared cleared;
  if (type == DkimKeyType::kEd25519) {
    // RFC 8463 §4.2: "the p= value is the base64 encoding of the public key" — 32 octets.
    if (p.size() != 32) return base::unexpected(std::string("ed25519 key is not 32 octets"));
    Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes(p), p.size()));
    if (!key) return base::unexpected(std::string("bad ed25519 key"));
    return key;
  }
  const unsigned char* cursor = bytes(p);
  Pkey key(d2i_PUBKEY(nullptr, &cursor, static_cast<long>(p.size())));
  if (!key || cursor != bytes(p) + p.size()) {
    // Some publishers put the bare PKCS#1 RSAPublicKey in p=.
    cursor = bytes(p);
    key.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &cursor, static_cast<long>(p.size())));
    if (!key || cursor != bytes(p) + p.size())
      return base::unexpected(std::string("p= is not an RSA public key"));
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA)
    return base::unexpected(std::string("p= is not an RSA public key"));
  // A huge public exponent makes one verification cost as much as a signature (OpenSSL
  // bounds it only for moduli over 3072 bits): keys with e over 2^32 are refused, so a
  // sender's key cannot tie up the verification pool.
  BIGNUM* exponent = nullptr;
  if (EVP_PKEY_get_bn_param(key.get(), "e", &exponent) != 1 || exponent == nullptr)
    return base::unexpected(std::string("RSA key without a public exponent"));
  const int exponent_bits = BN_num_bits(exponent);
  BN_free(exponent);
  if (exponent_bits > 33) return base::unexpected(std::string("RSA public exponent over 2^32"));
  return key;
}

}  // namespace

unsigned key_bits(const Pkey& key) {
  int bits = EVP_PKEY_get_bits(key.get());
  return bits > 0 ? static_cast<unsigned>(bits) : 0;
}

bool verify_dkim_data(DkimKeyType type, const Pkey& key, std::string_view data,
                      std::string_view signature) {
  const OpensslErrorsCleared cleared;
  MdContext context(EVP_MD_CTX_new());
  if (!context) return false;
  if (type == DkimKeyType::kEd25519) {
    std::string digest = sha256(data);
    if (EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, key.get()) != 1)
      return false;
    return EVP_DigestVerify(context.get(), bytes(signature), signature.size(), bytes(digest),
                            digest.size()) == 1;
  }
  EVP_PKEY_CTX* key_context = nullptr;
  if (EVP_DigestVerifyInit(context.get(), &key_context, EVP_sha256(), nullptr, key.get()) != 1)
    return false;
  if (EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) != 1) return false;
  return EVP_DigestVerify(context.get(), bytes(signature), signature.size(), bytes(data),
                          data.size()) == 1;
}

base::Expected<std::string, std::string> sign_dkim_data(DkimKeyType type, const Pkey& key,
                                                        std::string_view data) {
  const OpensslErrorsCleared cleared;
  MdContext context(EVP_MD_CTX_new());
  if (!context) return base::unexpected(std::string("out of memory"));
  std::string digest;
  std::string_view input = data;
  EVP_PKEY_CTX* key_context = nullptr;
  if (type == DkimKeyType::kEd25519) {
    digest = sha256(data);
    input = digest;
    if (EVP_DigestSignInit(context.get(), nullptr, nullptr, nullptr, key.get()) != 1)
      return base::unexpected(std::string("EVP_DigestSignInit failed"));
  } else {
    if (EVP_DigestSignInit(context.get(), &key_context, EVP_sha256(), nullptr, key.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) != 1)
      return base::unexpected(std::string("EVP_DigestSignInit failed"));
  }
  std::size_t size = 0;
  if (EVP_DigestSign(context.get(), nullptr, &size, bytes(input), input.size()) != 1)
    return base::unexpected(std::string("EVP_DigestSign failed"));
  std::string signature(size, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     bytes(input), input.size()) != 1)
    return base::unexpected(std::string("EVP_DigestSign failed"));
  signature.resize(size);
  return signature;
}

base::Expected<Pkey, std::string> private_key_from_pem(std::string_view pem) {
  const OpensslErrorsCleared cleared;
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return base::unexpected(std::string("out of memory"));
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return base::unexpected(std::string("not a PEM private key"));
  return key;
}

base::Expected<std::string, std::string> private_key_to_pem(const Pkey& key) {
  const OpensslErrorsCleared cleared;
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return base::unexpected(std::string("PEM_write_bio_PrivateKey failed"));
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

base::Expected<Pkey, std::string> generate_key(DkimKeyType type) {
  const OpensslErrorsCleared cleared;
  Pkey key(type == DkimKeyType::kRsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                                     : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return base::unexpected(std::string("key generation failed"));
  return key;
}

base::Expected<std::string, std::string> public_key_for_record(DkimKeyType type, const Pkey& key) {
  const OpensslErrorsCleared cleared;
  if (type == DkimKeyType::kEd25519) {
    std::string raw(32, '\0');
    std::size_t size = raw.size();
    if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(raw.data()),
                                    &size) != 1 ||
        size != 32)
      return base::unexpected(std::string("no raw ed25519 public key"));
    return raw;
  }
  int size = i2d_PUBKEY(key.get(), nullptr);
  if (size <= 0) return base::unexpected(std::string("i2d_PUBKEY failed"));
  std::string der(static_cast<std::size_t>(size), '\0');
  unsigned char* cursor = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(key.get(), &cursor) != size)
    return base::unexpected(std::string("i2d_PUBKEY failed"));
  return der;
}

base::Expected<DkimKeyType, std::string> key_type_of(const Pkey& key) {
  switch (EVP_PKEY_get_base_id(key.get())) {
    case EVP_PKEY_RSA:
      return DkimKeyType::kRsa;
    case EVP_PKEY_ED25519:
      return DkimKeyType::kEd25519;
    default:
      return base::unexpected(std::string("neither an RSA nor an Ed25519 key"));
  }
}

}  // namespace mailauth
