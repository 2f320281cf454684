// send_command.cpp — `smtpsctl send` and `sendmail` (usage and invariants in send_command.h).
//
// The connection is delivery::Connection (the queue's own client: deadlines on every wait,
// STARTTLS response-injection defence, AUTH only inside TLS); this file adds what a person at
// a terminal or a cron job needs: a URL, a password from a safe place, a message built or
// completed (message_builder.h), and failures explained in words.
#include "app/smtpsctl/send_command.h"
#include "app/smtpsctl/command_line.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/x509_vfy.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/smtpsctl/local_sendmail.h"
#include "app/smtpsctl/message_builder.h"
#include "app/smtpsctl/message_file.h"
#include "app/smtpsctl/sendmail_exit_codes.h"
#include "app/smtpsctl/terminal.h"
#include "base/terminal_text.h"
#include "delivery/smtp_transport.h"
#include "queue/spool.h"
#include "tls/policy.h"

namespace app {
namespace {

void wipe(std::string& secret) {
  if (!secret.empty()) sodium_memzero(secret.data(), secret.size());
  secret.clear();
}

// A failure to tell the user: one sentence; temporary when trying later may help (4xx,
// network), for sendmail's exit code.
struct SendFailure {
  std::string message;
  bool temporary = false;
  bool bad_input = false;  // the message itself is unusable (sendmail: EX_DATAERR)
};

// Everything one submission needs.
struct Submission {
  ServerAddress server;
  bool tls_none = false;
  std::string user;
  std::string password;
  std::string cafile;
  std::string sender;
  std::vector<std::string> recipients;
  std::chrono::seconds timeout{60};
};

// --- the terminal ---------------------------------------------------------------------

base::Expected<std::string, std::string> prompt_on_terminal(const std::string& prompt) {
  int tty_fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (tty_fd < 0) {
    return base::unexpected(
        std::string("no password: give --password-file FILE or set SMTPSCTL_PASSWORD (there is no "
                    "terminal to ask on)"));
  }
  base::Expected<std::string, std::string> line = std::string();
  {
    EchoOff quiet(tty_fd);
    // The prompt only once echo is off: whatever answers it is never shown.
    (void)!::write(tty_fd, prompt.data(), prompt.size());
    line = read_secret_line(tty_fd, 4096);
  }
  ::close(tty_fd);
  if (!line || line.value().empty()) return base::unexpected(std::string("no password was typed"));
  return line;
}

// The password: --password-file (first line), else SMTPSCTL_PASSWORD, else the terminal.
base::Expected<std::string, std::string> find_password(const std::string& password_file,
                                                       const Submission& submission,
                                                       const SendEnvironment& env) {
  if (!password_file.empty()) {
    std::ifstream in(password_file, std::ios::binary);
    if (!in) {
      return base::unexpected("cannot read the password file " + password_file + ": " +
                              std::strerror(errno));
    }
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      return base::unexpected("the password file " + password_file +
                              " has no password (first line)");
    }
    return line;
  }
  if (auto value = env.getenv("SMTPSCTL_PASSWORD"); value && !value->empty()) return *value;
  return env.prompt_password("Password for " + submission.user + " at " + submission.server.host +
                             ": ");
}

// --- explaining failures ----------------------------------------------------------------

std::string describe_server(const ServerAddress& server) {
  return base::to_string(base::HostPort{server.host, server.port});
}

// Why a certificate is refused, in words, from the verification code of the handshake.
std::string explain_certificate(const delivery::TlsOutcome& tls, const Submission& submission) {
  const std::string subject = "the certificate of " + describe_server(submission.server);
  const std::string tail = "; nothing was sent (no password, no message)";
  switch (tls.verify_code) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return subject + " expired on " + tls.peer_not_after + tail;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return subject + " is not valid before " + tls.peer_not_before + tail;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH:
      return subject + " does not name " + submission.server.host + ": name mismatch, it names " +
             tls.peer_names + tail;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
      return subject + " is not trusted: it was issued by " + tls.peer_issuer +
             ", which is not in " +
             (submission.cafile.empty() ? std::string("the system trust store")
                                        : "--cafile " + submission.cafile) +
             " (give --cafile with that authority's certificate if you trust it)" + tail;
    default:
      return subject + " could not be verified: " + tls.verify_error + tail;
  }
}

