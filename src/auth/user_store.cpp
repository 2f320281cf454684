// user_store.cpp — parsing, writing and querying the users file (format: user_store.h and
// docs/users-file.md), argon2id verification, and the UserDirectory that owns the file.
//
// Invariants: parse() accepts only what serialize() writes plus comments, blank lines and
// runs of spaces/tabs between fields; every refusal names file and line. Secrets handed
// in (passwords) are wiped from our temporaries after hashing. save() is atomic and
// durable like queue/spool.cpp: O_EXCL temp file 0600 in the same directory, write, fsync,
// close (a failed close fails the save), rename, fsync of the directory. Edits serialise on
// UsersFileLock; save() itself does not lock (the caller holds the lock across its read).
#include "auth/user_store.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "auth/crypto_primitives.h"
#include "auth/line_file.h"
#include "base/ascii.h"
#include "base/clock.h"
#include "obs/log.h"

namespace auth {
namespace {

constexpr std::string_view kVersionLine = "smtpsd-users 1";
constexpr std::string_view kScramPrefix = "scram-sha-256:";
constexpr std::size_t kMaxAddressSize = 254;  // RFC 5321 §4.5.3.1.3 path limit minus "<>"
constexpr std::size_t kMaxFileSize = 64 * 1024 * 1024;

std::string errno_text(int error_number) {
  char buffer[256];
  return strerror_r(error_number, buffer, sizeof buffer);
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// crypto_pwhash_str's alphabet: "$argon2id$v=19$m=65536,t=2,p=1$<b64 salt>$<b64 hash>".
base::Expected<base::Ok, std::string> validate_argon2_hash(std::string_view hash) {
  if (!hash.starts_with("$argon2id$")) {
    return base::unexpected(std::string("password hash is not an argon2id hash"));
  }
  if (hash.size() >= crypto_pwhash_STRBYTES) {
    return base::unexpected(std::string("password hash is too long"));
  }
  for (char c : hash) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '$' || c == '=' || c == ',' || c == '+' || c == '/';
    if (!ok) return base::unexpected(std::string("password hash has an invalid character"));
  }
  return base::Ok{};
}

base::Expected<ScramCredentials, std::string> parse_scram(std::string_view field) {
  auto bad = [](std::string_view why) {
    return base::unexpected("SCRAM keys: " + std::string(why));
  };
  if (!field.starts_with(kScramPrefix)) return bad("expected scram-sha-256:...");
  auto parts = split(field.substr(kScramPrefix.size()), ':');
  if (parts.size() != 4) return bad("expected 4 ':'-separated values");
  ScramCredentials scram;
  auto [end, error] =
      std::from_chars(parts[0].data(), parts[0].data() + parts[0].size(), scram.iterations);
  if (error != std::errc() || end != parts[0].data() + parts[0].size() || parts[0].empty()) {
    return bad("iteration count is not a number");
  }
  if (scram.iterations < kMinScramIterations) return bad("iteration count below 4096");
  auto salt = base64_decode(parts[1]);
  if (!salt || salt->empty()) return bad("salt is not base64");
  scram.salt = std::move(*salt);
  for (auto [text, key] :
       {std::pair{parts[2], &scram.stored_key}, std::pair{parts[3], &scram.server_key}}) {
    auto decoded = base64_decode(text);
    if (!decoded || decoded->size() != key->size()) return bad("key is not 32 bytes of base64");
    std::memcpy(key->data(), decoded->data(), key->size());
  }
  return scram;
}

std::string serialize_scram(const ScramCredentials& scram) {
  std::string out(kScramPrefix);
  out += std::to_string(scram.iterations);
  out += ':';
  out += base64_encode(scram.salt);
  out += ':';
  out += base64_encode(as_view(scram.stored_key));
  out += ':';
  out += base64_encode(as_view(scram.server_key));
  return out;
}

std::string parent_directory(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The dummy hash for unknown users: made once, same cost as default_argon2().
const std::string& dummy_hash() {
  static const std::string hash = [] {
    ensure_sodium();
    unsigned char random_password[32];
    randombytes_buf(random_password, sizeof random_password);
    Argon2Params params = default_argon2();
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(out, reinterpret_cast<const char*>(random_password),
                              sizeof random_password, params.opslimit, params.memlimit,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
      std::abort();  // out of memory at start: nothing sensible to do
    }
    return std::string(out);
  }();
  return hash;
}

}  // namespace

Argon2Params default_argon2() {
  // libsodium's INTERACTIVE preset for argon2id: t=2 passes over m=64 MiB, one lane.
  // Measured here: see the issue note (about 0.1 s per verification on this machine).
  return Argon2Params{crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
                      crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE};
}

Argon2Params test_argon2() {
  return Argon2Params{crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN};
}

ScramCredentials derive_scram_credentials(std::string_view password, std::string_view salt,
                                          std::uint32_t iterations) {
  // RFC 5802 §3:
  //   SaltedPassword  := Hi(Normalize(password), salt, i)
  //   ClientKey       := HMAC(SaltedPassword, "Client Key")
  //   StoredKey       := H(ClientKey)
  //   ServerKey       := HMAC(SaltedPassword, "Server Key")
  Digest salted = pbkdf2_sha256(password, salt, iterations);
  Digest client_key = hmac_sha256(as_view(salted), "Client Key");
  ScramCredentials scram;
  scram.salt = std::string(salt);
  scram.iterations = iterations;
  scram.stored_key = sha256(as_view(client_key));
  scram.server_key = hmac_sha256(as_view(salted), "Server Key");
  sodium_memzero(salted.data(), salted.size());
  sodium_memzero(client_key.data(), client_key.size());
  return scram;
}

base::Expected<base::Ok, std::string> validate_address(std::string_view address) {
  if (address.empty()) return base::unexpected(std::string("address is empty"));
  if (address.size() > kMaxAddressSize) {
    return base::unexpected(std::string("address is longer than 254 bytes"));
  }
  for (char ch : address) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7F || c == ',') {
      return base::unexpected(std::string("address contains a space, control character or ','"));
    }
  }
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) {
    return base::unexpected(std::string("address must be local-part@domain"));
  }
  if (address.find('@') != at) {
    return base::unexpected(std::string("address has more than one '@'"));
  }
  return base::Ok{};
}

