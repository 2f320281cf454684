// main.cpp (smtpsctl) — the companion tool's command line (docs/architecture.md "Layers": send,
// probe, bench, user, queue). Implemented so far:
//
//   smtpsctl send --server URL ... / smtpsctl sendmail ...        (see app/send_command.h)
//   sendmail ...  (argv[0] named sendmail, e.g. a symlink: the sendmail-compatible mode)
//   smtpsctl user add|passwd|del|list --users FILE [ADDRESS]      (see app/user_command.h)
//   smtpsctl user alias add|del --users FILE ADDRESS ALIAS         (send-as addresses)
//   smtpsctl alias add|del|list --aliases FILE ...                (see app/alias_command.h)
//   smtpsctl dkim keygen DOMAIN [--selector S] [--algorithm A] [--directory DIR]
//   smtpsctl dkim check DOMAIN [--config FILE]
//                                                                 (see app/dkim_command.h)
//   smtpsctl dane tlsa [--config FILE] [--host NAME] [--port N]   (see app/dane_command.h)
//   smtpsctl log summary [FILE ...] [--day D | --since T --until T] [--top N]  (log_command.h)
//   smtpsctl dns check DOMAIN [--config FILE] [--host NAME] [--timeout S]   (dns_command.h)
//   smtpsctl mta-sts policy DOMAIN --mode M [--mx HOST ...] [--max-age N] [--rua URI]
//   smtpsctl mta-sts check DOMAIN [--config FILE] [--cache DIR] [--timeout S]  (mta_sts_command.h)
//   smtpsctl auth lockouts [--config FILE | --socket PATH]        the running server's lockouts
//   smtpsctl auth unlock [--config FILE | --socket PATH] IP_OR_USER  (also a sending hold)
//   smtpsctl auth held [--config FILE | --socket PATH]            users held by the sending limits
//   smtpsctl queue list [--to-domain D] [--from A] [--user U] [--json]  the running server's queue
//   smtpsctl queue show ID [--body] [--json]
//   smtpsctl queue flush [ID | SELECTION] [--json]
//   smtpsctl queue delete|hold|release|requeue (ID | SELECTION) [--json]
//     SELECTION: --all, or --to-domain DOMAIN, --from ADDRESS and/or --user NAME
//     (app/smtpsd/control_commands.h); release --user also lifts the user's sending hold
//   mailq [options of queue list]  (argv[0] named mailq, e.g. a symlink: smtpsctl queue list)
//   smtpsctl tls memory [--config FILE | --socket PATH]           the no-downgrade memory
//   smtpsctl tls forget [--config FILE | --socket PATH] DOMAIN
//   smtpsctl tls policy [--config FILE | --socket PATH] DOMAIN    what decides its TLS, and why
//   smtpsctl tls except [--config FILE | --socket PATH] DOMAIN [--hours H]   (0: end it)
//   smtpsctl tls exceptions [--config FILE | --socket PATH]
//   smtpsctl cert status|renew [--config FILE | --socket PATH]   the [acme] certificates
//   smtpsctl cert revoke [--key ecdsa|rsa] [--reason N] [--config FILE | --socket PATH]
//   smtpsctl cert rollover [--key ecdsa|rsa] [--force] [--config FILE | --socket PATH]
// The commands that talk to the running server read --config, else $SMTPSD_CONFIG, else
// /etc/smtpsd/smtpsd.toml (app/common/config_path.h), unless --socket names the socket.
// A user who may not use the owner-only control socket lists the queue through the
// server's read-only [server] mailq_socket, which shows that user's own messages only.
//
// Exit codes: 0 done, 1 error, 2 usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "app/common/config_path.h"
#include "app/common/control_socket.h"
#include "app/smtpsctl/alias_command.h"
#include "app/smtpsctl/bench_command.h"
#include "app/smtpsctl/dane_command.h"
#include "app/smtpsctl/dkim_command.h"
#include "app/smtpsctl/dns_command.h"
#include "app/smtpsctl/log_command.h"
#include "app/smtpsctl/mta_sts_command.h"
#include "app/smtpsctl/probe_command.h"
#include "app/smtpsctl/send_command.h"
#include "app/smtpsctl/user_command.h"
#include "config/config.h"