SendFailure explain_failure(const delivery::TransportFailure& failure,
                            const Submission& submission) {
  const std::string server = describe_server(submission.server);
  const std::string reply = failure.reply ? failure.reply->summary() : "";
  bool temporary = !failure.reply || failure.reply->transient();
  auto with_reply = [&](const std::string& what) {
    return what + (reply.empty() ? ": " + failure.detail : ": " + reply);
  };
  const std::string& stage = failure.stage;
  if (stage == "connect") {
    if (failure.detail.find("refused") != std::string::npos) {
      return {"connection refused by " + server + " (no server listens on that port)", true};
    }
    if (failure.detail.find("within") != std::string::npos) {
      return {"timed out connecting to " + server + ": " + failure.detail, true};
    }
    return {"cannot connect to " + server + ": " + failure.detail, true};
  }
  if (failure.detail.find(" within ") != std::string::npos && !failure.reply) {
    return {"timed out: " + failure.detail, true};
  }
  if (stage == "tls-policy") return {failure.detail, false};
  if (stage == "tls") {
    std::string text = failure.detail;
    if (submission.server.implicit_tls &&
        (text.find("wrong version number") != std::string::npos ||
         text.find("packet length too long") != std::string::npos)) {
      text += " (the server does not speak TLS first on this port: for STARTTLS use smtp://)";
    }
    return {text, true};
  }
  if (stage == "starttls") {
    if (failure.reply) return {with_reply("the server refused STARTTLS"), temporary};
    return {server +
                " does not offer STARTTLS, so the password and the message would travel in "
                "clear; nothing was sent (give --tls none to send without TLS anyway)",
            false};
  }
  if (stage == "auth") {
    if (!failure.reply) {
      return {"cannot authenticate as " + submission.user + " at " + server + ": " +
                  failure.detail + " (for submission with AUTH use port 465 or 587)",
              false};
    }
    return {with_reply("authentication as " + submission.user + " refused by " + server),
            failure.reply->transient()};
  }
  if (stage == "greeting") return {with_reply(server + " refused the connection"), temporary};
  if (stage == "ehlo") return {with_reply(server + " refused EHLO"), temporary};
  if (stage == "mail") return {with_reply("sender <" + submission.sender + "> refused"), temporary};
  if (stage == "data") return {with_reply("message refused"), temporary};
  if (stage == "content") {
    return {with_reply("the message may not have been accepted (the end of data got no clear "
                       "answer)"),
            temporary};
  }
  return {with_reply(stage + " failed"), temporary};
}

// --- sending ----------------------------------------------------------------------------

std::string helo_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  for (char* p = name; *p != '\0'; ++p) {
    if (!std::isalnum(static_cast<unsigned char>(*p)) && *p != '-' && *p != '.') return "localhost";
  }
  return name;
}

