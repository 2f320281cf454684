// crc32_bench.cpp — what the spool's CRC-32 costs per octet (Google Benchmark): zlib's
// crc32() beside the carry-less engine (queue/crc32.h) and crc32_update (the engine the
// spool picked), in one run so that the ratio holds on a shared machine.
//
// Sizes: 64 B (a record line, the smallest input the carry-less engine folds), 1 KiB,
// 64 KiB (a write of the spool writer) and 10 MiB (a large message in one call). The data
// is random and its start is not 16-octet aligned (offset 3), as a piece of a body is not.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "queue/crc32.h"
#include "queue/spool_log.h"

namespace {

const std::string& random_data() {
  static const std::string data = [] {
    std::mt19937_64 random(1);
    std::string bytes((10U << 20) + 16, '\0');
    for (auto& octet : bytes)
      octet = static_cast<char>(random() & 0xFF);
    return bytes;
  }();
  return data;
}

template <std::uint32_t (*compute)(std::uint32_t, std::string_view)>
void crc32_of(benchmark::State& state) {
  const std::string_view data(random_data().data() + 3, static_cast<std::size_t>(state.range(0)));
  if ((compute == queue::crc32_carryless && !queue::crc32_carryless_supported()) ||
      (compute == queue::crc32_carryless_wide && !queue::crc32_carryless_wide_supported())) {
    state.SkipWithError("this CPU does not run that engine");
    return;
  }
  std::uint32_t crc = 0;
  for (auto _ : state) {
    crc = compute(crc, data);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}

void BM_Crc32Zlib(benchmark::State& state) {
  crc32_of<queue::crc32_zlib>(state);
}
void BM_Crc32Carryless(benchmark::State& state) {
  crc32_of<queue::crc32_carryless>(state);
}
void BM_Crc32CarrylessWide(benchmark::State& state) {
  crc32_of<queue::crc32_carryless_wide>(state);
}
void BM_Crc32Update(benchmark::State& state) {
  crc32_of<queue::crc32_update>(state);
}

}  // namespace

BENCHMARK(BM_Crc32Zlib)->Arg(64)->Arg(1024)->Arg(64 << 10)->Arg(10 << 20);
BENCHMARK(BM_Crc32Carryless)->Arg(64)->Arg(1024)->Arg(64 << 10)->Arg(10 << 20);
BENCHMARK(BM_Crc32CarrylessWide)->Arg(64)->Arg(1024)->Arg(64 << 10)->Arg(10 << 20);
BENCHMARK(BM_Crc32Update)->Arg(64)->Arg(1024)->Arg(64 << 10)->Arg(10 << 20);

BENCHMARK_MAIN();
