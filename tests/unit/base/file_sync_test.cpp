// file_sync_test.cpp — base::unwritten_bytes: Dirty plus Writeback of /proc/meminfo in
// octets; a text without either field, or with one malformed, is unknown (UINT64_MAX), so that
// a caller never mistakes it for "nothing unwritten".
#include "base/file_sync.h"

#include <gtest/gtest.h>

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

TEST(FileSyncTest, ThisMachineTellsItsUnwrittenData) {
  // Linux always has both fields.
  const std::uint64_t unwritten = unwritten_bytes();
  EXPECT_NE(unwritten, kUnknown);
  EXPECT_EQ(unwritten % 1024, 0u);
}

}  // namespace
}  // namespace base
