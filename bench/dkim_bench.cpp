// dkim_bench.cpp — what DKIM costs per message (Google Benchmark), on a ~10 KiB message:
// verifying one RSA-2048 and one Ed25519 signature (body hash streaming + header hash +
// the public-key operation), and signing with both keys at once (one shared relaxed body
// hash, two private-key operations), as the server does for outgoing mail. The figures
// size the worker threads that verify() and sign() run on (docs/architecture.md).
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "dns/resolver.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/dkim_verifier.h"

namespace {

constexpr std::int64_t kNow = 1796472000;

const std::string& header_section() {
  static const std::string header =
      "From: Alice Example <alice@example.com>\r\n"
      "To: Bob <bob@example.org>\r\n"
      "Subject: the quarterly figures, as promised\r\n"
      "Date: Sat, 5 Dec 2026 12:00:00 +0000\r\n"
      "Message-ID: <bench-1@example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n";
  return header;
}

const std::string& body() {
  static const std::string text = [] {
    std::string out;
    while (out.size() < 10 * 1024)
      out += "Lorem ipsum dolor sit amet,  consectetur adipiscing elit, sed do eiusmod \r\n";
    return out;
  }();
  return text;
}

std::shared_ptr<const mailauth::DkimSigningKey> key(const std::string& algorithm) {
  static std::map<std::string, std::shared_ptr<const mailauth::DkimSigningKey>> keys;
  auto& slot = keys[algorithm];
  if (!slot)
    slot = *mailauth::DkimSigningKey::load(mailauth::generate_dkim_key(algorithm)->private_pem,
                                           "example.com", algorithm);
  return slot;
}

std::string signed_header(const std::string& algorithm) {
  mailauth::DkimSigner signer({key(algorithm)});
  signer.body(body());
  signer.end_of_body();
  return "DKIM-Signature: " + signer.sign(header_section(), kNow).at(0) + "\r\n" + header_section();
}

void verify(benchmark::State& state, const std::string& algorithm) {
  const std::string header = signed_header(algorithm);
  dns::Answer answer;
  answer.status = dns::Status::kOk;
  answer.texts = {key(algorithm)->dns_record()};
  for (auto _ : state) {
    mailauth::DkimVerifier verifier;
    verifier.header_section(header);
    for (std::size_t i = 0; i < body().size(); i += 4096)
      verifier.body(std::string_view(body()).substr(i, 4096));
    verifier.end_of_body();
    auto outcome = verifier.verify(0, answer, kNow);
    if (outcome.result != mailauth::DkimResult::kPass) state.SkipWithError("did not pass");
    benchmark::DoNotOptimize(outcome);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body().size()));
}

void BM_VerifyRsa2048(benchmark::State& state) {
  verify(state, "rsa");
}
BENCHMARK(BM_VerifyRsa2048)->Unit(benchmark::kMicrosecond);
void BM_VerifyEd25519(benchmark::State& state) {
  verify(state, "ed25519");
}
BENCHMARK(BM_VerifyEd25519)->Unit(benchmark::kMicrosecond);

void BM_SignRsa2048AndEd25519(benchmark::State& state) {
  const std::vector<std::shared_ptr<const mailauth::DkimSigningKey>> keys = {key("rsa"),
                                                                             key("ed25519")};
  for (auto _ : state) {
    mailauth::DkimSigner signer(keys);
    for (std::size_t i = 0; i < body().size(); i += 4096)
      signer.body(std::string_view(body()).substr(i, 4096));
    signer.end_of_body();
    auto values = signer.sign(header_section(), kNow);
    benchmark::DoNotOptimize(values);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body().size()));
}
BENCHMARK(BM_SignRsa2048AndEd25519)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
