// arc_verifier.cpp — RFC 8617 §5.2 for one message; the steps are listed in arc_verifier.h.
#include "mailauth/arc_verifier.h"

#include <algorithm>
#include <deque>

#include "base/ascii.h"
#include "mailauth/dkim_body_hash.h"
#include "mailauth/dkim_crypto.h"
#include "mailauth/dkim_public_key.h"

namespace mailauth {
namespace {

enum class Kind { kNone, kResults, kMessage, kSeal };

Kind kind_of(std::string_view name) {
  if (base::equals_ignoring_case(name, "arc-authentication-results")) return Kind::kResults;
  if (base::equals_ignoring_case(name, "arc-message-signature")) return Kind::kMessage;
  if (base::equals_ignoring_case(name, "arc-seal")) return Kind::kSeal;
  return Kind::kNone;
}

std::string_view value_of(std::string_view text) {
  std::string_view value = text.substr(text.find(':') + 1);
  if (value.ends_with("\r\n")) value.remove_suffix(2);
  return value;
}

ArcOutcome failed(ArcOutcome outcome, std::string problem) {
  outcome.result = ArcResult::kFail;
  outcome.problem = std::move(problem);
  return outcome;
}

}  // namespace

ArcVerifier::ArcVerifier() = default;
ArcVerifier::~ArcVerifier() = default;

bool ArcVerifier::has_arc_fields(std::string_view section) {
  for (std::size_t at = 0; at < section.size();) {
    if (section.size() - at >= 4 && base::equals_ignoring_case(section.substr(at, 4), "arc-"))
      return true;
    const std::size_t end = section.find("\r\n", at);
    if (end == std::string_view::npos || end == at) break;
    at = end + 2;
  }
  return false;
}

std::size_t ArcVerifier::value_start(std::size_t field) const {
  return fields_[field].text.find(':') + 1;
}

void ArcVerifier::header_section(std::string_view section) {
  header_section_.assign(section);
  fields_ = split_header_section(header_section_);
  // Step 1: collect the sets. Three fields per set at most: more is more than 50 sets.
  std::size_t arc_fields = 0;
  for (std::size_t index = 0; index < fields_.size(); ++index) {
    const Kind kind = kind_of(fields_[index].name);
    if (kind == Kind::kNone) continue;
    if (++arc_fields > 3 * kMaxArcInstances) {
      early_ = failed(early_, "more than 50 ARC sets");
      return;
    }
    const std::string_view value = value_of(fields_[index].text);
    base::Expected<unsigned, std::string> instance = 0u;
    std::optional<ArcMessageSignature> ams;
    std::optional<ArcSeal> as;
    std::string_view what;
    switch (kind) {
      case Kind::kResults:
        what = "ARC-Authentication-Results";
        instance = parse_arc_results_instance(value);
        break;
      case Kind::kMessage: {
        what = "ARC-Message-Signature";
        auto parsed = parse_arc_message_signature(value);
        if (parsed) {
          instance = parsed->instance;
          ams = std::move(*parsed);
        } else {
          instance = base::unexpected(parsed.error());
        }
        break;
      }
      case Kind::kSeal: {
        what = "ARC-Seal";
        auto parsed = parse_arc_seal(value);
        if (parsed) {
          instance = parsed->instance;
          as = std::move(*parsed);
        } else {
          instance = base::unexpected(parsed.error());
        }
        break;
      }
      case Kind::kNone:
        break;
    }
    if (!instance) {
      early_ = failed(early_, "malformed " + std::string(what) + ": " + instance.error());
      return;
    }
    if (sets_.size() < *instance) sets_.resize(*instance);
    Set& set = sets_[*instance - 1];
    std::optional<std::size_t>& slot = kind == Kind::kResults   ? set.results
                                       : kind == Kind::kMessage ? set.message
                                                                : set.seal;
    if (slot) {
      early_ = failed(
          early_, "two " + std::string(what) + " fields for instance " + std::to_string(*instance));
      return;
    }
    slot = index;
    if (ams) set.ams = std::move(ams);
    if (as) set.as = std::move(as);
  }
  if (sets_.empty()) return;  // none
  early_.instances = static_cast<unsigned>(sets_.size());
  if (sets_.back().as) early_.sealer = sets_.back().as->domain;
  // Step 2: the latest sealer saw a broken chain.
  if (sets_.back().as && sets_.back().as->chain_validation == ArcResult::kFail) {
    early_ = failed(early_, "the latest ARC-Seal says cv=fail");
    return;
  }
  // Step 3: instances 1..N, each complete, cv=none only at 1.
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    const Set& set = sets_[i];
    const std::string instance = std::to_string(i + 1);
    if (!set.results || !set.message || !set.seal) {
      early_ = failed(early_, "ARC set " + instance + " is missing or incomplete");
      return;
    }
    const ArcResult expected = i == 0 ? ArcResult::kNone : ArcResult::kPass;
    if (set.as->chain_validation != expected) {
      early_ = failed(early_, "ARC-Seal " + instance +
                                  " has cv=" + std::string(to_string(set.as->chain_validation)) +
                                  ", not " + std::string(to_string(expected)));
      return;
    }
  }
  decided_ = false;
  const DkimSignature& latest = sets_.back().ams->signature;
  body_hash_ = std::make_unique<DkimBodyHash>(
      latest.body_canon == "relaxed" ? Canonicalization::kRelaxed : Canonicalization::kSimple,
      latest.length);
  auto add_key = [this](const std::string& domain, const std::string& selector) {
    std::string name = selector + "._domainkey." + domain;
    if (std::find(key_names_.begin(), key_names_.end(), name) == key_names_.end())
      key_names_.push_back(std::move(name));
  };
  add_key(latest.domain, latest.selector);
  for (std::size_t i = sets_.size(); i-- > 0;)
    add_key(sets_[i].as->domain, sets_[i].as->selector);
}

