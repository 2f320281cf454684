// user_store.h — the users file: who may authenticate, with which secrets, and which
// sender addresses each user owns (docs/architecture.md "Security rules"; docs/users-file.md).
//
// Invariants: no plaintext or reversible secret is ever stored or kept in memory beyond
// the call that receives it. A user has an argon2id hash (libsodium crypto_pwhash_str,
// for PLAIN and LOGIN) and SCRAM-SHA-256 keys (RFC 5802 §3: salt, iteration count,
// StoredKey = H(ClientKey), ServerKey), never the SaltedPassword. Addresses are compared
// ASCII-case-insensitively, local part included: the store holds one user per mailbox.
// save() replaces the file atomically (temp file O_EXCL 0600, fsync, rename, fsync of the
// directory), so a reader never sees half a file and a crash leaves the old or the new one.
// Writers (`smtpsctl user`) hold UsersFileLock across read, change and save, so two edits
// at once both land; the server only reads and never takes the lock.
//
// File format (version 1), '\n'-terminated lines; '#' comments and blank lines allowed:
//
//   smtpsd-users 1                 the first line that is not a comment or blank
//   <address> <argon2id> <scram> <aliases>
//
//   <address>   the login name and own sender address, e.g. alice@example.org
//               (1..254 bytes, one '@' with a non-empty local part and domain, no space,
//               control character or ',')
//   <argon2id>  crypto_pwhash_str output: $argon2id$v=19$m=<KiB>,t=<ops>,p=1$<salt>$<hash>
//   <scram>     scram-sha-256:<iterations>:<salt>:<StoredKey>:<ServerKey>, base64 (RFC 4648
//               §4, padded); iterations >= 4096 (RFC 7677 §4); keys are 32 bytes
//   <aliases>   "-" or a comma-separated list of further addresses the user may send as
//
// A receive-only mailbox (`smtpsctl user add --no-password`) has "-" in both secret fields:
// it receives mail and can never authenticate (UserStore::find_login() does not see it).
// Version 1 files without such entries read as before.
//
// Fields are separated by spaces or tabs. Any other line is refused, and the error names
// the file and the line ("users.txt:7: ...").
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/expected.h"
#include "base/polling_thread.h"
#include "base/published.h"

namespace auth {

// argon2id cost. default_argon2() is what `smtpsctl user add` uses; test_argon2() is the
// libsodium minimum, for unit tests only.
struct Argon2Params {
  unsigned long long opslimit;
  std::size_t memlimit;
};
Argon2Params default_argon2();
Argon2Params test_argon2();

// RFC 7677 §4: "the hash iteration-count announced by a server SHOULD be at least 4096".
// New keys get kDefaultScramIterations unless `smtpsctl user add|passwd --scram-iterations`
// says otherwise; keys already in the file keep the count stored with them. The count is
// what one offline guess against a stolen file costs, and what a SCRAM client pays once
// per login (the server only compares stored keys). Figures: bench/password_cost_bench.cpp
// and README "Users and authentication".
constexpr std::uint32_t kMinScramIterations = 4096;
constexpr std::uint32_t kDefaultScramIterations = 100000;
// Above this a login would take the client seconds; refused by `smtpsctl user`.
constexpr std::uint32_t kMaxScramIterations = 10000000;
constexpr std::size_t kScramSaltSize = 16;
constexpr std::size_t kMaxPasswordSize = 1024;

// RFC 5802 §3: what the server keeps. SaltedPassword and ClientKey are never stored.
struct ScramCredentials {
  std::string salt;  // raw bytes
  std::uint32_t iterations = kDefaultScramIterations;
  std::array<unsigned char, 32> stored_key{};  // H(HMAC(SaltedPassword, "Client Key"))
  std::array<unsigned char, 32> server_key{};  // HMAC(SaltedPassword, "Server Key")
};

// RFC 5802 §3 with SHA-256 (RFC 7677): SaltedPassword = Hi(password, salt, iterations).
// XXX: the password is used as given (UTF-8 bytes), without SASLprep (RFC 4013); SASLprep
// is the identity for printable ASCII, which is what every client here sends.
ScramCredentials derive_scram_credentials(std::string_view password, std::string_view salt,
                                          std::uint32_t iterations);

struct User {
  std::string address;
  std::string password_hash;  // crypto_pwhash_str (argon2id) encoded string; "" receive-only
  ScramCredentials scram;     // empty salt when receive-only
  std::vector<std::string> aliases;
  // A mailbox without a password (receive-only): never authenticates.
  bool can_log_in() const { return !password_hash.empty(); }
};

// Checks the syntax the users file allows for an address or alias (see above).
base::Expected<base::Ok, std::string> validate_address(std::string_view address);
// ASCII case-insensitive comparison of two addresses (local part and domain).
bool same_address(std::string_view a, std::string_view b);

// The users file in memory: one snapshot, immutable once published by UserDirectory (the
// mutators are for `smtpsctl user`). find() is one hash lookup, keyed by the address
// compared ASCII-case-insensitively.
class UserStore {
 public:
  UserStore() = default;

