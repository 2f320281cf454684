// sasl.h — server side of the SASL mechanisms smtpsd offers, sans I/O: the host (the SMTP
// session, RFC 4954) feeds one decoded client response at a time and carries out the step
// returned: send a challenge (334), verify a password on a worker pool, or finish.
//
// Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), SCRAM-SHA-256
// (RFC 5802, RFC 7677), SCRAM-SHA-256-PLUS with the tls-exporter channel binding
// (RFC 9266) and EXTERNAL (RFC 4422 Appendix A) with a TLS client certificate. Invariants: every
// response is at most kMaxSaslResponse octets (RFC 4954 §4); a mechanism never keeps a password
// past the step that returns it; an unknown user and a wrong password end the same way (kFailure,
// malformed=false) after the same messages.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/user_store.h"

namespace auth {

// RFC 4954 §4: "the client ... MUST be able to send ... 12288 octets" per line; we take
// that as the bound of one decoded response too.
constexpr std::size_t kMaxSaslResponse = 12288;

struct SaslStep {
  enum class Kind { kChallenge, kVerifyPassword, kSuccess, kFailure } kind;
  std::string challenge;   // kChallenge: raw bytes to send (the session base64-encodes)
  std::string user;        // kVerifyPassword / kSuccess: the authentication identity
  std::string password;    // kVerifyPassword only (host wipes it after use)
  std::string failure;     // kFailure: reason for the log (never a secret)
  bool malformed = false;  // kFailure because the client's message was malformed (→ 501)
                           // rather than wrong credentials (→ 535)
};

class SaslServer {
 public:
  virtual ~SaslServer() = default;
  // First call: the initial response (has_response=false when the client gave none); then
  // each continuation.
  virtual SaslStep step(std::string_view response, bool has_response = true) = 0;
  // After kVerifyPassword the host calls this with the result of verify_password.
  virtual SaslStep password_verified(bool ok) = 0;
};

using UserLookup = std::function<const User*(std::string_view)>;

// mechanism: as advertised ("PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
// "EXTERNAL"), compared case-insensitively. Returns nullptr for a mechanism we do not offer,
// and for SCRAM-SHA-256-PLUS when tls_exporter is empty (the host answers 504 5.5.4).
// lookup finds a user in the current snapshot; the returned pointer is only used during
// the call. tls_exporter: the 32-byte "EXPORTER-Channel-Binding" value (RFC 9266).
// certificate_user (EXTERNAL only): the user a verified client certificate maps to
// (auth::certificate_user); empty when there is none, and EXTERNAL then fails (535).
// unknown_iterations: the SCRAM count told to a user that does not exist
// (UserStore::typical_scram_iterations), so that it looks like everyone else's.
std::unique_ptr<SaslServer> make_sasl_server(
    std::string_view mechanism, UserLookup lookup, std::string tls_exporter,
    std::string certificate_user = {}, std::uint32_t unknown_iterations = kDefaultScramIterations);

// The same for SCRAM with a given server nonce (printable, no ','), so that a known
// exchange (RFC 7677 §3) can be replayed; make_sasl_server draws it from randombytes.
std::unique_ptr<SaslServer> make_scram_server(
    bool plus, UserLookup lookup, std::string tls_exporter, std::string server_nonce,
    std::uint32_t unknown_iterations = kDefaultScramIterations);

// In the order to advertise them (strongest first); -PLUS only with an exporter value;
// EXTERNAL (last: clients that pick the first mechanism they know should not try it
// without a certificate) only on listeners with a client CA.
std::vector<std::string> mechanisms_offered(bool have_tls_exporter, bool offer_external = false);

}  // namespace auth
