// sasl.cpp — PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS and EXTERNAL as state
// machines.
//
// Invariants: each mechanism moves forward only (start → ... → done); any call after done,
// and any response over kMaxSaslResponse octets, is a malformed failure. Parsers work on
// string_views of the caller's bytes and copy only what they keep. Credentials are
// compared in constant time (sodium_memcmp); a SCRAM exchange for an unknown user looks
// like one for a known user (RFC 5802 §5.1 suggests a fake salt; we derive it from a
// per-process secret so that it is stable across attempts) and fails only at the proof.
#include "auth/sasl.h"

#include <sodium.h>

#include <array>
#include <charconv>
#include <cstring>
#include <optional>
#include <utility>

#include "auth/crypto_primitives.h"

namespace auth {
namespace {

SaslStep challenge(std::string bytes) {
  SaslStep step{SaslStep::Kind::kChallenge, std::move(bytes), {}, {}, {}, false};
  return step;
}

SaslStep failure(std::string reason, bool malformed) {
  SaslStep step{SaslStep::Kind::kFailure, {}, {}, {}, std::move(reason), malformed};
  return step;
}

SaslStep verify(std::string user, std::string password) {
  SaslStep step{
      SaslStep::Kind::kVerifyPassword, {}, std::move(user), std::move(password), {}, false};
  return step;
}

SaslStep success(std::string user) {
  SaslStep step{SaslStep::Kind::kSuccess, {}, std::move(user), {}, {}, false};
  return step;
}

SaslStep too_long() {
  return failure("response longer than 12288 octets", true);
}
SaslStep finished() {
  return failure("exchange already finished", true);
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return same_address(a, b);
}

// The canonical name of a user (as written in the users file) for kSuccess.
std::string canonical_name(const UserLookup& lookup, std::string_view given) {
  const User* user = lookup(given);
  return user != nullptr ? user->address : std::string(given);
}

// --- PLAIN and LOGIN: a name and a password, verified by the host ------------------------

// What PLAIN and LOGIN share: after the client gave a name and a password the host checks
// the password (kVerifyPassword, off the I/O thread) and reports back. Every failure once
// the client has named itself carries that name, for the log line and the limiter.
class PasswordServer : public SaslServer {
 public:
  SaslStep password_verified(bool ok) final {
    if (!verifying_) return finish(failure("no password to verify", true));
    verifying_ = false;
    done_ = true;
    if (!ok) return finish(failure("invalid credentials", false));
    return success(canonical_name(lookup_, user_));
  }

 protected:
  explicit PasswordServer(UserLookup lookup) : lookup_(std::move(lookup)) {}

  // Common guards of step(): nothing after the end, nothing while verifying, bounded.
  std::optional<SaslStep> refuse_step(std::string_view response) {
    if (done_ || verifying_) return finish(finished());
    if (response.size() > kMaxSaslResponse) return finish(too_long());
    return std::nullopt;
  }
  SaslStep verify_password(std::string_view user, std::string_view password) {
    user_ = std::string(user);
    verifying_ = true;
    return verify(user_, std::string(password));
  }
  SaslStep finish(SaslStep step) {
    done_ = true;
    if (step.kind == SaslStep::Kind::kFailure && step.user.empty()) step.user = user_;
    return step;
  }

 private:
  UserLookup lookup_;
  std::string user_;
  bool verifying_ = false;
  bool done_ = false;
};

// PLAIN (RFC 4616).
class PlainServer final : public PasswordServer {
 public:
  explicit PlainServer(UserLookup lookup) : PasswordServer(std::move(lookup)) {}

  SaslStep step(std::string_view response, bool has_response) override {
    if (auto refused = refuse_step(response)) return *refused;
    if (!has_response) {
      if (awaiting_response_) return finish(failure("missing response", true));
      // RFC 4954 §4: without an initial response the server sends an empty challenge.
      awaiting_response_ = true;
      return challenge("");
    }
    // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
    std::size_t first = response.find('\0');
    std::size_t second = first == std::string_view::npos ? first : response.find('\0', first + 1);
    if (second == std::string_view::npos ||
        response.find('\0', second + 1) != std::string_view::npos) {
      return finish(failure("PLAIN message needs exactly two NUL separators", true));
    }
    std::string_view authzid = response.substr(0, first);
    std::string_view authcid = response.substr(first + 1, second - first - 1);
    std::string_view password = response.substr(second + 1);
    // authcid = 1*SAFE, passwd = 1*SAFE.
    if (authcid.empty() || password.empty()) {
      return finish(failure("PLAIN authcid or password is empty", true));
    }
    // RFC 4616 §2: "If the [authzid] is provided, the server ... verifies that the
    // authentication identity is permitted to act as [it]". We permit only itself.
    if (!authzid.empty() && !equal_ignoring_case(authzid, authcid)) {
      SaslStep refused =
          failure("authorization identity differs from authentication identity", false);
      refused.user = std::string(authcid);
      return finish(std::move(refused));
    }
    return verify_password(authcid, password);
  }

