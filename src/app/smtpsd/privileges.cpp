// privileges.cpp — see privileges.h.
#include "app/smtpsd/privileges.h"

#include "app/smtpsd/data_dir_owner.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace app {
namespace {

std::string errno_text(int error_number) {
  return std::error_code(error_number, std::generic_category()).message();
}

// getpwnam_r/getgrnam_r with a buffer that grows (NSS entries may be long).
base::Expected<passwd, std::string> find_user(const std::string& name, std::vector<char>& buffer) {
  passwd entry{};
  passwd* found = nullptr;
  buffer.resize(4096);
  for (;;) {
    int rc = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0) return base::unexpected("cannot look up user '" + name + "': " + errno_text(rc));
    if (found == nullptr) {
      return base::unexpected("user '" + name +
                              "' does not exist (create it, e.g. useradd --system "
                              "--home-dir /var/lib/smtpsd --shell /usr/sbin/nologin " +
                              name + ")");
    }
    return entry;
  }
}

base::Expected<gid_t, std::string> find_group(const std::string& name) {
  group entry{};
  group* found = nullptr;
  std::vector<char> buffer(4096);
  for (;;) {
    int rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE && buffer.size() < (1u << 20)) {
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (rc != 0) return base::unexpected("cannot look up group '" + name + "': " + errno_text(rc));
    if (found == nullptr) return base::unexpected("group '" + name + "' does not exist");
    return entry.gr_gid;
  }
}

// Gives the data directory to the account (data_dir_owner.h: only when its top belongs to
// someone else, never into the mailboxes), then the control socket, which root created at
// this start and which may lie outside data_dir.
base::Expected<WalkCounts, std::string> give_to(const PrivilegeSettings& settings, uid_t uid,
                                                gid_t gid) {
  auto given = give_data_dir_to(settings.data_dir, uid, gid);
  if (!given) return base::unexpected(given.error());
  WalkCounts counts = given.value();
  if (!settings.control_socket.empty()) {
    struct stat socket_info {};
    if (::lstat(settings.control_socket.c_str(), &socket_info) == 0 &&
        (socket_info.st_uid != uid || socket_info.st_gid != gid)) {
      if (::lchown(settings.control_socket.c_str(), uid, gid) != 0) {
        return base::unexpected("cannot give " + settings.control_socket +
                                " to the server's account: " + errno_text(errno));
      }
      ++counts.visited;
    }
  }
  return counts;
}

// The effective identity of the account until `restore`, which says whether root came back
// (it must, or the start fails); an object left without `restore` takes root back or aborts.
class ScopedAccountIdentity {
 public:
  ScopedAccountIdentity() = default;
  ScopedAccountIdentity(const ScopedAccountIdentity&) = delete;
  ScopedAccountIdentity& operator=(const ScopedAccountIdentity&) = delete;
  ~ScopedAccountIdentity() {
    if (changed_ && !restore()) std::abort();
  }

  base::Expected<base::Ok, std::string> become(uid_t uid, gid_t gid) {
    const int count = ::getgroups(0, nullptr);
    if (count < 0) return base::unexpected("getgroups: " + errno_text(errno));
    saved_groups_.resize(static_cast<std::size_t>(count));
    if (::getgroups(count, saved_groups_.data()) != count)
      return base::unexpected("getgroups: " + errno_text(errno));
    saved_gid_ = ::getegid();
    changed_ = true;
    if (::setgroups(1, &gid) != 0) return base::unexpected("setgroups: " + errno_text(errno));
    if (::setegid(gid) != 0) return base::unexpected("setegid: " + errno_text(errno));
    if (::seteuid(uid) != 0) return base::unexpected("seteuid: " + errno_text(errno));
    return base::Ok{};
  }

  base::Expected<base::Ok, std::string> restore() {
    if (!changed_) return base::Ok{};
    changed_ = false;
    if (::seteuid(0) != 0 || ::setegid(saved_gid_) != 0 ||
        ::setgroups(saved_groups_.size(), saved_groups_.data()) != 0 || ::geteuid() != 0 ||
        ::getegid() != saved_gid_) {
      return base::unexpected("cannot become root again after writing as the account: " +
                              errno_text(errno));
    }
    return base::Ok{};
  }

 private:
  std::vector<gid_t> saved_groups_;
  gid_t saved_gid_ = 0;
  bool changed_ = false;
};

}  // namespace

