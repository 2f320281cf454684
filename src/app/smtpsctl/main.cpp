// main.cpp (smtpsctl) — the companion tool's command line (docs/architecture.md "Layers": send,
// probe, bench, user, queue). Implemented so far:
//
//   smtpsctl send --server URL ... / smtpsctl sendmail ...        (see app/send_command.h)
//   sendmail ...  (argv[0] named sendmail, e.g. a symlink: the sendmail-compatible mode)
//   smtpsctl user add|passwd|del|list --users FILE [ADDRESS]      (see app/user_command.h)
//   smtpsctl user alias add|del --users FILE ADDRESS ALIAS         (send-as addresses)
//   smtpsctl alias add|del|list --aliases FILE ...                (see app/alias_command.h)
//   smtpsctl auth lockouts (--config FILE | --socket PATH)        the running server's lockouts
//   smtpsctl auth unlock (--config FILE | --socket PATH) IP_OR_USER
//   smtpsctl queue list|flush (--config FILE | --socket PATH)      the running server's queue
//   smtpsctl queue show|delete|hold|release (--config FILE | --socket PATH) ID
//   smtpsctl tls memory (--config FILE | --socket PATH)           the no-downgrade memory
//   smtpsctl tls forget (--config FILE | --socket PATH) DOMAIN
//
// Exit codes: 0 done, 1 error, 2 usage.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "app/common/control_socket.h"
#include "app/smtpsctl/alias_command.h"
#include "app/smtpsctl/bench_command.h"
#include "app/smtpsctl/probe_command.h"
#include "app/smtpsctl/send_command.h"
#include "app/smtpsctl/user_command.h"
#include "config/config.h"

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
  CLI::App cli{"smtpsctl — companion tool of smtpsd"};
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
        auth_command->add_subcommand("unlock", "Lift the lockouts of an address or user")}) {
    add_server_options(command);
  }
  auth_command->get_subcommand("unlock")
      ->add_option("target", target, "Client IP address or user address")
      ->required();
  auto* queue_command = cli.add_subcommand("queue", "The running server's mail queue");
  queue_command->require_subcommand(1);
  std::string id;
  for (auto [name, help, takes_id] :
       {std::tuple{"list", "List the queued messages", false},
        std::tuple{"show", "Show one message and its recipients", true},
        std::tuple{"flush", "Try every deferred message now", false},
        std::tuple{"delete", "Delete a message without a bounce", true},
        std::tuple{"hold", "Keep a message from being delivered", true},
        std::tuple{"release", "Let a held message be delivered", true}}) {
    auto* command = queue_command->add_subcommand(name, help);
    add_server_options(command);
    if (takes_id) command->add_option("id", id, "Queue id (from smtpsctl queue list)")->required();
  }
  auto* tls_command = cli.add_subcommand("tls", "The delivery TLS memory (no downgrade)");
  tls_command->require_subcommand(1);
  for (auto [name, help, takes_domain] :
       {std::tuple{"memory", "List the best TLS each domain was reached with", false},
        std::tuple{"forget", "Forget a domain's TLS (after its servers changed)", true}}) {
    auto* command = tls_command->add_subcommand(name, help);
    add_server_options(command);
    if (takes_domain) command->add_option("domain", target, "Domain name")->required();
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
  if (*auth_command || *queue_command || *tls_command) {
    if (socket_path.empty()) {
      if (config_file.empty()) {
        std::cerr << "smtpsctl: give --config FILE or --socket PATH\n";
        return 2;
      }
      auto loaded = config::load_file(config_file);
      if (!loaded) {
        std::cerr << "smtpsctl: " << loaded.error().to_string() << "\n";
        return 2;
      }
      socket_path = loaded.value().control_socket;
    }
  }
  if (*queue_command || *tls_command) {
    CLI::App* command = *queue_command ? queue_command : tls_command;
    std::string verb = command->get_subcommands().front()->get_name();
    std::string request = std::string(*queue_command ? "queue " : "tls ") + verb;
    if (!id.empty()) request += " " + id;
    if (!target.empty()) request += " " + target;
    auto reply = app::control_request(socket_path, request);
    if (!reply) {
      std::cerr << "smtpsctl: " << reply.error() << "\n";
      return 1;
    }
    if (reply.value().rfind("error: ", 0) == 0) {
      std::cerr << "smtpsctl: " << reply.value().substr(7);
      return 1;
    }
    if (request == "queue list") {
      if (reply.value().empty()) {
        std::cout << "queue is empty\n";
        return 0;
      }
      std::cout << "ID STATE AGE_SECONDS SIZE ATTEMPTS SENDER\n";
    } else if (request == "tls memory" && reply.value().empty()) {
      std::cout << "no domain remembered\n";
      return 0;
    }
    std::cout << reply.value();
    return 0;
  }
  if (*auth_command) {
    bool listing = auth_command->got_subcommand("lockouts");
    auto reply =
        app::control_request(socket_path, listing ? "auth lockouts" : "auth unlock " + target);
    if (!reply) {
      std::cerr << "smtpsctl: " << reply.error() << "\n";
      return 1;
    }
    if (reply.value().rfind("error: ", 0) == 0) {
      std::cerr << "smtpsctl: " << reply.value().substr(7);
      return 1;
    }
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
