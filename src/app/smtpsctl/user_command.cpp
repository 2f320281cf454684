// user_command.cpp — the logic of `smtpsctl user` (usage in user_command.h), testable with
// streams and an injected password reader.
//
// Invariants: a password is held only in local strings that are wiped (sodium_memzero)
// before they go out of scope, and it is never printed; `list` prints addresses and
// aliases only. The file is written only after every check passed, in one atomic save,
// under the users file's lock (auth::UsersFileLock) held from the read to the rename, and
// only if the server would parse what is written.
#include "app/smtpsctl/user_command.h"
#include "app/smtpsctl/command_line.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <functional>

#include "app/smtpsctl/terminal.h"
#include "base/json.h"

namespace app {
namespace {

void wipe_secret(std::string& secret) {
  if (!secret.empty()) sodium_memzero(secret.data(), secret.size());
  secret.clear();
}

// Loads the users file; a missing file is an empty store only when allow_missing (add).
base::Expected<auth::UserStore, std::string> load_store(const std::string& path,
                                                        bool allow_missing) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0 && errno == ENOENT) {
    if (allow_missing) return auth::UserStore{};
    return base::unexpected(path + ": no such file");
  }
  return auth::UserStore::load(path);
}

// --- reading a password from the terminal ----------------------------------------------

base::Expected<std::string, std::string> read_line(int fd) {
  return read_secret_line(fd, auth::kMaxPasswordSize);
}

base::Expected<std::string, std::string> prompt_without_echo(const char* prompt) {
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  EchoOff quiet(STDIN_FILENO);
  if (!quiet.active()) return base::unexpected(std::string("cannot read the terminal settings"));
  return read_line(STDIN_FILENO);
}

// --- the commands -----------------------------------------------------------------------

// What an edit prints: text, or with --json {"action":"added","address":"…"[,"alias":"…"]}.
void report(std::ostream& out, bool json, std::string_view action, const std::string& address,
            const std::string& alias, const std::string& text) {
  if (!json) {
    out << text << "\n";
    return;
  }
  std::string line =
      "{\"action\":" + base::json_string(action) + ",\"address\":" + base::json_string(address);
  if (!alias.empty()) line += ",\"alias\":" + base::json_string(alias);
  out << line << "}\n";
}

struct UserArguments {
  std::string users_file;
  std::string address;
  std::string alias;
  bool json = false;         // --json: one JSON object on standard output instead of text
  bool no_password = false;  // add: a receive-only mailbox
  std::uint32_t scram_iterations = auth::kDefaultScramIterations;
};

int user_fail(std::ostream& err, const std::string& message) {
  err << "smtpsctl user: " << message << "\n";
  return 1;
}

// Writes the store, but only what the server will parse: a file smtpsd refuses would leave
// its previous users in service while this command said the change was made.
int save(const auth::UserStore& store, const UserArguments& args, std::ostream& err) {
  if (auto parsed = auth::UserStore::parse(store.serialize(), args.users_file); !parsed) {
    return user_fail(err, "not written, the server could not read it: " + parsed.error());
  }
  auto saved = store.save(args.users_file);
  if (!saved) return user_fail(err, saved.error());
  return 0;
}

// One change of the file: lock, read, change, save. The lock is held from the read to the
// rename, so edits running at once serialise instead of each writing back what it read.
// `change` returns 0 to save, or the exit code to stop with (nothing written).
int edit(const UserArguments& args, bool allow_missing, std::ostream& err,
         const std::function<int(auth::UserStore&)>& change) {
  auto lock = auth::UsersFileLock::acquire(args.users_file);
  if (!lock) return user_fail(err, lock.error());
  auto store = load_store(args.users_file, allow_missing);
  if (!store) return user_fail(err, store.error());
  if (int result = change(store.value()); result != 0) return result;
  return save(store.value(), args, err);
}