// Connects to each address of the host in turn (connection refused or timed out: the next
// one), then sends. Returns the server's final reply.
base::Expected<std::string, SendFailure> submit(const Submission& submission,
                                                const MessageFile& file) {
  tls::SslCtxPtr context;
  if (!submission.tls_none) {
    auto made = tls::make_client_context(submission.cafile);
    if (!made) return base::unexpected(SendFailure{made.error(), false});
    context = std::move(made.value());
  }
  delivery::TransportOptions options;
  options.client.helo_name = helo_name();
  options.client.auth_user = submission.user;
  options.client.auth_password = submission.password;
  options.client.require_tls = !submission.tls_none;
  options.implicit_tls = submission.server.implicit_tls;
  options.starttls = !submission.tls_none;
  options.tls_context = context.get();
  options.connect_timeout = submission.timeout;
  options.command_timeout = submission.timeout;
  options.check_tls = [&submission](const delivery::TlsOutcome& tls) -> std::string {
    return tls.verified ? "" : explain_certificate(tls, submission);
  };

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int status = ::getaddrinfo(submission.server.host.c_str(), nullptr, &hints, &found);
  if (status != 0) {
    return base::unexpected(SendFailure{
        "host not found: " + submission.server.host + " (" + ::gai_strerror(status) + ")",
        status == EAI_AGAIN});
  }
  std::vector<std::string> addresses;
  for (addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    char text[NI_MAXHOST] = {};
    if (::getnameinfo(entry->ai_addr, entry->ai_addrlen, text, sizeof text, nullptr, 0,
                      NI_NUMERICHOST) == 0 &&
        std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.push_back(text);
    }
  }
  ::freeaddrinfo(found);

  std::unique_ptr<delivery::Connection> connection;
  std::optional<delivery::TransportFailure> last_failure;
  for (const std::string& address : addresses) {
    delivery::Endpoint endpoint{submission.server.host, address, submission.server.port, false};
    auto opened = delivery::Connection::open(endpoint, options);
    if (opened) {
      connection = std::move(opened.value());
      break;
    }
    last_failure = opened.error();
    if (opened.error().stage != "connect") break;
  }
  if (!connection) {
    if (!last_failure) {
      return base::unexpected(
          SendFailure{"host not found: " + submission.server.host + " has no address", false});
    }
    return base::unexpected(explain_failure(*last_failure, submission));
  }

  const queue::StoredMessage message =
      file.envelope(options.client.helo_name, submission.sender, submission.recipients);
  auto sent = connection->send(message, all_recipients(message));
  if (!sent) {
    auto failure = explain_failure(sent.error(), submission);
    connection->quit();
    return base::unexpected(failure);
  }
  connection->quit();
  std::string refused, final_reply;
  bool temporary = false;
  std::size_t accepted = 0;
  const std::vector<smtp::RecipientResult>& results = sent.value();
  // One reply for every recipient, none accepted: most likely MAIL (the sender) or the
  // message itself was refused, so the reply is shown once, without blaming a recipient.
  bool same_refusal =
      !results.empty() && !results.front().reply.positive() &&
      std::all_of(results.begin(), results.end(), [&](const smtp::RecipientResult& result) {
        return result.reply.summary() == results.front().reply.summary();
      });
  if (same_refusal) {
    const smtp::ServerReply& reply = results.front().reply;
    std::string whom = results.size() == 1
                           ? "<" + submission.recipients[results.front().index] + ">"
                           : "all " + std::to_string(results.size()) + " recipients";
    return base::unexpected(SendFailure{
        "the server refused the message for " + whom + ": " + reply.summary(), reply.transient()});
  }
  for (const smtp::RecipientResult& result : results) {
    if (result.reply.positive()) {
      ++accepted;
      final_reply = result.reply.summary();
      continue;
    }
    temporary = temporary || result.reply.transient();
    if (!refused.empty()) refused += "; ";
    refused += "recipient <" + submission.recipients[result.index] +
               "> refused: " + result.reply.summary();
  }
  if (!refused.empty()) {
    if (accepted > 0) {
      refused +=
          " (sent to the " + std::to_string(accepted) + " other recipient(s): " + final_reply + ")";
    }
    return base::unexpected(SendFailure{refused, temporary});
  }
  return final_reply;
}

// A message on the way to the temporary file: writes it, then submits.
base::Expected<std::string, SendFailure> write_and_submit(Submission& submission,
                                                          const MessageHead& head,
                                                          LineReader& body) {
  auto file = MessageFile::write(head, body);
  if (!file) {
    // Creating the file may work later (temporary); an unusable message will not.
    const bool bad_input = file.error().bad_input;
    return base::unexpected(SendFailure{file.error().message, !bad_input, bad_input});
  }
  auto sent = submit(submission, *file.value());
  wipe(submission.password);
  return sent;
}

bool looks_like_address(std::string_view text) {
  std::size_t at = text.rfind('@');
  return at != std::string_view::npos && at > 0 && at + 1 < text.size() &&
         text.find_first_of(" \t\r\n<>") == std::string_view::npos;
}