  // A missing file is an error here; UserDirectory treats it as an empty store.
  static base::Expected<UserStore, std::string> load(const std::string& path);
  // The parser itself (load() reads the file and calls it; the fuzz target feeds it bytes).
  // Errors read "<path_for_errors>:<line>: <why>".
  static base::Expected<UserStore, std::string> parse(std::string_view text,
                                                      const std::string& path_for_errors);
  std::string serialize() const;
  // Atomic and durable replacement. A new file gets mode 0600; a replaced one keeps its
  // mode without any permission for others, and, when run as root, its owner and group, so
  // the unprivileged server can still read it after `sudo smtpsctl user ...`.
  base::Expected<base::Ok, std::string> save(const std::string& path) const;

  // Every entry: the mailboxes (with or without a password).
  const User* find(std::string_view address) const;
  // Only entries with a password: what AUTH may use. A receive-only mailbox is, to every
  // mechanism, an unknown user (same work, same 535).
  const User* find_login(std::string_view address) const;
  std::vector<const User*> users() const;  // in file order
  std::size_t size() const { return users_.size(); }
  // The SCRAM iteration count most users have (the default when there are none): what an
  // unknown user is told, so that the count does not tell who exists.
  std::uint32_t typical_scram_iterations() const { return typical_iterations_; }

  // Creates the user if it does not exist; replaces the argon2id hash and the SCRAM keys
  // (with a fresh salt, derived with scram_iterations) otherwise.
  base::Expected<base::Ok, std::string> set_password(
      std::string_view address, std::string_view password, const Argon2Params& params,
      std::uint32_t scram_iterations = kDefaultScramIterations);
  // Creates a receive-only mailbox (no password); an error when the address exists.
  base::Expected<base::Ok, std::string> add_receive_only(std::string_view address);
  bool remove(std::string_view address);
  base::Expected<base::Ok, std::string> add_alias(std::string_view address, std::string_view alias);
  bool remove_alias(std::string_view address, std::string_view alias);
  // The authenticated user may use `sender` as MAIL FROM: its own address or an alias.
  bool may_send_as(std::string_view user, std::string_view sender) const;

 private:
  // Hash and equality of addresses as same_address() compares them; transparent, so that a
  // lookup by string_view allocates nothing.
  struct AddressHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view address) const;
  };
  struct AddressEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return same_address(a, b); }
  };

  User* find_mutable(std::string_view address);
  void add_user(User user);
  void rebuild_index();
  void update_typical_iterations();

  std::vector<User> users_;                                                        // in file order
  std::unordered_map<std::string, std::size_t, AddressHash, AddressEqual> index_;  // → users_
  std::uint32_t typical_iterations_ = kDefaultScramIterations;
};

// The atomic, durable replacement UserStore::save() makes (also used for the aliases file):
// O_EXCL temp file beside path, mode 0600 for a new file or the old one's mode minus any
// permission for others (and, as root, its owner and group; a new file made by root is owned
// like its directory, see the .cpp), write, fsync, rename, fsync of the directory.
base::Expected<base::Ok, std::string> replace_file_atomically(const std::string& path,
                                                              std::string_view text);

