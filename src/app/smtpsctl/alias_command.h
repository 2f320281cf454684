// alias_command.h — `smtpsctl alias ...`: edit the aliases file (auth/alias_table.h), the
// recipients side of addressing (README "Mailboxes and aliases"; `smtpsctl user alias` is the
// send-as side).
//
//   smtpsctl alias add  --aliases FILE [--users FILE] ADDRESS TARGET...
//   smtpsctl alias del  --aliases FILE ADDRESS [TARGET]    one target, or the whole alias
//   smtpsctl alias list --aliases FILE [--json] [ADDRESS]
//
// ADDRESS is local@domain or @domain (the domain's catch-all). add refuses, with nothing
// written, a target that is not an address, a duplicate, and an alias table that would loop
// or fan out past 100 addresses (auth::alias_problems; with --users the mailboxes of that
// file are known, else every address of an aliased domain that is no alias counts as a
// mailbox). Each edit holds the file's lock (<file>.lock) from its read to its atomic rename;
// a new file is mode 0600. Exit codes: 0 done, 1 error, 2 usage. A running smtpsd picks the
// change up within a second.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace app {

int run_alias_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace app