const char* kSendmailUsage =
    "usage: sendmail [-t] [-i] [-f ADDRESS] [-F NAME] [-bs] [--config FILE] [RECIPIENT...]\n"
    "  reads a message on standard input and submits it: over TLS to the server of a\n"
    "  smtpsctl.toml (--config, else $SMTPSCTL_CONFIG, else /etc/smtpsctl.toml), or without\n"
    "  credentials to the local submission socket of smtpsd (--config with the server's\n"
    "  smtpsd.toml, else $SMTPSD_CONFIG, else /etc/smtpsd/smtpsd.toml when there is no\n"
    "  /etc/smtpsctl.toml)\n"
    "  -bs         speak SMTP on standard input and output (local submission only)\n"
    "  -t          recipients from the To, Cc and Bcc headers too (Bcc is removed)\n"
    "  -i, -oi     a line with a single '.' does not end the message\n"
    "  -f ADDRESS  envelope sender (else 'from' of the configuration)\n"
    "  -F NAME     the sender's name, for a From header added when the message has none\n"
    "  -v          print the server's final reply\n";

}  // namespace

base::Expected<ServerAddress, std::string> parse_server_url(std::string_view url) {
  auto parsed = base::parse_smtp_url(url);
  if (!parsed) return base::unexpected("server " + std::string(url) + ": " + parsed.error());
  return parsed.value();
}

base::Expected<SendmailConfig, std::string> parse_sendmail_config(std::string_view text,
                                                                  const std::string& file_name) {
  auto error = [&file_name](const toml::node* node, std::string_view key, std::string message) {
    std::string out = file_name;
    if (node != nullptr) out += ":" + std::to_string(node->source().begin.line);
    out += ": ";
    if (!key.empty()) out += std::string(key) + ": ";
    return base::unexpected(out + message);
  };
  toml::table root;
  try {
    root = toml::parse(text, file_name);
  } catch (const toml::parse_error& failure) {
    return base::unexpected(file_name + ":" + std::to_string(failure.source().begin.line) + ": " +
                            std::string(failure.description()));
  }
  SendmailConfig config;
  std::filesystem::path base = std::filesystem::path(file_name).parent_path();
  struct Key {
    std::string_view name;
    std::string* value;
    bool path;
  };
  const Key keys[] = {{"server", &config.server, false},
                      {"user", &config.user, false},
                      {"password_file", &config.password_file, true},
                      {"cafile", &config.cafile, true},
                      {"from", &config.from, false}};
  for (auto&& [key, node] : root) {
    auto known = std::find_if(std::begin(keys), std::end(keys),
                              [&](const Key& k) { return k.name == key.str(); });
    if (known == std::end(keys)) {
      return error(&node, key.str(),
                   "unknown key (known here: server, user, password_file, cafile, from)");
    }
    if (!node.is_string()) return error(&node, key.str(), "must be a string");
    std::string value(node.as_string()->get());
    if (value.empty()) return error(&node, key.str(), "must not be empty");
    if (known->path && std::filesystem::path(value).is_relative()) {
      value = (base / value).lexically_normal().string();
    }
    *known->value = value;
  }
  if (config.server.empty()) {
    return error(nullptr, "server",
                 "missing (required), e.g. server = \"smtps://mail.example.net\"");
  }
  if (auto server = parse_server_url(config.server); !server) {
    return error(root.get("server"), "server", server.error());
  }
  if (!config.from.empty() && !looks_like_address(config.from)) {
    return error(root.get("from"), "from", "not an address (local@domain)");
  }
  return config;
}

base::Expected<SendmailConfig, std::string> load_sendmail_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return base::unexpected(path + ": cannot read the file: " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_sendmail_config(buffer.str(), path);
}