void ArcVerifier::body(std::string_view chunk) {
  if (body_hash_ && !ended_) body_hash_->feed(chunk);
}

void ArcVerifier::end_of_body() {
  if (ended_) return;
  ended_ = true;
  if (body_hash_) body_hash_->finish();
}

std::optional<ArcOutcome> ArcVerifier::outcome_without_keys() const {
  if (decided_) return early_;
  return std::nullopt;
}

std::size_t ArcVerifier::key_index(const std::string& domain, const std::string& selector) const {
  const std::string name = selector + "._domainkey." + domain;
  return static_cast<std::size_t>(std::find(key_names_.begin(), key_names_.end(), name) -
                                  key_names_.begin());
}

ArcOutcome ArcVerifier::verify(std::span<const dns::AnswerPtr> keys) const {
  if (decided_) return early_;
  ArcOutcome outcome = early_;
  if (!ended_) return failed(outcome, "verified before the end of the body");
  dns::Answer missing;
  missing.status = dns::Status::kTemporary;
  missing.detail = "no key lookup";
  // The key of (d, s) checked for `algorithm`, or the reason it cannot verify; decoded once
  // per name and algorithm (a sealer's AMS and AS usually share a key, and decoding a key
  // costs more than the signature check).
  struct Decoded {
    std::size_t index;
    std::string algorithm;
    base::Expected<DkimPublicKey, std::string> key;
  };
  std::deque<Decoded> decoded;
  auto key_for =
      [&](const std::string& domain, const std::string& selector,
          const std::string& algorithm) -> const base::Expected<DkimPublicKey, std::string>& {
    const std::size_t index = key_index(domain, selector);
    for (const Decoded& entry : decoded)
      if (entry.index == index && entry.algorithm == algorithm) return entry.key;
    const dns::Answer& answer = index < keys.size() && keys[index] ? *keys[index] : missing;
    auto key = dkim_public_key(answer, algorithm);
    base::Expected<DkimPublicKey, std::string> checked = base::unexpected(std::string());
    if (!key)
      checked = base::unexpected(key.error().problem);
    else if (key->type == DkimKeyType::kRsa && key->bits < 1024)
      // RFC 8301 §3.2 for DKIM, and RFC 8617 §5.2 uses DKIM's rules: no short RSA keys.
      checked = base::unexpected("RSA key of " + std::to_string(key->bits) + " bits");
    else
      checked = std::move(*key);
    decoded.push_back(Decoded{index, algorithm, std::move(checked)});
    return decoded.back().key;
  };

  // Step 4: the latest AMS, with its own h= and c= (RFC 8617 §5.1.2).
  const Set& latest = sets_.back();
  const ArcMessageSignature& ams = *latest.ams;
  const std::string n = std::to_string(sets_.size());
  if (ams.signature.length && body_hash_->length() < *ams.signature.length)
    return failed(outcome, "ARC-Message-Signature " + n + ": body shorter than l=");
  if (body_hash_->digest() != ams.signature.body_hash)
    return failed(outcome, "ARC-Message-Signature " + n + ": body hash did not verify");
  {
    const auto& key =
        key_for(ams.signature.domain, ams.signature.selector, ams.signature.algorithm);
    if (!key) return failed(outcome, "ARC-Message-Signature " + n + ": " + key.error());
    const std::size_t start = value_start(*latest.message);
    const std::string data =
        signed_header_data(ams.signature.header_canon == "relaxed" ? Canonicalization::kRelaxed
                                                                   : Canonicalization::kSimple,
                           fields_, ams.signature.signed_headers, *latest.message,
                           start + ams.b_region_start, ams.b_region_size);
    if (!verify_dkim_data(key->type, key->key, data, ams.signature.signature))
      return failed(outcome, "ARC-Message-Signature " + n + ": signature did not verify");
  }

  // Step 5: each seal, from the latest down, over the sets up to its own (RFC 8617 §5.1.1).
  for (std::size_t i = sets_.size(); i-- > 0;) {
    const Set& set = sets_[i];
    const ArcSeal& seal = *set.as;
    const std::string instance = std::to_string(i + 1);
    const auto& key = key_for(seal.domain, seal.selector, seal.algorithm);
    if (!key) return failed(outcome, "ARC-Seal " + instance + ": " + key.error());
    std::string data;
    for (std::size_t j = 0; j < i; ++j) {
      append_canonical_header(Canonicalization::kRelaxed, fields_[*sets_[j].results].text, data);
      append_canonical_header(Canonicalization::kRelaxed, fields_[*sets_[j].message].text, data);
      append_canonical_header(Canonicalization::kRelaxed, fields_[*sets_[j].seal].text, data);
    }
    append_canonical_header(Canonicalization::kRelaxed, fields_[*set.results].text, data);
    append_canonical_header(Canonicalization::kRelaxed, fields_[*set.message].text, data);
    std::string_view own = fields_[*set.seal].text;
    if (own.ends_with("\r\n")) own.remove_suffix(2);
    const std::size_t start = value_start(*set.seal) + seal.b_region_start;
    std::string emptied(own.substr(0, start));
    emptied.append(own.substr(start + seal.b_region_size));
    append_canonical_header(Canonicalization::kRelaxed, emptied, data);
    if (!verify_dkim_data(key->type, key->key, data, seal.signature))
      return failed(outcome, "ARC-Seal " + instance + ": signature did not verify");
  }
  outcome.result = ArcResult::kPass;
  return outcome;
}

}  // namespace mailauth
