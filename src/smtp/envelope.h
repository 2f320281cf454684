// envelope.h — what one mail transaction carries besides its content (RFC 5321 §2.3.1),
// with the DSN parameters of RFC 3461 kept so that a later bounce can honour them, and the
// AUTH= parameter of RFC 4954 §5.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace smtp {

// BODY= of RFC 6152 / RFC 3030.
enum class BodyType { kUnspecified, k7Bit, k8BitMime, kBinaryMime };

// RET= of RFC 3461 §4.3.
enum class DsnReturn { kUnspecified, kFull, kHeaders };

struct Recipient {
  std::string address;  // "local@domain" as the client gave it (no angle brackets)
  std::string notify;   // NOTIFY= value as given (e.g. "SUCCESS,FAILURE"), empty if absent
  std::string original_recipient;  // ORCPT= value (decoded xtext), empty if absent
  // Not a destination: the record of an alias the policy expanded to several addresses at
  // RCPT with NOTIFY=SUCCESS (address: the alias as given). Nothing is delivered to it; the
  // queue reports it at once with the action "expanded" (RFC 3461 §5.2.7, RFC 3464 §2.3.3),
  // the targets then carry no SUCCESS.
  bool expansion_record = false;
};

struct Envelope {
  std::string helo;          // the name given in EHLO/HELO
  bool esmtp = false;        // EHLO (true) or HELO (false)
  std::string reverse_path;  // MAIL FROM address without brackets; "" for the null path <>
  std::vector<Recipient> recipients;
  BodyType body = BodyType::kUnspecified;
  bool smtputf8 = false;                       // SMTPUTF8 declared on MAIL (RFC 6531)
  std::optional<std::uint64_t> declared_size;  // SIZE= of RFC 1870
  DsnReturn dsn_return = DsnReturn::kUnspecified;
  std::string envelope_id;  // ENVID= (decoded xtext), empty if absent
  // REQUIRETLS on MAIL (RFC 8689 §2): every hop onwards must be verified TLS to a server that
  // advertises REQUIRETLS, else the message is returned (docs/architecture.md "REQUIRETLS").
  bool require_tls = false;
  // AUTH= of RFC 4954 §5: the decoded mailbox the client says submitted the message, or
  // "<>"; empty if absent. "<>" whatever was given when the session is not authenticated
  // (§5: the server "MUST behave as if the AUTH=<> parameter was supplied").
  std::string auth;
  // The session had authenticated (SMTP AUTH or a client certificate) when MAIL was given:
  // the sender is one of our users, not anyone on port 25.
  bool authenticated = false;
  // Who that was: the login name (SMTP AUTH, a client certificate) or the local user (the
  // local socket); empty when not authenticated. Stored with the message ("user" in the
  // spool), so that the queue tools select a user's mail (smtpsctl queue release --user).
  std::string authenticated_user;
};

}  // namespace smtp