base::Expected<SendmailArguments, std::string> parse_sendmail_arguments(
    const std::vector<std::string>& args) {
  SendmailArguments parsed;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.recipients.insert(parsed.recipients.end(), args.begin() + static_cast<long>(i) + 1,
                               args.end());
      break;
    }
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      continue;
    }
    if (arg == "--config" || arg.rfind("--config=", 0) == 0) {
      if (arg.size() > 8) {
        parsed.config_file = arg.substr(9);
      } else if (i + 1 < args.size()) {
        parsed.config_file = args[++i];
      } else {
        return base::unexpected(std::string("--config needs a file"));
      }
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      parsed.recipients.push_back(arg);
      continue;
    }
    if (arg[1] == '-') return base::unexpected("unknown option " + arg);
    // Single-letter options may be grouped ("-ti"); one that takes a value takes the rest
    // of the word or the next argument ("-ffoo@example.org", "-f foo@example.org").
    for (std::size_t j = 1; j < arg.size(); ++j) {
      char letter = arg[j];
      auto value = [&]() -> base::Expected<std::string, std::string> {
        if (j + 1 < arg.size()) {
          std::string rest = arg.substr(j + 1);
          j = arg.size();
          return rest;
        }
        if (i + 1 >= args.size()) {
          return base::unexpected(std::string("-") + letter + " needs a value");
        }
        j = arg.size();
        return args[++i];
      };
      switch (letter) {
        case 't':
          parsed.extract_recipients = true;
          break;
        case 'i':
          parsed.dot_ends = false;
          break;
        case 'v':
          parsed.verbose = true;
          break;
        case 'm':  // "me too": the sender gets a copy of an alias expansion — nothing here
        case 'n':  // no alias expansion
        case 'U':  // initial user submission
          break;
        case 'f':
        case 'r': {
          auto v = value();
          if (!v) return base::unexpected(v.error());
          parsed.sender = v.value();
          break;
        }
        case 'F': {
          auto v = value();
          if (!v) return base::unexpected(v.error());
          parsed.full_name = v.value();
          break;
        }
        case 'C': {
          auto v = value();
          if (!v) return base::unexpected(v.error());
          parsed.config_file = v.value();
          break;
        }
        case 'o': {  // -oi means -i; other -o options (-odi, -oem, -oQ/dir ...) do not apply
          std::string option = arg.substr(j + 1);
          j = arg.size();
          if (option == "i") parsed.dot_ends = false;
          break;
        }
        case 'b': {  // -bm: deliver a message (the default); -bs: SMTP on stdin/stdout
          std::string mode = arg.substr(j + 1);
          j = arg.size();
          if (mode == "s") {
            parsed.speak_smtp = true;
          } else if (mode != "m") {
            return base::unexpected("-b" + mode +
                                    " is not supported: this sendmail submits messages (-bm) "
                                    "or speaks SMTP on standard input (-bs)");
          }
          break;
        }
        case 'B':  // body type, DSN options, logging: accepted and ignored
        case 'N':
        case 'R':
        case 'V':
        case 'L':
        case 'O':
        case 'X':
        case 'h':
        case 'q': {
          if (letter == 'q') {
            return base::unexpected(std::string("-q is not supported: there is no local queue"));
          }
          auto v = value();
          if (!v) return base::unexpected(v.error());
          break;
        }
        case 'd':  // debugging flags such as -d0.1: ignored
          j = arg.size();
          break;
        default:
          return base::unexpected(std::string("unknown option -") + letter);
      }
    }
  }
  return parsed;
}

SendEnvironment process_send_environment() {
  return SendEnvironment{std::cin, std::cout, std::cerr,
                         [](const char* name) -> std::optional<std::string> {
                           const char* value = std::getenv(name);
                           if (value == nullptr) return std::nullopt;
                           return std::string(value);
                         },
                         prompt_on_terminal};
}

