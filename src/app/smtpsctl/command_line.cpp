// command_line.cpp — see command_line.h.
#include "app/smtpsctl/command_line.h"

namespace app {

std::optional<int> parse_command_line(CLI::App& cli, const std::vector<std::string>& args,
                                      std::ostream& out, std::ostream& err) {
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    cli.parse(reversed);
  } catch (const CLI::ParseError& error) {
    int code = cli.exit(error, out, err);
    return code == 0 ? 0 : 2;
  }
  return std::nullopt;
}

}  // namespace app
