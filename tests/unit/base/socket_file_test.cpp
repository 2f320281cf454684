// socket_file_test.cpp — a socket's wider mode is never given through a symbolic link, and a
// directory others may write to is refused (base/socket_file.h).
#include "base/socket_file.h"

#include <poll.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "base/poll.h"

namespace base {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "socket_file_XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

int bind_socket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  return fd;
}

mode_t mode_of(const fs::path& path) {
  struct stat status {};
  ::lstat(path.c_str(), &status);
  return status.st_mode & 07777;
}

TEST(SocketFileTest, WidensTheModeOfItsOwnSocket) {
  TempDir dir;
  const std::string path = (dir.path / "s.sock").string();
  int fd = bind_socket(path);
  ASSERT_TRUE(set_socket_mode(path, 0666));
  EXPECT_EQ(mode_of(path), 0666u);
  ::close(fd);
}

TEST(SocketFileTest, NeverFollowsALinkSwappedInForTheSocket) {
  TempDir dir;
  const fs::path secret = dir.path / "secret";
  std::ofstream(secret) << "x";
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  const std::string path = (dir.path / "s.sock").string();
  fs::create_symlink(secret, path);
  auto result = set_socket_mode(path, 0666);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("not the socket"), std::string::npos) << result.error();
  EXPECT_EQ(mode_of(secret), 0600u);
}

TEST(SocketFileTest, RefusesADirectoryOthersMayWriteTo) {
  TempDir dir;
  ::chmod(dir.path.c_str(), 0755);
  EXPECT_TRUE(check_socket_directory(dir.path.string()));
  ::chmod(dir.path.c_str(), 0777);
  auto open = check_socket_directory(dir.path.string());
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().find("writable by other users"), std::string::npos) << open.error();
  ::chmod(dir.path.c_str(), 01777);  // sticky, as /tmp: others cannot replace our file
  EXPECT_TRUE(check_socket_directory(dir.path.string()));
}

// base/poll.h, here beside the other socket helper: a quiet pipe times out, a written one is
// ready at once, a deadline already past does not wait.
TEST(PollUntilTest, ReadyWhenWrittenFalseAtTheDeadline) {
  int ends[2];
  ASSERT_EQ(::pipe(ends), 0);
  const auto now = std::chrono::steady_clock::now();
  EXPECT_FALSE(poll_until(ends[0], POLLIN, now + std::chrono::milliseconds(20)));
  EXPECT_GE(std::chrono::steady_clock::now() - now, std::chrono::milliseconds(20));
  EXPECT_FALSE(poll_until(ends[0], POLLIN, now - std::chrono::seconds(1)));
  EXPECT_TRUE(poll_until(ends[1], POLLOUT, now + std::chrono::hours(24)));
  ASSERT_EQ(::write(ends[1], "x", 1), 1);
  EXPECT_TRUE(poll_until(ends[0], POLLIN, now + std::chrono::hours(24)));
  ::close(ends[0]);
  ::close(ends[1]);
}

}  // namespace
}  // namespace base