namespace {

// Whether argv[0] names program (its last path component).
bool is_program(std::string_view name, std::string_view program) {
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  return name == program;
}

// The options of the queue commands (app/smtpsd/control_commands.h has the request words).
struct QueueOptions {
  std::string id;
  bool all = false;
  std::string to_domain;
  std::string from;
  std::string user;
  bool json = false;
  bool body = false;
};

// "queue VERB [ID] [all] [to-domain=D] [from=A] [user=U] [body] [json]", or a usage error.
base::Expected<std::string, std::string> queue_request(const std::string& verb,
                                                       const QueueOptions& options) {
  auto has_space = [](const std::string& text) {
    return text.find_first_of(" \t\r\n") != std::string::npos;
  };
  if (has_space(options.to_domain) || has_space(options.from) || has_space(options.id) ||
      has_space(options.user)) {
    return base::unexpected("an id, domain, address or user name holds no white space");
  }
  const bool selection =
      options.all || !options.to_domain.empty() || !options.from.empty() || !options.user.empty();
  if (!options.id.empty() && selection) {
    return base::unexpected(
        "give a queue id or a selection (--all, --to-domain, --from, --user), not both");
  }
  if (options.all &&
      (!options.to_domain.empty() || !options.from.empty() || !options.user.empty())) {
    return base::unexpected("--all selects every message: give it alone");
  }
  if (options.id.empty() && !selection && verb != "list" && verb != "flush") {
    return base::unexpected("queue " + verb +
                            " needs a queue id, --all, --to-domain, --from or --user");
  }
  std::string request = "queue " + verb;
  if (!options.id.empty()) request += " " + options.id;
  if (options.all) request += " all";
  if (!options.to_domain.empty()) request += " to-domain=" + options.to_domain;
  if (!options.from.empty()) request += " from=" + options.from;
  if (!options.user.empty()) request += " user=" + options.user;
  if (options.body) request += " body";
  if (options.json) request += " json";
  return request;
}

// The control socket's answer to request, or nothing once stderr says why not (the socket
// is unreachable, or the server answered "error: ...").
std::optional<std::string> ask_server(const std::string& socket_path, const std::string& request) {
  auto reply = app::control_request(socket_path, request);
  if (!reply) {
    std::cerr << "smtpsctl: " << reply.error() << "\n";
    return std::nullopt;
  }
  if (reply.value().rfind("error: ", 0) == 0) {
    std::cerr << "smtpsctl: " << reply.value().substr(7);
    return std::nullopt;
  }
  return std::move(reply.value());
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // Invoked as "sendmail" (a symlink, e.g. /usr/sbin/sendmail): local programs such as cron
  // and PHP's mail() call it with sendmail's flags.
  if (argc > 0) {
    std::string_view name = argv[0];
    if (auto slash = name.rfind('/'); slash != std::string_view::npos)
      name.remove_prefix(slash + 1);
    if (name == "sendmail") {
      return app::run_sendmail_command(std::vector<std::string>(argv + 1, argv + argc),
                                       app::process_send_environment());
    }
  }
  // Invoked as "mailq" (a symlink): the same as "smtpsctl queue list", with its options.
  std::vector<char*> mailq_argv;
  if (argc > 0 && is_program(argv[0], "mailq")) {
    static char queue_word[] = "queue";
    static char list_word[] = "list";
    mailq_argv = {argv[0], queue_word, list_word};
    mailq_argv.insert(mailq_argv.end(), argv + 1, argv + argc);
    argc = static_cast<int>(mailq_argv.size());
    argv = mailq_argv.data();
  }
  CLI::App cli{"smtpsctl — companion tool of smtpsd"};
  cli.set_version_flag("-V,--version", "smtpsctl " SMTPSD_VERSION);
  cli.require_subcommand(1);
  // bench parses its own options (app/bench_command.h); listed here for --help only.
  cli.add_subcommand("bench", "Load generator: messages/s, TLS handshakes/s, latency");
  if (argc > 1 && std::string_view(argv[1]) == "bench") {
    return app::run_bench_command(std::vector<std::string>(argv + 2, argv + argc), std::cout,
                                  std::cerr);
  }
  auto* user = cli.add_subcommand("user", "Manage the users file");
  // Everything after "user" (its own --help included) goes to run_user_command.
  user->prefix_command();
  user->set_help_flag();
  auto* alias = cli.add_subcommand("alias", "Manage the aliases file (recipient addresses)");
  alias->prefix_command();
  alias->set_help_flag();
  auto* dkim = cli.add_subcommand("dkim", "DKIM signing keys (keygen, check)");
  dkim->prefix_command();
  dkim->set_help_flag();
  auto* dane = cli.add_subcommand("dane", "DANE TLSA records of this server (tlsa)");
  dane->prefix_command();
  dane->set_help_flag();
  auto* dns = cli.add_subcommand("dns", "A mail domain's DNS records, checked (check)");
  dns->prefix_command();
  dns->set_help_flag();
  auto* log = cli.add_subcommand("log", "A summary of smtpsd's log (summary)");
  log->prefix_command();
  log->set_help_flag();
  auto* mta_sts = cli.add_subcommand("mta-sts", "MTA-STS policies (policy, check)");
  mta_sts->prefix_command();
  mta_sts->set_help_flag();
  auto* send = cli.add_subcommand("send", "Send one message over TLS (like msmtp or swaks)");
  send->prefix_command();
  send->set_help_flag();
  auto* sendmail = cli.add_subcommand("sendmail", "The sendmail-compatible mode (-t, -i, -f, -F)");
  sendmail->prefix_command();
  sendmail->set_help_flag();
  // smtpsctl probe HOST[:PORT] (app/probe_command.h) parses its own arguments.
  cli.add_subcommand("probe", "TLS report of a mail server (exit 0 pass, 1 warn, 2 fail)")
      ->prefix_command();
  if (argc > 1 && std::string_view(argv[1]) == "probe") {
    return app::run_probe_command({argv + 2, argv + argc}, std::cout, std::cerr);
  }
  auto* auth_command = cli.add_subcommand("auth", "Lockouts of the running server's AUTH");
  auth_command->require_subcommand(1);
  std::string config_file;
  std::string socket_path;
  std::string target;
  // Commands that talk to the running server: its configuration file or its control socket.
  auto add_server_options = [&config_file, &socket_path](CLI::App* command) {
    auto* config_option =
        command->add_option("-c,--config", config_file, "The server's configuration file");
    auto* socket_option =
        command->add_option("--socket", socket_path, "The server's control socket");
    config_option->excludes(socket_option);
  };
  for (auto* command :
       {auth_command->add_subcommand("lockouts", "List the current lockouts"),
        auth_command->add_subcommand(
            "unlock", "Lift the lockouts of an address or user, and a user's sending hold"),
        auth_command->add_subcommand(
            "held", "List the users whose mail the sending limits hold in the queue")}) {
    add_server_options(command);
  }
  auth_command->get_subcommand("unlock")
      ->add_option("target", target, "Client IP address or user address")
      ->required();
  auto* queue_command = cli.add_subcommand("queue", "The running server's mail queue");
  queue_command->require_subcommand(1);
  QueueOptions queue_options;
  for (auto [name, help] :
       {std::tuple{"list", "List the queued messages and their pending recipients"},
        std::tuple{"show", "Show one message and its recipients (--body: its content)"},
        std::tuple{"flush", "Try deferred messages now (all of them, or an id or selection)"},
        std::tuple{"delete", "Delete messages without a bounce"},
        std::tuple{"hold", "Keep messages from being delivered"},
        std::tuple{"release", "Let held messages be delivered"},
        std::tuple{"requeue", "Forget the resolved next hops and try messages now"}}) {
    auto* command = queue_command->add_subcommand(name, help);
    add_server_options(command);
    const std::string verb = name;
    command->add_flag("--json", queue_options.json, "Print JSON");
    if (verb == "show") {
      command->add_option("id", queue_options.id, "Queue id (from smtpsctl queue list)")
          ->required();
      command->add_flag("--body", queue_options.body, "Print the whole stored message");
      continue;
    }
    if (verb != "list") {
      command->add_option("id", queue_options.id, "Queue id (from smtpsctl queue list)");
      command->add_flag("--all", queue_options.all, "Every message in the queue");
    }
    command->add_option("--to-domain", queue_options.to_domain,
                        "Messages with a pending recipient at this domain");
    command->add_option("--from", queue_options.from,
                        "Messages from this envelope sender (<> for bounces)");
    command->add_option("--user", queue_options.user,
                        verb == "release"
                            ? "Messages sent by this authenticated user; also lifts the user's "
                              "hold by the sending limits"
                            : "Messages sent by this authenticated user");
  }
  unsigned except_hours = 24;
  auto* tls_command =
      cli.add_subcommand("tls", "Delivery TLS: the memory (no downgrade) and the policies");
  tls_command->require_subcommand(1);
  for (auto [name, help, takes_domain] :
       {std::tuple{"memory", "List the best TLS each domain was reached with", false},
        std::tuple{"forget", "Forget a domain's TLS (after its servers changed)", true},
        std::tuple{"policy", "What decides the TLS of mail to a domain (DANE, table, memory)",
                   true},
        std::tuple{"except",
                   "Send a domain's mail with opportunistic TLS for a while (its policy is "
                   "broken); --hours 0 ends it",
                   true},
        std::tuple{"exceptions", "List the domains excepted from their TLS policy", false}}) {
    auto* command = tls_command->add_subcommand(name, help);
    add_server_options(command);
    if (takes_domain) command->add_option("domain", target, "Domain name")->required();
    if (std::string_view(name) == "except") {
      command->add_option("--hours", except_hours, "How long (default 24, at most 720)")
          ->check(CLI::Range(0, 720));
    }
  }
  auto* cert_command = cli.add_subcommand("cert", "The server's ACME certificates ([acme])");
  cert_command->require_subcommand(1);
  for (auto [name, help] :
       {std::tuple{"status",
                   "Each certificate: issuer, expiry, days left, next renewal, last "
                   "result"},
        std::tuple{"renew", "Renew the certificates now (the key is kept)"}}) {
    add_server_options(cert_command->add_subcommand(name, help));
  }
  // --key of revoke and rollover (one of them is parsed): the key type, "all" for both.
  std::string cert_key = "all";
  auto add_key_option = [&cert_key](CLI::App* command) {
    command->add_option("--key", cert_key, "ecdsa or rsa (default: both)")
        ->check(CLI::IsMember({"ecdsa", "rsa"}));
  };
  int revoke_reason = 0;
  {
    auto* command = cert_command->add_subcommand(
        "revoke",
        "Revoke the certificate(s) at the CA, then get new ones with NEW keys (a published TLSA "
        "3 1 1 record must change)");
    add_server_options(command);
    add_key_option(command);
    command
        ->add_option("--reason", revoke_reason,
                     "RFC 5280 reason: 0 unspecified (default), 1 keyCompromise, 3 "
                     "affiliationChanged, 4 superseded, 5 cessationOfOperation")
        ->check(CLI::IsMember({0, 1, 3, 4, 5}));
  }
  bool rollover_force = false;
  {
    auto* command = cert_command->add_subcommand(
        "rollover",
        "Change the key(s) without breaking DANE: stage a next key, print its TLSA record, and "
        "switch once the DNS has shown it for twice its TTL");
    add_server_options(command);
    add_key_option(command);
    command->add_flag("--force", rollover_force,
                      "Switch now, without waiting for the DNS (a published TLSA record of the "
                      "old key stops matching)");
  }
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return cli.exit(error) == 0 ? 0 : 2;
  }
  if (*send) return app::run_send_command(send->remaining(), app::process_send_environment());
  if (*sendmail) {
    return app::run_sendmail_command(sendmail->remaining(), app::process_send_environment());
  }
  if (*user) {
    return app::run_user_command(user->remaining(), std::cout, std::cerr, app::read_new_password);
  }
  if (*alias) return app::run_alias_command(alias->remaining(), std::cout, std::cerr);
  if (*dane) return app::run_dane_command(dane->remaining(), std::cout, std::cerr);
  if (*dns) return app::run_dns_command(dns->remaining(), std::cout, std::cerr);
  if (*log) {
    return app::run_log_command(log->remaining(), std::cin, std::cout, std::cerr,
                                std::time(nullptr));
  }
  if (*dkim) {
    return app::run_dkim_command(dkim->remaining(), std::cout, std::cerr, std::time(nullptr));
  }
  if (*mta_sts) {
    return app::run_mta_sts_command(mta_sts->remaining(), std::cout, std::cerr, std::time(nullptr));
  }
  std::string queue_verb;
  std::string queue_text;  // the request, checked before anything is read
  if (*queue_command) {
    queue_verb = queue_command->get_subcommands().front()->get_name();
    auto request = queue_request(queue_verb, queue_options);
    if (!request) {
      std::cerr << "smtpsctl: " << request.error() << "\n";
      return 2;
    }
    queue_text = request.value();
  }
  std::string mailq_socket;  // the read-only listing socket, if the server has one
  if (*auth_command || *queue_command || *tls_command || *cert_command) {
    if (socket_path.empty()) {
      auto path = app::existing_config_path(
          app::choose_config_path(config_file, std::getenv("SMTPSD_CONFIG")));
      if (!path) {
        std::cerr << "smtpsctl: " << path.error() << "\n";
        return 2;
      }
      auto loaded = config::load_file(path.value(), config::Reading::kClient);
      if (!loaded) {
        std::cerr << "smtpsctl: " << loaded.error().to_string() << "\n";
        return 2;
      }
      socket_path = loaded.value().control_socket;
      mailq_socket = loaded.value().mailq_socket;
    }
  }
  if (*queue_command) {
    const std::string& verb = queue_verb;
    // Who may not use the owner-only control socket lists through the listing socket.
    std::string path = socket_path;
    if (verb == "list" && !mailq_socket.empty() && ::access(socket_path.c_str(), W_OK) != 0) {
      path = mailq_socket;
    }
    auto reply = ask_server(path, queue_text);
    if (!reply) return 1;
    if (verb == "list" && !queue_options.json) {
      if (reply.value().empty()) {
        std::cout << "queue is empty\n";
        return 0;
      }
      std::cout << "ID STATE AGE_SECONDS SIZE ATTEMPTS SENDER\n";
    }
    std::cout << reply.value();
    return 0;
  }
  if (*tls_command) {
    std::string verb = tls_command->get_subcommands().front()->get_name();
    std::string request = "tls " + verb;
    if (!target.empty()) request += " " + target;
    if (verb == "except") request += " " + std::to_string(except_hours * 3600);
    auto reply = ask_server(socket_path, request);
    if (!reply) return 1;
    if (request == "tls memory" && reply.value().empty()) {
      std::cout << "no domain remembered\n";
      return 0;
    }
    std::cout << reply.value();
    return 0;
  }
  if (*cert_command) {
    std::string request = "cert " + cert_command->get_subcommands().front()->get_name();
    if (cert_command->got_subcommand("revoke"))
      request += " " + cert_key + " " + std::to_string(revoke_reason);
    if (cert_command->got_subcommand("rollover"))
      request += " " + cert_key + (rollover_force ? " force" : " wait");
    auto reply = ask_server(socket_path, request);
    if (!reply) return 1;
    std::cout << reply.value();
    return 0;
  }
  if (auth_command->got_subcommand("held")) {
    auto reply = ask_server(socket_path, "auth held");
    if (!reply) return 1;
    if (reply.value().empty()) {
      std::cout << "no user held\n";
    } else {
      std::cout << "USER RECIPIENTS BOUND WINDOW SINCE_UNIX\n" << reply.value();
    }
    return 0;
  }
  if (*auth_command) {
    bool listing = auth_command->got_subcommand("lockouts");
    auto reply = ask_server(socket_path, listing ? "auth lockouts" : "auth unlock " + target);
    if (!reply) return 1;
    if (listing && reply.value().empty()) {
      std::cout << "no lockouts\n";
    } else {
      if (listing) std::cout << "ADDRESS USER FAILURES SECONDS_LEFT\n";
      std::cout << reply.value();
    }
    return 0;
  }
  return 2;
}
