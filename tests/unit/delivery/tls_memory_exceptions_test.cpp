// tls_memory_exceptions_test.cpp — the operator's exceptions kept beside the no-downgrade
// memory (delivery/tls_memory.h): they end on time, survive a restart in the same file as
// the levels, and ending one that does not exist says so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include "delivery/tls_memory.h"

namespace delivery {
namespace {

TEST(TlsMemoryExceptions, EndOnTimeAndSurviveARestart) {
  const std::string path = ::testing::TempDir() + "tls-memory-" + std::to_string(::getpid());
  std::filesystem::remove(path);
  const std::int64_t now = std::time(nullptr);
  {
    TlsMemory memory(path);
    EXPECT_TRUE(memory.record("Example.NET", SeenTls::kVerified, 100));
    EXPECT_TRUE(memory.except("Example.NET", now + 1000));
    EXPECT_TRUE(memory.except("ended.example", now - 5));  // already over at the next start
    EXPECT_EQ(memory.exception_until("example.net", now + 999), now + 1000);
    EXPECT_FALSE(memory.exception_until("example.net", now + 1000));  // ended
    EXPECT_FALSE(memory.exception_until("other.example", now));
  }
  TlsMemory again(path);
  EXPECT_TRUE(again.load_errors().empty()) << again.load_errors();
  EXPECT_EQ(again.best("example.net"), SeenTls::kVerified);  // the level is kept beside it
  EXPECT_EQ(again.exception_until("example.net", now), now + 1000);
  EXPECT_EQ(again.exceptions(), (std::vector<std::pair<std::string, std::int64_t>>{
                                    {"example.net", now + 1000}}));  // the ended one dropped
  EXPECT_TRUE(again.except("example.net", 0));
  EXPECT_FALSE(again.except("example.net", 0));  // nothing left to end
  EXPECT_TRUE(TlsMemory(path).exceptions().empty());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace delivery
