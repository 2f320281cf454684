// send_command.h — `smtpsctl send` and the sendmail-compatible mode: submit one message
// to any SMTP server over TLS, with AUTH, secure by default.
//
//   smtpsctl send --server smtps://HOST[:465] | smtp://HOST[:587] [--tls none]
//                 [--user USER [--password-file FILE]] [--cafile FILE] [--timeout SECONDS]
//                 --from ADDRESS --to ADDRESS... [--subject TEXT [--body TEXT]]
//   smtpsctl sendmail [-t] [-i] [-f ADDRESS] [-F NAME] [-bs] [--config FILE] [RECIPIENT...]
//   sendmail ...          (the same, when the binary is invoked under that name)
// On a host running smtpsd (an smtpsd.toml as --config, or $SMTPSD_CONFIG) sendmail submits
// through the server's local socket instead, without credentials (local_sendmail.h).
//
// Invariants:
// - TLS is required: implicit TLS for smtps://, STARTTLS for smtp:// (refused when the server
//   does not offer it) unless `--tls none` is given; the certificate must chain to the
//   trust store (system, or --cafile) and name the host (RFC 6125, RFC 7817). The check runs
//   right after the handshake, before EHLO and AUTH go inside TLS, so a password never
//   reaches an unverified server; AUTH is never sent without TLS.
// - The password never comes from the command line (ps, shell history): --password-file
//   (first line), else SMTPSCTL_PASSWORD, else a prompt without echo on the terminal
//   (/dev/tty: standard input carries the message). Never printed.
// - The message goes through a temporary file (mode 0600) removed before exit.
// - Every failure is one sentence a user understands: what failed and the server's reply.
//
// Exit codes: send: 0 sent, 1 failed, 2 usage. sendmail mode: sysexits.h codes (0, 64 usage,
// 65 bad input, 69 refused for good, 75 temporary, 78 configuration), as mail programs
// expect.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "base/endpoint.h"
#include "base/expected.h"

namespace app {

// --server: smtps://HOST[:PORT] (default 465) or smtp://HOST[:PORT] (default 587); HOST a
// name, an IPv4 literal or a bracketed IPv6 literal ("[::1]").
using ServerAddress = base::SmtpUrl;
base::Expected<ServerAddress, std::string> parse_server_url(std::string_view url);

// The sendmail mode's configuration file (TOML), strict: unknown keys, wrong types and a
// missing server are errors "FILE:LINE: KEY: message". Relative paths are relative to the
// file's directory.
//   server = "smtps://mail.example.net"   # required
//   user = "robot@example.net"            # AUTH when set
//   password_file = "/etc/smtpsctl.password"
//   cafile = "/etc/ssl/example-ca.pem"    # else the system trust store
//   from = "robot@example.net"            # envelope sender when -f is not given
struct SendmailConfig {
  std::string server;
  std::string user;
  std::string password_file;
  std::string cafile;
  std::string from;
};
base::Expected<SendmailConfig, std::string> parse_sendmail_config(std::string_view text,
                                                                  const std::string& file_name);
base::Expected<SendmailConfig, std::string> load_sendmail_config(const std::string& path);

// sendmail's command line (the flags cron, PHP, mail(1) and friends use).
struct SendmailArguments {
  bool extract_recipients = false;  // -t: To, Cc and Bcc; Bcc removed from the message
  bool dot_ends = true;             // false with -i or -oi
  std::string sender;               // -f ADDRESS (or -r)
  std::string full_name;            // -F NAME
  std::string config_file;          // --config FILE (or -C FILE)
  bool verbose = false;             // -v: print the server's final reply
  bool speak_smtp = false;          // -bs: SMTP on standard input and output (local mode only)
  bool help = false;
  std::vector<std::string> recipients;
};
base::Expected<SendmailArguments, std::string> parse_sendmail_arguments(
    const std::vector<std::string>& args);

// What the commands use of the outside world, so that tests can stand in for it.
struct SendEnvironment {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  std::function<std::optional<std::string>(const char*)> getenv;
  // Asks for a password without echo (prompt shown); an error when there is no terminal.
  std::function<base::Expected<std::string, std::string>(const std::string& prompt)>
      prompt_password;
};

// The real environment: std::cin/cout/cerr, ::getenv, and the terminal (/dev/tty).
SendEnvironment process_send_environment();

// args: what follows "send" / "sendmail" (or argv[1..] when invoked as sendmail).
int run_send_command(const std::vector<std::string>& args, const SendEnvironment& env);
int run_sendmail_command(const std::vector<std::string>& args, const SendEnvironment& env);

}  // namespace app
