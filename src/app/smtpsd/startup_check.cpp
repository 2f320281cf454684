// startup_check.cpp — see startup_check.h.
#include "app/smtpsd/startup_check.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "app/smtpsd/init_command.h"

namespace app {
namespace {

namespace fs = std::filesystem;

// Whom the server runs as after start-up, as far as files are concerned.
struct RunAccount {
  std::string name;
  uid_t uid = 0;
  std::vector<gid_t> groups;  // its group first, then its supplementary groups
  std::string group;          // the name of groups.front()
};

std::optional<RunAccount> account_of(const config::Config& config) {
  RunAccount account;
  if (::geteuid() != 0) {
    const passwd* self = ::getpwuid(::geteuid());
    account.name = self != nullptr ? self->pw_name : std::to_string(::geteuid());
    account.uid = ::geteuid();
    account.groups.push_back(::getegid());
    const int count = ::getgroups(0, nullptr);
    std::vector<gid_t> more(static_cast<std::size_t>(std::max(count, 0)));
    if (count > 0 && ::getgroups(count, more.data()) == count)
      account.groups.insert(account.groups.end(), more.begin(), more.end());
  } else {
    if (config.user.empty()) return std::nullopt;  // stays root: reads everything
    const passwd* entry = ::getpwnam(config.user.c_str());
    if (entry == nullptr) return std::nullopt;  // plan_privileges says so
    account.name = config.user;
    account.uid = entry->pw_uid;
    gid_t gid = entry->pw_gid;
    if (!config.group.empty()) {
      if (const group* named = ::getgrnam(config.group.c_str())) gid = named->gr_gid;
    }
    account.groups.push_back(gid);
    int count = 64;
    std::vector<gid_t> more(static_cast<std::size_t>(count));
    if (::getgrouplist(config.user.c_str(), entry->pw_gid, more.data(), &count) < 0) {
      more.resize(static_cast<std::size_t>(count));
      ::getgrouplist(config.user.c_str(), entry->pw_gid, more.data(), &count);
    }
    more.resize(static_cast<std::size_t>(std::max(count, 0)));
    account.groups.insert(account.groups.end(), more.begin(), more.end());
  }
  if (const group* g = ::getgrgid(account.groups.front())) account.group = g->gr_name;
  if (account.group.empty()) account.group = std::to_string(account.groups.front());
  return account;
}

// Whether the mode bits of st give account the right: r (4), w (2) or x (1).
bool permits(const struct stat& st, const RunAccount& account, unsigned right) {
  if (account.uid == 0) return true;
  unsigned shift = 0;
  if (st.st_uid == account.uid) {
    shift = 6;
  } else if (std::find(account.groups.begin(), account.groups.end(), st.st_gid) !=
             account.groups.end()) {
    shift = 3;
  }
  return ((st.st_mode >> shift) & right) == right;
}

enum class Fix { kGroup, kOwner };  // chgrp + chmod g+r, or chown (files that must be 0600)

class Checker {
 public:
  // as_root: the server reads the files as root at start, as its account on a reload.
  Checker(RunAccount account, bool as_root) : account_(std::move(account)), as_root_(as_root) {}

  // path must be readable by the account; missing: an error when `required`.
  void readable(const std::string& path, const std::string& what, Fix fix, bool required) {
    if (path.empty()) return;
    std::error_code ec;
    const fs::path absolute = fs::absolute(path, ec);
    if (ec) return;
    struct stat st {};
    if (::stat(absolute.c_str(), &st) != 0) {
      if (required) add(path + ": " + what + " does not exist (" + std::strerror(errno) + ")");
      return;
    }
    if (!searchable(absolute.parent_path(), path, what, as_root_)) return;
    if (permits(st, account_, 4)) return;
    const std::string how = fix == Fix::kOwner
                                ? "chown " + account_.name + " " + path
                                : "chgrp " + account_.group + " " + path + "; chmod g+r " + path;
    if (as_root_) {
      problems.push_back({path + ": " + what + " is not readable by " + account_.name +
                              ": the server starts (it reads it as root first), but a reload "
                              "after it changes is refused; " +
                              how,
                          StartupProblem::Severity::kWarning});
      return;
    }
    add(path + ": " + what + " is not readable by " + account_.name +
        ", the account the server runs as; " + how);
  }

