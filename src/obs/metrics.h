// metrics.h — counters, gauges and histograms rendered in the Prometheus text exposition
// format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Invariants:
// - Every series (a name plus a fixed set of label values) is registered up front, at
//   start-up or on first use of a call site, under a mutex; the handle it returns stays
//   valid for the life of the registry. Incrementing a handle is one relaxed atomic
//   operation: no allocation, no lock, safe from any thread.
// - Label sets are bounded by construction: callers map open-ended input (reply codes,
//   OpenSSL reasons, mechanisms) onto a fixed list before it reaches a label.
// - render() takes the registration mutex (never contended on the hot path), then runs
//   the collectors: functions that append whole families computed at scrape time (queue
//   size, certificate expiry) to the output.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace obs {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void add(std::int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(std::int64_t n) { value_.store(n, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Buckets are upper bounds in seconds (cumulative when rendered); observations are kept in
// nanoseconds so that the sum stays an integer atomic.
class Histogram {
 public:
  static constexpr std::size_t kMaxBuckets = 24;
  explicit Histogram(std::vector<double> bounds);
  void observe_seconds(double seconds);
  void observe_nanoseconds(std::uint64_t nanoseconds);
  const std::vector<double>& bounds() const { return bounds_; }
  std::uint64_t bucket(std::size_t i) const {  // non-cumulative; i == bounds().size(): +Inf
    return buckets_[i].load(std::memory_order_relaxed);
  }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_seconds() const {
    return static_cast<double>(sum_nanoseconds_.load(std::memory_order_relaxed)) / 1e9;
  }

 private:
  std::vector<double> bounds_;  // fixed at construction, read-only afterwards
  std::array<std::atomic<std::uint64_t>, kMaxBuckets + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_nanoseconds_{0};
};

// Default latency buckets, 1 ms to 60 s.
std::vector<double> latency_buckets();

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a series (or returns the one already registered with the same name and
  // labels). A name keeps the type and help of its first registration; registering it
  // again with another type is a broken invariant and aborts.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                       const Labels& labels = {});

  // A collector appends complete families (HELP, TYPE and samples, each line ending in
  // '\n') to out at each scrape; it runs on the scraping thread and must not block long.
  using Collector = std::function<void(std::string& out)>;
  void add_collector(Collector collector);

  std::string render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    std::string labels;  // rendered: `a="x",b="y"` (empty: none)
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::deque<Series> series;
  };
  Series& find_or_add(std::string_view name, std::string_view help, Type type,
                      const Labels& labels);

  mutable std::mutex mutex_;
  std::deque<Family> families_;        // mutex_; registration order
  std::vector<Collector> collectors_;  // mutex_
};

// The process-wide registry that smtpsd's layers report to and /metrics renders.
Registry& metrics();

// Helpers for collectors and tests: one family header, one sample line, label escaping
// (backslash, double quote and newline, as the exposition format says).
void append_family_header(std::string& out, std::string_view name, std::string_view help,
                          std::string_view type);
void append_sample(std::string& out, std::string_view name, std::string_view labels, double value);
void append_label(std::string& labels, std::string_view name, std::string_view value);
void append_escaped_label_value(std::string& out, std::string_view value);

}  // namespace obs
