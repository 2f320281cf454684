// alias_command.cpp — the logic of `smtpsctl alias` (usage in alias_command.h), testable with
// streams.
//
// Invariants: the file is written only after every check passed, in one atomic save, under
// the file's lock held from the read to the rename, and only if the server would parse
// what is written. Addresses are printed terminal-safe (they may come from a hand-edited
// file).
#include "app/smtpsctl/alias_command.h"
#include "app/smtpsctl/command_line.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <functional>

#include "auth/alias_table.h"
#include "auth/recipient_resolver.h"
#include "auth/user_store.h"
#include "base/ascii.h"
#include "base/json.h"
#include "base/terminal_text.h"

namespace app {
namespace {

struct AliasArguments {
  std::string aliases_file;
  std::string users_file;
  std::string address;
  std::vector<std::string> targets;
  std::string target;
  bool json = false;
};

int alias_fail(std::ostream& err, const std::string& message) {
  err << "smtpsctl alias: " << base::terminal_safe(message) << "\n";
  return 1;
}

bool missing(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) != 0 && errno == ENOENT;
}

base::Expected<auth::AliasTable, std::string> load_table(const std::string& path,
                                                         bool allow_missing) {
  if (missing(path)) {
    if (allow_missing) return auth::AliasTable{};
    return base::unexpected(path + ": no such file");
  }
  return auth::AliasTable::load(path);
}

// What the loop check knows without the server's configuration: the aliased domains (and
// the users file's) are ours; mailboxes come from --users, or are assumed.
base::Expected<base::Ok, std::string> check_loops(const auth::AliasTable& unchanged,
                                                  const auth::AliasTable& table,
                                                  const AliasArguments& args) {
  auth::AddressingPolicy policy;
  auto add_domain = [&](std::string_view address) {
    std::string domain = base::address_domain(address);
    if (!domain.empty() && !policy.is_local_domain(domain)) policy.domains.push_back(domain);
  };
  for (const auth::Alias& alias : table.aliases())
    add_domain(alias.address);
  for (const auth::Alias& alias : unchanged.aliases())
    add_domain(alias.address);
  auth::UserStore users;
  if (!args.users_file.empty()) {
    if (!missing(args.users_file)) {
      auto loaded = auth::UserStore::load(args.users_file);
      if (!loaded) return base::unexpected(loaded.error());
      users = std::move(loaded.value());
    }
    for (const auth::User* user : users.users())
      add_domain(user->address);
  } else {
    policy.assume_mailboxes = true;
  }
  // Only what this edit brings: a loop already in a hand-edited file is `smtpsd check`'s to
  // report, and must not block an unrelated edit.
  std::vector<std::string> before;
  for (const auth::AliasProblem& problem :
       auth::alias_problems(policy, &users, unchanged, args.aliases_file)) {
    if (problem.fatal) before.push_back(problem.text);
  }
  for (const auth::AliasProblem& problem :
       auth::alias_problems(policy, &users, table, args.aliases_file)) {
    if (problem.fatal && std::find(before.begin(), before.end(), problem.text) == before.end()) {
      return base::unexpected(problem.text);
    }
  }
  return base::Ok{};
}

int edit(const AliasArguments& args, bool allow_missing, std::ostream& err,
         const std::function<int(auth::AliasTable&)>& change) {
  auto lock = auth::UsersFileLock::acquire_for(args.aliases_file);
  if (!lock) return alias_fail(err, lock.error());
  auto table = load_table(args.aliases_file, allow_missing);
  if (!table) return alias_fail(err, table.error());
  if (int result = change(table.value()); result != 0) return result;
  if (auto parsed = auth::AliasTable::parse(table->serialize(), args.aliases_file); !parsed) {
    return alias_fail(err, "not written, the server could not read it: " + parsed.error());
  }
  if (auto saved = table->save(args.aliases_file); !saved) return alias_fail(err, saved.error());
  return 0;
}

int add_alias(const AliasArguments& args, std::ostream& out, std::ostream& err) {
  int result = edit(args, /*allow_missing=*/true, err, [&](auth::AliasTable& table) {
    const auth::AliasTable unchanged = table;
    if (auto added = table.add(args.address, args.targets); !added) {
      return alias_fail(err, args.address + ": " + added.error());
    }
    if (auto checked = check_loops(unchanged, table, args); !checked) {
      return alias_fail(err, "not written: " + checked.error());
    }
    return 0;
  });
  if (result != 0) return result;
  out << base::terminal_safe(args.address) << " now goes to";
  for (const std::string& target : args.targets)
    out << " " << base::terminal_safe(target);
  out << "\n";
  return 0;
}

int delete_alias(const AliasArguments& args, std::ostream& out, std::ostream& err) {
  int result = edit(args, /*allow_missing=*/false, err, [&](auth::AliasTable& table) {
    if (!table.remove(args.address, args.target)) {
      return alias_fail(err, args.target.empty()
                                 ? "no alias " + args.address + " in " + args.aliases_file
                                 : args.target + " is not a target of " + args.address);
    }
    return 0;
  });
  if (result != 0) return result;
  out << "deleted "
      << base::terminal_safe(args.target.empty() ? args.address
                                                 : args.address + " → " + args.target)
      << "\n";
  return 0;
}

int list_aliases(const AliasArguments& args, std::ostream& out, std::ostream& err) {
  auto table = load_table(args.aliases_file, /*allow_missing=*/true);
  if (!table) return alias_fail(err, table.error());
  std::string json = "[";
  bool found = false;
  for (const auth::Alias& alias : table->aliases()) {
    if (!args.address.empty() && !auth::same_address(alias.address, args.address)) continue;
    if (args.json) {
      if (found) json += ",";
      json += "{\"address\":";
      base::append_json_string(json, alias.address);
      json += ",\"catch_all\":";
      json += alias.address.starts_with('@') ? "true" : "false";
      json += ",\"targets\":[";
      for (std::size_t i = 0; i < alias.targets.size(); ++i) {
        if (i > 0) json += ",";
        base::append_json_string(json, alias.targets[i]);
      }
      json += "]}";
    } else {
      out << base::terminal_safe(alias.address) << " →";
      for (const std::string& target : alias.targets)
        out << " " << base::terminal_safe(target);
      out << "\n";
    }
    found = true;
  }
  if (args.json) out << json << "]\n";
  if (!args.address.empty() && !found) {
    return alias_fail(err, "no alias " + args.address + " in " + args.aliases_file);
  }
  return 0;
}

}  // namespace

