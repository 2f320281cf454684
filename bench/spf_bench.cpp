// spf_bench.cpp — what one SPF and one DMARC evaluation cost when every DNS answer is
// cached (Google Benchmark): the CPU the intake check spends per message beside its waits.
//
// BM_SpfIncludeAndMx: "v=spf1 include:_spf.example.net mx -all" with the client at the MX
// host: four lookups (TXT, TXT of the include, MX, A of the exchange), each answered at once
// by the fake resolver of the unit tests, so every step re-runs the pure evaluator (spf.h).
// BM_DmarcOrganizationalFallback: a From subdomain without a record, the organizational
// domain's record found second (two lookups, the public suffix list twice for alignment).
#include <benchmark/benchmark.h>

#include <optional>

#include "../tests/unit/mailauth/fake_resolver.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"

namespace {

void BM_SpfIncludeAndMx(benchmark::State& state) {
  mailauth_test::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 include:_spf.example.net mx -all");
  dns.add_txt("_spf.example.net", "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 -all");
  dns.add_mx("example.com", 10, "mx1.example.com");
  dns.add_address("mx1.example.com", "192.0.2.10");
  mailauth::SpfRequest request{"192.0.2.10", "user@example.com", "mail.example.com", "mx.test", 0};
  for (auto _ : state) {
    std::optional<mailauth::SpfOutcome> outcome;
    mailauth::check_spf(dns, request, [&](mailauth::SpfOutcome o) { outcome = std::move(o); });
    if (!outcome || outcome->result != mailauth::SpfResult::kPass) state.SkipWithError("not pass");
    benchmark::DoNotOptimize(outcome);
  }
}
BENCHMARK(BM_SpfIncludeAndMx);

void BM_DmarcOrganizationalFallback(benchmark::State& state) {
  mailauth_test::FakeResolver dns;
  dns.add_txt("_dmarc.example.co.uk",
              "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.co.uk");
  mailauth::DmarcRequest request{"news.example.co.uk",
                                 mailauth::SpfResult::kPass,
                                 "bounce.example.co.uk",
                                 {"example.co.uk"},
                                 50};
  for (auto _ : state) {
    std::optional<mailauth::DmarcOutcome> outcome;
    mailauth::check_dmarc(dns, request, [&](mailauth::DmarcOutcome o) { outcome = std::move(o); });
    if (!outcome || outcome->result != mailauth::DmarcResult::kPass)
      state.SkipWithError("not pass");
    benchmark::DoNotOptimize(outcome);
  }
}
BENCHMARK(BM_DmarcOrganizationalFallback);

}  // namespace

BENCHMARK_MAIN();
