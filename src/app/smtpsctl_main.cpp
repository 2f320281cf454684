// smtpsctl_main.cpp — the companion tool's command line (DESIGN.md §2: send, probe, bench,
// user, queue). Implemented so far:
//
//   smtpsctl user add|passwd|del|list --users FILE [ADDRESS]      (see app/user_command.h)
//   smtpsctl user alias add|del --users FILE ADDRESS ALIAS
//   smtpsctl auth lockouts (--config FILE | --socket PATH)        the running server's lockouts
//   smtpsctl auth unlock (--config FILE | --socket PATH) IP_OR_USER
//
// Exit codes: 0 done, 1 error, 2 usage.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "app/control_socket.h"
#include "app/user_command.h"
#include "config/config.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App cli{"smtpsctl — companion tool of smtpsd"};
  cli.require_subcommand(1);
  auto* user = cli.add_subcommand("user", "Manage the users file");
  // Everything after "user" (its own --help included) goes to run_user_command.
  user->prefix_command();
  user->set_help_flag();
  auto* auth_command = cli.add_subcommand("auth", "Lockouts of the running server's AUTH");
  auth_command->require_subcommand(1);
  std::string config_file;
  std::string socket_path;
  std::string target;
  for (auto* command :
       {auth_command->add_subcommand("lockouts", "List the current lockouts"),
        auth_command->add_subcommand("unlock", "Lift the lockouts of an address or user")}) {
    auto* config_option =
        command->add_option("-c,--config", config_file, "The server's configuration file");
    auto* socket_option =
        command->add_option("--socket", socket_path, "The server's control socket");
    config_option->excludes(socket_option);
  }
  auth_command->get_subcommand("unlock")
      ->add_option("target", target, "Client IP address or user address")
      ->required();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return cli.exit(error) == 0 ? 0 : 2;
  }
  if (*user) {
    return app::run_user_command(user->remaining(), std::cout, std::cerr, app::read_new_password);
  }
  if (*auth_command) {
    if (socket_path.empty()) {
      if (config_file.empty()) {
        std::cerr << "smtpsctl auth: give --config FILE or --socket PATH\n";
        return 2;
      }
      auto loaded = config::load_file(config_file);
      if (!loaded) {
        std::cerr << "smtpsctl: " << loaded.error().to_string() << "\n";
        return 2;
      }
      socket_path = loaded.value().control_socket;
    }
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