// Asks for the password (before the lock: a person may be typing it), then sets it under
// the lock; the password is wiped on every path.
int set_password(const UserArguments& args, bool adding, std::ostream& err,
                 const PasswordReader& read_password, const auth::Argon2Params& params) {
  auto password = read_password();
  if (!password) return user_fail(err, password.error());
  int result = edit(args, /*allow_missing=*/adding, err, [&](auth::UserStore& store) {
    const bool exists = store.find(args.address) != nullptr;
    if (adding && exists) {
      return user_fail(err, "user " + args.address + " already exists in " + args.users_file);
    }
    if (!adding && !exists) {
      return user_fail(err, "no user " + args.address + " in " + args.users_file);
    }
    auto set = store.set_password(args.address, password.value(), params, args.scram_iterations);
    if (!set) return user_fail(err, set.error());
    return 0;
  });
  wipe_secret(password.value());
  return result;
}

// add and passwd look first without the lock, to refuse before asking for a password.
int add_user(const UserArguments& args, std::ostream& out, std::ostream& err,
             const PasswordReader& read_password, const auth::Argon2Params& params) {
  if (auto valid = auth::validate_address(args.address); !valid) {
    return user_fail(err, args.address + ": " + valid.error());
  }
  auto store = load_store(args.users_file, /*allow_missing=*/true);
  if (!store) return user_fail(err, store.error());
  if (store->find(args.address) != nullptr) {
    return user_fail(err, "user " + args.address + " already exists in " + args.users_file +
                              " (use passwd to change the password)");
  }
  if (args.no_password) {
    int result = edit(args, /*allow_missing=*/true, err, [&](auth::UserStore& edited) {
      if (auto added = edited.add_receive_only(args.address); !added) {
        return user_fail(err, added.error() + " in " + args.users_file);
      }
      return 0;
    });
    if (result != 0) return result;
    out << "added " << args.address << " to " << args.users_file
        << " (receives mail; cannot log in until `smtpsctl user passwd`)\n";
    return 0;
  }
  if (int result = set_password(args, /*adding=*/true, err, read_password, params); result != 0) {
    return result;
  }
  report(out, args.json, "added", args.address, "",
         "added " + args.address + " to " + args.users_file);
  return 0;
}

int change_password(const UserArguments& args, std::ostream& out, std::ostream& err,
                    const PasswordReader& read_password, const auth::Argon2Params& params) {
  auto store = load_store(args.users_file, false);
  if (!store) return user_fail(err, store.error());
  const auth::User* user = store->find(args.address);
  if (user == nullptr) return user_fail(err, "no user " + args.address + " in " + args.users_file);
  UserArguments canonical = args;
  canonical.address = user->address;
  if (int result = set_password(canonical, /*adding=*/false, err, read_password, params);
      result != 0) {
    return result;
  }
  report(out, args.json, "password_changed", canonical.address, "",
         "changed the password of " + canonical.address);
  return 0;
}

int delete_user(const UserArguments& args, std::ostream& out, std::ostream& err) {
  int result = edit(args, false, err, [&](auth::UserStore& store) {
    if (!store.remove(args.address)) {
      return user_fail(err, "no user " + args.address + " in " + args.users_file);
    }
    return 0;
  });
  if (result != 0) return result;
  report(out, args.json, "deleted", args.address, "", "deleted " + args.address);
  return 0;
}

int list_users(const UserArguments& args, std::ostream& out, std::ostream& err) {
  auto store = load_store(args.users_file, false);
  if (!store) return user_fail(err, store.error());
  bool found = false;
  std::string json = "{\"users\":[";
  for (const auth::User* user : store->users()) {
    if (!args.address.empty() && !auth::same_address(user->address, args.address)) continue;
    if (args.json) {
      if (found) json += ',';
      json += "{\"address\":" + base::json_string(user->address) + ",\"aliases\":[";
      for (std::size_t i = 0; i < user->aliases.size(); ++i)
        json += (i > 0 ? "," : "") + base::json_string(user->aliases[i]);
      json += "]}";
      found = true;
      continue;
    }
    found = true;
    out << user->address;
    if (!user->can_log_in()) out << " (receive-only)";
    if (!user->aliases.empty()) {
      out << " (aliases:";
      for (const auto& alias : user->aliases)
        out << " " << alias;
      out << ")";
    }
    out << "\n";
  }
  if (!args.address.empty() && !found) {
    return user_fail(err, "no user " + args.address + " in " + args.users_file);
  }
  if (args.json) out << json << "]}\n";
  return 0;
}