base::Expected<base::Ok, std::string> write_as_data_dir_owner(
    const PrivilegeSettings& settings,
    const std::function<base::Expected<base::Ok, std::string>()>& work) {
  if (::geteuid() != 0 || settings.user.empty()) return work();
  auto planned = plan_privileges(settings);
  if (!planned) return base::unexpected(planned.error());
  struct stat top {};
  if (::lstat(settings.data_dir.c_str(), &top) != 0 || top.st_uid != planned.value().uid)
    return work();  // first start: the walk of drop_privileges gives it afterwards
  ScopedAccountIdentity identity;
  auto became = identity.become(planned.value().uid, planned.value().gid);
  auto done =
      became ? work() : base::Expected<base::Ok, std::string>(base::unexpected(became.error()));
  auto restored = identity.restore();
  if (!restored) return base::unexpected(restored.error());
  return done;
}

base::Expected<PrivilegeOutcome, std::string> plan_privileges(const PrivilegeSettings& settings) {
  PrivilegeOutcome outcome;
  outcome.uid = ::geteuid();
  outcome.gid = ::getegid();
  const bool root = outcome.uid == 0;
  if (!root) {
    outcome.note = "not started as root: nothing to drop";
    if (!settings.user.empty()) {
      std::vector<char> buffer;
      auto user = find_user(settings.user, buffer);
      if (user && user.value().pw_uid != outcome.uid) {
        outcome.note = "not started as root, so server.user = " + settings.user +
                       " cannot be switched to; running as uid " + std::to_string(outcome.uid);
      }
    }
    return outcome;
  }
  if (settings.user.empty()) {
    if (settings.run_as_root) {
      outcome.note = "run_as_root = true: staying root (not advised)";
      return outcome;
    }
    return base::unexpected(
        "started as root, but [server] user is not set: name the unprivileged account to "
        "switch to after start-up (user = \"smtpsd\"), or set run_as_root = true to stay root "
        "(not advised)");
  }
  std::vector<char> buffer;
  auto user = find_user(settings.user, buffer);
  if (!user) return base::unexpected(user.error());
  if (user.value().pw_uid == 0) {
    return base::unexpected("server.user '" + settings.user +
                            "' is root (uid 0): name an unprivileged account");
  }
  outcome.uid = user.value().pw_uid;
  outcome.gid = user.value().pw_gid;
  if (!settings.group.empty()) {
    auto group = find_group(settings.group);
    if (!group) return base::unexpected(group.error());
    outcome.gid = group.value();
  }
  if (outcome.gid == 0) {
    return base::unexpected("the group of server.user '" + settings.user +
                            "' is root (gid 0): set server.group to an unprivileged group");
  }
  return outcome;
}

base::Expected<PrivilegeOutcome, std::string> drop_privileges(const PrivilegeSettings& settings) {
  auto planned = plan_privileges(settings);
  if (!planned) return planned;
  PrivilegeOutcome outcome = planned.value();
  if (::geteuid() != 0 || settings.user.empty()) return outcome;

  auto given = give_to(settings, outcome.uid, outcome.gid);
  if (!given) return base::unexpected(given.error());
  // glibc applies setgroups/setgid/setuid to every thread of the process.
  if (::setgroups(1, &outcome.gid) != 0) {
    return base::unexpected("setgroups: " + errno_text(errno));
  }
  if (::setgid(outcome.gid) != 0) return base::unexpected("setgid: " + errno_text(errno));
  if (::setuid(outcome.uid) != 0) return base::unexpected("setuid: " + errno_text(errno));
  // For good: neither root nor the old groups may come back.
  if (::setuid(0) == 0 || ::seteuid(0) == 0 || ::getuid() != outcome.uid ||
      ::geteuid() != outcome.uid || ::getgid() != outcome.gid || ::getegid() != outcome.gid) {
    return base::unexpected("privileges could not be dropped for good; refusing to run");
  }
  outcome.dropped = true;
  outcome.note = "switched to " + settings.user;
  if (given.value().visited > 0) {
    outcome.note += " (gave " + std::to_string(given.value().visited) + " files in data_dir to it";
    if (given.value().vanished > 0) {
      outcome.note +=
          "; " + std::to_string(given.value().vanished) + " disappeared during the walk";
    }
    outcome.note += ")";
  }
  return outcome;
}

}  // namespace app