 private:
  bool awaiting_response_ = false;  // sent the empty challenge of an AUTH without response
};

// LOGIN (draft-murchison-sasl-login-00).
class LoginServer final : public PasswordServer {
 public:
  explicit LoginServer(UserLookup lookup) : PasswordServer(std::move(lookup)) {}

  SaslStep step(std::string_view response, bool has_response) override {
    if (auto refused = refuse_step(response)) return *refused;
    if (!username_.has_value()) {
      if (!has_response && !asked_username_) {
        asked_username_ = true;
        return challenge("Username:");
      }
      // Some clients send the user name as the initial response (AUTH LOGIN dXNlcg==).
      if (!has_response || response.empty() || response.find('\0') != std::string_view::npos) {
        return finish(failure("LOGIN user name is empty or contains NUL", true));
      }
      username_ = std::string(response);
      return challenge("Password:");
    }
    if (!has_response || response.empty() || response.find('\0') != std::string_view::npos) {
      SaslStep refused = failure("LOGIN password is empty or contains NUL", true);
      refused.user = *username_;
      return finish(std::move(refused));
    }
    return verify_password(*username_, response);
  }

 private:
  bool asked_username_ = false;
  std::optional<std::string> username_;
};

// --- EXTERNAL (RFC 4422 Appendix A) ------------------------------------------------------

// The authentication happened in the TLS handshake (a client certificate that verified
// against the listener's client CA); the host passes the user it maps to. The one message
// is the authorization identity: RFC 4422 §A.1 "external-authz-id = *( UTF8-char-no-nul )",
// empty meaning "the identity the external channel gives" (sent as "=" in SMTP).
class ExternalServer final : public SaslServer {
 public:
  explicit ExternalServer(std::string certificate_user)
      : certificate_user_(std::move(certificate_user)) {}

  SaslStep step(std::string_view response, bool has_response) override {
    if (state_ == State::kDone) return finished();
    if (response.size() > kMaxSaslResponse) return finish(too_long());
    if (!has_response) {
      if (state_ != State::kStart) return finish(failure("missing response", true));
      // RFC 4422 §A.1: "The client sends the initial response"; without one (AUTH EXTERNAL
      // alone) RFC 4954 §4 has the server send an empty challenge first.
      state_ = State::kAwaitResponse;
      return challenge("");
    }
    if (response.find('\0') != std::string_view::npos) {
      return finish(failure("EXTERNAL authorization identity contains NUL", true));
    }
    state_ = State::kDone;
    if (certificate_user_.empty()) {
      SaslStep refused = failure("no verified client certificate that maps to a user", false);
      refused.user = std::string(response);
      return refused;
    }
    // RFC 4422 §A.1: "If the client provides an authorization identity, the server ...
    // verifies that [the external credentials] are authorized to act as [it]." We permit
    // only the certificate's own user.
    if (!response.empty() && !same_address(response, certificate_user_)) {
      SaslStep refused =
          failure("authorization identity differs from the certificate's user", false);
      refused.user = std::string(response);
      return refused;
    }
    return success(certificate_user_);
  }

  SaslStep password_verified(bool) override {
    return finish(failure("EXTERNAL does not verify passwords", true));
  }

