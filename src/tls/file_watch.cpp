// file_watch.cpp — see file_watch.h. Linux: inotify(7), eventfd(2), poll(2).
#include "tls/file_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>

namespace tls {
namespace {

namespace fs = std::filesystem;

// Directory entry changes (a rename or new symlink in live/), and writes to files in it.
constexpr std::uint32_t kEvents = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                  IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF |
                                  IN_MOVE_SELF;

void drain(int fd) {
  if (fd < 0) return;
  char buffer[4096];
  while (::read(fd, buffer, sizeof buffer) > 0) {
  }
}

}  // namespace

FileSignature file_signature(const std::string& path) {
  struct stat info {};
  FileSignature signature;
  if (::stat(path.c_str(), &info) != 0) return signature;
  signature.exists = true;
  signature.device = static_cast<std::uint64_t>(info.st_dev);
  signature.inode = static_cast<std::uint64_t>(info.st_ino);
  signature.size = static_cast<std::int64_t>(info.st_size);
  signature.mtime_ns =
      static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
  signature.ctime_ns =
      static_cast<std::int64_t>(info.st_ctim.tv_sec) * 1000000000 + info.st_ctim.tv_nsec;
  return signature;
}

std::vector<FileSignature> file_signatures(const std::vector<std::string>& paths) {
  std::vector<FileSignature> out;
  out.reserve(paths.size());
  for (const std::string& path : paths)
    out.push_back(file_signature(path));
  return out;
}

std::vector<std::string> directories_to_watch(const std::string& path) {
  std::set<std::string> directories;
  std::error_code error;
  fs::path current = fs::path(path).lexically_normal();
  // Follow the chain of links from the path itself (bounded, like the kernel's 40).
  for (int hop = 0; hop < 40; ++hop) {
    directories.insert(current.parent_path().string());
    // Symbolic links among the ancestors: a swapped "current -> v2" directory link shows
    // up as an entry change in the link's own directory.
    fs::path prefix;
    for (const fs::path& part : current.parent_path()) {
      prefix /= part;
      if (fs::is_symlink(prefix, error)) directories.insert(prefix.parent_path().string());
    }
    if (!fs::is_symlink(current, error)) break;
    fs::path target = fs::read_symlink(current, error);
    if (error) break;
    current = (target.is_absolute() ? target : current.parent_path() / target).lexically_normal();
  }
  fs::path real = fs::weakly_canonical(path, error);
  if (!error) directories.insert(real.parent_path().string());
  directories.erase("");
  return {directories.begin(), directories.end()};
}

FileWatch::FileWatch()
    : inotify_fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

FileWatch::~FileWatch() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void FileWatch::watch_directories(const std::vector<std::string>& directories) {
  if (inotify_fd_ < 0) return;
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (std::find(directories.begin(), directories.end(), it->first) == directories.end()) {
      ::inotify_rm_watch(inotify_fd_, it->second);
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& directory : directories) {
    // Added again even when present: a directory that was replaced needs a new watch (the
    // kernel returns the same descriptor for the same inode).
    const int wd = ::inotify_add_watch(inotify_fd_, directory.c_str(), kEvents);
    if (wd >= 0) {
      watches_[directory] = wd;
    } else {
      watches_.erase(directory);  // EACCES, ENOENT: the poll covers it
    }
  }
}

FileWatch::Woken FileWatch::wait(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
  const int count = ::poll(fds, 2, static_cast<int>(std::max<std::int64_t>(0, timeout.count())));
  if (count <= 0) return Woken::kTimeout;  // EINTR counts as a timeout: the caller re-checks
  const bool woken = (fds[0].revents & POLLIN) != 0;
  const bool event = (fds[1].revents & POLLIN) != 0;
  if (woken) drain(wake_fd_);
  if (event) drain(inotify_fd_);
  if (woken) return Woken::kWake;
  return event ? Woken::kFileEvent : Woken::kTimeout;
}

void FileWatch::wake() {
  if (wake_fd_ < 0) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t written = ::write(wake_fd_, &one, sizeof one);
}

}  // namespace tls
