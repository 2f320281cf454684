// tls_memory_exceptions_test.cpp — the operator's exceptions kept beside the no-downgrade
// memory (delivery/tls_memory.h): they end on time, survive a restart in the same file as
// the levels, and ending one that does not exist says so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "delivery/tls_memory.h"

namespace delivery {
namespace {

TEST(TlsMemoryExceptions, EndOnTimeAndSurviveARestart) {
  const std::string path = ::testing::TempDir() + "tls-memory-" + std::to_string(::getpid());
  std::filesystem::remove(path);
  {
    TlsMemory memory(path);
    EXPECT_TRUE(memory.record("Example.NET", SeenTls::kVerified, 100));
    EXPECT_TRUE(memory.except("Example.NET", 1000));
    EXPECT_EQ(memory.exception_until("example.net", 999), 1000);
    EXPECT_FALSE(memory.exception_until("example.net", 1000));  // ended
    EXPECT_FALSE(memory.exception_until("other.example", 0));
  }
  TlsMemory again(path);
  EXPECT_TRUE(again.load_errors().empty()) << again.load_errors();
  EXPECT_EQ(again.best("example.net"), SeenTls::kVerified);  // the level is kept beside it
  EXPECT_EQ(again.exception_until("example.net", 500), 1000);
  EXPECT_EQ(again.exceptions(),
            (std::vector<std::pair<std::string, std::int64_t>>{{"example.net", 1000}}));
  EXPECT_TRUE(again.except("example.net", 0));
  EXPECT_FALSE(again.except("example.net", 0));  // nothing left to end
  EXPECT_TRUE(TlsMemory(path).exceptions().empty());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace delivery
