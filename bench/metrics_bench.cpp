// metrics_bench.cpp — what [metrics] costs per message, and per scrape (Google Benchmark).
//
// BM_MetricsPerMessage makes every call that one message sent on its own TLS connection
// causes in smtpsd (accept, handshake, AUTH, each reply flushed to the client, the 250,
// the Maildir delivery, the close): the counting cost of one message. BM_Scrape renders
// the whole /metrics page. bench/metrics_overhead.py divides them by the server's CPU per
// message measured in the same run (README "Metrics overhead").
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <string_view>

#include "obs/metrics.h"
#include "obs/server_metrics.h"

namespace {

// What the server flushes to a client in a one-message AUTH PLAIN session, flush by flush.
constexpr std::string_view kFlushes[] = {
    "220 mx.example.org ESMTP smtpsd\r\n",
    "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-AUTH PLAIN LOGIN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
    "235 2.7.0 Authentication successful\r\n",
    "250 2.1.0 Sender OK\r\n",
    "250 2.1.5 Recipient OK\r\n",
    "354 End data with <CR><LF>.<CR><LF>\r\n",
    "250 2.0.0 Ok: queued as 0f3a9c00000001\r\n",
    "221 2.0.0 Bye\r\n",
};

void BM_MetricsPerMessage(benchmark::State& state) {
  obs::ServerMetrics& m = obs::server_metrics();
  for (auto _ : state) {
    {
      obs::ConnectionScope open("submissions");
      m.tls_established("submissions", "TLSv1.3");
      for (std::string_view out : kFlushes)
        m.replies_sent(out);
      m.auth_result("PLAIN", true);
      m.message_accepted(1, std::chrono::microseconds(1800));
    }
    m.delivery_attempt("delivered", "maildir");
    m.delivery_duration("maildir", std::chrono::microseconds(400));
  }
}
BENCHMARK(BM_MetricsPerMessage);

void BM_MetricsPerMessageFourThreads(benchmark::State& state) {
  BM_MetricsPerMessage(state);  // the same, with the counters shared between threads
}
BENCHMARK(BM_MetricsPerMessageFourThreads)->Threads(4);

void BM_Scrape(benchmark::State& state) {
  obs::server_metrics();  // every series registered, as in the server
  for (auto _ : state) {
    std::string page = obs::metrics().render();
    benchmark::DoNotOptimize(page.data());
    state.counters["bytes"] = static_cast<double>(page.size());
  }
}
BENCHMARK(BM_Scrape);

}  // namespace

BENCHMARK_MAIN();
