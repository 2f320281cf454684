// log_command.cpp — see log_command.h.
#include "app/smtpsctl/log_command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <unordered_map>

#include "app/smtpsctl/command_line.h"
#include "base/clock.h"
#include "base/terminal_text.h"

namespace app {
namespace {

// At most this many message ids wait for their deliveries (for the delays): a log of months
// stays within bounded memory; the oldest are forgotten first.
constexpr std::size_t kMaxPendingIds = 200000;

// Past kMaxPendingIds ids waiting in map, the oldest (first in order) goes.
template <class Map>
void make_room(Map& map, std::deque<std::string>& order) {
  while (order.size() >= kMaxPendingIds) {
    map.erase(order.front());
    order.pop_front();
  }
}

// At most this many distinct senders, recipients, destinations… are told apart; the rest
// count together as "(others)", so memory stays bounded whatever the log holds.
constexpr std::size_t kMaxKeys = 100000;
// A longer line is not smtpsd's (ours are far shorter): skipped, never held whole.
constexpr std::size_t kMaxLine = 64 * 1024;

// One line of at most kMaxLine bytes into line (false at the end of the input); a longer
// one is read past and given as empty.
bool read_log_line(std::istream& in, std::string& line) {
  line.clear();
  bool too_long = false;
  for (int c = in.get(); c != std::char_traits<char>::eof(); c = in.get()) {
    if (c == '\n') {
      if (too_long) line.clear();
      return true;
    }
    if (line.size() < kMaxLine) {
      line.push_back(static_cast<char>(c));
    } else {
      too_long = true;
    }
  }
  if (too_long) line.clear();
  return !line.empty() || too_long;
}

std::uint64_t to_number(std::string_view text) {
  std::uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

std::string recipient_domain(std::string_view address) {
  const std::size_t at = address.rfind('@');
  return std::string(at == std::string_view::npos ? address : address.substr(at + 1));
}

std::string seconds(std::int64_t ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", static_cast<double>(ms) / 1000.0);
  return text;
}

std::string size(std::uint64_t bytes) {
  char text[32];
  if (bytes >= 1024 * 1024)
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  else
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024.0);
  return text;
}

std::string line_of(std::string_view label, std::uint64_t count, const std::string& detail = {}) {
  char head[64];
  std::snprintf(head, sizeof head, "  %-18s %8llu", std::string(label).c_str(),
                static_cast<unsigned long long>(count));
  return head + (detail.empty() ? std::string() : "   " + detail) + "\n";
}

// "UTC date" or "date and time" as milliseconds.
std::optional<std::int64_t> parse_when(const std::string& text, bool& whole_day) {
  whole_day = text.size() == 10;
  return obs::parse_utc_time(whole_day ? text + "T00:00:00Z" : text);
}

}  // namespace

std::string_view LogSummary::Counter::add(std::string_view key, std::uint64_t by) {
  if (index.size() >= kMaxKeys && !index.contains(std::string(key))) key = "(others)";
  auto [at, added] = index.try_emplace(std::string(key), items.size());
  if (added)
    items.emplace_back(std::string(key), by);
  else
    items[at->second].second += by;
  return at->first;
}

std::uint64_t LogSummary::Counter::total() const {
  std::uint64_t sum = 0;
  for (const auto& item : items)
    sum += item.second;
  return sum;
}

std::vector<std::pair<std::string, std::uint64_t>> LogSummary::Counter::top(std::size_t n) const {
  auto sorted = items;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (sorted.size() > n) sorted.resize(n);
  return sorted;
}

LogSummary::LogSummary(LogRange range, std::size_t top) : range_(range), top_(top) {}

void LogSummary::add_line(std::string_view line, std::time_t now) {
  ++lines_;
  auto record = obs::parse_log_line(line, now);
  if (!record) return;
  if (record->time_ms) {
    if (range_.since_ms && *record->time_ms < *range_.since_ms) return;
    if (range_.until_ms && *record->time_ms >= *range_.until_ms) return;
    if (!first_ms_ || *record->time_ms < *first_ms_) first_ms_ = record->time_ms;
    if (!last_ms_ || *record->time_ms > *last_ms_) last_ms_ = record->time_ms;
  } else {
    ++untimed_;
  }
  ++ours_;
  add(*record);
}

void LogSummary::add(const obs::LogRecord& r) {
  const std::string_view event = r.event;
  if (event == "accepted" || event == "local_submission") {
    ++accepted_;
    if (event == "local_submission") ++local_;
    accepted_bytes_ += to_number(r.get("size"));
    if (r.get("held") == "yes") ++held_;
    senders_.add(r.get("from").empty() ? std::string_view("<>") : r.get("from"));
    if (r.time_ms && !r.get("id").empty()) {
      std::string id(r.get("id"));
      make_room(accepted_at_, accepted_order_);
      if (accepted_at_.emplace(id, *r.time_ms).second) accepted_order_.push_back(id);
      auto [first, last] = copied_before_accepted_.equal_range(id);
      for (auto copy = first; copy != last; ++copy)
        delays_ms_.push_back(std::max<std::int64_t>(0, copy->second - *r.time_ms));
      copied_before_accepted_.erase(first, last);
    }
  } else if (event == "delivered") {
    ++delivered_;
    delivered_by_.add(r.get("to").empty() ? std::string_view("other") : r.get("to"));
    recipients_.add(r.get("rcpt"));
    const std::string_view detail = r.get("detail");
    if (r.get("to") == "smtp" || r.get("to") == "relay") {
      const std::size_t at = detail.find("tls=");
      std::string_view version = at == std::string_view::npos ? "none" : detail.substr(at + 4);
      version = version.substr(0, std::min(version.find(' '), version.size()));
      tls_out_.add(version);
      if (!r.get("policy").empty()) policies_.add(r.get("policy"));
    }
    if (r.get("at") == "acceptance") {
      delays_ms_.push_back(0);  // in the mailbox before the 250 (logged before "accepted")
    } else if (r.time_ms) {
      std::string id(r.get("id"));
      auto found = accepted_at_.find(id);
      if (found != accepted_at_.end()) {
        delays_ms_.push_back(*r.time_ms - found->second);
      } else if (r.get("at") == "after_reply") {
        // reply_after = "log": the committer's thread makes the copy right after the 250 and
        // may log it before the session logs "accepted": counted when that line comes (a
        // delivery whose "accepted" is outside the range read stays out, as any other).
        make_room(copied_before_accepted_, copied_order_);
        copied_before_accepted_.emplace(id, *r.time_ms);
        copied_order_.push_back(std::move(id));
      }
    }
  } else if (event == "deferred") {
    ++deferred_lines_;
    const std::string domain = recipient_domain(r.get("rcpt"));
    const std::string_view counted = deferred_by_domain_.add(domain);
    if (deferred_recipients_.size() < kMaxKeys)
      deferred_recipients_.insert(std::string(r.get("id")) + " " + std::string(r.get("rcpt")));
    last_deferral_[std::string(counted)] = std::string(r.get("detail"));
  } else if (event == "failed" || event == "expired") {
    ++failed_;
    if (event == "expired") ++expired_;
    failed_by_domain_.add(recipient_domain(r.get("rcpt")));
  } else if (event == "dsn") {
    dsns_.add(r.get("kind"));
  } else if (event == "connection_refused") {
    // At most one line a second (net/admission.cpp), counting the refusals since the last
    // line, its own included: a single refusal says 1.
    const std::uint64_t refused = to_number(r.get("refused_since_last_line"));
    refused_connections_.add(r.get("limit"), refused == 0 ? 1 : refused);
  } else if (event == "auth_failed") {
    refused_logins_.add(r.get("reason"));
  } else if (event == "auth_results" && !r.get("refused").empty()) {
    refused_authenticity_.add(r.get("refused"));
  } else if (event == "local_refused" || event == "http_refused" ||
             event == "tls_handshake_failed" || event == "user_rate_limited") {
    refused_other_.add(event);
  } else if (event == "tls") {
    tls_in_.add(r.get("version"));
  }
}

std::string LogSummary::render() const {
  auto list = [](const std::vector<std::pair<std::string, std::uint64_t>>& items) {
    std::string text;
    for (const auto& [name, count] : items)
      text += (text.empty() ? "" : ", ") + base::terminal_safe(name) + " " + std::to_string(count);
    return text;
  };
  std::string out = "smtpsd log summary";
  if (first_ms_)
    out += ": " + base::utc_text(*first_ms_ / 1000, "%Y-%m-%dT%H:%M:%SZ") + " .. " +
           base::utc_text(*last_ms_ / 1000, "%Y-%m-%dT%H:%M:%SZ");
  out += " (" + std::to_string(ours_) + " of " + std::to_string(lines_) + " lines are smtpsd's";
  if (untimed_ > 0)
    out += "; " + std::to_string(untimed_) + " without a time, counted whatever the range";
  out += ")\n\nMessages\n";
  out += line_of("received", accepted_,
                 size(accepted_bytes_) +
                     (local_ > 0 ? ", " + std::to_string(local_) + " by local submission" : "") +
                     (held_ > 0 ? ", " + std::to_string(held_) + " held" : ""));
  out += line_of("delivered", delivered_, list(delivered_by_.items));
  out += line_of(
      "deferred", deferred_lines_,
      deferred_lines_ == 0
          ? std::string()
          : "attempts, for " + std::to_string(deferred_recipients_.size()) + " recipient(s)");
  out += line_of("failed", failed_,
                 expired_ > 0 ? std::to_string(expired_) + " after the queue lifetime" : "");
  out += line_of("notices (DSN)", dsns_.total(), list(dsns_.items));
  out += "\nRefused\n";
  out += line_of("connections", refused_connections_.total(), list(refused_connections_.items));
  out += line_of("logins", refused_logins_.total(), list(refused_logins_.items));
  out +=
      line_of("authenticity", refused_authenticity_.total(), list(refused_authenticity_.top(top_)));
  out += line_of("other", refused_other_.total(), list(refused_other_.items));
  if (!deferred_by_domain_.items.empty()) {
    out += "\nDeferrals by destination\n";
    for (const auto& [domain, count] : deferred_by_domain_.top(top_)) {
      auto last = last_deferral_.find(domain);
      out += line_of(domain, count,
                     "last: " + base::terminal_safe(last == last_deferral_.end() ? std::string()
                                                                                 : last->second));
    }
  }
  if (!failed_by_domain_.items.empty()) {
    out += "\nFailures by destination\n";
    for (const auto& [domain, count] : failed_by_domain_.top(top_))
      out += line_of(domain, count);
  }
  if (!senders_.items.empty()) {
    out += "\nTop senders\n";
    for (const auto& [sender, count] : senders_.top(top_))
      out += line_of(sender, count);
  }
  if (!recipients_.items.empty()) {
    out += "\nTop recipients\n";
    for (const auto& [recipient, count] : recipients_.top(top_))
      out += line_of(recipient, count);
  }
  if (!delays_ms_.empty()) {
    std::vector<std::int64_t> sorted = delays_ms_;
    std::sort(sorted.begin(), sorted.end());
    auto at = [&](double q) {
      return sorted[std::min(sorted.size() - 1,
                             static_cast<std::size_t>(q * static_cast<double>(sorted.size())))];
    };
    out += "\nDelivery delays (accepted to delivered, " + std::to_string(sorted.size()) +
           " deliveries)\n  min " + seconds(sorted.front()) + ", median " + seconds(at(0.5)) +
           ", 95th percentile " + seconds(at(0.95)) + ", max " + seconds(sorted.back()) + "\n";
  }
  out += "\nTLS\n";
  out += "  inbound sessions   " + (tls_in_.items.empty() ? "none" : list(tls_in_.items)) + "\n";
  out += "  outbound delivered " + (tls_out_.items.empty() ? "none" : list(tls_out_.items)) + "\n";
  out +=
      "  outbound policies  " + (policies_.items.empty() ? "none" : list(policies_.items)) + "\n";
  return out;
}

int run_log_command(const std::vector<std::string>& argv, std::istream& in, std::ostream& out,
                    std::ostream& err, std::time_t now) {
  CLI::App cli{"smtpsd's log", "smtpsctl log"};
  cli.require_subcommand(1);
  std::vector<std::string> files;
  std::string day, since, until;
  std::size_t top = 10;
  auto* summary =
      cli.add_subcommand("summary",
                         "Mail in and out, refusals, deferrals by destination, top senders and "
                         "recipients, delays, TLS, from smtpsd's log");
  summary->add_option("files", files, "Log files (none or -: standard input)");
  summary->add_option("--day", day, "Only this UTC day (YYYY-MM-DD)");
  summary->add_option("--since", since, "From this UTC time (YYYY-MM-DD[THH:MM:SSZ])");
  summary->add_option("--until", until, "Up to this UTC time, excluded");
  summary->add_option("--top", top, "How many senders, recipients, destinations (10)")
      ->check(CLI::Range(1, 1000));
  if (auto stop = parse_command_line(cli, argv, out, err)) return *stop;

  LogRange range;
  bool whole_day = false;
  if (!day.empty()) {
    if (!since.empty() || !until.empty()) {
      err << "smtpsctl log: --day or --since/--until, not both\n";
      return 2;
    }
    range.since_ms = parse_when(day, whole_day);
    if (!range.since_ms || !whole_day) {
      err << "smtpsctl log: --day " << base::terminal_safe(day) << ": not YYYY-MM-DD\n";
      return 2;
    }
    range.until_ms = *range.since_ms + 86400000;
  }
  for (auto [text, bound] : {std::pair{&since, &range.since_ms}, {&until, &range.until_ms}}) {
    if (text->empty()) continue;
    *bound = parse_when(*text, whole_day);
    if (!*bound) {
      err << "smtpsctl log: " << base::terminal_safe(*text)
          << ": not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ\n";
      return 2;
    }
  }
  LogSummary counts(range, top);
  std::string line;
  if (files.empty()) files.push_back("-");
  for (const std::string& file : files) {
    std::ifstream opened;
    std::istream* source = &in;
    if (file != "-") {
      opened.open(file);
      if (!opened) {
        err << "smtpsctl log: cannot read " << base::terminal_safe(file) << "\n";
        return 1;
      }
      source = &opened;
    }
    while (read_log_line(*source, line))
      counts.add_line(line, now);
  }
  out << counts.render();
  return 0;
}

}  // namespace app
