// dkim_signer.h — DKIM signing of one message (RFC 6376 §5, RFC 8463), relaxed/relaxed,
// streaming like the verifier: the body in chunks (one relaxed SHA-256 body hash shared by
// every key), then sign() over the header section.
//
// Keys are PEM private keys (PKCS#8, or the traditional RSA form): RSA of at least 1024 bits
// (RFC 8301 §3.2; generate_dkim_key makes 2048) or Ed25519 (RFC 8463). A loaded key is
// immutable and shared between messages. The signing seam is small (data in, signature out)
// so that it can move to another process later (STYLE.md habit 8).
//
// Header list (RFC 6376 §5.4.1): every field of kSignedHeaders present is signed; those of
// kOverSignedHeaders are listed once more than present (§8.15), so adding one more (a second
// From, a Subject where there was none) breaks the signature. DKIM-Signature fields already
// present are not signed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "mailauth/dkim_canonicalization.h"
#include "mailauth/dkim_crypto.h"

namespace mailauth {

class DkimSigningKey {
 public:
  static base::Expected<std::shared_ptr<const DkimSigningKey>, std::string> load(
      std::string_view pem, std::string domain, std::string selector);
  std::string_view algorithm() const;  // "rsa-sha256" | "ed25519-sha256"
  const std::string& domain() const { return domain_; }
  const std::string& selector() const { return selector_; }
  std::string dns_record() const;  // the TXT rdata: "v=DKIM1; k=ed25519; p=..."
  unsigned bits() const;
  // The signature of the canonical header data (RSA: of its SHA-256, PKCS#1 v1.5; Ed25519:
  // PureEdDSA of its SHA-256, RFC 8463 §3).
  base::Expected<std::string, std::string> sign(std::string_view data) const;

 private:
  DkimSigningKey(Pkey key, DkimKeyType type, std::string domain, std::string selector)
      : key_(std::move(key)),
        type_(type),
        domain_(std::move(domain)),
        selector_(std::move(selector)) {}
  Pkey key_;
  DkimKeyType type_;
  std::string domain_, selector_;
  std::string public_key_;  // p= decoded
};

struct GeneratedKey {
  std::string private_pem;  // PKCS#8
  std::string dns_record;   // "v=DKIM1; k=rsa; p=..."
};
// "rsa" (2048 bits) or "ed25519".
base::Expected<GeneratedKey, std::string> generate_dkim_key(std::string_view algorithm);

class DkimSigner {
 public:
  explicit DkimSigner(std::vector<std::shared_ptr<const DkimSigningKey>> keys);
  ~DkimSigner();
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  void body(std::string_view chunk);
  void end_of_body();
  // One DKIM-Signature field value per key, in the order of the keys (no field name, no
  // final CRLF; folded with CRLF TAB so that "DKIM-Signature: " + value has no line over 78
  // octets), t= now. Empty when end_of_body() was not called; a key that fails to sign
  // (which OpenSSL only does without memory) gives an empty string in its place.
  std::vector<std::string> sign(std::string_view header_section, std::int64_t now) const;

 private:
  struct BodyHash;
  std::vector<std::shared_ptr<const DkimSigningKey>> keys_;
  std::unique_ptr<BodyHash> body_hash_;
  std::string digest_;
};

}  // namespace mailauth
