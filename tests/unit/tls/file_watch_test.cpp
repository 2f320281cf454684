// file_watch_test.cpp — tls::FileSignature, directories_to_watch and tls::FileWatch on a real
// temporary directory: rename over a file, certbot's symlink swap, inotify and wake().
#include "tls/file_watch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tls_test_support.h"

namespace tls {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

TEST(FileSignature, SeesRenameRewriteAndSymlinkSwap) {
  TempDir dir;
  const std::string path = dir.file("cert.pem");
  EXPECT_FALSE(file_signature(path).exists);
  write(path, "one");
  const FileSignature first = file_signature(path);
  EXPECT_TRUE(first.exists);
  EXPECT_EQ(first.size, 3);
  EXPECT_EQ(file_signature(path), first);
  // Renamed over (a new inode, same size).
  write(dir.file("cert.new"), "two");
  fs::rename(dir.file("cert.new"), path);
  const FileSignature renamed = file_signature(path);
  EXPECT_NE(renamed, first);
  // A symlink swap to another file.
  write(dir.file("a.pem"), "aaa");
  write(dir.file("b.pem"), "bbb");
  const std::string link = dir.file("live.pem");
  fs::create_symlink("a.pem", link);
  const FileSignature via_a = file_signature(link);
  EXPECT_EQ(via_a.inode, file_signature(dir.file("a.pem")).inode);
  fs::remove(link);
  fs::create_symlink("b.pem", link);
  EXPECT_NE(file_signature(link), via_a);
}

TEST(DirectoriesToWatch, FollowsTheLinks) {
  TempDir dir;
  fs::create_directories(dir.file("live/example.com"));
  fs::create_directories(dir.file("archive/example.com"));
  write(dir.file("archive/example.com/cert1.pem"), "x");
  fs::create_symlink("../../archive/example.com/cert1.pem", dir.file("live/example.com/cert.pem"));
  auto directories = directories_to_watch(dir.file("live/example.com/cert.pem"));
  EXPECT_TRUE(contains(directories, dir.file("live/example.com")));
  EXPECT_TRUE(contains(directories, dir.file("archive/example.com")));
  // A link among the ancestors ("current -> v1"): its own directory is watched too.
  fs::create_directories(dir.file("versions/v1"));
  write(dir.file("versions/v1/key.pem"), "k");
  fs::create_symlink("versions/v1", dir.file("current"));
  directories = directories_to_watch(dir.file("current/key.pem"));
  EXPECT_TRUE(contains(directories, dir.path()));
  EXPECT_TRUE(contains(directories, dir.file("versions/v1")));
}

TEST(FileWatch, WakesOnAChangeInAWatchedDirectory) {
  TempDir dir;
  write(dir.file("cert.pem"), "one");
  FileWatch watch;
  watch.watch_directories({dir.path()});
  ASSERT_TRUE(watch.notifying());
  EXPECT_EQ(watch.wait(std::chrono::milliseconds(20)), FileWatch::Woken::kTimeout);
  write(dir.file("cert.new"), "two");
  fs::rename(dir.file("cert.new"), dir.file("cert.pem"));
  EXPECT_EQ(watch.wait(std::chrono::milliseconds(2000)), FileWatch::Woken::kFileEvent);
  // Events are drained: the next wait times out.
  EXPECT_EQ(watch.wait(std::chrono::milliseconds(20)), FileWatch::Woken::kTimeout);
  watch.wake();
  EXPECT_EQ(watch.wait(std::chrono::milliseconds(2000)), FileWatch::Woken::kWake);
  // Unwatched: changes go unnoticed (the poll is the caller's).
  watch.watch_directories({});
  EXPECT_FALSE(watch.notifying());
  watch.wait(std::chrono::milliseconds(20));  // the kernel's IN_IGNORED for the removed watch
  write(dir.file("cert.pem"), "three");
  EXPECT_EQ(watch.wait(std::chrono::milliseconds(50)), FileWatch::Woken::kTimeout);
  // A missing directory is skipped.
  watch.watch_directories({dir.file("missing")});
  EXPECT_FALSE(watch.notifying());
}

}  // namespace
}  // namespace tls