bool same_address(std::string_view a, std::string_view b) {
  return base::equals_ignoring_case(a, b);
}

// --- UserStore --------------------------------------------------------------------------

base::Expected<UserStore, std::string> UserStore::load(const std::string& path) {
  auto text = read_bounded_file(path, kMaxFileSize);
  if (!text) return base::unexpected(text.error());
  return parse(text.value(), path);
}

base::Expected<UserStore, std::string> UserStore::parse(std::string_view text,
                                                        const std::string& path_for_errors) {
  UserStore store;
  constexpr LineFileFormat kFormat{"smtpsd-users", "1", "users file", "user"};
  auto read = read_line_file(
      text, path_for_errors, kFormat,
      [&](std::size_t,
          const std::vector<std::string_view>& fields) -> base::Expected<base::Ok, std::string> {
        auto fail = [](std::string why) { return base::unexpected(std::move(why)); };
        if (fields.size() != 4) {
          return fail("expected 4 fields: address argon2id-hash scram-keys aliases");
        }
        User user;
        if (auto valid = validate_address(fields[0]); !valid) return fail(valid.error());
        user.address = std::string(fields[0]);
        if (store.find(user.address) != nullptr) return fail("duplicate user " + user.address);
        if (fields[1] == "-" || fields[2] == "-") {
          // A receive-only mailbox: both secrets absent, never one without the other.
          if (fields[1] != fields[2]) {
            return fail("a receive-only mailbox has \"-\" in both secret fields");
          }
        } else {
          if (auto valid = validate_argon2_hash(fields[1]); !valid) return fail(valid.error());
          user.password_hash = std::string(fields[1]);
          auto scram = parse_scram(fields[2]);
          if (!scram) return fail(scram.error());
          user.scram = std::move(scram.value());
        }
        if (fields[3] != "-") {
          for (std::string_view alias : split(fields[3], ',')) {
            if (auto valid = validate_address(alias); !valid)
              return fail("alias: " + valid.error());
            bool duplicate = same_address(alias, user.address);
            for (const auto& existing : user.aliases)
              duplicate = duplicate || same_address(existing, alias);
            if (duplicate) return fail("duplicate alias " + std::string(alias));
            user.aliases.emplace_back(alias);
          }
        }
        store.add_user(std::move(user));
        return base::Ok{};
      });
  if (!read) return base::unexpected(read.error());
  store.update_typical_iterations();
  return store;
}