int run_send_command(const std::vector<std::string>& argv, const SendEnvironment& env) {
  for (const std::string& arg : argv) {
    if (arg == "--password" || arg.rfind("--password=", 0) == 0 || arg == "-p") {
      env.err << "smtpsctl send: there is no " << arg.substr(0, arg.find('='))
              << " option: a password on the command line shows in ps and in shell history; "
                 "use --password-file FILE, the SMTPSCTL_PASSWORD environment variable, or "
                 "type it when asked\n";
      return 2;
    }
  }
  CLI::App cli{
      "Send one message over TLS (the message on standard input, or built from "
      "--subject and --body)",
      "smtpsctl send"};
  std::string server_url, tls_mode = "required", password_file, subject, body;
  Submission submission;
  std::vector<std::string> recipients;
  long timeout_seconds = 60;
  cli.add_option("--server", server_url,
                 "smtps://HOST[:465] (implicit TLS) or smtp://HOST[:587] (STARTTLS)")
      ->required();
  cli.add_option("--tls", tls_mode, "required (default), or none to allow plain text on smtp://")
      ->check(CLI::IsMember({"required", "none"}));
  cli.add_option("--user", submission.user, "AUTH as this user");
  cli.add_option("--password-file", password_file,
                 "Read the password from this file (first line); else SMTPSCTL_PASSWORD, else "
                 "asked on the terminal");
  cli.add_option("--cafile", submission.cafile,
                 "Trust the CA certificates of this PEM file (default: the system trust store)");
  cli.add_option("--from", submission.sender, "Envelope sender (default: --user if an address)");
  cli.add_option("--to", recipients, "Recipient (repeat for several)")->required();
  auto* subject_option = cli.add_option("--subject", subject, "Build the message: its subject");
  auto* body_option =
      cli.add_option("--body", body, "Build the message: its text (else standard input)");
  cli.add_option("--timeout", timeout_seconds, "Seconds to wait for each step (default 60)")
      ->check(CLI::Range(1, 3600));
  if (auto stop = parse_command_line(cli, argv, env.out, env.err)) return *stop;
  auto server = parse_server_url(server_url);
  if (!server) {
    env.err << "smtpsctl send: " << server.error() << "\n";
    return 2;
  }
  submission.server = server.value();
  submission.tls_none = tls_mode == "none";
  submission.timeout = std::chrono::seconds(timeout_seconds);
  if (submission.tls_none && submission.server.implicit_tls) {
    env.err << "smtpsctl send: --tls none contradicts smtps:// (implicit TLS); use smtp://\n";
    return 2;
  }
  if (submission.tls_none && !submission.user.empty()) {
    env.err << "smtpsctl send: --user with --tls none: a password is never sent without TLS\n";
    return 2;
  }
  if (submission.sender.empty() && looks_like_address(submission.user)) {
    submission.sender = submission.user;
  }
  if (submission.sender.empty()) {
    env.err << "smtpsctl send: give --from ADDRESS (the envelope sender)\n";
    return 2;
  }
  submission.recipients = recipients;
  for (const std::string& address : recipients) {
    if (!looks_like_address(address)) {
      env.err << "smtpsctl send: --to " << address
              << ": not an address (give local@domain, without a name or brackets)\n";
      return 2;
    }
  }
  if (!looks_like_address(submission.sender)) {
    env.err << "smtpsctl send: --from " << submission.sender
            << ": not an address (give local@domain, without a name or brackets)\n";
    return 2;
  }

  MessageHead head;
  std::istringstream body_stream;
  std::unique_ptr<LineReader> reader;
  const std::string date = format_date_now();
  const std::string message_id = new_message_id(domain_of(submission.sender));
  if (*subject_option || *body_option) {
    if (!*body_option) {
      std::ostringstream text;
      text << env.in.rdbuf();
      body = text.str();
    }
    Composition parts{submission.sender, "", recipients, subject, date, message_id};
    auto composed = compose_head(parts, is_ascii(body));
    if (!composed) {
      env.err << "smtpsctl send: " << composed.error() << "\n";
      return 2;
    }
    head = std::move(composed.value());
    body_stream.str(body);
    reader = std::make_unique<LineReader>(body_stream, false);
  } else {
    reader = std::make_unique<LineReader>(env.in, false);
    auto read = read_head(*reader);
    if (!read) {
      env.err << "smtpsctl send: " << read.error() << "\n";
      return 1;
    }
    head = std::move(read.value());
    complete_head(head, submission.sender, "", date, message_id);
  }

  if (!submission.user.empty()) {
    auto password = find_password(password_file, submission, env);
    if (!password) {
      env.err << "smtpsctl send: " << password.error() << "\n";
      return 1;
    }
    submission.password = std::move(password.value());
  }
  auto sent = write_and_submit(submission, head, *reader);
  if (!sent) {
    env.err << "smtpsctl send: " << base::terminal_safe(sent.error().message) << "\n";
    return 1;
  }
  env.out << base::terminal_safe(sent.value()) << "\n";
  return 0;
}

