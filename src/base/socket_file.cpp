// socket_file.cpp — see socket_file.h.
#include "base/socket_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace base {

Expected<Ok, std::string> set_socket_mode(const std::string& path, mode_t mode) {
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0) {
    return unexpected(path + ": " + std::strerror(errno));
  }
  if (!S_ISSOCK(status.st_mode) || status.st_uid != ::geteuid()) {
    return unexpected(path + ": not the socket this server just bound (replaced meanwhile?)");
  }
  if (::fchmodat(AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) != 0) {
    return unexpected(path + ": chmod: " + std::strerror(errno));
  }
  if (::lstat(path.c_str(), &status) != 0 || !S_ISSOCK(status.st_mode) ||
      status.st_uid != ::geteuid() || (status.st_mode & 07777) != mode) {
    return unexpected(path + ": not the socket this server just bound (replaced meanwhile?)");
  }
  return Ok{};
}

Expected<Ok, std::string> check_socket_directory(const std::string& directory) {
  struct stat status {};
  if (::stat(directory.c_str(), &status) != 0) {
    return unexpected(directory + ": " + std::strerror(errno));
  }
  if (status.st_uid != 0 && status.st_uid != ::geteuid()) {
    return unexpected(directory + ": owned by uid " + std::to_string(status.st_uid) +
                      ", neither root nor this server's user: it could replace the socket");
  }
  if ((status.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (status.st_mode & S_ISVTX) == 0) {
    return unexpected(directory +
                      ": writable by other users: they could replace the socket (chmod go-w)");
  }
  return Ok{};
}

}  // namespace base
