// dot_stuffing_bench.cpp — what the DATA body decoder and encoder cost per megabyte
// (Google Benchmark): smtp::DotUnstuffer and smtp::DotStuffer beside the old algorithms they
// replaced (tests/unit/smtp/dot_unstuffer_reference.h, dot_stuffer_reference.h), measured
// in one run so the ratio holds on a shared machine.
//
// Each body is 10 MB fed as the server session feeds it: 16 KiB pieces (a TLS record),
// each decoded into an output cleared before every call and bounded at 64 KiB
// (ServerSession's kDataPiece). Bodies:
// - Ordinary: 78-octet lines (76 octets of text and CRLF), the common case.
// - DotHeavy: every line starts with a stuffed dot (sent as "..", kept as ".").
// - BareLf: lines ended by a bare LF, normalized to CRLF (a damaged message, the slow
//   path, so that it does not get slower).
// The encoder takes the same bodies (without the end of data) as the client sends them:
// the whole content in one call into an output that keeps its capacity, as
// smtp::ClientSession::content() does for the relay and `smtpsctl send` / `bench`.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../tests/unit/smtp/dot_stuffer_reference.h"
#include "../tests/unit/smtp/dot_unstuffer_reference.h"
#include "smtp/dot_stuffing.h"

namespace {

constexpr std::size_t kBodySize = 10 * 1000 * 1000;
constexpr std::size_t kPiece = 16 * 1024;
constexpr std::size_t kOutLimit = 64 * 1024;

enum class Body { kOrdinary, kDotHeavy, kBareLf };

// About kBodySize octets of lines of `line` (line ending included), then the end of data.
std::string make_body(Body kind) {
  std::string line;
  switch (kind) {
    case Body::kOrdinary:
      line = std::string(76, 'x') + "\r\n";
      break;
    case Body::kDotHeavy:
      line = ".." + std::string(74, 'x') + "\r\n";
      break;
    case Body::kBareLf:
      line = std::string(77, 'x') + "\n";
      break;
  }
  // Text that varies a little, so the line is not one repeated octet.
  for (std::size_t i = 2; i + 4 < line.size(); i += 7)
    line[i] = ' ';
  std::string body;
  body.reserve(kBodySize + line.size() + 5);
  while (body.size() < kBodySize)
    body += line;
  body += "\r\n.\r\n";
  return body;
}

template <typename Decoder>
void decode_body(benchmark::State& state, Body kind) {
  const std::string body = make_body(kind);
  typename Decoder::Options options;
  options.max_line = 998;
  options.normalize_bare_line_endings = kind == Body::kBareLf;
  std::string out;
  out.reserve(kOutLimit);
  for (auto _ : state) {
    Decoder decoder(options);
    std::size_t delivered = 0;
    for (std::size_t pos = 0; pos < body.size() && !decoder.finished(); pos += kPiece) {
      const std::string_view piece = std::string_view(body).substr(pos, kPiece);
      std::size_t used = 0;
      while (used < piece.size() && !decoder.finished()) {
        out.clear();
        used += decoder.decode(piece.substr(used), out, kOutLimit);
        delivered += out.size();
      }
    }
    if (!decoder.finished()) state.SkipWithError("the end of data was not found");
    benchmark::DoNotOptimize(delivered);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(body.size()));
}

void BM_DecodeOrdinary(benchmark::State& state) {
  decode_body<smtp::DotUnstuffer>(state, Body::kOrdinary);
}
void BM_DecodeOrdinaryReference(benchmark::State& state) {
  decode_body<smtp_test::ReferenceDotUnstuffer>(state, Body::kOrdinary);
}
void BM_DecodeDotHeavy(benchmark::State& state) {
  decode_body<smtp::DotUnstuffer>(state, Body::kDotHeavy);
}
void BM_DecodeDotHeavyReference(benchmark::State& state) {
  decode_body<smtp_test::ReferenceDotUnstuffer>(state, Body::kDotHeavy);
}
void BM_DecodeBareLf(benchmark::State& state) {
  decode_body<smtp::DotUnstuffer>(state, Body::kBareLf);
}
void BM_DecodeBareLfReference(benchmark::State& state) {
  decode_body<smtp_test::ReferenceDotUnstuffer>(state, Body::kBareLf);
}
template <typename Encoder>
void encode_body(benchmark::State& state, Body kind) {
  std::string content = make_body(kind);
  content.resize(content.size() - 3);  // the client adds the end of data itself
  std::string out;
  out.reserve(2 * content.size() + 3);
  for (auto _ : state) {
    Encoder encoder;
    out.clear();
    encoder.encode(content, out);
    encoder.finish(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(content.size()));
}

BENCHMARK(BM_DecodeOrdinary)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeOrdinaryReference)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeDotHeavy)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeDotHeavyReference)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeBareLf)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeBareLfReference)->Unit(benchmark::kMillisecond);

// The encoder rows: Encode/<body>, and EncodeReference/<body> for the old encoder.
void Encode(benchmark::State& state, Body kind) {
  encode_body<smtp::DotStuffer>(state, kind);
}
void EncodeReference(benchmark::State& state, Body kind) {
  encode_body<smtp_test::ReferenceDotStuffer>(state, kind);
}
BENCHMARK_CAPTURE(Encode, Ordinary, Body::kOrdinary)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(EncodeReference, Ordinary, Body::kOrdinary)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Encode, DotHeavy, Body::kDotHeavy)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(EncodeReference, DotHeavy, Body::kDotHeavy)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(Encode, BareLf, Body::kBareLf)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(EncodeReference, BareLf, Body::kBareLf)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
