// file_watch.h — noticing that certificate and key files changed, as an ACME client changes
// them: certbot writes new files into archive/ and then replaces the symbolic links in live/,
// others rename a new file over the old one or rewrite it in place.
//
// Two mechanisms, one truth: inotify on the directories involved wakes the watcher at once,
// and a poll (the caller's timeout) catches whatever inotify cannot see (a file system without
// it, a directory that was itself replaced, no permission after a privilege drop). Whether
// a file really changed is always decided by comparing FileSignatures (stat of what the path
// names now, symlinks followed: device, inode, size, mtime, ctime), never by the event alone.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tls {

struct FileSignature {
  bool exists = false;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  bool operator==(const FileSignature&) const = default;
};

// What `path` names now (stat(2), following symbolic links); exists=false if nothing.
FileSignature file_signature(const std::string& path);
std::vector<FileSignature> file_signatures(const std::vector<std::string>& paths);

// The directories whose entries decide what `path` names: its own directory, the directory
// of every symbolic link among its ancestors and on the way to its target, and the
// directory of the final file.
std::vector<std::string> directories_to_watch(const std::string& path);

// Not thread-safe except wake(): one thread owns it and waits on it.
class FileWatch {
 public:
  FileWatch();  // without inotify (or eventfd) it still times out and wakes
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  // Watches exactly these directories from now on (missing ones are skipped).
  void watch_directories(const std::vector<std::string>& directories);
  // True when inotify watches at least one directory.
  bool notifying() const { return !watches_.empty(); }

  enum class Woken { kTimeout, kFileEvent, kWake };
  // Blocks until something happens in a watched directory, wake() is called, or timeout.
  Woken wait(std::chrono::milliseconds timeout);
  // From any thread (async-signal-safe: one write(2) on an eventfd).
  void wake();

 private:
  int inotify_fd_ = -1;
  int wake_fd_ = -1;
  std::map<std::string, int> watches_;  // directory → watch descriptor
};

}  // namespace tls
