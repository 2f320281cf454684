// command_line.h — parsing a smtpsctl subcommand's arguments with CLI11, the same way for
// every subcommand that takes its arguments as a vector (alias, user, send, bench).
//
// Invariants: --help prints to out and means exit code 0; any other parse failure prints
// to err and means exit code 2 (never CLI11's own codes).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace app {

// Parses args (without the program and subcommand names) into cli. Nothing when the command
// is to run; else the exit code to stop with, once out or err has said why.
std::optional<int> parse_command_line(CLI::App& cli, const std::vector<std::string>& args,
                                      std::ostream& out, std::ostream& err);

}  // namespace app
