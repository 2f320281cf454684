// Tests for obs/metrics.cpp: the Prometheus text format 0.0.4 and concurrent increments.
#include "obs/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace {

TEST(MetricsTest, CounterAndGaugeRenderWithHelpTypeAndLabels) {
  obs::Registry registry;
  registry.counter("x_total", "Things counted.", {{"role", "smtp"}}).inc(3);
  registry.counter("x_total", "ignored: the first help stays", {{"role", "submission"}}).inc();
  obs::Gauge& open = registry.gauge("open", "Open now.");
  open.add(5);
  open.sub(2);
  EXPECT_EQ(registry.render(),
            "# HELP x_total Things counted.\n"
            "# TYPE x_total counter\n"
            "x_total{role=\"smtp\"} 3\n"
            "x_total{role=\"submission\"} 1\n"
            "# HELP open Open now.\n"
            "# TYPE open gauge\n"
            "open 3\n");
}

TEST(MetricsTest, SameNameAndLabelsGiveTheSameSeries) {
  obs::Registry registry;
  obs::Counter& a = registry.counter("c", "h", {{"k", "v"}});
  obs::Counter& b = registry.counter("c", "h", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  obs::Registry registry;
  registry.counter("c", "back\\slash\nnewline", {{"file", "a\"b\\c\nd"}}).inc();
  EXPECT_EQ(registry.render(),
            "# HELP c back\\\\slash\\nnewline\n"
            "# TYPE c counter\n"
            "c{file=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, HistogramHasCumulativeBucketsSumAndCount) {
  obs::Registry registry;
  obs::Histogram& h = registry.histogram("lat_seconds", "Latency.", {0.01, 0.1, 1}, {{"t", "x"}});
  h.observe_seconds(0.005);
  h.observe_seconds(0.01);  // le is inclusive
  h.observe_seconds(0.5);
  h.observe_seconds(3);
  EXPECT_EQ(registry.render(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{t=\"x\",le=\"0.01\"} 2\n"
            "lat_seconds_bucket{t=\"x\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{t=\"x\",le=\"1\"} 3\n"
            "lat_seconds_bucket{t=\"x\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{t=\"x\"} 3.515\n"
            "lat_seconds_count{t=\"x\"} 4\n");
}

TEST(MetricsTest, CollectorsAppendAfterRegisteredFamilies) {
  obs::Registry registry;
  registry.gauge("g", "G.").set(-2);
  registry.add_collector([](std::string& out) {
    obs::append_family_header(out, "queue_messages", "Q.", "gauge");
    obs::append_sample(out, "queue_messages", "", 7);
  });
  EXPECT_EQ(registry.render(),
            "# HELP g G.\n# TYPE g gauge\ng -2\n"
            "# HELP queue_messages Q.\n# TYPE queue_messages gauge\nqueue_messages 7\n");
}

TEST(MetricsTest, ConcurrentIncrementsAreNotLost) {
  obs::Registry registry;
  obs::Counter& counter = registry.counter("c_total", "C.");
  obs::Gauge& gauge = registry.gauge("g", "G.");
  obs::Histogram& histogram = registry.histogram("h_seconds", "H.", obs::latency_buckets());
  constexpr int kThreads = 8;
  constexpr int kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        counter.inc();
        gauge.add();
        histogram.observe_nanoseconds(1'000'000);  // 1 ms
        gauge.sub();
      }
    });
  }
  std::string rendered;
  for (int i = 0; i < 20; ++i)
    rendered = registry.render();  // scrapes while counting
  for (std::thread& thread : threads)
    thread.join();
  EXPECT_EQ(counter.value(), static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(gauge.value(), 0);
  EXPECT_EQ(histogram.count(), static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_DOUBLE_EQ(histogram.sum_seconds(), kThreads * kEach * 0.001);
  std::string last = registry.render();
  EXPECT_NE(last.find("c_total 160000\n"), std::string::npos);
  EXPECT_NE(last.find("h_seconds_bucket{le=\"0.001\"} 160000\n"), std::string::npos);
}

}  // namespace
