// sasl_fuzz.cpp — libFuzzer target for the SASL mechanisms (auth/sasl.h): PLAIN, LOGIN,
// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, each driven with arbitrary client responses.
//
// Input: one control byte, then responses, each a 2-byte big-endian length and its bytes
// (lengths up to 65535, so responses over the 12288-octet bound are reached too).
//   control bits 0-1: mechanism; bit 2: a TLS exporter value is available;
//   bit 3: the first call carries no initial response.
// The lookup knows one user (alice@example.org / "pencil", test_argon2 hashes made once).
//
// Invariants checked (a violation traps):
// - after kSuccess or kFailure every further step is a failure;
// - kSuccess names the known user, and for PLAIN/LOGIN only after a true verification;
// - a password appears only in kVerifyPassword; a failure always carries a reason;
// - challenges are bounded (no reflection of the client's bytes beyond the nonce).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/sasl.h"
#include "auth/user_store.h"
#include "fuzz_support.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* kMechanisms[] = {"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
  const std::uint8_t control = data[0];
  const bool have_exporter = (control & 4) != 0;
  const bool no_initial_response = (control & 8) != 0;
  const std::string_view mechanism = kMechanisms[control & 3];
  const bool password_mechanism = (control & 3) < 2;
  const auth::User& user = fuzz::test_user("alice@example.org");

  auth::UserLookup lookup = fuzz::lookup_of(user);
  auto server = auth::make_sasl_server(mechanism, lookup,
                                       have_exporter ? std::string(32, '\x5a') : std::string());
  if (server == nullptr) {
    check(mechanism == "SCRAM-SHA-256-PLUS" && !have_exporter);
    return 0;
  }

  std::size_t position = 1;
  bool first = true;
  bool finished = false;
  bool verified_true = false;
  int steps = 0;
  while (steps < 16) {
    std::string_view response;
    bool has_response = true;
    if (first && no_initial_response) {
      has_response = false;
    } else {
      if (position + 2 > size) break;
      std::size_t length = (std::size_t{data[position]} << 8) | data[position + 1];
      position += 2;
      if (length > size - position) length = size - position;
      response = std::string_view(reinterpret_cast<const char*>(data + position), length);
      position += length;
    }
    first = false;
    ++steps;

    auth::SaslStep step = server->step(response, has_response);
    if (finished) {
      check(step.kind == auth::SaslStep::Kind::kFailure);
      continue;
    }
    if (step.kind == auth::SaslStep::Kind::kVerifyPassword) {
      check(password_mechanism);
      check(!step.user.empty() && !step.password.empty());
      check(response.size() <= auth::kMaxSaslResponse);
      const auth::User* found = lookup(step.user);
      // Unknown names are not verified here: the dummy hash costs default_argon2() time.
      bool ok = found != nullptr && auth::verify_password(found, step.password);
      verified_true = ok;
      step = server->password_verified(ok);
      check(step.kind == (ok ? auth::SaslStep::Kind::kSuccess : auth::SaslStep::Kind::kFailure));
    } else {
      check(step.password.empty());
    }
    switch (step.kind) {
      case auth::SaslStep::Kind::kChallenge:
        check(step.challenge.size() <= 2 * auth::kMaxSaslResponse + 128);
        break;
      case auth::SaslStep::Kind::kSuccess:
        check(step.user == user.address);
        if (password_mechanism) check(verified_true);
        finished = true;
        break;
      case auth::SaslStep::Kind::kFailure:
        check(!step.failure.empty());
        finished = true;
        break;
      case auth::SaslStep::Kind::kVerifyPassword:
        check(false);  // handled above
        break;
    }
  }
  if (!finished) {
    // An extra password_verified out of turn never succeeds.
    check(server->password_verified(true).kind == auth::SaslStep::Kind::kFailure);
  }
  return 0;
}