std::string UserStore::serialize() const {
  std::string out;
  out += "# smtpsd users file (docs/users-file.md). Edit with `smtpsctl user`.\n";
  out += kVersionLine;
  out += '\n';
  for (const User& user : users_) {
    out += user.address;
    out += ' ';
    if (user.can_log_in()) {
      out += user.password_hash;
      out += ' ';
      out += serialize_scram(user.scram);
    } else {
      out += "- -";
    }
    out += ' ';
    if (user.aliases.empty()) {
      out += '-';
    } else {
      for (std::size_t i = 0; i < user.aliases.size(); ++i) {
        if (i > 0) out += ',';
        out += user.aliases[i];
      }
    }
    out += '\n';
  }
  return out;
}

base::Expected<base::Ok, std::string> UserStore::save(const std::string& path) const {
  return replace_file_atomically(path, serialize());
}

base::Expected<base::Ok, std::string> replace_file_atomically(const std::string& path,
                                                              std::string_view text) {
  ensure_sodium();
  unsigned char random[8];
  randombytes_buf(random, sizeof random);
  std::string temp_path =
      path + ".tmp." + std::to_string(::getpid()) + "." +
      base64_encode({reinterpret_cast<char*>(random), sizeof random}).substr(0, 8);
  std::replace(temp_path.end() - 8, temp_path.end(), '/', '_');
  std::replace(temp_path.end() - 8, temp_path.end(), '+', '-');
  auto fail = [&](std::string_view what, const std::string& name, int error_number) {
    return base::unexpected(std::string(what) + " " + name + ": " + errno_text(error_number));
  };

  int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail("create", temp_path, errno);
  auto abandon = [&](std::string_view what, int error_number) {
    if (fd >= 0) ::close(fd);
    ::unlink(temp_path.c_str());
    return fail(what, temp_path, error_number);
  };
  // The new file takes the place of the old one for the server too: same mode (e.g. 0640
  // for a file root owns and the server's group reads), never a permission for others (the
  // file holds password hashes), and, run as root, the same owner and group. A first file
  // is 0600. The umask may have taken bits away; fchmod says what we promise, whatever it
  // says.
  //
  // A first file made by root (`sudo smtpsctl alias add` before the server ever wrote one)
  // is owned like its directory, so the server's account can read it after the privilege
  // drop: the directory's owner when that is not root (the data directory is the server's),
  // else root with the directory's group and mode 0640 when that group is another
  // (/etc/smtpsd as root:smtpsd 0750); else root's own 0600.
  struct stat previous {};
  const bool replacing = ::stat(path.c_str(), &previous) == 0;
  mode_t mode = replacing ? (previous.st_mode & 0660) : 0600;
  if (::geteuid() == 0) {
    struct stat directory {};
    uid_t owner = previous.st_uid;
    gid_t group = previous.st_gid;
    bool change = replacing;
    if (!replacing && ::stat(parent_directory(path).c_str(), &directory) == 0) {
      if (directory.st_uid != 0) {
        owner = directory.st_uid;
        group = directory.st_gid;
        change = true;
      } else if (directory.st_gid != 0) {
        owner = 0;
        group = directory.st_gid;
        mode = 0640;
        change = true;
      }
    }
    if (change && ::fchown(fd, owner, group) != 0) return abandon("chown", errno);
  }
  if (::fchmod(fd, mode) != 0) return abandon("chmod", errno);
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t written = ::write(fd, data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      return abandon("write", errno);
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  if (::fsync(fd) != 0) return abandon("fsync", errno);
  int closed = ::close(fd);
  int close_error = errno;
  fd = -1;
  if (closed != 0 && close_error != EINTR) return abandon("close", close_error);
  if (::rename(temp_path.c_str(), path.c_str()) != 0) return abandon("rename", errno);

  std::string directory = parent_directory(path);
  int directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory_fd < 0) return fail("open", directory, errno);
  int synced = ::fsync(directory_fd);
  int sync_error = errno;
  ::close(directory_fd);
  if (synced != 0) return fail("fsync", directory, sync_error);
  return base::Ok{};
}

