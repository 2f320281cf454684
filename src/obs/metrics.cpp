// metrics.cpp — see metrics.h.
#include "obs/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

namespace obs {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (bounds_.size() > kMaxBuckets) bounds_.resize(kMaxBuckets);
}

void Histogram::observe_nanoseconds(std::uint64_t nanoseconds) {
  double seconds = static_cast<double>(nanoseconds) / 1e9;
  std::size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i])
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_nanoseconds_.fetch_add(nanoseconds, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::observe_seconds(double seconds) {
  if (!(seconds > 0)) seconds = 0;  // also NaN
  observe_nanoseconds(static_cast<std::uint64_t>(seconds * 1e9));
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

namespace {

// The exposition format's escapes: backslash and newline, and in label values the double
// quote too (HELP text keeps its quotes).
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '"' && quote) {
      out.append("\\\"");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

void append_escaped_label_value(std::string& out, std::string_view value) {
  append_escaped(out, value, /*quote=*/true);
}

void append_label(std::string& labels, std::string_view name, std::string_view value) {
  if (!labels.empty()) labels.push_back(',');
  labels.append(name);
  labels.append("=\"");
  append_escaped_label_value(labels, value);
  labels.push_back('"');
}

namespace {

void append_number(std::string& out, double value) {
  if (std::isinf(value)) {
    out.append(value > 0 ? "+Inf" : "-Inf");
  } else if (std::isnan(value)) {
    out.append("NaN");
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    fmt::format_to(std::back_inserter(out), "{}", static_cast<long long>(value));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

void append_line(std::string& out, std::string_view name, std::string_view suffix,
                 std::string_view labels, std::string_view value) {
  out.append(name);
  out.append(suffix);
  if (!labels.empty()) {
    out.push_back('{');
    out.append(labels);
    out.push_back('}');
  }
  out.push_back(' ');
  out.append(value);
  out.push_back('\n');
}

}  // namespace

void append_family_header(std::string& out, std::string_view name, std::string_view help,
                          std::string_view type) {
  out.append("# HELP ");
  out.append(name);
  out.push_back(' ');
  append_escaped(out, help, /*quote=*/false);
  out.append("\n# TYPE ");
  out.append(name);
  out.push_back(' ');
  out.append(type);
  out.push_back('\n');
}

void append_sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  std::string number;
  append_number(number, value);
  append_line(out, name, "", labels, number);
}

Registry::Series& Registry::find_or_add(std::string_view name, std::string_view help, Type type,
                                        const Labels& labels) {
  std::string rendered;
  for (const auto& [key, value] : labels)
    append_label(rendered, key, value);
  Family* family = nullptr;
  for (Family& f : families_) {
    if (f.name == name) family = &f;
  }
  if (family == nullptr) {
    families_.push_back(Family{std::string(name), std::string(help), type, {}});
    family = &families_.back();
  }
  if (family->type != type) std::abort();  // one name, one type: a programming error
  for (Series& s : family->series) {
    if (s.labels == rendered) return s;
  }
  family->series.push_back(Series{std::move(rendered), nullptr, nullptr, nullptr});
  return family->series.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Series& s = find_or_add(name, help, Type::kCounter, labels);
  if (!s.counter) s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Series& s = find_or_add(name, help, Type::kGauge, labels);
  if (!s.gauge) s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               std::vector<double> bounds, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Series& s = find_or_add(name, help, Type::kHistogram, labels);
  if (!s.histogram) s.histogram = std::make_unique<Histogram>(std::move(bounds));
  return *s.histogram;
}

void Registry::add_collector(Collector collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::render() const {
  std::string out;
  out.reserve(8192);
  std::lock_guard lock(mutex_);
  for (const Family& family : families_) {
    std::string_view type = family.type == Type::kCounter ? "counter"
                            : family.type == Type::kGauge ? "gauge"
                                                          : "histogram";
    append_family_header(out, family.name, family.help, type);
    for (const Series& s : family.series) {
      if (s.counter) {
        append_line(out, family.name, "", s.labels, std::to_string(s.counter->value()));
      } else if (s.gauge) {
        append_line(out, family.name, "", s.labels, std::to_string(s.gauge->value()));
      } else if (s.histogram) {
        const Histogram& h = *s.histogram;
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
          cumulative += h.bucket(i);
          std::string le;
          append_number(le, i < h.bounds().size() ? h.bounds()[i] : INFINITY);
          std::string labels = s.labels;
          append_label(labels, "le", le);
          append_line(out, family.name, "_bucket", labels, std::to_string(cumulative));
        }
        std::string sum;
        append_number(sum, h.sum_seconds());
        append_line(out, family.name, "_sum", s.labels, sum);
        // _count equals the +Inf bucket; both come from the same loads above.
        append_line(out, family.name, "_count", s.labels, std::to_string(cumulative));
      }
    }
  }
  for (const Collector& collector : collectors_)
    collector(out);
  return out;
}

Registry& metrics() {
  static Registry registry;
  return registry;
}

}  // namespace obs