 private:
  enum class State { kStart, kAwaitResponse, kDone };
  SaslStep finish(SaslStep step) {
    state_ = State::kDone;
    return step;
  }
  const std::string certificate_user_;
  State state_ = State::kStart;
};

// --- SCRAM-SHA-256[-PLUS] (RFC 5802, RFC 7677, RFC 9266) --------------------------------

// A secret drawn once per process; fake salts for unknown users are HMACs of it.
const std::array<unsigned char, 32>& process_secret() {
  static const std::array<unsigned char, 32> secret = [] {
    ensure_sodium();
    std::array<unsigned char, 32> bytes{};
    randombytes_buf(bytes.data(), bytes.size());
    return bytes;
  }();
  return secret;
}

std::string fake_salt(std::string_view username) {
  std::string folded(username);
  for (char& c : folded) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const auto& secret = process_secret();
  Digest mac = hmac_sha256({reinterpret_cast<const char*>(secret.data()), secret.size()}, folded);
  return std::string(reinterpret_cast<const char*>(mac.data()), kScramSaltSize);
}

// RFC 5802 §7: saslname = 1*(value-safe-char / "=2C" / "=3D"); "If the server receives a
// username that contains '=' not followed by either '2C' or '3D', then the server MUST
// fail the authentication."
std::optional<std::string> decode_saslname(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\0' || c == ',') return std::nullopt;
    if (c == '=') {
      std::string_view escape = text.substr(i + 1, 2);
      if (escape == "2C") {
        out += ',';
      } else if (escape == "3D") {
        out += '=';
      } else {
        return std::nullopt;
      }
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

// printable = %x21-2B / %x2D-7E ;; Printable ASCII except ","
bool valid_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

// cb-name = 1*(ALPHA / DIGIT / "." / "-")
bool valid_cb_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string random_nonce() {
  ensure_sodium();
  unsigned char bytes[18];
  randombytes_buf(bytes, sizeof bytes);
  return base64_encode({reinterpret_cast<char*>(bytes), sizeof bytes});  // 24 chars, no '='
}

class ScramServer final : public SaslServer {
 public:
  ScramServer(bool plus, UserLookup lookup, std::string tls_exporter, std::string server_nonce,
              std::uint32_t unknown_iterations)
      : plus_(plus),
        lookup_(std::move(lookup)),
        tls_exporter_(std::move(tls_exporter)),
        server_nonce_(std::move(server_nonce)),
        unknown_iterations_(unknown_iterations) {}

  ~ScramServer() override {
    sodium_memzero(stored_key_.data(), stored_key_.size());
    sodium_memzero(server_key_.data(), server_key_.size());
  }

  SaslStep step(std::string_view response, bool has_response) override {
    if (response.size() > kMaxSaslResponse) return finish(too_long());
    switch (state_) {
      case State::kStart:
        if (!has_response) {
          // RFC 4954 §4: no initial response → an empty challenge; the client then sends
          // its client-first-message.
          state_ = State::kAwaitClientFirst;
          return challenge("");
        }
        [[fallthrough]];
      case State::kAwaitClientFirst:
        if (!has_response) return finish(failure("missing client-first-message", true));
        return client_first(response);
      case State::kAwaitClientFinal:
        return client_final(response);
      case State::kServerFinalSent:
        // RFC 4954 §4: the server-final-message goes in a 334 challenge ("additional data
        // with success"); the client answers with an empty response, then 235.
        if (!response.empty()) return finish(failure("expected an empty response", true));
        state_ = State::kDone;
        return success(address_);
      case State::kDone:
        break;
    }
    return finish(finished());
  }

  SaslStep password_verified(bool) override {
    return finish(failure("SCRAM does not verify passwords", true));
  }

 private:
  enum class State { kStart, kAwaitClientFirst, kAwaitClientFinal, kServerFinalSent, kDone };

  SaslStep finish(SaslStep step) {
    state_ = State::kDone;
    // Once the client named itself (n=), every failure carries that name: the log line
    // names it and the limiter counts it per (address, user), not against the address.
    if (step.kind == SaslStep::Kind::kFailure && step.user.empty()) step.user = username_;
    return step;
  }

  // client-first-message = gs2-header client-first-message-bare
  // gs2-header = gs2-cbind-flag "," [ authzid ] ","
  // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
  SaslStep client_first(std::string_view message) {
    std::string_view rest = message;
    char flag = 0;
    if (rest.starts_with("n,")) {
      flag = 'n';
      rest.remove_prefix(2);
    } else if (rest.starts_with("y,")) {
      flag = 'y';
      rest.remove_prefix(2);
    } else if (rest.starts_with("p=")) {
      flag = 'p';
      std::size_t comma = rest.find(',');
      if (comma == std::string_view::npos) return finish(failure("bad gs2 header", true));
      std::string_view cb_name = rest.substr(2, comma - 2);
      if (!valid_cb_name(cb_name)) return finish(failure("bad channel binding name", true));
      rest.remove_prefix(comma + 1);
      if (plus_ && cb_name != "tls-exporter") {
        // RFC 9266 §4.1 names tls-exporter for TLS 1.3; we support only it.
        return finish(failure("unsupported channel binding type " + std::string(cb_name), false));
      }
    } else {
      return finish(failure("bad gs2-cbind-flag", true));
    }
    std::size_t comma = rest.find(',');
    if (comma == std::string_view::npos) return finish(failure("bad gs2 header", true));
    std::string_view authzid_field = rest.substr(0, comma);
    rest.remove_prefix(comma + 1);
    gs2_header_ = std::string(message.substr(0, message.size() - rest.size()));
    std::optional<std::string> authzid;
    if (!authzid_field.empty()) {
      if (!authzid_field.starts_with("a=")) return finish(failure("bad authzid", true));
      authzid = decode_saslname(authzid_field.substr(2));
      if (!authzid) return finish(failure("bad authzid", true));
    }

    if (plus_) {
      // The client chose -PLUS, so it must bind the channel: "p=tls-exporter".
      if (flag != 'p') return finish(failure("SCRAM-SHA-256-PLUS without channel binding", true));
    } else if (flag == 'p') {
      // RFC 5802 §6: "p" means the client requires channel binding, which only the -PLUS
      // mechanism carries.
      return finish(failure("channel binding requested with SCRAM-SHA-256", true));
    } else if (flag == 'y' && !tls_exporter_.empty()) {
      // RFC 5802 §6: "If the flag is set to "y" and the server supports channel binding,
      // the server MUST fail authentication." (a downgrade: -PLUS was offered).
      return finish(
          failure("channel binding downgrade (gs2 flag y while -PLUS is offered)", false));
    }

    client_first_bare_ = std::string(rest);
    if (rest.starts_with("m=")) {
      // RFC 5802 §5.1: reserved-mext "m": the server MUST fail if it does not support it.
      return finish(failure("mandatory extension not supported", true));
    }
    if (!rest.starts_with("n=")) return finish(failure("expected n=username", true));
    comma = rest.find(',');
    if (comma == std::string_view::npos) return finish(failure("expected r=nonce", true));
    auto username = decode_saslname(rest.substr(2, comma - 2));
    if (!username) return finish(failure("bad username encoding", true));
    rest.remove_prefix(comma + 1);
    if (!rest.starts_with("r=")) return finish(failure("expected r=nonce", true));
    comma = rest.find(',');
    std::string_view client_nonce =
        rest.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
    if (!valid_nonce(client_nonce)) return finish(failure("bad client nonce", true));
    // Any extensions after the nonce are ignored (RFC 5802 §5.1: unknown optional
    // attributes MUST be ignored).

    if (authzid && !same_address(*authzid, *username)) {
      return finish(failure("authorization identity differs from authentication identity", false));
    }

    username_ = std::move(*username);
    std::string salt;
    std::uint32_t iterations = unknown_iterations_;
    if (const User* user = lookup_(username_); user != nullptr) {
      known_user_ = true;
      address_ = user->address;
      salt = user->scram.salt;
      iterations = user->scram.iterations;
      stored_key_ = user->scram.stored_key;
      server_key_ = user->scram.server_key;
    } else {
      address_ = username_;
      salt = fake_salt(username_);
      randombytes_buf(stored_key_.data(), stored_key_.size());
      randombytes_buf(server_key_.data(), server_key_.size());
    }
    nonce_ = std::string(client_nonce) + server_nonce_;
    // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
    server_first_ =
        "r=" + nonce_ + ",s=" + base64_encode(salt) + ",i=" + std::to_string(iterations);
    state_ = State::kAwaitClientFinal;
    return challenge(server_first_);
  }

  // client-final-message-without-proof = channel-binding "," nonce ["," extensions]
  // client-final-message = client-final-message-without-proof "," proof
  SaslStep client_final(std::string_view message) {
    std::size_t proof_at = message.rfind(",p=");
    if (proof_at == std::string_view::npos) return finish(failure("expected p=proof", true));
    std::string_view without_proof = message.substr(0, proof_at);
    auto proof = base64_decode(message.substr(proof_at + 3));
    if (!proof || proof->size() != 32) return finish(failure("bad proof encoding", true));

    if (!without_proof.starts_with("c=")) return finish(failure("expected c=", true));
    std::size_t comma = without_proof.find(',');
    if (comma == std::string_view::npos) return finish(failure("expected r=nonce", true));
    auto binding = base64_decode(without_proof.substr(2, comma - 2));
    if (!binding) return finish(failure("bad channel binding encoding", true));
    std::string_view rest = without_proof.substr(comma + 1);
    if (!rest.starts_with("r=")) return finish(failure("expected r=nonce", true));
    comma = rest.find(',');
    std::string_view nonce =
        rest.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
    if (nonce != nonce_) return finish(failure("nonce mismatch", true));

    // RFC 5802 §7: cbind-input = gs2-header [ cbind-data ]; cbind-data only with "p".
    // RFC 9266 §3: for tls-exporter the data is the 32-byte exported keying material.
    std::string expected_binding = gs2_header_;
    if (plus_) expected_binding += tls_exporter_;
    bool binding_ok =
        binding->size() == expected_binding.size() &&
        sodium_memcmp(binding->data(), expected_binding.data(), expected_binding.size()) == 0;

    // RFC 5802 §3:
    //   AuthMessage     := client-first-message-bare + "," + server-first-message + "," +
    //                      client-final-message-without-proof
    //   ClientSignature := HMAC(StoredKey, AuthMessage)
    //   ClientKey       := ClientProof XOR ClientSignature; check H(ClientKey) == StoredKey
    //   ServerSignature := HMAC(ServerKey, AuthMessage)
    std::string auth_message = client_first_bare_;
    auth_message += ',';
    auth_message += server_first_;
    auth_message += ',';
    auth_message += without_proof;
    Digest client_signature = hmac_sha256(as_view(stored_key_), auth_message);
    Digest client_key{};
    for (std::size_t i = 0; i < client_key.size(); ++i) {
      client_key[i] =
          static_cast<unsigned char>(static_cast<unsigned char>((*proof)[i]) ^ client_signature[i]);
    }
    Digest computed_stored_key = sha256(as_view(client_key));
    bool proof_ok =
        sodium_memcmp(computed_stored_key.data(), stored_key_.data(), stored_key_.size()) == 0;
    sodium_memzero(client_key.data(), client_key.size());

    if (!binding_ok) return finish(failure("channel binding mismatch", false));
    if (!proof_ok || !known_user_) return finish(failure("invalid credentials", false));
    Digest server_signature = hmac_sha256(as_view(server_key_), auth_message);
    state_ = State::kServerFinalSent;
    return challenge("v=" + base64_encode(as_view(server_signature)));
  }

  const bool plus_;
  UserLookup lookup_;
  const std::string tls_exporter_;
  const std::string server_nonce_;
  const std::uint32_t unknown_iterations_;
  State state_ = State::kStart;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string username_;
  std::string address_;
  std::string nonce_;
  bool known_user_ = false;
  Digest stored_key_{};
  Digest server_key_{};
};

}  // namespace

std::unique_ptr<SaslServer> make_scram_server(bool plus, UserLookup lookup,
                                              std::string tls_exporter, std::string server_nonce,
                                              std::uint32_t unknown_iterations) {
  if (plus && tls_exporter.empty()) return nullptr;
  return std::make_unique<ScramServer>(plus, std::move(lookup), std::move(tls_exporter),
                                       std::move(server_nonce), unknown_iterations);
}

std::unique_ptr<SaslServer> make_sasl_server(std::string_view mechanism, UserLookup lookup,
                                             std::string tls_exporter, std::string certificate_user,
                                             std::uint32_t unknown_iterations) {
  if (equal_ignoring_case(mechanism, "PLAIN")) {
    return std::make_unique<PlainServer>(std::move(lookup));
  }
  if (equal_ignoring_case(mechanism, "LOGIN")) {
    return std::make_unique<LoginServer>(std::move(lookup));
  }
  if (equal_ignoring_case(mechanism, "SCRAM-SHA-256")) {
    return make_scram_server(false, std::move(lookup), std::move(tls_exporter), random_nonce(),
                             unknown_iterations);
  }
  if (equal_ignoring_case(mechanism, "SCRAM-SHA-256-PLUS")) {
    return make_scram_server(true, std::move(lookup), std::move(tls_exporter), random_nonce(),
                             unknown_iterations);
  }
  if (equal_ignoring_case(mechanism, "EXTERNAL")) {
    return std::make_unique<ExternalServer>(std::move(certificate_user));
  }
  return nullptr;
}

std::vector<std::string> mechanisms_offered(bool have_tls_exporter, bool offer_external) {
  std::vector<std::string> names;
  if (have_tls_exporter) names.emplace_back("SCRAM-SHA-256-PLUS");
  names.emplace_back("SCRAM-SHA-256");
  names.emplace_back("PLAIN");
  names.emplace_back("LOGIN");
  if (offer_external) names.emplace_back("EXTERNAL");
  return names;
}

}  // namespace auth