std::size_t UserStore::AddressHash::operator()(std::string_view address) const {
  // FNV-1a over the lower-cased bytes: equal under same_address() means equal hashes. The
  // keys come from the users file (the administrator's), so flooding needs no defence here.
  std::uint64_t hash = 14695981039346656037ull;
  for (char c : address) {
    hash ^= static_cast<unsigned char>(base::ascii_lower(c));
    hash *= 1099511628211ull;
  }
  return static_cast<std::size_t>(hash);
}

const User* UserStore::find(std::string_view address) const {
  auto it = index_.find(address);
  return it == index_.end() ? nullptr : &users_[it->second];
}

const User* UserStore::find_login(std::string_view address) const {
  const User* user = find(address);
  return user != nullptr && user->can_log_in() ? user : nullptr;
}

base::Expected<base::Ok, std::string> UserStore::add_receive_only(std::string_view address) {
  if (auto valid = validate_address(address); !valid) return valid;
  if (find(address) != nullptr) {
    return base::unexpected("user " + std::string(address) + " already exists");
  }
  add_user(User{std::string(address), {}, {}, {}});
  update_typical_iterations();
  return base::Ok{};
}

void UserStore::add_user(User user) {
  index_.emplace(user.address, users_.size());
  users_.push_back(std::move(user));
}

void UserStore::rebuild_index() {
  index_.clear();
  for (std::size_t i = 0; i < users_.size(); ++i)
    index_.emplace(users_[i].address, i);
  update_typical_iterations();
}

void UserStore::update_typical_iterations() {
  // The most common count (the larger one on a tie), counted without allocating per user.
  std::vector<std::uint32_t> counts;
  counts.reserve(users_.size());
  for (const User& user : users_) {
    if (user.can_log_in()) counts.push_back(user.scram.iterations);
  }
  std::sort(counts.begin(), counts.end());
  typical_iterations_ = kDefaultScramIterations;
  std::size_t best = 0;
  for (std::size_t start = 0; start < counts.size();) {
    std::size_t end = start;
    while (end < counts.size() && counts[end] == counts[start])
      ++end;
    if (end - start >= best) {
      best = end - start;
      typical_iterations_ = counts[start];
    }
    start = end;
  }
}

User* UserStore::find_mutable(std::string_view address) {
  return const_cast<User*>(std::as_const(*this).find(address));
}

std::vector<const User*> UserStore::users() const {
  std::vector<const User*> out;
  out.reserve(users_.size());
  for (const User& user : users_)
    out.push_back(&user);
  return out;
}

base::Expected<base::Ok, std::string> UserStore::set_password(std::string_view address,
                                                              std::string_view password,
                                                              const Argon2Params& params,
                                                              std::uint32_t scram_iterations) {
  ensure_sodium();
  if (scram_iterations < kMinScramIterations || scram_iterations > kMaxScramIterations) {
    return base::unexpected("the SCRAM iteration count must be between " +
                            std::to_string(kMinScramIterations) + " and " +
                            std::to_string(kMaxScramIterations));
  }
  if (auto valid = validate_address(address); !valid) return valid;
  if (password.empty()) return base::unexpected(std::string("the password is empty"));
  if (password.size() > kMaxPasswordSize) {
    return base::unexpected(std::string("the password is longer than 1024 bytes"));
  }
  // RFC 4616 §2: PLAIN carries the password between NULs, so it can never contain one.
  if (password.find('\0') != std::string_view::npos) {
    return base::unexpected(std::string("the password contains a NUL byte"));
  }
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(hash, password.data(), password.size(), params.opslimit,
                            params.memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return base::unexpected(std::string("argon2id hashing failed (out of memory?)"));
  }
  std::string salt(kScramSaltSize, '\0');
  randombytes_buf(salt.data(), salt.size());
  ScramCredentials scram = derive_scram_credentials(password, salt, scram_iterations);

  User* user = find_mutable(address);
  if (user == nullptr) {
    add_user(User{std::string(address), {}, {}, {}});
    user = &users_.back();
  }
  user->password_hash = hash;
  user->scram = std::move(scram);
  update_typical_iterations();
  return base::Ok{};
}