int run_sendmail_command(const std::vector<std::string>& args, const SendEnvironment& env) {
  auto parsed = parse_sendmail_arguments(args);
  if (!parsed) {
    env.err << "sendmail: " << parsed.error() << "\n" << kSendmailUsage;
    return kExUsage;
  }
  const SendmailArguments& arguments = parsed.value();
  if (arguments.help) {
    env.out << kSendmailUsage;
    return 0;
  }
  // On a host running smtpsd with [local_submission]: its socket, no credentials.
  if (auto server_config = local_server_config(arguments, env)) {
    return run_local_sendmail(arguments, *server_config, env);
  }
  if (arguments.speak_smtp) {
    env.err << "sendmail: -bs needs the local submission socket of smtpsd (give --config with "
               "the server's smtpsd.toml, or set SMTPSD_CONFIG)\n";
    return kExUsage;
  }
  std::string config_path = arguments.config_file;
  if (config_path.empty()) config_path = env.getenv("SMTPSCTL_CONFIG").value_or("");
  if (config_path.empty()) config_path = "/etc/smtpsctl.toml";
  auto config = load_sendmail_config(config_path);
  if (!config) {
    env.err << "sendmail: " << config.error() << "\n";
    return kExConfig;
  }
  Submission submission;
  submission.server = parse_server_url(config->server).value();
  submission.user = config->user;
  submission.cafile = config->cafile;
  submission.sender = arguments.sender;
  if (submission.sender.empty()) submission.sender = config->from;
  if (submission.sender.empty() && looks_like_address(config->user)) {
    submission.sender = config->user;
  }
  if (submission.sender.empty()) {
    env.err << "sendmail: no sender: give -f ADDRESS, or set from in " << config_path << "\n";
    return kExUsage;
  }

  LineReader reader(env.in, arguments.dot_ends);
  auto read = read_head(reader);
  if (!read) {
    env.err << "sendmail: " << read.error() << "\n";
    return kExDataErr;
  }
  MessageHead head = std::move(read.value());
  // RFC 5322 §3.6.3: Bcc recipients are not shown to the others; removed with or without -t
  // (as Postfix does), so that no blind copy is ever revealed.
  submission.recipients = take_recipients(head, arguments.recipients, arguments.extract_recipients);
  for (const std::string& address : submission.recipients) {
    if (!looks_like_address(address)) {
      env.err << "sendmail: recipient " << address
              << " is not an address local@domain (a local user name has no meaning on a "
                 "remote server; for cron, set MAILTO)\n";
      return kExUsage;
    }
  }
  if (!looks_like_address(submission.sender)) {
    env.err << "sendmail: sender " << submission.sender << " is not an address local@domain\n";
    return kExUsage;
  }
  if (submission.recipients.empty()) {
    env.err << "sendmail: no recipients (give them as arguments, or -t to read To, Cc and Bcc)\n";
    return kExUsage;
  }
  complete_head(head, submission.sender, arguments.full_name, format_date_now(),
                new_message_id(domain_of(submission.sender)));
  if (!submission.user.empty()) {
    auto password = find_password(config->password_file, submission, env);
    if (!password) {
      env.err << "sendmail: " << password.error() << "\n";
      return kExConfig;
    }
    submission.password = std::move(password.value());
  }
  auto sent = write_and_submit(submission, head, reader);
  if (!sent) {
    env.err << "sendmail: " << base::terminal_safe(sent.error().message) << "\n";
    if (sent.error().bad_input) return kExDataErr;
    return sent.error().temporary ? kExTempFail : kExUnavailable;
  }
  if (arguments.verbose) env.out << base::terminal_safe(sent.value()) << "\n";
  return 0;
}

}  // namespace app
