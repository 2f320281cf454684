// CRC-32 engines (queue/crc32.h) and the spool's crc32_update: each must return exactly
// zlib's crc32() for any length, alignment of the data, initial value and split of the data
// into calls. The carry-less engine is checked only on a CPU that runs it (skipped otherwise).
#include "queue/crc32.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "queue/spool_log.h"

namespace queue {
namespace {

using Crc32Engine = std::uint32_t (*)(std::uint32_t, std::string_view);

struct Crc32TestEngine {
  const char* name;
  Crc32Engine compute;
};

// The engines this CPU runs: zlib's always (the fallback), the carry-less ones where
// supported, and crc32_update (whichever it picked).
std::vector<Crc32TestEngine> crc32_test_engines() {
  std::vector<Crc32TestEngine> engines{{"zlib", crc32_zlib}, {"update", crc32_update}};
  if (crc32_carryless_supported()) engines.push_back({"carryless", crc32_carryless});
  if (crc32_carryless_wide_supported()) engines.push_back({"wide", crc32_carryless_wide});
  return engines;
}

// What zlib says, in one call.
std::uint32_t crc32_test_reference(std::uint32_t crc, std::string_view bytes) {
  return static_cast<std::uint32_t>(
      ::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

std::string crc32_test_random_bytes(std::mt19937_64& random, std::size_t size) {
  std::string bytes(size, '\0');
  for (auto& octet : bytes)
    octet = static_cast<char>(random() & 0xFF);
  return bytes;
}

TEST(Crc32, CheckValue) {
  // The catalogue's check value of CRC-32/ISO-HDLC, which zlib computes, independent of zlib.
  for (const auto& engine : crc32_test_engines()) {
    SCOPED_TRACE(engine.name);
    EXPECT_EQ(engine.compute(0, "123456789"), 0xCBF43926U);
    EXPECT_EQ(engine.compute(0, ""), 0U);
    // Long enough for the folding path: 1000 octets of 'a'.
    EXPECT_EQ(engine.compute(0, std::string(1000, 'a')),
              crc32_test_reference(0, std::string(1000, 'a')));
  }
}

// Up to 1100 octets: past every engine's minimum (64, 256), its main loop run more than
// once (64 or 256 octets a step; the 512-bit engine's first needs 512) and every remainder.
constexpr std::size_t kCrc32TestMaxLength = 1100;

TEST(Crc32, EveryLengthAlignmentAndInitialValue) {
  std::mt19937_64 random(20261206);
  // 16 octets of slack on each side so that every alignment of the pointer can be tried.
  const std::string buffer = crc32_test_random_bytes(random, kCrc32TestMaxLength + 32);
  const std::string zeros(kCrc32TestMaxLength + 32, '\0');
  const std::uint32_t initial[] = {0, 0xFFFFFFFFU, static_cast<std::uint32_t>(random()),
                                   static_cast<std::uint32_t>(random())};
  for (const auto& engine : crc32_test_engines()) {
    SCOPED_TRACE(engine.name);
    for (std::size_t length = 0; length <= kCrc32TestMaxLength; ++length) {
      for (std::size_t offset = 0; offset < 16; ++offset) {
        for (const std::uint32_t crc : initial) {
          const std::string_view data(buffer.data() + offset, length);
          ASSERT_EQ(engine.compute(crc, data), crc32_test_reference(crc, data))
              << "length " << length << " offset " << offset << " initial " << crc;
          const std::string_view zero_data(zeros.data() + offset, length);
          ASSERT_EQ(engine.compute(crc, zero_data), crc32_test_reference(crc, zero_data))
              << "zeros, length " << length << " offset " << offset << " initial " << crc;
        }
      }
    }
  }
}

TEST(Crc32, LargeInputs) {
  std::mt19937_64 random(7);
  const std::size_t sizes[] = {(1U << 20) + 1, (1U << 20) + 13, (3U << 20) + 63, (10U << 20) + 5};
  const std::string buffer = crc32_test_random_bytes(random, (10U << 20) + 5 + 16);
  for (const auto& engine : crc32_test_engines()) {
    SCOPED_TRACE(engine.name);
    for (const std::size_t size : sizes) {
      for (const std::size_t offset : {0U, 1U, 7U, 15U}) {
        for (const std::uint32_t crc : {0U, 0xFFFFFFFFU, 0x9E3779B9U}) {
          const std::string_view data(buffer.data() + offset, size);
          ASSERT_EQ(engine.compute(crc, data), crc32_test_reference(crc, data))
              << "size " << size << " offset " << offset << " initial " << crc;
        }
      }
    }
  }
}

TEST(Crc32, ContinuesAcrossSplits) {
  // As the spool writer calls it: piece by piece, each piece of any length and alignment.
  std::mt19937_64 random(42);
  const std::string buffer = crc32_test_random_bytes(random, 70000);
  for (const auto& engine : crc32_test_engines()) {
    SCOPED_TRACE(engine.name);
    for (int round = 0; round < 300; ++round) {
      const std::size_t size = random() % buffer.size();
      const std::size_t start = random() % (buffer.size() - size + 1);
      const std::string_view data(buffer.data() + start, size);
      const std::size_t split = size == 0 ? 0 : random() % (size + 1);
      const auto initial = static_cast<std::uint32_t>(round % 3 == 0 ? 0 : random());
      const std::uint32_t whole = crc32_test_reference(initial, data);
      ASSERT_EQ(engine.compute(engine.compute(initial, data.substr(0, split)), data.substr(split)),
                whole)
          << "size " << size << " split " << split;
      // Many pieces, small and large.
      std::uint32_t crc = initial;
      std::string_view rest = data;
      while (!rest.empty()) {
        const std::size_t piece = std::min<std::size_t>(
            rest.size(), random() % 4 == 0 ? random() % 5000 : random() % 100);
        crc = engine.compute(crc, rest.substr(0, piece));
        rest.remove_prefix(piece);
      }
      ASSERT_EQ(crc, whole) << "size " << size << " in pieces";
    }
  }
}

}  // namespace
}  // namespace queue
