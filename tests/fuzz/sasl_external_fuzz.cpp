// sasl_external_fuzz.cpp — libFuzzer target for SASL EXTERNAL (auth/sasl.h) and the
// certificate → user mapping (auth/certificate_user.h): arbitrary certificate names and
// client responses.
//
// Input: one control byte (bit 0: the first call carries no initial response; bit 1: the
// certificate maps to a user), then NUL-separated fields: email SANs..., subject CN, then
// the client responses (the rest, split at 0xFF bytes).
//
// Invariants (a violation traps): kSuccess only when the certificate maps to the known
// user, and only naming that user; after kSuccess or kFailure every step is a failure;
// EXTERNAL never asks the host to verify a password.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/certificate_user.h"
#include "auth/sasl.h"
#include "auth/user_store.h"
#include "fuzz_support.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t control = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const auth::User& user = fuzz::test_user("demo@localhost");
  auth::UserLookup lookup = fuzz::lookup_of(user);

  // Certificate names from the input: up to 4 email SANs and a CN, split at NUL.
  auth::CertificateNames names;
  std::size_t cut = rest.find('\xff');
  std::string_view certificate = rest.substr(0, cut);
  std::string_view responses = cut == std::string_view::npos ? "" : rest.substr(cut + 1);
  std::vector<std::string> fields;
  while (!certificate.empty() && fields.size() < 5) {
    std::size_t nul = certificate.find('\0');
    fields.emplace_back(certificate.substr(0, nul));
    certificate = nul == std::string_view::npos ? "" : certificate.substr(nul + 1);
  }
  if (!fields.empty()) {
    names.subject_cn = fields.back();
    fields.pop_back();
    names.email_sans = fields;
  }
  auto mapped = auth::certificate_user(names, lookup);
  std::string certificate_user = (control & 2) && mapped ? mapped.value() : std::string();
  if (!certificate_user.empty()) check(auth::same_address(certificate_user, user.address));

  auto server = auth::make_sasl_server("EXTERNAL", lookup, std::string(), certificate_user);
  check(server != nullptr);
  bool first = true;
  bool done = false;
  for (;;) {
    std::size_t next = responses.find('\xff');
    std::string_view response = responses.substr(0, next);
    auth::SaslStep step = server->step(response, !(first && (control & 1)));
    check(step.kind != auth::SaslStep::Kind::kVerifyPassword);
    if (done) check(step.kind == auth::SaslStep::Kind::kFailure);
    if (step.kind == auth::SaslStep::Kind::kSuccess) {
      check(!certificate_user.empty() && step.user == certificate_user);
    }
    if (step.kind == auth::SaslStep::Kind::kFailure) check(!step.failure.empty());
    if (step.kind != auth::SaslStep::Kind::kChallenge) done = true;
    first = false;
    if (next == std::string_view::npos) break;
    responses = responses.substr(next + 1);
  }
  return 0;
}
