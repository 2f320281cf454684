// alias_table.h — the aliases file: which recipient addresses are other addresses (RFC 5321
// §3.9.1, what Postfix's virtual_alias_maps and aliases(5) give), and the directory that
// keeps its current snapshot (docs/architecture.md "Addressing"; README "Mailboxes and aliases").
//
// File format (version 1), '\n'-terminated lines; '#' comments and blank lines allowed:
//
//   smtpsd-aliases 1                  the first line that is not a comment or blank
//   <address> <target>[,<target>]...  one alias a line
//
//   <address>  local@domain (an address of ours), or @domain: the domain's catch-all, used
//              only for an address that is neither an alias nor a mailbox
//   <target>   local@domain: a mailbox or another alias of ours, or any remote address
//
// Fields are separated by spaces or tabs; targets by ',' only. Addresses follow the users
// file's syntax (auth::validate_address) and compare ASCII-case-insensitively. Any other line
// is refused with "file:line: why". Writers (`smtpsctl alias`) hold the same flock as the
// users file (UsersFileLock on "<file>.lock") and replace the file atomically, mode 0600
// (auth::replace_file_atomically); the server only reads it (AliasDirectory).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth/user_store.h"
#include "base/expected.h"
#include "base/polling_thread.h"
#include "base/published.h"

namespace auth {

constexpr std::size_t kMaxAliasTargets = 1000;  // per line

struct Alias {
  std::string address;  // "local@domain" or "@domain" (catch-all), as written
  std::vector<std::string> targets;
  std::size_t line = 0;  // in the file it was read from (0: not read from a file)
};

// "@domain" (a catch-all key) or local@domain; the error says why not.
base::Expected<base::Ok, std::string> validate_alias_address(std::string_view address);

class AliasTable {
 public:
  AliasTable() = default;

  static base::Expected<AliasTable, std::string> load(const std::string& path);
  // Errors read "<path_for_errors>:<line>: <why>".
  static base::Expected<AliasTable, std::string> parse(std::string_view text,
                                                       const std::string& path_for_errors);
  std::string serialize() const;
  base::Expected<base::Ok, std::string> save(const std::string& path) const;

  // Exact key lookup, case-insensitive ("@example.org" finds the catch-all); one hash
  // lookup (the resolver makes a few per RCPT).
  const Alias* find(std::string_view address) const;
  const std::vector<Alias>& aliases() const { return aliases_; }
  std::size_t size() const { return aliases_.size(); }

  // Adds targets to address (created if new); a target already there is an error.
  base::Expected<base::Ok, std::string> add(std::string_view address,
                                            const std::vector<std::string>& targets);
  // Removes one target (the alias goes when it has none left), or the whole alias when
  // target is empty. false: no such alias or target.
  bool remove(std::string_view address, std::string_view target);

 private:
  void rebuild_index();

  std::vector<Alias> aliases_;                          // in file order
  std::unordered_map<std::string, std::size_t> index_;  // lower-case address → aliases_
};

// The snapshot of the aliases file in service; the same threading as UserDirectory: I/O
// threads call current() (base::Published: no lock), a watcher thread re-reads a changed file and
// swaps the snapshot; a broken file keeps the previous snapshot (logged as
// aliases_reload_failed with file and line); a missing file is an empty table.
class AliasDirectory {
 public:
  explicit AliasDirectory(std::string path);
  ~AliasDirectory();
  AliasDirectory(const AliasDirectory&) = delete;
  AliasDirectory& operator=(const AliasDirectory&) = delete;

  std::shared_ptr<const AliasTable> current() const { return snapshot_.load(); }
  bool refresh();
  void start_watching(std::chrono::milliseconds poll_interval);
  std::string last_error() const;
  std::string path() const;
  // A reload named another file: loaded now; an invalid one changes nothing.
  base::Expected<base::Ok, std::string> switch_to(std::string path);

 private:
  bool reload_locked(const UsersFileSource::Signature& signature);

  const std::unique_ptr<UsersFileSource> source_;
  base::Published<AliasTable> snapshot_;
  mutable std::mutex reload_mutex_;
  std::string path_;
  UsersFileSource::Signature seen_;
  std::string last_error_;
  base::PollingThread watcher_;  // last: it stops before the members it uses go
};

}  // namespace auth