// An exclusive flock(2) on "<users file>.lock" beside the users file, held for its
// lifetime. The lock file, not the users file, because save() renames a new inode over the
// users file: a lock on the old inode would not exclude the next writer. Created 0600 (with
// the users file's owner when run as root); it stays, empty, after the edit.
class UsersFileLock {
 public:
  // Blocks until the lock is ours.
  static base::Expected<UsersFileLock, std::string> acquire(const std::string& users_path);
  UsersFileLock(UsersFileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UsersFileLock& operator=(UsersFileLock&&) = delete;
  UsersFileLock(const UsersFileLock&) = delete;
  UsersFileLock& operator=(const UsersFileLock&) = delete;
  ~UsersFileLock();  // releases the lock (close)
  // The same lock for another file edited the same way (the aliases file).
  static base::Expected<UsersFileLock, std::string> acquire_for(const std::string& path) {
    return acquire(path);
  }

 private:
  explicit UsersFileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Constant-time check of a password (crypto_pwhash_str_verify). For user == nullptr it
// verifies against a dummy hash made once with default_argon2(), so an unknown user costs
// the same work as a wrong password, and returns false. Slow by design: call it from a
// worker pool, never from an I/O thread.
bool verify_password(const User* user, std::string_view password);

// What UserDirectory needs of the file system: stat(2) and read(2) of the users file. The
// real one is the default; a test can count calls or see which thread makes them.
class UsersFileSource {
 public:
  struct Signature {
    bool exists = false;
    std::uint64_t inode = 0;
    std::uint64_t device = 0;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Signature&) const = default;
  };
  virtual ~UsersFileSource() = default;
  virtual Signature signature(const std::string& path) = 0;
  virtual base::Expected<std::string, std::string> read(const std::string& path) = 0;
};
std::unique_ptr<UsersFileSource> make_file_system_source();

// The snapshot of a users file in service, and the one owner that re-reads the file.
//
// Threads: current() is what I/O threads call: one atomic load of a counter while nothing new
// was published (base::Published), no lock held by a reader, no file access. The file is
// looked at only by refresh() — from the watcher thread of start_watching(), or from whoever
// calls it (tests, the daemon at start) — and by switch_to(); those serialise on one mutex
// readers never take. A changed file (inode, size or mtime) is parsed into a new snapshot
// that replaces the old one atomically; holders of the old one keep it unchanged. An invalid
// file leaves the old snapshot in service, is logged at error level as soon as the watcher
// sees it (users_reload_failed, with file and line), kept in last_error() and shown by
// status() (the daemon exports it as metrics). A missing file is an empty store.
class UserDirectory {
 public:
  // Loads the file now, on the calling thread.
  explicit UserDirectory(std::string path);
  UserDirectory(std::string path, std::unique_ptr<UsersFileSource> source);
  ~UserDirectory();  // stops the watcher
  UserDirectory(const UserDirectory&) = delete;
  UserDirectory& operator=(const UserDirectory&) = delete;

  std::shared_ptr<const UserStore> current() const;

  // Looks at the file once and reloads it if it changed; true when a new snapshot (or an
  // empty one for a deleted file) went into service.
  bool refresh();
  // A thread that calls refresh() every poll_interval until destruction (once only).
  void start_watching(std::chrono::milliseconds poll_interval);

  std::string last_error() const;
  std::string path() const;

  // What /metrics shows: whether the file as it is now was taken (false while a broken file
  // is refused and the previous snapshot serves), when the snapshot in service was loaded
  // (Unix seconds), and how many users it holds.
  struct Status {
    bool valid = true;
    std::int64_t loaded_unix = 0;
    std::size_t users = 0;
  };
  Status status() const;
  // A configuration reload named another users file: it is loaded now (missing: an empty
  // store) and used from here on. An invalid file changes nothing and gives its error.
  base::Expected<base::Ok, std::string> switch_to(std::string path);

 private:
  bool reload_locked(const UsersFileSource::Signature& signature);
  // Puts snapshot in service; returns it (held by the directory until the next publish).
  const UserStore& publish(std::shared_ptr<const UserStore> snapshot);

  const std::unique_ptr<UsersFileSource> source_;
  base::Published<UserStore> snapshot_;

  mutable std::mutex reload_mutex_;  // guards what follows (never taken by current())
  std::string path_;                 // a reload may switch files
  UsersFileSource::Signature seen_;  // the file last looked at (loaded or refused)
  std::string last_error_;
  std::int64_t loaded_unix_ = 0;  // when the snapshot in service was published

  base::PollingThread watcher_;  // last: it stops before the members it uses go
};

}  // namespace auth