bool UserStore::remove(std::string_view address) {
  auto it = std::find_if(users_.begin(), users_.end(),
                         [&](const User& user) { return same_address(user.address, address); });
  if (it == users_.end()) return false;
  users_.erase(it);
  rebuild_index();  // the positions after it moved
  return true;
}

base::Expected<base::Ok, std::string> UserStore::add_alias(std::string_view address,
                                                           std::string_view alias) {
  User* user = find_mutable(address);
  if (user == nullptr) return base::unexpected("no such user: " + std::string(address));
  if (auto valid = validate_address(alias); !valid) return valid;
  if (same_address(user->address, alias)) {
    return base::unexpected(std::string("an alias cannot be the user's own address"));
  }
  for (const auto& existing : user->aliases) {
    if (same_address(existing, alias)) {
      return base::unexpected(std::string(alias) + " is already an alias of " + user->address);
    }
  }
  user->aliases.emplace_back(alias);
  return base::Ok{};
}

bool UserStore::remove_alias(std::string_view address, std::string_view alias) {
  User* user = find_mutable(address);
  if (user == nullptr) return false;
  auto it =
      std::find_if(user->aliases.begin(), user->aliases.end(),
                   [&](const std::string& existing) { return same_address(existing, alias); });
  if (it == user->aliases.end()) return false;
  user->aliases.erase(it);
  return true;
}

bool UserStore::may_send_as(std::string_view user_address, std::string_view sender) const {
  const User* user = find(user_address);
  if (user == nullptr) return false;
  // The store holds one user per address compared case-insensitively (find()), so
  // "Alice@x" is alice's mailbox and no one else's: the same comparison applies here.
  if (same_address(user->address, sender)) return true;
  return std::any_of(user->aliases.begin(), user->aliases.end(),
                     [&](const std::string& alias) { return same_address(alias, sender); });
}

base::Expected<UsersFileLock, std::string> UsersFileLock::acquire(const std::string& users_path) {
  const std::string lock_path = users_path + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return base::unexpected("lock " + lock_path + ": " + errno_text(errno));
  struct stat users {};
  struct stat lock {};
  if (::geteuid() == 0 && ::stat(users_path.c_str(), &users) == 0 && ::fstat(fd, &lock) == 0 &&
      (lock.st_uid != users.st_uid || lock.st_gid != users.st_gid)) {
    // So that the server's own account can edit too; failing that changes nothing here.
    [[maybe_unused]] int ignored = ::fchown(fd, users.st_uid, users.st_gid);
  }
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int saved = errno;
    ::close(fd);
    return base::unexpected("lock " + lock_path + ": " + errno_text(saved));
  }
  return UsersFileLock(fd);
}

UsersFileLock::~UsersFileLock() {
  if (fd_ >= 0) ::close(fd_);
}

bool verify_password(const User* user, std::string_view password) {
  ensure_sodium();
  const std::string& hash = user != nullptr ? user->password_hash : dummy_hash();
  bool ok = crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
  return ok && user != nullptr;
}

// --- UserDirectory ----------------------------------------------------------------------

namespace {

class FileSystemSource final : public UsersFileSource {
 public:
  Signature signature(const std::string& path) override {
    Signature signature;
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) return signature;
    signature.exists = true;
    signature.inode = status.st_ino;
    signature.device = status.st_dev;
    signature.size = status.st_size;
    signature.mtime_ns =
        static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1000000000 + status.st_mtim.tv_nsec;
    return signature;
  }
  base::Expected<std::string, std::string> read(const std::string& path) override {
    return read_bounded_file(path, kMaxFileSize);
  }
};

