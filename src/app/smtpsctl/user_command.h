// user_command.h — `smtpsctl user ...`: edit the users file (auth/user_store.h).
//
//   smtpsctl user add    --users FILE ADDRESS        new user; asks for the password
//   smtpsctl user add    --users FILE --no-password ADDRESS
//                                                    a mailbox that only receives (no login)
//   smtpsctl user passwd --users FILE ADDRESS        new password for an existing user
//        (both: --scram-iterations N, PBKDF2 rounds of the new SCRAM keys)
//   smtpsctl user del    --users FILE ADDRESS        remove a user
//   smtpsctl user list   --users FILE [ADDRESS]      addresses and aliases (never hashes)
//   smtpsctl user alias add|del --users FILE ADDRESS ALIAS
//   (each with --json: one JSON object on standard output: {"users":[{"address","aliases"}]}
//   for list, {"action","address"[,"alias"]} for an edit; errors stay text on stderr)
//
// The password never comes from the command line (it would show in ps and shell history):
// it is read from the terminal without echo, twice, or as the first line of standard input
// when that is not a terminal. Exit codes: 0 done, 1 error, 2 usage. Each edit holds the
// file's lock (UsersFileLock) from its read to its rename, so edits at once serialise; the
// file is replaced atomically and keeps its mode, owner and group (a new one is 0600;
// UserStore::save); a file that does not parse is never written over (the error names
// file:line). A running smtpsd picks the change up within a second.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "auth/user_store.h"
#include "base/expected.h"

namespace app {

// Returns the new password, or an error to print ("passwords do not match").
using PasswordReader = std::function<base::Expected<std::string, std::string>()>;

// args: what follows "user" on the command line. params: the argon2id cost for new hashes.
int run_user_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                     const PasswordReader& read_password,
                     const auth::Argon2Params& params = auth::default_argon2());

// The real reader: the terminal (no echo, prompts on stderr, asked twice, must match) when
// standard input is a TTY, else the first line of standard input.
base::Expected<std::string, std::string> read_new_password();

}  // namespace app
