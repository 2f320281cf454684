// file_copy_test.cpp — base::copy_file_part: the octets land at the asked offset whole,
// through the kernel (pieces of kWritebackPiece) or through the buffer (between file systems
// the kernel cannot copy across), neither file position moves, and a source that ends early
// is EIO.
#include "base/file_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

namespace base {
namespace {

namespace fs = std::filesystem;

// Octets that differ by position, so a piece lost, doubled or misplaced shows.
std::string pattern(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    bytes[i] = static_cast<char>(i * 7 + i / 4093);
  return bytes;
}

std::string read_all(int fd) {
  std::string bytes(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)), '\0');
  EXPECT_EQ(::pread(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  return bytes;
}

class FileCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("file-copy-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  int open_file(const std::string& name, std::string_view contents) {
    int fd = ::open((dir_ / name).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
    return fd;
  }
  fs::path dir_;
};

TEST_F(FileCopyTest, ALargeCopyLandsWholeAtItsOffsetInPieces) {
  const std::string source = pattern(2 * kWritebackPiece + 4097);
  int in = open_file("in", source);
  int out = open_file("out", "head");
  ASSERT_TRUE(copy_file_part(in, 5, out, 4, source.size() - 5));
  EXPECT_EQ(::lseek(out, 0, SEEK_CUR), 4);  // positions untouched
  EXPECT_EQ(::lseek(in, 0, SEEK_CUR), static_cast<off_t>(source.size()));
  EXPECT_EQ(read_all(out), "head" + source.substr(5));
  ::close(in);
  ::close(out);
}

// A memfd (shmem) and a file of the test directory's file system: copy_file_range(2) cannot
// copy across, so the buffer does.
TEST_F(FileCopyTest, BetweenFileSystemsTheBufferCopies) {
  const std::string source = pattern(300 * 1024 + 3);
  int in = ::memfd_create("file-copy-test", MFD_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_EQ(::write(in, source.data(), source.size()), static_cast<ssize_t>(source.size()));
  int out = open_file("out", "xy");
  ASSERT_TRUE(copy_file_part(in, 1, out, 2, source.size() - 1));
  EXPECT_EQ(read_all(out), "xy" + source.substr(1));
  ::close(in);
  ::close(out);
}

TEST_F(FileCopyTest, ASourceThatEndsEarlyIsEio) {
  int in = open_file("in", "short");
  int out = open_file("out", "");
  errno = 0;
  EXPECT_FALSE(copy_file_part(in, 0, out, 0, 100));
  EXPECT_EQ(errno, EIO);
  int memory = ::memfd_create("file-copy-test", MFD_CLOEXEC);
  ASSERT_EQ(::write(memory, "short", 5), 5);
  errno = 0;
  EXPECT_FALSE(copy_file_part(memory, 0, out, 0, 100));  // through the buffer
  EXPECT_EQ(errno, EIO);
  ::close(memory);
  ::close(in);
  ::close(out);
}

}  // namespace
}  // namespace base