int add_user_alias(const UserArguments& args, std::ostream& out, std::ostream& err) {
  int result = edit(args, false, err, [&](auth::UserStore& store) {
    if (auto added = store.add_alias(args.address, args.alias); !added) {
      return user_fail(err, added.error());
    }
    return 0;
  });
  if (result != 0) return result;
  report(out, args.json, "alias_added", args.address, args.alias,
         args.address + " may now send as " + args.alias);
  return 0;
}

int delete_user_alias(const UserArguments& args, std::ostream& out, std::ostream& err) {
  int result = edit(args, false, err, [&](auth::UserStore& store) {
    if (store.find(args.address) == nullptr) {
      return user_fail(err, "no user " + args.address + " in " + args.users_file);
    }
    if (!store.remove_alias(args.address, args.alias)) {
      return user_fail(err, args.alias + " is not an alias of " + args.address);
    }
    return 0;
  });
  if (result != 0) return result;
  report(out, args.json, "alias_deleted", args.address, args.alias,
         args.address + " may no longer send as " + args.alias);
  return 0;
}

}  // namespace

int run_user_command(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err,
                     const PasswordReader& read_password, const auth::Argon2Params& params) {
  CLI::App cli{"Manage the users file (passwords are asked for, never taken as arguments)",
               "smtpsctl user"};
  cli.require_subcommand(1);
  UserArguments args;
  auto users_option = [&](CLI::App* command) {
    command->add_option("--users", args.users_file, "The users file")->required();
    command->add_flag("--json", args.json, "Print JSON (one object) instead of text");
  };
  auto* add = cli.add_subcommand("add", "Add a user; asks for the password");
  auto* passwd = cli.add_subcommand("passwd", "Change a user's password; asks for it");
  auto* del = cli.add_subcommand("del", "Delete a user");
  auto* list = cli.add_subcommand("list", "List users and their aliases");
  for (CLI::App* command : {add, passwd, del}) {
    users_option(command);
    command->add_option("address", args.address, "The user's address")->required();
  }
  for (CLI::App* command : {add, passwd}) {
    command
        ->add_option("--scram-iterations", args.scram_iterations,
                     "PBKDF2 rounds for the new SCRAM-SHA-256 keys: the cost of one offline "
                     "guess, paid by a SCRAM client once per login")
        ->check(CLI::Range(auth::kMinScramIterations, auth::kMaxScramIterations))
        ->capture_default_str();
  }
  add->add_flag("--no-password", args.no_password,
                "A mailbox that receives mail and cannot log in (no password asked)");
  users_option(list);
  list->add_option("address", args.address, "Only this user");
  auto* alias = cli.add_subcommand("alias", "Addresses a user may send as");
  alias->require_subcommand(1);
  auto* alias_add = alias->add_subcommand("add", "Let ADDRESS send as ALIAS");
  auto* alias_del = alias->add_subcommand("del", "Stop ADDRESS sending as ALIAS");
  for (CLI::App* command : {alias_add, alias_del}) {
    users_option(command);
    command->add_option("address", args.address, "The user's address")->required();
    command->add_option("alias", args.alias, "The alias")->required();
  }

  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;

  if (*add) return add_user(args, out, err, read_password, params);
  if (*passwd) return change_password(args, out, err, read_password, params);
  if (*del) return delete_user(args, out, err);
  if (*list) return list_users(args, out, err);
  if (*alias_add) return add_user_alias(args, out, err);
  if (*alias_del) return delete_user_alias(args, out, err);
  err << cli.help();
  return 2;
}

base::Expected<std::string, std::string> read_new_password() {
  if (!::isatty(STDIN_FILENO)) {
    auto line = read_line(STDIN_FILENO);
    if (line && line->empty()) {
      return base::unexpected(std::string("no password on standard input (first line)"));
    }
    return line;
  }
  auto first = prompt_without_echo("New password: ");
  if (!first) return first;
  auto second = prompt_without_echo("Retype new password: ");
  if (!second) {
    wipe_secret(first.value());
    return second;
  }
  bool same = first.value() == second.value();
  wipe_secret(second.value());
  if (!same) {
    wipe_secret(first.value());
    return base::unexpected(std::string("the passwords do not match"));
  }
  if (first->empty()) return base::unexpected(std::string("the password is empty"));
  return first;
}

}  // namespace app
