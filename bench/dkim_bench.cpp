// dkim_bench.cpp — what DKIM costs per message (Google Benchmark), on a ~10 KiB message:
// verifying one RSA-2048 and one Ed25519 signature (body hash streaming + header hash +
// the public-key operation), and signing with both keys at once (one shared relaxed body
// hash, two private-key operations), as the server does for outgoing mail; and validating an
// ARC chain of two sets sealed with RSA-2048 (body hash of the latest AMS, its header hash,
// three public-key operations: RFC 8617 §5.2). The figures size the worker threads that
// verify() and sign() run on (docs/architecture.md).
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "base/base64.h"
#include "dns/resolver.h"
#include "mailauth/arc_verifier.h"
#include "mailauth/dkim_body_hash.h"
#include "mailauth/dkim_canonicalization.h"
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

// Two hops sealing the message with the RSA key (RFC 8617 §5.1): AAR, AMS over From, To and
// Subject (relaxed/relaxed), AS over every set so far.
std::string arc_sealed_header() {
  auto base64 = [](std::string_view raw) {
    std::string out;
    base::append_base64(out, raw);
    return out;
  };
  using mailauth::Canonicalization;
  mailauth::DkimBodyHash hash(Canonicalization::kRelaxed, std::nullopt);
  hash.feed(body());
  hash.finish();
  std::string header = header_section();
  std::string sets;  // the ARC fields so far, in the order a seal hashes them
  for (unsigned instance = 1; instance <= 2; ++instance) {
    const std::string i = std::to_string(instance);
    const std::string aar =
        "ARC-Authentication-Results: i=" + i + "; example.com; dkim=pass header.d=example.com\r\n";
    std::string ams = "ARC-Message-Signature: i=" + i +
                      "; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=rsa; t=1796472000; "
                      "h=from:to:subject; bh=" +
                      base64(hash.digest()) + "; b=";
    const std::string with = ams + "\r\n" + header;
    ams += base64(*key("rsa")->sign(mailauth::signed_header_data(
               Canonicalization::kRelaxed, mailauth::split_header_section(with),
               {"from", "to", "subject"}, 0, ams.size(), 0))) +
           "\r\n";
    std::string as = "ARC-Seal: i=" + i + "; cv=" + (instance == 1 ? "none" : "pass") +
                     "; a=rsa-sha256; d=example.com; s=rsa; t=1796472000; b=";
    const std::string sealed = sets + aar + ams + as;  // outlives the views into it
    std::string data;
    for (const auto& field : mailauth::split_header_section(sealed))
      mailauth::append_canonical_header(Canonicalization::kRelaxed, field.text, data);
    as += base64(*key("rsa")->sign(data)) + "\r\n";
    sets += aar + ams + as;
    header = as + ams + aar + header;
  }
  return header;
}

void BM_VerifyArcTwoSetsRsa2048(benchmark::State& state) {
  const std::string header = arc_sealed_header();
  auto answer = std::make_shared<dns::Answer>();
  answer->status = dns::Status::kOk;
  answer->texts = {key("rsa")->dns_record()};
  for (auto _ : state) {
    mailauth::ArcVerifier verifier;
    verifier.header_section(header);
    for (std::size_t i = 0; i < body().size(); i += 4096)
      verifier.body(std::string_view(body()).substr(i, 4096));
    verifier.end_of_body();
    const std::vector<dns::AnswerPtr> keys(verifier.key_names().size(), answer);
    auto outcome = verifier.verify(keys);
    if (outcome.result != mailauth::ArcResult::kPass) state.SkipWithError(outcome.problem.c_str());
    benchmark::DoNotOptimize(outcome);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body().size()));
}
BENCHMARK(BM_VerifyArcTwoSetsRsa2048)->Unit(benchmark::kMicrosecond);

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