  // The data directory: the account must enter it and write there.
  void data_directory(const std::string& path, bool made_ours_at_start) {
    std::error_code ec;
    const fs::path absolute = fs::absolute(path, ec);
    if (ec) return;
    if (!searchable(absolute.parent_path(), path, "the data directory", false)) return;
    struct stat st {};
    if (::stat(absolute.c_str(), &st) != 0) {
      // Made at start: then the directory above must take it.
      struct stat parent {};
      if (::stat(absolute.parent_path().c_str(), &parent) == 0 && !made_ours_at_start &&
          !permits(parent, account_, 3))
        add(path + ": the data directory does not exist and " + account_.name +
            " cannot make it in " + absolute.parent_path().string() + "; mkdir " + path +
            "; chown " + account_.name + " " + path);
      return;
    }
    if (!made_ours_at_start && !permits(st, account_, 3))
      add(path + ": the data directory is not writable by " + account_.name + "; chown " +
          account_.name + " " + path);
  }

  std::vector<StartupProblem> problems;

 private:
  // Every directory from / down to dir must let the account through.
  // warn_only: a warning (the file is read as root at start), else an error.
  bool searchable(const fs::path& dir, const std::string& path, const std::string& what,
                  bool warn_only) {
    fs::path walked;
    for (const fs::path& part : dir) {
      walked /= part;
      struct stat st {};
      if (::stat(walked.c_str(), &st) != 0) return true;  // missing: said elsewhere
      if (!permits(st, account_, 1)) {
        // One line for a directory, however many files are behind it.
        if (std::find(unreachable_.begin(), unreachable_.end(), walked) != unreachable_.end())
          return false;
        unreachable_.push_back(walked);
        std::string text = path + ": " + what + " is out of reach of " + account_.name +
                           ": it cannot enter " + walked.string() +
                           (warn_only ? " (the server starts: it reads it as root first; a "
                                        "reload after it changes is refused)"
                                      : std::string()) +
                           "; chmod o+x " + walked.string() + " (or give its group to " +
                           account_.name + ")";
        problems.push_back({std::move(text), warn_only ? StartupProblem::Severity::kWarning
                                                       : StartupProblem::Severity::kError});
        return false;
      }
    }
    return true;
  }
  void add(std::string text) {
    problems.push_back({std::move(text), StartupProblem::Severity::kError});
  }

  RunAccount account_;
  bool as_root_ = false;
  std::vector<fs::path> unreachable_;
};

bool control_socket_answers(const std::string& path) {
  if (path.empty()) return false;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    ::close(fd);
    return false;
  }
  std::memcpy(address.sun_path, path.c_str(), path.size());
  const bool connected =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

// Binds (and closes at once) each listener's address and port, as the server will.
void check_ports(const config::Config& config, std::vector<StartupProblem>& problems) {
  for (const config::Listener& listener : config.listeners) {
    if (listener.port == 0) continue;
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family = AF_INET;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, listener.address_text.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(listener.port);
      length = sizeof *v4;
    } else if (::inet_pton(AF_INET6, listener.address_text.c_str(), &v6->sin6_addr) == 1) {
      family = AF_INET6;
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(listener.port);
      length = sizeof *v6;
    } else {
      continue;  // the loader refused it already
    }
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&storage), length);
    const int error = errno;
    ::close(fd);
    if (bound == 0) continue;
    const std::string where = std::string(config::to_string(listener.role)) + " listener " +
                              listener.address_text + " port " + std::to_string(listener.port);
    if (error == EADDRINUSE && control_socket_answers(config.control_socket)) {
      problems.push_back({where + ": in use by this configuration's running server (its "
                                  "control socket answers); a restart stops it first",
                          StartupProblem::Severity::kNote});
    } else if (error == EADDRINUSE) {
      problems.push_back({where +
                          ": already in use by another program (another MTA? `ss -ltnp "
                          "sport = :" +
                          std::to_string(listener.port) + "` names it)"});
    } else if (error == EACCES) {
      problems.push_back({where + ": ports below 1024 need root (then the server drops to its "
                                  "account) or CAP_NET_BIND_SERVICE (the systemd unit gives it)"});
    } else {
      problems.push_back({where + ": cannot listen there: " + std::strerror(error)});
    }
  }
}

// The first directory from / down to dir (included) that other users (neither owner nor
// group) cannot enter, or empty; a missing one ends the walk (made 0755 at start).
fs::path closed_to_others(const fs::path& dir) {
  fs::path walked;
  for (const fs::path& part : dir) {
    walked /= part;
    struct stat st {};
    if (::stat(walked.c_str(), &st) != 0) return {};
    if ((st.st_mode & S_IXOTH) == 0) return walked;
  }
  return {};
}

