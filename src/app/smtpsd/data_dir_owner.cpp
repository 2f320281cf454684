// data_dir_owner.cpp — see data_dir_owner.h.
#include "app/smtpsd/data_dir_owner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

namespace app {
namespace {

std::string errno_text(int error_number) {
  return std::error_code(error_number, std::generic_category()).message();
}

bool gone(int error_number) {
  return error_number == ENOENT || error_number == ENOTDIR;
}

std::string parent_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// Lists one directory; `gone` when it disappeared before it could be opened or read (then
// the entries are those read before, if any).
struct Listing {
  bool gone = false;
  std::vector<std::string> directories;  // entries that are directories (not links to them)
  std::vector<std::string> entries;      // every entry, in the order read
};

base::Expected<Listing, std::string> list_directory(const std::string& path) {
  Listing listing;
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (gone(errno)) {
      listing.gone = true;
      return listing;
    }
    return base::unexpected(path + ": " + errno_text(errno));
  }
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int error_number = errno;
    ::close(fd);
    return base::unexpected(path + ": " + errno_text(error_number));
  }
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir);
    if (entry == nullptr) break;
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    bool is_directory = entry->d_type == DT_DIR;
    if (entry->d_type == DT_UNKNOWN) {
      struct stat info {};
      is_directory =
          ::fstatat(fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(info.st_mode);
    }
    std::string child = path + "/" + name;
    if (is_directory) listing.directories.push_back(child);
    listing.entries.push_back(std::move(child));
  }
  const int read_error = errno;
  ::closedir(dir);
  // A directory removed after it was opened may answer ENOENT when read (Linux; glibc's
  // readdir reports most of these as the end): it is gone, with whatever it listed before.
  if (gone(read_error)) {
    listing.gone = true;
  } else if (read_error != 0) {
    return base::unexpected(path + ": " + errno_text(read_error));
  }
  return listing;
}

}  // namespace

base::Expected<WalkCounts, std::string> walk_tree(
    const std::string& top, const std::function<bool(const std::string& path)>& enter,
    const std::function<int(const std::string& path)>& visit) {
  WalkCounts counts;
  if (const int error_number = visit(top); error_number != 0) {
    return base::unexpected(top + ": " + errno_text(error_number));
  }
  ++counts.visited;
  std::vector<std::string> pending{top};
  while (!pending.empty()) {
    const std::string directory = std::move(pending.back());
    pending.pop_back();
    auto listing = list_directory(directory);
    if (!listing) return base::unexpected(listing.error());
    if (listing.value().gone) ++counts.vanished;
    for (const std::string& entry : listing.value().entries) {
      const int error_number = visit(entry);
      if (error_number == 0) {
        ++counts.visited;
      } else if (gone(error_number)) {
        ++counts.vanished;
      } else {
        return base::unexpected(entry + ": " + errno_text(error_number));
      }
    }
    for (const std::string& child : listing.value().directories) {
      if (enter(child)) pending.push_back(child);
    }
  }
  return counts;
}

base::Expected<WalkCounts, std::string> give_data_dir_to(const std::string& data_dir, uid_t uid,
                                                         gid_t gid) {
  struct stat top {};
  if (::lstat(data_dir.c_str(), &top) != 0) {
    return base::unexpected("data_dir " + data_dir + ": " + errno_text(errno));
  }
  if (top.st_uid == uid && top.st_gid == gid) return WalkCounts{};
  // mail/ and mail/<domain>/ are given (they are listed as entries of their parents), the
  // domains are not entered, so no mailbox is ever read.
  const std::string mail_root = data_dir + "/mail";
  auto walked = walk_tree(
      data_dir, [&mail_root](const std::string& path) { return parent_of(path) != mail_root; },
      [uid, gid](const std::string& path) {
        return ::lchown(path.c_str(), uid, gid) == 0 ? 0 : errno;
      });
  if (!walked) {
    return base::unexpected("cannot give data_dir to the server's account: " + walked.error());
  }
  return walked;
}

}  // namespace app
