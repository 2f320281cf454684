// password_cost_bench.cpp — what one offline password guess costs against the users file
// (Google Benchmark): the SCRAM-SHA-256 keys (PBKDF2-HMAC-SHA-256 at several iteration
// counts, then the HMACs and hash of RFC 5802 §3) and the argon2id hash (libsodium's
// INTERACTIVE cost, what PLAIN and LOGIN check). Whoever copies the file attacks the cheaper
// of the two, so the SCRAM iteration count is chosen against the argon2id figure (README
// "Users and authentication"). A SCRAM client pays the PBKDF2 once per login; the server
// only stores keys.
#include <sodium.h>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "auth/user_store.h"

namespace {

void BM_ScramKeys(benchmark::State& state) {
  const std::string salt(auth::kScramSaltSize, 's');
  const auto iterations = static_cast<std::uint32_t>(state.range(0));
  for (auto _ : state) {
    auth::ScramCredentials keys = auth::derive_scram_credentials("a guess", salt, iterations);
    benchmark::DoNotOptimize(keys.stored_key);
  }
}
BENCHMARK(BM_ScramKeys)
    ->Arg(4096)
    ->Arg(10000)
    ->Arg(auth::kDefaultScramIterations)
    ->Arg(600000)
    ->Unit(benchmark::kMillisecond);

void BM_Argon2idVerify(benchmark::State& state) {
  if (sodium_init() < 0) {
    state.SkipWithError("sodium_init failed");
    return;
  }
  const auth::Argon2Params params = auth::default_argon2();
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(hash, "the password", 12, params.opslimit, params.memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    state.SkipWithError("argon2id hashing failed");
    return;
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(crypto_pwhash_str_verify(hash, "a guess", 7));
}
BENCHMARK(BM_Argon2idVerify)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