// Local submission serves every local user (sendmail from cron, `mail`, scripts), who must
// read the configuration (to find the socket) and reach the socket; the server makes the
// socket 0666 and a missing directory 0755, but cannot open the directories above it.
void check_local_submission(const config::Config& config, std::vector<StartupProblem>& problems) {
  if (!config.local_submission.enabled) return;
  std::error_code ec;
  const fs::path socket = fs::absolute(config.local_submission.socket, ec);
  if (ec) return;
  if (fs::path closed = closed_to_others(socket.parent_path()); !closed.empty()) {
    problems.push_back(
        {socket.string() + ": the local submission socket is out of reach of other users (" +
             closed.string() + " is closed to them): sendmail fails for every user but " +
             "the server's account and root; chmod o+x " + closed.string() +
             ", or socket = \"/run/smtpsd/submit.sock\" in [local_submission]",
         StartupProblem::Severity::kWarning});
  }
  if (config.source_file.empty()) return;
  const fs::path file = fs::absolute(config.source_file, ec);
  if (ec) return;
  struct stat st {};
  if (fs::path closed = closed_to_others(file.parent_path()); !closed.empty()) {
    problems.push_back({file.string() + ": the configuration is out of reach of other users (" +
                            closed.string() +
                            " is closed to them): sendmail reads it to find the local "
                            "submission socket; chmod o+x " +
                            closed.string(),
                        StartupProblem::Severity::kWarning});
  } else if (::stat(file.c_str(), &st) == 0 && (st.st_mode & S_IROTH) == 0) {
    problems.push_back({file.string() +
                            ": the configuration is not readable by other users: sendmail "
                            "reads it to find the local submission socket (it holds no "
                            "secret: keys and passwords are files of their own); chmod o+r " +
                            file.string(),
                        StartupProblem::Severity::kWarning});
  }
}

}  // namespace

std::vector<StartupProblem> check_startup(const config::Config& config) {
  std::vector<StartupProblem> problems;
  check_ports(config, problems);
  check_local_submission(config, problems);
  // The Debian package's marker beside a configuration written by hand: the unit is enabled
  // but skips its start while the marker exists.
  std::error_code ec;
  const fs::path marker = fs::absolute(config.source_file, ec).parent_path() / kNotConfiguredMarker;
  if (!ec && fs::exists(marker, ec))
    problems.push_back({marker.string() +
                            ": the systemd unit does not start while this file exists "
                            "(ConditionPathExists=!); `smtpsd init` removes it, or rm " +
                            marker.string() + " once this configuration is yours",
                        StartupProblem::Severity::kWarning});
  std::optional<RunAccount> account = account_of(config);
  if (!account) return problems;
  Checker checker(*account, ::geteuid() == 0);
  for (const tls::CertificatePair& pair : config.certificates) {
    checker.readable(pair.certificate_file, "the certificate", Fix::kGroup, false);
    checker.readable(pair.key_file, "the private key", Fix::kGroup, false);
  }
  for (const config::Listener& listener : config.listeners)
    checker.readable(listener.client_ca, "the client CA file", Fix::kGroup, false);
  checker.readable(config.auth.users_file, "the users file", Fix::kGroup, false);
  checker.readable(config.addressing.aliases_file, "the aliases file", Fix::kGroup, false);
  checker.readable(config.delivery.relay_password_file, "the relay password file", Fix::kGroup,
                   true);
  checker.readable(config.delivery.ca_file, "the delivery CA file", Fix::kGroup, false);
  for (const config::Domain& domain : config.domains) {
    for (const config::DkimKeyFile& key : domain.dkim)
      checker.readable(key.key_file, "the DKIM key", Fix::kOwner, false);
    if (domain.relay)
      checker.readable(domain.relay->password_file, "the relay password file", Fix::kGroup, true);
    if (domain.next_hop)
      checker.readable(domain.next_hop->password_file, "the next hop's password file", Fix::kGroup,
                       true);
  }
  for (const config::Domain& domain : config.relay_domains) {
    if (domain.next_hop)
      checker.readable(domain.next_hop->password_file, "the next hop's password file", Fix::kGroup,
                       true);
  }
  if (config.srs) checker.readable(config.srs->secrets_file, "the SRS secrets", Fix::kOwner, true);
  checker.data_directory(config.data_dir, ::geteuid() == 0);
  problems.insert(problems.end(), checker.problems.begin(), checker.problems.end());
  return problems;
}

}  // namespace app
