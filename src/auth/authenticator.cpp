// authenticator.cpp — see authenticator.h. The order of the checks is the contract the
// integration tests and the fail2ban filter rely on: mechanism (504), address lockout
// (454), SASL steps, user lockout before the password check (454), cache, or a place in
// the verification queue (else 454) and argon2id, user lockout again on success (454), else
// record and answer. Malformed responses (501) are recorded like wrong passwords.
#include "auth/authenticator.h"

#include <sodium.h>

#include <utility>

#include "obs/log.h"
#include "obs/server_metrics.h"

namespace auth {
namespace {

smtp::Reply unrecognized_mechanism() {
  return smtp::Reply{504, "5.5.4", "Unrecognized authentication type"};
}
smtp::Reply locked_out_reply() {
  return smtp::Reply{454, "4.7.0", "Too many authentication failures, try again later"};
}
// RFC 4954 §6: "454 4.7.0 Temporary authentication failure".
smtp::Reply temporary_failure() {
  return smtp::Reply{454, "4.7.0", "Temporary authentication failure"};
}
smtp::Reply malformed_reply() {
  return smtp::Reply{501, "5.5.2", "Malformed authentication response"};
}
// RFC 4954 §6: "535 5.7.8 Authentication credentials invalid", the same for an unknown user
// and a wrong password.
smtp::Reply invalid_credentials() {
  return smtp::Reply{535, "5.7.8", "Authentication credentials invalid"};
}

// SASL EXTERNAL: the user a verified client certificate maps to, or why there is none (no
// certificate, one that did not verify against the listener's client_ca, or one that names
// no user). Only a verified certificate is ever mapped.
base::Expected<std::string, std::string> external_user(const ClientCertificate& certificate,
                                                       const UserLookup& lookup) {
  if (!certificate.verified) {
    return base::unexpected(certificate.presented
                                ? "client certificate not verified: " + certificate.verify_error
                                : certificate.verify_error);
  }
  return certificate_user(certificate.names, lookup);
}

}  // namespace

Authenticator::Authenticator(AuthServices services, AuthConnection connection)
    : services_(services), connection_(std::move(connection)) {}

Authenticator::~Authenticator() {
  wipe_password();
}

void Authenticator::wipe_password() {
  sodium_memzero(pending_password_.data(), pending_password_.size());
  pending_password_.clear();
  pending_user_ = nullptr;
}

bool Authenticator::is_locked(std::string_view user, TimePoint now) const {
  return services_.limiter != nullptr &&
         services_.limiter->check(connection_.client, user, now).locked;
}

std::optional<Outcome> Authenticator::start(std::string_view mechanism, TimePoint now) {
  mechanism_ = std::string(mechanism);
  users_ = services_.users != nullptr ? services_.users->current() : nullptr;
  UserLookup lookup = [store = users_](std::string_view name) -> const User* {
    return store ? store->find_login(name) : nullptr;
  };
  // EXTERNAL (offered only on listeners with a client_ca): the certificate is the
  // credential, so no password and no argon2id; the mechanism checks the authzid.
  std::string certificate_user_name;
  if (mechanism_ == "EXTERNAL") {
    auto mapped = external_user(connection_.certificate, lookup);
    if (mapped) {
      certificate_user_name = std::move(mapped.value());
    } else {
      external_refusal_ = std::move(mapped.error());
    }
  }
  sasl_ = make_sasl_server(mechanism_, std::move(lookup), connection_.tls_exporter,
                           std::move(certificate_user_name),
                           users_ ? users_->typical_scram_iterations() : kDefaultScramIterations);
  if (!sasl_) {
    Outcome outcome;
    outcome.reply = unrecognized_mechanism();
    return outcome;
  }
  if (is_locked("", now)) return locked_out("");  // the whole address: do not even start
  return std::nullopt;
}

Outcome Authenticator::step(std::string_view response, bool has_response, TimePoint now) {
  if (!sasl_) {  // cannot happen: the session starts every exchange with a new AUTH
    Outcome outcome;
    outcome.reply = temporary_failure();
    return outcome;
  }
  return carry_out(sasl_->step(response, has_response), now);
}

Outcome Authenticator::password_verified(bool ok, TimePoint now) {
  if (!sasl_) return step({}, false, now);
  if (!verifying_) {  // out of turn: the SASL server refuses it, and never as a success
    return carry_out(sasl_->password_verified(false), now);
  }
  verifying_ = false;
  ticket_.reset();
  if (ok && pending_user_ != nullptr && services_.verified_cache != nullptr) {
    services_.verified_cache->remember(pending_user_->address, pending_user_->password_hash,
                                       pending_password_, now);
  }
  wipe_password();
  return carry_out(sasl_->password_verified(ok), now);  // a failure names the user itself
}

Outcome Authenticator::carry_out(SaslStep step, TimePoint now) {
  for (;;) {
    switch (step.kind) {
      case SaslStep::Kind::kChallenge: {
        Outcome outcome;
        outcome.kind = Outcome::Kind::kChallenge;
        outcome.challenge = std::move(step.challenge);
        return outcome;
      }
      case SaslStep::Kind::kVerifyPassword: {
        if (is_locked(step.user, now)) {
          sodium_memzero(step.password.data(), step.password.size());
          return locked_out(step.user);
        }
        const User* user = users_ ? users_->find_login(step.user) : nullptr;
        VerifiedCache* cache = services_.verified_cache;
        if (user != nullptr && cache != nullptr &&
            cache->hit(user->address, user->password_hash, step.password, now)) {
          sodium_memzero(step.password.data(), step.password.size());
          step = sasl_->password_verified(true);
          continue;
        }
        // Every queue shared by clients is bounded: no place, no argon2id, a 454.
        if (services_.verifications != nullptr) {
          ticket_ = services_.verifications->try_enter();
          if (!ticket_) {
            sodium_memzero(step.password.data(), step.password.size());
            return verifier_busy(step.user);
          }
        }
        // Copied, not moved: a moved short string would leave its bytes behind unwiped.
        pending_password_.assign(step.password);
        sodium_memzero(step.password.data(), step.password.size());
        pending_user_ = user;
        verifying_ = true;
        Outcome outcome;
        outcome.kind = Outcome::Kind::kVerifyPassword;
        outcome.check = PasswordCheck{user, pending_password_};
        return outcome;
      }
      case SaslStep::Kind::kSuccess: {
        // A lockout holds even against the right password until the window passes.
        if (is_locked(step.user, now)) return locked_out(step.user);
        if (services_.limiter != nullptr) {
          services_.limiter->record_success(connection_.client, step.user, now);
        }
        obs::Log("auth")
            .kv("session", connection_.session_id)
            .kv("client", connection_.client)
            .kv("user", step.user)
            .kv("mechanism", mechanism_);
        obs::server_metrics().auth_result(mechanism_, true);
        sasl_.reset();
        Outcome outcome;
        outcome.kind = Outcome::Kind::kSucceeded;
        outcome.user = std::move(step.user);
        return outcome;
      }
      case SaslStep::Kind::kFailure: {
        if (step.malformed) return malformed(step.user, step.failure, now);
        std::chrono::milliseconds delay{0};
        if (services_.limiter != nullptr) {
          delay = services_.limiter->record_failure(connection_.client, step.user, now).delay;
        }
        std::string reason = step.failure.empty() ? "invalid credentials" : step.failure;
        // EXTERNAL: say why the certificate gave no user.
        if (!external_refusal_.empty()) reason = external_refusal_;
        return fail(step.user, reason, invalid_credentials(), delay);
      }
    }
  }
}

Outcome Authenticator::locked_out(std::string_view user) {
  return fail(user, "locked out", locked_out_reply());
}

// Garbage costs no argon2id, so without counting it a client could send it forever (each
// AUTH is only one of limits.max_errors per session, and sessions are cheap to open).
Outcome Authenticator::malformed(std::string_view user, std::string_view reason, TimePoint now) {
  std::chrono::milliseconds delay{0};
  if (services_.limiter != nullptr) {
    delay = services_.limiter->record_failure(connection_.client, user, now).delay;
  }
  return fail(user, reason.empty() ? "malformed response" : reason, malformed_reply(), delay);
}

void Authenticator::malformed_response(std::string_view mechanism, TimePoint now) {
  mechanism_ = std::string(mechanism);
  malformed("", "undecodable response", now);
}

Outcome Authenticator::verifier_busy(std::string_view user) {
  obs::server_metrics().auth_verification_refused();
  return end_failed("auth_busy", user, "verification queue full", temporary_failure(), {});
}

// Every failure is one stable log line (README "Logs"; the fail2ban filter in contrib/
// matches it): client address, user as given, mechanism, reason — never the secret.
Outcome Authenticator::fail(std::string_view user, std::string_view reason, smtp::Reply reply,
                            std::chrono::milliseconds delay) {
  obs::server_metrics().auth_result(mechanism_, false);
  return end_failed("auth_failed", user, reason, std::move(reply), delay);
}

Outcome Authenticator::end_failed(const char* event, std::string_view user, std::string_view reason,
                                  smtp::Reply reply, std::chrono::milliseconds delay) {
  obs::Log(event, obs::Level::kWarning)
      .kv("session", connection_.session_id)
      .kv("client", connection_.client)
      .kv("user", user)
      .kv("mechanism", mechanism_)
      .kv("reason", reason);
  sasl_.reset();
  verifying_ = false;
  ticket_.reset();
  wipe_password();
  Outcome outcome;
  outcome.kind = Outcome::Kind::kFailed;
  outcome.reply = std::move(reply);
  outcome.delay = delay;
  return outcome;
}

}  // namespace auth
