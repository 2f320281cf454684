// dkim_signer.cpp — RFC 6376 §5 signing, relaxed/relaxed, with the header choice and the
// folding described in dkim_signer.h.
#include "mailauth/dkim_signer.h"

#include <array>

#include "base/ascii.h"
#include "base/base64.h"
#include "mailauth/dkim_signature.h"

namespace mailauth {

namespace {

// RFC 6376 §5.4.1 "SHOULD be included": signed when present.
constexpr std::array<std::string_view, 14> kSignedHeaders = {"Resent-Date",
                                                             "Resent-From",
                                                             "Resent-To",
                                                             "Resent-Cc",
                                                             "List-Id",
                                                             "List-Help",
                                                             "List-Unsubscribe",
                                                             "List-Subscribe",
                                                             "List-Post",
                                                             "List-Owner",
                                                             "List-Archive",
                                                             "Content-ID",
                                                             "Content-Description",
                                                             "List-Unsubscribe-Post"};
// Over-signed (§8.15): one more than present, so that no instance can be added.
constexpr std::array<std::string_view, 13> kOverSignedHeaders = {"From",
                                                                 "Reply-To",
                                                                 "Subject",
                                                                 "Date",
                                                                 "To",
                                                                 "Cc",
                                                                 "Message-ID",
                                                                 "In-Reply-To",
                                                                 "References",
                                                                 "Sender",
                                                                 "MIME-Version",
                                                                 "Content-Type",
                                                                 "Content-Transfer-Encoding"};

constexpr std::size_t kMaxLine = 78;  // RFC 5322 §2.1.1 SHOULD

// Builds a folded field value; the column counts "DKIM-Signature: " of the first line.
class Folder {
 public:
  // An unbreakable piece, after a space when `space` (folding replaces the space).
  void put(std::string_view atom, bool space) {
    if (column_ + (space ? 1 : 0) + atom.size() > kMaxLine && column_ > 1) {
      text_.append("\r\n\t");
      column_ = 1;
    } else if (space) {
      text_.push_back(' ');
      ++column_;
    }
    text_.append(atom);
    column_ += atom.size();
  }
  // Base64 that may be folded anywhere (RFC 6376 §2.4 base64string allows FWS).
  void put_breakable(std::string_view text) {
    while (!text.empty()) {
      if (column_ >= kMaxLine) {
        text_.append("\r\n\t");
        column_ = 1;
      }
      std::size_t take = std::min(text.size(), kMaxLine - column_);
      text_.append(text.substr(0, take));
      column_ += take;
      text.remove_prefix(take);
    }
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::size_t column_ = 16;  // "DKIM-Signature: "
};

struct HashSink final : BodySink {
  void write(std::string_view octets) override { hash.update(octets); }
  Sha256 hash;
};

}  // namespace

base::Expected<std::shared_ptr<const DkimSigningKey>, std::string> DkimSigningKey::load(
    std::string_view pem, std::string domain, std::string selector) {
  auto key = private_key_from_pem(pem);
  if (!key) return base::unexpected(key.error());
  auto type = key_type_of(*key);
  if (!type) return base::unexpected(type.error());
  if (*type == DkimKeyType::kRsa && key_bits(*key) < 1024)
    return base::unexpected(std::string("RSA key under 1024 bits (RFC 8301 3.2)"));
  domain = base::ascii_lowercase(domain);
  selector = base::ascii_lowercase(selector);
  // The same rules as a verifier applies to d= and s= (through a one-tag parse).
  auto check = parse_dkim_signature("v=1; a=rsa-sha256; b=AA==; bh=AA==; h=from; d=" + domain +
                                    "; s=" + selector);
  if (!check) return base::unexpected("bad domain or selector: " + check.error());
  auto public_key = public_key_for_record(*type, *key);
  if (!public_key) return base::unexpected(public_key.error());
  std::shared_ptr<DkimSigningKey> loaded(
      new DkimSigningKey(std::move(*key), *type, std::move(domain), std::move(selector)));
  loaded->public_key_ = std::move(*public_key);
  return std::shared_ptr<const DkimSigningKey>(std::move(loaded));
}

std::string_view DkimSigningKey::algorithm() const {
  return type_ == DkimKeyType::kRsa ? "rsa-sha256" : "ed25519-sha256";
}

std::string DkimSigningKey::dns_record() const {
  return std::string("v=DKIM1; k=") + (type_ == DkimKeyType::kRsa ? "rsa" : "ed25519") +
         "; p=" + base::to_base64(public_key_);
}

unsigned DkimSigningKey::bits() const {
  return key_bits(key_);
}

base::Expected<std::string, std::string> DkimSigningKey::sign(std::string_view data) const {
  return sign_dkim_data(type_, key_, data);
}

base::Expected<GeneratedKey, std::string> generate_dkim_key(std::string_view algorithm) {
  DkimKeyType type;
  if (algorithm == "rsa")
    type = DkimKeyType::kRsa;
  else if (algorithm == "ed25519")
    type = DkimKeyType::kEd25519;
  else
    return base::unexpected("unknown key algorithm " + std::string(algorithm));
  auto key = generate_key(type);
  if (!key) return base::unexpected(key.error());
  auto pem = private_key_to_pem(*key);
  if (!pem) return base::unexpected(pem.error());
  auto loaded = DkimSigningKey::load(*pem, "example.com", "generated");
  if (!loaded) return base::unexpected(loaded.error());
  return GeneratedKey{std::move(*pem), (*loaded)->dns_record()};
}

struct DkimSigner::BodyHash {
  HashSink sink;
  BodyCanonicalizer canonicalizer{Canonicalization::kRelaxed, sink};
};

DkimSigner::DkimSigner(std::vector<std::shared_ptr<const DkimSigningKey>> keys)
    : keys_(std::move(keys)), body_hash_(std::make_unique<BodyHash>()) {}
DkimSigner::~DkimSigner() = default;

void DkimSigner::body(std::string_view chunk) {
  if (digest_.empty()) body_hash_->canonicalizer.feed(chunk);
}

void DkimSigner::end_of_body() {
  if (!digest_.empty()) return;
  body_hash_->canonicalizer.finish();
  digest_ = body_hash_->sink.hash.finish();
}

std::vector<std::string> DkimSigner::sign(std::string_view header_section, std::int64_t now) const {
  std::vector<std::string> values;
  if (digest_.empty()) return values;
  const std::vector<HeaderField> fields = split_header_section(header_section);
  auto count = [&](std::string_view name) {
    std::size_t n = 0;
    for (const auto& field : fields)
      if (base::equals_ignoring_case(field.name, name)) ++n;
    return n;
  };
  // h= in the order of the lists; each name as often as it is to be selected (§5.4.2).
  std::vector<std::string_view> names;
  for (std::string_view name : kOverSignedHeaders)
    for (std::size_t n = count(name) + 1; n > 0; --n)
      names.push_back(name);
  for (std::string_view name : kSignedHeaders)
    for (std::size_t n = count(name); n > 0; --n)
      names.push_back(name);

  // The selected fields, relaxed, bottom-up per name, as a verifier will select them.
  std::string headers;
  std::vector<bool> used(fields.size(), false);
  for (std::string_view name : names) {
    for (std::size_t f = fields.size(); f-- > 0;) {
      if (used[f] || !base::equals_ignoring_case(fields[f].name, name)) continue;
      used[f] = true;
      append_canonical_header(Canonicalization::kRelaxed, fields[f].text, headers);
      break;
    }
  }

  const std::string body_hash = base::to_base64(digest_);
  for (const auto& key : keys_) {
    Folder folder;
    folder.put("v=1;", false);
    folder.put("a=" + std::string(key->algorithm()) + ";", true);
    folder.put("c=relaxed/relaxed;", true);
    folder.put("d=" + key->domain() + ";", true);
    folder.put("s=" + key->selector() + ";", true);
    folder.put("t=" + std::to_string(now) + ";", true);
    for (std::size_t n = 0; n < names.size(); ++n) {
      std::string atom = (n == 0 ? "h=" : "") + std::string(names[n]);
      atom.push_back(n + 1 == names.size() ? ';' : ':');
      folder.put(atom, n == 0);
    }
    folder.put("bh=", true);
    folder.put_breakable(body_hash);
    folder.put(";", false);
    folder.put("b=", true);
    std::string data = headers;
    append_canonical_header(Canonicalization::kRelaxed, "DKIM-Signature: " + folder.text(), data);
    auto signature = key->sign(data);
    if (!signature) {
      values.emplace_back();
      continue;
    }
    folder.put_breakable(base::to_base64(*signature));
    values.push_back(folder.text());
  }
  return values;
}

}  // namespace mailauth
