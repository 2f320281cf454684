// file_sync_test.cpp — base::unwritten_bytes: Dirty plus Writeback of /proc/meminfo in
// octets; a text without either field, or with one malformed, is unknown (UINT64_MAX), so that
// a caller never mistakes it for "nothing unwritten".
#include "base/file_sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <limits>
#include <string>

namespace base {
namespace {

constexpr std::uint64_t kUnknown = std::numeric_limits<std::uint64_t>::max();

std::uint64_t parse(const std::string& text) {
  return parse_unwritten_bytes(text.data(), text.size());
}

TEST(FileSyncTest, UnwrittenIsDirtyPlusWritebackInOctets) {
  EXPECT_EQ(parse("MemTotal:       24576000 kB\n"
                  "Dirty:               120 kB\n"
                  "Writeback:             8 kB\n"
                  "WritebackTmp:      99999 kB\n"),
            128u * 1024);
  // The order of the lines does not matter; a name that only ends like a field is not it.
  EXPECT_EQ(parse("Writeback: 0 kB\nNotDirty: 5 kB\nDirty: 2 kB\n"), 2u * 1024);
}

TEST(FileSyncTest, AMissingOrMalformedFieldIsUnknown) {
  EXPECT_EQ(parse(""), kUnknown);
  EXPECT_EQ(parse("Dirty: 4 kB\n"), kUnknown);                      // no Writeback
  EXPECT_EQ(parse("Dirty: four kB\nWriteback: 0 kB\n"), kUnknown);  // no digits
  EXPECT_EQ(parse("Dirty: 4 MB\nWriteback: 0 kB\n"), kUnknown);     // not kB
  EXPECT_EQ(parse("Dirty: 4"), kUnknown);                           // cut short
}

TEST(FileSyncTest, ValuesTooLargeToAddAreUnknown) {
  EXPECT_EQ(parse("Dirty: 9999999999999999 kB\nWriteback: 9999999999999999 kB\n"), kUnknown);
  EXPECT_EQ(parse("Dirty: 99999999999999999 kB\nWriteback: 0 kB\n"), kUnknown);  // 17 digits
}

// The kernel's release as uname(2) gives it: the version is its first two numbers; anything
// else is "not known to be that recent".
TEST(FileSyncTest, AKernelReleaseIsComparedByItsFirstTwoNumbers) {
  EXPECT_TRUE(release_at_least("6.1.0-13-amd64", 5, 8));
  EXPECT_TRUE(release_at_least("5.8", 5, 8));
  EXPECT_TRUE(release_at_least("5.10.0", 5, 8));  // numbers, not text: 10 > 8
  EXPECT_FALSE(release_at_least("5.7.19", 5, 8));
  EXPECT_FALSE(release_at_least("4.19.0", 5, 8));
  EXPECT_FALSE(release_at_least("", 5, 8));
  EXPECT_FALSE(release_at_least("6", 5, 8));  // no minor
  EXPECT_FALSE(release_at_least("6.", 5, 8));
  EXPECT_FALSE(release_at_least("v6.1", 5, 8));
  EXPECT_FALSE(release_at_least("6-1", 5, 8));
  EXPECT_FALSE(release_at_least("99999.1", 5, 8));  // more digits than any release has
  EXPECT_FALSE(release_at_least("6.99999", 5, 8));
}

// Neither syncfs nor a journal on /proc, nor on what is not open.
TEST(FileSyncTest, ProcAndABadDescriptorHaveNeitherSyncfsNorJournal) {
  const int proc = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(proc, 0);
  EXPECT_EQ(syncfs_use(proc), SyncfsUse::kNever);
  EXPECT_FALSE(syncs_are_journal_commits(proc));
  ::close(proc);
  EXPECT_EQ(syncfs_use(-1), SyncfsUse::kNever);
  EXPECT_FALSE(syncs_are_journal_commits(-1));
}

// syncfs stands for fsyncs on the local file systems known to flush on it, with Linux 5.8+;
// on an ext file system without a journal (test_commit_threads.py mounts both kinds), only
// followed by a flush.
TEST(FileSyncTest, SyncfsStandsForFsyncsOnlyOnKnownLocalFileSystems) {
  struct statfs status {};
  const int here = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(here, 0);
  ASSERT_EQ(::fstatfs(here, &status), 0);
  struct utsname name {};
  ASSERT_EQ(::uname(&name), 0);
  unsigned major = 0;
  unsigned minor = 0;
  ASSERT_EQ(std::sscanf(name.release, "%u.%u", &major, &minor), 2) << name.release;
  // Where this suite runs (Debian 12: Linux 6.1 on ext4), the answer is yes.
  const bool recent = major > 5 || (major == 5 && minor >= 8);
  const auto type = static_cast<std::uint64_t>(status.f_type);
  const bool ext = type == 0xEF53;
  const bool local = ext || type == 0x58465342 || type == 0x9123683E ||
                     type == 0xF2F52010;  // ext2/3/4, XFS, Btrfs, F2FS
  const SyncfsUse expected = !recent || !local                         ? SyncfsUse::kNever
                             : ext && !syncs_are_journal_commits(here) ? SyncfsUse::kThenFlush
                                                                       : SyncfsUse::kAlone;
  EXPECT_EQ(syncfs_use(here), expected) << name.release << " " << std::hex << type;
  EXPECT_EQ(syncfs_use(here), expected) << "asked again, from the cache";
  ::close(here);
}

TEST(FileSyncTest, ThisMachineTellsItsUnwrittenData) {
  // Linux always has both fields.
  const std::uint64_t unwritten = unwritten_bytes();
  EXPECT_NE(unwritten, kUnknown);
  EXPECT_EQ(unwritten % 1024, 0u);
}

}  // namespace
}  // namespace base