void log_loaded(const std::string& path, const UserStore& store) {
  obs::Log("users_loaded").kv("file", path).kv("users", static_cast<std::uint64_t>(store.size()));
}

}  // namespace

std::unique_ptr<UsersFileSource> make_file_system_source() {
  return std::make_unique<FileSystemSource>();
}

UserDirectory::UserDirectory(std::string path)
    : UserDirectory(std::move(path), make_file_system_source()) {}

UserDirectory::UserDirectory(std::string path, std::unique_ptr<UsersFileSource> source)
    : source_(std::move(source)),
      snapshot_(std::make_shared<const UserStore>()),
      path_(std::move(path)) {
  std::lock_guard lock(reload_mutex_);
  reload_locked(source_->signature(path_));
}

UserDirectory::~UserDirectory() = default;

std::shared_ptr<const UserStore> UserDirectory::current() const {
  return snapshot_.load();
}

const UserStore& UserDirectory::publish(std::shared_ptr<const UserStore> snapshot) {
  loaded_unix_ = base::unix_now();
  const UserStore& published = *snapshot;
  snapshot_.store(std::move(snapshot));
  return published;
}

bool UserDirectory::refresh() {
  std::lock_guard lock(reload_mutex_);
  const UsersFileSource::Signature signature = source_->signature(path_);
  if (signature == seen_) return false;
  return reload_locked(signature);
}

void UserDirectory::start_watching(std::chrono::milliseconds poll_interval) {
  watcher_.start(poll_interval, [this] { refresh(); });
}

bool UserDirectory::reload_locked(const UsersFileSource::Signature& signature) {
  seen_ = signature;
  if (!signature.exists) {
    publish(std::make_shared<const UserStore>());
    last_error_.clear();
    return true;
  }
  auto text = source_->read(path_);
  auto loaded = text ? UserStore::parse(text.value(), path_)
                     : base::Expected<UserStore, std::string>(base::unexpected(text.error()));
  if (!loaded) {
    // Keep serving with the previous snapshot; say why the new file was not taken.
    last_error_ = loaded.error();
    // An error, not a warning: every change in the file (a deleted user among them) is
    // not applied until the file is fixed.
    obs::Log("users_reload_failed", obs::Level::kError)
        .kv("file", path_)
        .kv("error", last_error_)
        .kv("kept_users", static_cast<std::uint64_t>(current()->size()));
    return false;
  }
  // In service before the line says so: whoever waits for users_loaded (an operator, a test)
  // finds the new users at once.
  log_loaded(path_, publish(std::make_shared<const UserStore>(std::move(loaded.value()))));
  last_error_.clear();
  return true;
}

std::string UserDirectory::path() const {
  std::lock_guard lock(reload_mutex_);
  return path_;
}

base::Expected<base::Ok, std::string> UserDirectory::switch_to(std::string path) {
  std::lock_guard lock(reload_mutex_);
  if (path == path_) return base::Ok{};
  const UsersFileSource::Signature signature = source_->signature(path);
  auto snapshot = std::make_shared<const UserStore>();
  if (signature.exists) {
    auto text = source_->read(path);
    if (!text) return base::unexpected(text.error());
    auto loaded = UserStore::parse(text.value(), path);
    if (!loaded) return base::unexpected(loaded.error());
    snapshot = std::make_shared<const UserStore>(std::move(loaded.value()));
  }
  path_ = std::move(path);
  seen_ = signature;
  last_error_.clear();
  log_loaded(path_, publish(std::move(snapshot)));  // in service, then logged
  return base::Ok{};
}

UserDirectory::Status UserDirectory::status() const {
  std::lock_guard lock(reload_mutex_);
  return Status{last_error_.empty(), loaded_unix_, current()->size()};
}

std::string UserDirectory::last_error() const {
  std::lock_guard lock(reload_mutex_);
  return last_error_;
}

}  // namespace auth
