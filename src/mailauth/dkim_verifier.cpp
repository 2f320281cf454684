// dkim_verifier.cpp — RFC 6376 §6.1 for one message; the decisions are listed in
// dkim_verifier.h.
#include "mailauth/dkim_verifier.h"

#include "base/ascii.h"
#include "mailauth/dkim_body_hash.h"
#include "mailauth/dkim_crypto.h"
#include "mailauth/dkim_public_key.h"

namespace mailauth {

constexpr std::size_t kMaxBodyHashers = 4;

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
        if (hashers_[h]->canon() == canon && hashers_[h]->limit() == signature.length) found = h;
      if (found == hashers_.size() && hashers_.size() >= kMaxBodyHashers) {
        // Each distinct (canonicalization, l=) costs a pass over the body on the I/O
        // thread: a message cannot ask for more than a few.
        entry.parsed = base::unexpected(std::string("too many distinct body hashes (l=)"));
        entries_.push_back(std::move(entry));
        continue;
      }
      if (found == hashers_.size())
        hashers_.push_back(std::make_unique<DkimBodyHash>(canon, signature.length));
      entry.hasher = found;
    }
    entries_.push_back(std::move(entry));
  }
}

void DkimVerifier::body(std::string_view chunk) {
  if (ended_) return;
  for (auto& hasher : hashers_)
    hasher->feed(chunk);
}

void DkimVerifier::end_of_body() {
  if (ended_) return;
  ended_ = true;
  for (auto& hasher : hashers_)
    hasher->finish();
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
  const DkimBodyHash& hasher = *hashers_[entry.hasher];
  if (signature.length && hasher.length() < *signature.length)
    return with(outcome, DkimResult::kFail, "body shorter than l=");
  if (hasher.digest() != signature.body_hash)
    return with(outcome, DkimResult::kFail, "body hash did not verify");
  return std::nullopt;
}

DkimOutcome DkimVerifier::verify(std::size_t index, const dns::Answer& key,
                                 std::int64_t now) const {
  if (auto early = outcome_without_key(index, now)) return *early;
  const Entry& entry = entries_[index];
  const DkimSignature& signature = *entry.parsed;
  DkimOutcome outcome = describe(entry);

  auto public_key = dkim_public_key(key, signature.algorithm);
  if (!public_key) return with(outcome, public_key.error().result, public_key.error().problem);
  const bool ed25519 = public_key->type == DkimKeyType::kEd25519;
  if (public_key->strict_identity) {
    std::string identity_domain =
        base::ascii_lowercase(signature.identity.substr(signature.identity.rfind('@') + 1));
    if (identity_domain != signature.domain)
      return with(outcome, DkimResult::kFail, "key t=s and i= in a subdomain of d=");
  }
  outcome.key_bits = public_key->bits;

  // RFC 6376 §3.7: the selected fields, then this DKIM-Signature with b= empty.
  const std::string data =
      signed_header_data(canon_of(signature.header_canon), fields_, signature.signed_headers,
                         entry.field, entry.b_region_start, entry.b_region_size);
  if (!verify_dkim_data(public_key->type, public_key->key, data, signature.signature))
    return with(outcome, DkimResult::kFail, "signature did not verify");
  if (!ed25519 && outcome.key_bits < 1024)
    return with(
        outcome, DkimResult::kPolicy,
        "RSA key of " + std::to_string(outcome.key_bits) + " bits, under 1024 (RFC 8301 3.2)");
  outcome.result = DkimResult::kPass;
  if (public_key->testing) {
    outcome.problem = "key in testing mode (t=y)";
    outcome.testing = true;
  }
  return outcome;
}

}  // namespace mailauth