int run_alias_command(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  CLI::App cli{"Manage the aliases file: addresses that deliver to other addresses",
               "smtpsctl alias"};
  cli.require_subcommand(1);
  AliasArguments args;
  auto* add = cli.add_subcommand("add", "Deliver mail for ADDRESS (or @domain) to TARGET...");
  auto* del = cli.add_subcommand("del", "Remove one TARGET of ADDRESS, or the whole alias");
  auto* list = cli.add_subcommand("list", "List the aliases");
  for (CLI::App* command : {add, del, list}) {
    command->add_option("--aliases", args.aliases_file, "The aliases file")->required();
  }
  add->add_option("--users", args.users_file,
                  "The users file, so the loop check knows the mailboxes");
  add->add_option("address", args.address, "local@domain, or @domain for a catch-all")->required();
  add->add_option("targets", args.targets, "Mailboxes, other aliases or remote addresses")
      ->required();
  del->add_option("address", args.address, "The alias")->required();
  del->add_option("target", args.target, "Only this target");
  list->add_flag("--json", args.json, "One JSON array of {address, catch_all, targets}");
  list->add_option("address", args.address, "Only this alias");
  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;
  if (*add) return add_alias(args, out, err);
  if (*del) return delete_alias(args, out, err);
  if (*list) return list_aliases(args, out, err);
  err << cli.help();
  return 2;
}

}  // namespace app
