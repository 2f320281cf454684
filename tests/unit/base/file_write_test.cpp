// file_write_test.cpp — base::write_file_atomically: the whole content under the asked mode,
// an existing file replaced whole, no temporary file left behind, and errors that name the
// path.
#include "base/file_write.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace base {
namespace {

namespace fs = std::filesystem;

class FileWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("file-write-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string read(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  fs::path dir_;
};

TEST_F(FileWriteTest, WritesTheContentWithTheModeAndReplacesAnOldFileWhole) {
  const std::string path = (dir_ / "key").string();
  ASSERT_TRUE(write_file_atomically(path, "first version, longer\n", 0644));
  ASSERT_TRUE(write_file_atomically(path, "second\n", 0600));
  EXPECT_EQ(read(path), "second\n");
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0600u);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

// Someone who can write into the directory plants a link where the temporary file goes (or
// leaves a file there): the write never goes through it, and what it points to stays.
TEST_F(FileWriteTest, ALinkOrAStaleFileAtTheTemporaryPathIsNotFollowed) {
  const std::string victim = (dir_ / "victim").string();
  { std::ofstream(victim) << "precious\n"; }
  ::chmod(victim.c_str(), 0644);
  const std::string path = (dir_ / "key").string();
  fs::create_symlink(victim, path + ".tmp");
  ASSERT_TRUE(write_file_atomically(path, "secret\n", 0600));
  EXPECT_EQ(read(victim), "precious\n");
  struct stat info {};
  ASSERT_EQ(::stat(victim.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0644u);
  ASSERT_EQ(::lstat(path.c_str(), &info), 0);
  EXPECT_TRUE(S_ISREG(info.st_mode));
  EXPECT_EQ(read(path), "secret\n");
  // A stale temporary file (a crash before the rename) is replaced, not reused.
  { std::ofstream(path + ".tmp") << "stale and longer\n"; }
  ASSERT_TRUE(write_file_atomically(path, "new\n", 0600));
  EXPECT_EQ(read(path), "new\n");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(FileWriteTest, AMissingDirectoryIsAnErrorNamingThePath) {
  const std::string path = (dir_ / "missing" / "file").string();
  auto written = write_file_atomically(path, "x", 0600);
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().find(path + ".tmp"), std::string::npos) << written.error();
  EXPECT_NE(written.error().find("No such file or directory"), std::string::npos);
}

}  // namespace
}  // namespace base
