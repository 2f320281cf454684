// local_sendmail.h — `sendmail` on a host that runs smtpsd: the message goes to the server's
// local submission socket (docs/architecture.md "Listener roles", role local), with no
// password, no TLS and no client configuration; the server knows the user from the socket.
//
// Which mode a sendmail call uses (local_server_config): --config FILE whose TOML has a
// [server] table (an smtpsd.toml) → local; any other --config → the TLS mode; else
// $SMTPSCTL_CONFIG → the TLS mode; else $SMTPSD_CONFIG → local; else /etc/smtpsctl.toml when
// it exists → the TLS mode; else /etc/smtpsd/smtpsd.toml → local.
//
// Exit codes (sysexits.h, as Postfix's sendmail): 0 accepted; 64 usage; 65 the message is
// unusable; 67 a recipient refused for good (X.1.x: no such user); 69 refused otherwise; 75
// the server is not running or refused for now — the message was NOT sent, try again;
// 77 this local user may not submit; 78 the server's configuration is unusable.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/smtpsctl/message_builder.h"
#include "app/smtpsctl/send_command.h"

namespace app {

// The smtpsd configuration the local mode uses, or nothing for the TLS mode (rules above).
std::optional<std::string> local_server_config(const SendmailArguments& arguments,
                                               const SendEnvironment& env);

// The recipients of a message for `sendmail`: those given, then (with from_headers, -t) the
// addresses of every To, Cc and Bcc field; Bcc fields are removed from head either way
// (RFC 5322 §3.6.3: blind copies are never shown).
std::vector<std::string> take_recipients(MessageHead& head, const std::vector<std::string>& given,
                                         bool from_headers);

// A recipient as a local program writes it: a bare user name ("root", cron's MAILTO) gets
// "@domain"; anything with an '@' is kept.
std::string qualify_recipient(std::string_view address, std::string_view domain);

// Submits through the socket of server_config's [local_submission].
int run_local_sendmail(const SendmailArguments& arguments, const std::string& server_config,
                       const SendEnvironment& env);

}  // namespace app
