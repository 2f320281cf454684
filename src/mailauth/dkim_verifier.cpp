// dkim_verifier.cpp — RFC 6376 §6.1 for one message; the decisions are listed in
// dkim_verifier.h.
#include "mailauth/dkim_verifier.h"

#include "base/ascii.h"
#include "mailauth/dkim_crypto.h"

namespace mailauth {

constexpr std::size_t kMaxBodyHashers = 4;

// One body hash in progress: the canonicalizer writes into it, it hashes the first l= octets
// (all without l=) and counts the canonical length (RFC 6376 §3.5 l=, §3.7).
struct DkimVerifier::BodyHasher final : BodySink {
  BodyHasher(Canonicalization canon_in, std::optional<std::uint64_t> limit_in)
      : canon(canon_in), limit(limit_in), canonicalizer(canon_in, *this) {}
  void write(std::string_view octets) override {
    std::string_view hashed = octets;
    if (limit) {
      std::uint64_t room = length >= *limit ? 0 : *limit - length;
      if (hashed.size() > room) hashed = hashed.substr(0, room);
    }
    hash.update(hashed);
    length += octets.size();
  }
  Canonicalization canon;
  std::optional<std::uint64_t> limit;
  std::uint64_t length = 0;
  Sha256 hash;
  BodyCanonicalizer canonicalizer;
  std::string digest;
};

namespace {

Canonicalization canon_of(std::string_view name) {
  return name == "relaxed" ? Canonicalization::kRelaxed : Canonicalization::kSimple;
}

DkimOutcome with(DkimOutcome outcome, DkimResult result, std::string problem) {
  outcome.result = result;
  outcome.problem = std::move(problem);
  return outcome;
}

}  // namespace

DkimVerifier::DkimVerifier(std::size_t max_signatures) : max_signatures_(max_signatures) {}
DkimVerifier::~DkimVerifier() = default;

void DkimVerifier::header_section(std::string_view section) {
  header_section_.assign(section);
  fields_ = split_header_section(header_section_);
  for (std::size_t index = 0; index < fields_.size(); ++index) {
    const HeaderField& field = fields_[index];
    if (!base::equals_ignoring_case(field.name, "dkim-signature")) continue;
    if (entries_.size() == max_signatures_) {
      ++ignored_;
      continue;
    }
    std::string_view value = field.text.substr(field.text.find(':') + 1);
    if (value.ends_with("\r\n")) value.remove_suffix(2);
    Entry entry{parse_dkim_signature(value), index, 0, 0, 0};
    if (entry.parsed) {
      // parse_dkim_signature accepted it, so the tag list parses and holds b=.
      auto tags = parse_dkim_tag_list(value);
      for (const auto& tag : *tags)
        if (tag.name == "b") {
          entry.b_region_start = static_cast<std::size_t>(tag.region.data() - field.text.data());
          entry.b_region_size = tag.region.size();
        }
      const DkimSignature& signature = *entry.parsed;
      const Canonicalization canon = canon_of(signature.body_canon);
      std::size_t found = hashers_.size();
      for (std::size_t h = 0; h < hashers_.size(); ++h)
        if (hashers_[h]->canon == canon && hashers_[h]->limit == signature.length) found = h;
      if (found == hashers_.size() && hashers_.size() >= kMaxBodyHashers) {
        // Each distinct (canonicalization, l=) costs a pass over the body on the I/O
        // thread: a message cannot ask for more than a few.
        entry.parsed = base::unexpected(std::string("too many distinct body hashes (l=)"));
        entries_.push_back(std::move(entry));
        continue;
      }
      if (found == hashers_.size())
        hashers_.push_back(std::make_unique<BodyHasher>(canon, signature.length));
      entry.hasher = found;
    }
    entries_.push_back(std::move(entry));
  }
}

void DkimVerifier::body(std::string_view chunk) {
  if (ended_) return;
  for (auto& hasher : hashers_)
    hasher->canonicalizer.feed(chunk);
}

void DkimVerifier::end_of_body() {
  if (ended_) return;
  ended_ = true;
  for (auto& hasher : hashers_) {
    hasher->canonicalizer.finish();
    hasher->digest = hasher->hash.finish();
  }
}

std::size_t DkimVerifier::signature_count() const {
  return entries_.size();
}
std::size_t DkimVerifier::ignored_signatures() const {
  return ignored_;
}

std::string DkimVerifier::key_name(std::size_t index) const {
  if (index >= entries_.size() || !entries_[index].parsed) return "";
  const DkimSignature& signature = *entries_[index].parsed;
  return signature.selector + "._domainkey." + signature.domain;
}

DkimOutcome DkimVerifier::describe(const Entry& entry) const {
  DkimOutcome outcome;
  if (!entry.parsed) return outcome;
  const DkimSignature& signature = *entry.parsed;
  outcome.domain = signature.domain;
  outcome.selector = signature.selector;
  outcome.algorithm = signature.algorithm;
  outcome.identity = signature.identity;
  outcome.b_prefix = signature.b_text.substr(0, 12);
  return outcome;
}

std::optional<DkimOutcome> DkimVerifier::outcome_without_key(std::size_t index,
                                                             std::int64_t now) const {
  if (index >= entries_.size())
    return with(DkimOutcome{}, DkimResult::kPermError, "no such signature");
  const Entry& entry = entries_[index];
  DkimOutcome outcome = describe(entry);
  if (!entry.parsed)
    return with(outcome, DkimResult::kPermError, "malformed signature: " + entry.parsed.error());
  const DkimSignature& signature = *entry.parsed;
  if (signature.algorithm == "rsa-sha1")
    return with(outcome, DkimResult::kFail, "rsa-sha1 is not accepted (RFC 8301 3.1)");
  if (signature.expiration && now > *signature.expiration)
    return with(outcome, DkimResult::kFail, "signature expired (x=)");
  if (signature.timestamp && *signature.timestamp > now + kFutureTolerance)
    return with(outcome, DkimResult::kFail, "signature timestamp (t=) in the future");
  if (!ended_) return with(outcome, DkimResult::kTempError, "verified before the end of the body");
  const BodyHasher& hasher = *hashers_[entry.hasher];
  if (signature.length && hasher.length < *signature.length)
    return with(outcome, DkimResult::kFail, "body shorter than l=");
  if (hasher.digest != signature.body_hash)
    return with(outcome, DkimResult::kFail, "body hash did not verify");
  return std::nullopt;
}

DkimOutcome DkimVerifier::verify(std::size_t index, const dns::Answer& key,
                                 std::int64_t now) const {
  if (auto early = outcome_without_key(index, now)) return *early;
  const Entry& entry = entries_[index];
  const DkimSignature& signature = *entry.parsed;
  DkimOutcome outcome = describe(entry);

  switch (key.status) {
    case dns::Status::kOk:
      break;
    case dns::Status::kNxDomain:
    case dns::Status::kNoData:
      return with(outcome, DkimResult::kPermError, "no key");
    case dns::Status::kTemporary:
      return with(outcome, DkimResult::kTempError, "key lookup failed: " + key.detail);
    case dns::Status::kBogus:
      return with(outcome, DkimResult::kTempError, "key answer is DNSSEC-bogus: " + key.detail);
  }
  std::optional<DkimKeyRecord> record;
  std::string record_problem = "no key";
  for (const std::string& text : key.texts) {
    auto parsed = parse_dkim_key_record(text);
    if (parsed) {
      record = std::move(*parsed);
      break;
    }
    record_problem = "malformed key record: " + parsed.error();
  }
  if (!record) return with(outcome, DkimResult::kPermError, record_problem);
  if (record->public_key.empty()) return with(outcome, DkimResult::kFail, "key revoked");

  const bool ed25519 = signature.algorithm == "ed25519-sha256";
  const DkimKeyType type = ed25519 ? DkimKeyType::kEd25519 : DkimKeyType::kRsa;
  if (record->key_type != (ed25519 ? "ed25519" : "rsa"))
    return with(outcome, DkimResult::kPermError,
                "key type " + record->key_type + " does not match a=" + signature.algorithm);
  if (!record->hashes.empty()) {
    bool sha256_allowed = false;
    for (const auto& hash : record->hashes)
      if (hash == "sha256") sha256_allowed = true;
    if (!sha256_allowed) return with(outcome, DkimResult::kPermError, "key h= excludes sha256");
  }
  if (!record->services.empty()) {
    bool email = false;
    for (const auto& service : record->services)
      if (service == "email" || service == "*") email = true;
    if (!email) return with(outcome, DkimResult::kPermError, "key s= excludes email");
  }
  if (record->strict_identity) {
    std::string identity_domain =
        base::ascii_lowercase(signature.identity.substr(signature.identity.rfind('@') + 1));
    if (identity_domain != signature.domain)
      return with(outcome, DkimResult::kFail, "key t=s and i= in a subdomain of d=");
  }
  auto public_key = public_key_from_record(type, record->public_key);
  if (!public_key) return with(outcome, DkimResult::kPermError, public_key.error());
  outcome.key_bits = key_bits(*public_key);
  if (!ed25519 && outcome.key_bits > 8192)
    return with(outcome, DkimResult::kPermError, "RSA key over 8192 bits");

  // RFC 6376 §3.7: the selected fields bottom-up (§5.4.2), names without a field left
  // (over-signing) contributing nothing, then this DKIM-Signature with b= empty and without
  // its final CRLF.
  const Canonicalization canon = canon_of(signature.header_canon);
  std::string data;
  std::vector<bool> used(fields_.size(), false);
  used[entry.field] = true;
  for (const std::string& name : signature.signed_headers) {
    for (std::size_t f = fields_.size(); f-- > 0;) {
      if (used[f] || !base::equals_ignoring_case(fields_[f].name, name)) continue;
      used[f] = true;
      append_canonical_header(canon, fields_[f].text, data);
      break;
    }
  }
  std::string_view own = fields_[entry.field].text;
  if (own.ends_with("\r\n")) own.remove_suffix(2);
  std::string emptied(own.substr(0, entry.b_region_start));
  emptied.append(own.substr(entry.b_region_start + entry.b_region_size));
  append_canonical_header(canon, emptied, data);

  if (!verify_dkim_data(type, *public_key, data, signature.signature))
    return with(outcome, DkimResult::kFail, "signature did not verify");
  if (!ed25519 && outcome.key_bits < 1024)
    return with(
        outcome, DkimResult::kPolicy,
        "RSA key of " + std::to_string(outcome.key_bits) + " bits, under 1024 (RFC 8301 3.2)");
  outcome.result = DkimResult::kPass;
  if (record->testing) {
    outcome.problem = "key in testing mode (t=y)";
    outcome.testing = true;
  }
  return outcome;
}

}  // namespace mailauth
