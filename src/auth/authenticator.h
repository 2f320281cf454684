// authenticator.h — the AUTH policy of one SMTP AUTH exchange (RFC 4954), sans I/O: which
// mechanism runs, the failure limiter's lockouts, the verified-password cache, the SASL
// EXTERNAL mapping of a client certificate to a user, the reply codes, and the `auth` /
// `auth_failed` log lines and metrics. The host (net/) only carries out what it returns:
// send a challenge, verify a password on its worker pool, wait, or hand over the outcome.
//
// Dialog (the host calls, the authenticator answers with an Outcome):
//   start(mechanism, now)              once per AUTH command: a refusal, or nullopt
//   step(response, has_response, now)  the initial response, then each continuation
//   password_verified(ok, now)         after an Outcome of kind kVerifyPassword
// One Authenticator serves one exchange; the host makes a new one for each AUTH command.
// An Outcome ends the exchange when it is kSucceeded or kFailed; every call after that
// answers 454 4.7.0 (it cannot happen with smtp::ServerSession, which starts each exchange
// with a new AUTH command).
//
// Invariants:
// - No clock reads, sockets, files or threads: the time comes in as `now`.
// - A password lives only in the SASL step that carries it and in the pending verification;
//   it is wiped (sodium_memzero) once verified, refused or abandoned.
// - RFC 4954 §6: an unknown user and a wrong password get the same 535 5.7.8 after the same
//   work (verify_password with a dummy hash for an unknown user).
// - Lockouts (auth/failure_limiter.h): a locked-out client address gets 454 4.7.0 before
//   the exchange starts; a locked-out (address, user) gets 454 4.7.0 before its password is
//   verified, and also after a correct one, until the window passes.
// - A malformed response (501 5.5.2: bad base64, a PLAIN response without its parts) counts
//   as a failure of the address in the limiter, so that garbage cannot probe forever.
// - A password is verified only with a ticket of the bounded VerificationQueue; with none
//   left the client gets 454 4.7.0 at once (logged as `auth_busy`, not `auth_failed`: the
//   server's load is not the client's failure, and fail2ban must not ban for it).
// - The `auth_failed` line (client, user as given, mechanism, reason) is matched by the
//   fail2ban filter in contrib/: its keys and their order never change. Never a secret in it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/certificate_user.h"
#include "auth/failure_limiter.h"
#include "auth/sasl.h"
#include "auth/user_store.h"
#include "auth/verification_queue.h"
#include "auth/verified_cache.h"
#include "smtp/reply.h"

namespace auth {

// What the TLS layer found out about the client certificate (tls::client_identity), copied
// by the host; the authenticator never looks at the TLS session itself.
struct ClientCertificate {
  bool presented = false;    // the client sent a certificate
  bool verified = false;     // ... and it chains to the listener's client CA
  std::string verify_error;  // why not verified ("no client certificate", OpenSSL's text)
  CertificateNames names;    // rfc822Name SANs and subject commonName
};

// The shared services; each may be null (no users: every login fails; no limiter: no
// lockouts or delays; no cache: every password costs argon2id). They outlive the exchange.
struct AuthServices {
  const UserDirectory* users = nullptr;
  FailureLimiter* limiter = nullptr;
  VerifiedCache* verified_cache = nullptr;
  VerificationQueue* verifications = nullptr;  // null: verifications are not bounded
};

// The facts of the connection the exchange runs on.
struct AuthConnection {
  std::string client;             // the client address: the limiter's key and the logs' client=
  std::string session_id;         // the logs' session=
  std::string tls_exporter;       // RFC 9266 tls-exporter value; empty refuses SCRAM-…-PLUS
  ClientCertificate certificate;  // for EXTERNAL
};

// A password the host must check with verify_password(user, password), off the I/O thread.
// Both point into the Authenticator, valid until its next call.
struct PasswordCheck {
  const User* user = nullptr;  // nullptr for an unknown user (the dummy hash is used)
  std::string_view password;
};

struct Outcome {
  enum class Kind {
    kChallenge,       // send "334 base64(challenge)", then step() with the client's line
    kVerifyPassword,  // run the check on the worker pool, then password_verified()
    kSucceeded,       // 235: the session is authenticated as `user`
    kFailed,          // wait `delay`, then send `reply`
  };
  Kind kind = Kind::kFailed;
  std::string challenge;
  PasswordCheck check;
  std::string user;
  smtp::Reply reply;
  std::chrono::milliseconds delay{0};
};

class Authenticator {
 public:
  using TimePoint = FailureLimiter::TimePoint;

  Authenticator(AuthServices services, AuthConnection connection);
  ~Authenticator();  // wipes a password still pending
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // mechanism: as the session names it (upper-case, one it advertised). A mechanism we do
  // not run gets 504 5.5.4; a locked-out address 454 4.7.0 (both kFailed). nullopt: the
  // exchange is open, and the host goes on with step() and the initial response (or
  // has_response=false when the AUTH command had none).
  std::optional<Outcome> start(std::string_view mechanism, TimePoint now);
  Outcome step(std::string_view response, bool has_response, TimePoint now);
  Outcome password_verified(bool ok, TimePoint now);
  // The session refused a response it could not decode itself (501 5.5.2, RFC 4954 §4),
  // without a kAuthenticate: counted and logged as a malformed attempt of `mechanism`. Ends
  // any exchange of this authenticator.
  void malformed_response(std::string_view mechanism, TimePoint now);

 private:
  Outcome carry_out(SaslStep step, TimePoint now);
  Outcome fail(std::string_view user, std::string_view reason, smtp::Reply reply,
               std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  Outcome locked_out(std::string_view user);
  Outcome malformed(std::string_view user, std::string_view reason, TimePoint now);
  Outcome verifier_busy(std::string_view user);
  // The end of an exchange that did not succeed: one log line (event), the exchange's state
  // dropped and the password wiped; the reply and delay are the caller's.
  Outcome end_failed(const char* event, std::string_view user, std::string_view reason,
                     smtp::Reply reply, std::chrono::milliseconds delay);
  bool is_locked(std::string_view user, TimePoint now) const;
  void wipe_password();

  const AuthServices services_;
  const AuthConnection connection_;
  std::string mechanism_;
  std::shared_ptr<const UserStore> users_;  // the snapshot the exchange runs against
  std::unique_ptr<SaslServer> sasl_;        // null before start and once finished
  std::string external_refusal_;            // EXTERNAL: why the certificate names no user
  std::string pending_password_;            // kVerifyPassword until password_verified
  const User* pending_user_ = nullptr;
  std::optional<VerificationQueue::Ticket> ticket_;  // held while a verification is out
  bool verifying_ = false;  // a kVerifyPassword is out, password_verified() comes next
};

}  // namespace auth
