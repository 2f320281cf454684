// smtpsctl_main.cpp — the companion tool's command line (DESIGN.md §2: send, probe, bench,
// user, queue). Implemented so far:
//
//   smtpsctl user add|passwd|del|list --users FILE [ADDRESS]      (see app/user_command.h)
//   smtpsctl user alias add|del --users FILE ADDRESS ALIAS
//
// Exit codes: 0 done, 1 error, 2 usage.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "app/user_command.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App cli{"smtpsctl — companion tool of smtpsd"};
  cli.require_subcommand(1);
  auto* user = cli.add_subcommand("user", "Manage the users file");
  // Everything after "user" (its own --help included) goes to run_user_command.
  user->prefix_command();
  user->set_help_flag();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return cli.exit(error) == 0 ? 0 : 2;
  }
  if (*user) {
    return app::run_user_command(user->remaining(), std::cout, std::cerr, app::read_new_password);
  }
  return 2;
}
