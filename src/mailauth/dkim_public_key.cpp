// dkim_public_key.cpp — see dkim_public_key.h.
#include "mailauth/dkim_public_key.h"

#include <optional>

#include "mailauth/dkim_signature.h"

namespace mailauth {

base::Expected<DkimPublicKey, DkimKeyProblem> dkim_public_key(const dns::Answer& answer,
                                                              std::string_view algorithm) {
  auto problem = [](DkimResult result, std::string text) {
    return base::unexpected(DkimKeyProblem{result, std::move(text)});
  };
  switch (answer.status) {
    case dns::Status::kOk:
      break;
    case dns::Status::kNxDomain:
    case dns::Status::kNoData:
      return problem(DkimResult::kPermError, "no key");
    case dns::Status::kTemporary:
      return problem(DkimResult::kTempError, "key lookup failed: " + answer.detail);
    case dns::Status::kBogus:
      return problem(DkimResult::kTempError, "key answer is DNSSEC-bogus: " + answer.detail);
  }
  std::optional<DkimKeyRecord> record;
  std::string record_problem = "no key";
  for (const std::string& text : answer.texts) {
    auto parsed = parse_dkim_key_record(text);
    if (parsed) {
      record = std::move(*parsed);
      break;
    }
    record_problem = "malformed key record: " + parsed.error();
  }
  if (!record) return problem(DkimResult::kPermError, record_problem);
  if (record->public_key.empty()) return problem(DkimResult::kFail, "key revoked");

  const bool ed25519 = algorithm == "ed25519-sha256";
  if (record->key_type != (ed25519 ? "ed25519" : "rsa"))
    return problem(DkimResult::kPermError,
                   "key type " + record->key_type + " does not match a=" + std::string(algorithm));
  if (!record->hashes.empty()) {
    bool sha256_allowed = false;
    for (const auto& hash : record->hashes)
      if (hash == "sha256") sha256_allowed = true;
    if (!sha256_allowed) return problem(DkimResult::kPermError, "key h= excludes sha256");
  }
  if (!record->services.empty()) {
    bool email = false;
    for (const auto& service : record->services)
      if (service == "email" || service == "*") email = true;
    if (!email) return problem(DkimResult::kPermError, "key s= excludes email");
  }
  DkimPublicKey key;
  key.type = ed25519 ? DkimKeyType::kEd25519 : DkimKeyType::kRsa;
  key.testing = record->testing;
  key.strict_identity = record->strict_identity;
  auto decoded = public_key_from_record(key.type, record->public_key);
  if (!decoded) return problem(DkimResult::kPermError, decoded.error());
  key.key = std::move(*decoded);
  key.bits = key_bits(key.key);
  if (!ed25519 && key.bits > 8192) return problem(DkimResult::kPermError, "RSA key over 8192 bits");
  return key;
}

}  // namespace mailauth
