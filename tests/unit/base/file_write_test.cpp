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

TEST_F(FileWriteTest, AMissingDirectoryIsAnErrorNamingThePath) {
  const std::string path = (dir_ / "missing" / "file").string();
  auto written = write_file_atomically(path, "x", 0600);
  ASSERT_FALSE(written);
  EXPECT_NE(written.error().find(path + ".tmp"), std::string::npos) << written.error();
  EXPECT_NE(written.error().find("No such file or directory"), std::string::npos);
}

}  // namespace
}  // namespace base
