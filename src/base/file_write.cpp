// file_write.cpp — see file_write.h.
#include "base/file_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace base {

Expected<Ok, std::string> write_file_atomically(const std::string& path, std::string_view content,
                                                mode_t mode) {
  const std::string temporary = path + ".tmp";
  // A new file of our own, never through a link or into a file someone left there: a stale
  // temporary (a crash between open and rename) goes first, then O_EXCL | O_NOFOLLOW.
  if (::unlink(temporary.c_str()) != 0 && errno != ENOENT)
    return unexpected("cannot remove " + temporary + ": " + std::strerror(errno));
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return unexpected("cannot create " + temporary + ": " + std::strerror(errno));
  bool ok = true;
  std::size_t written = 0;
  while (ok && written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    ok = n > 0 || (n < 0 && errno == EINTR);
    if (n > 0) written += static_cast<std::size_t>(n);
  }
  ok = ok && ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  int saved = errno;
  ok = ::close(fd) == 0 && ok;
  if (ok && ::rename(temporary.c_str(), path.c_str()) != 0) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    ::unlink(temporary.c_str());
    return unexpected("cannot write " + path + ": " + std::strerror(saved));
  }
  // The rename itself is durable once the directory is synced.
  const std::size_t slash = path.rfind('/');
  const std::string directory =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Ok{};
}

int rename_no_replace(int from_dir_fd, const char* from, int to_dir_fd, const char* to) {
  int result = ::renameat2(from_dir_fd, from, to_dir_fd, to, RENAME_NOREPLACE);
  if (result != 0 && (errno == EINVAL || errno == ENOSYS)) {
    struct stat status {};
    if (::fstatat(to_dir_fd, to, &status, AT_SYMLINK_NOFOLLOW) == 0) {
      errno = EEXIST;
      return -1;
    }
    result = ::renameat(from_dir_fd, from, to_dir_fd, to);
  }
  return result;
}

}  // namespace base
