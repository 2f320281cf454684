// log_command.h — `smtpsctl log summary [FILE ...] [--day YYYY-MM-DD | --since T --until T]
// [--top N]`: what pflogsumm gives Postfix administrators, from smtpsd's own key=value log
// (obs/log_line.h reads it): mail received and delivered, deferrals and failures, refusals
// by reason, deferrals by destination, the top senders and recipients, delivery delays, TLS
// versions in and out and the outbound TLS policies seen. Reads the files (a file
// "-" or none: standard input), as written by smtpsd, a syslog daemon or `journalctl -u
// smtpsd -o cat`. --day and --since/--until (UTC, "2026-12-05" or "2026-12-05T06:00:00Z")
// keep the lines of that range; lines without a time (the journal's `-o cat`) are counted
// whatever the range, and the summary says how many (select them with journalctl --since).
// Exit codes: 0 done, 1 an unreadable file, 2 usage.
#pragma once

#include <cstdint>
#include <deque>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "obs/log_line.h"

namespace app {

struct LogRange {
  std::optional<std::int64_t> since_ms;  // inclusive
  std::optional<std::int64_t> until_ms;  // exclusive
};

// The counts of a summary, fed one line at a time; pure (for tests).
class LogSummary {
 public:
  LogSummary(LogRange range, std::size_t top);
  void add_line(std::string_view line, std::time_t now);
  std::string render() const;

 private:
  void add(const obs::LogRecord& record);
  struct Counter {
    std::vector<std::pair<std::string, std::uint64_t>> items;  // in first-seen order
    std::unordered_map<std::string, std::size_t> index;        // key -> position in items
    // The key it was counted under: key, or "(others)" past the bound on distinct keys.
    std::string_view add(std::string_view key, std::uint64_t by = 1);
    std::uint64_t total() const;
    std::vector<std::pair<std::string, std::uint64_t>> top(std::size_t n) const;
  };
  LogRange range_;
  std::size_t top_;
  std::uint64_t lines_ = 0, ours_ = 0, untimed_ = 0;
  std::optional<std::int64_t> first_ms_, last_ms_;
  std::uint64_t accepted_ = 0, accepted_bytes_ = 0, local_ = 0, held_ = 0;
  std::uint64_t delivered_ = 0, deferred_lines_ = 0, failed_ = 0, expired_ = 0;
  Counter delivered_by_, senders_, recipients_, deferred_by_domain_, failed_by_domain_;
  std::unordered_map<std::string, std::string> last_deferral_;  // domain -> detail
  std::unordered_set<std::string> deferred_recipients_;         // "id rcpt"
  Counter refused_connections_, refused_logins_, refused_authenticity_, refused_other_;
  Counter tls_in_, tls_out_, policies_, dsns_;
  std::unordered_map<std::string, std::int64_t> accepted_at_;  // id -> ms (bounded)
  std::deque<std::string> accepted_order_;                     // oldest id first
  // Copies made after the reply (reply_after = "log") whose line came before "accepted":
  // id -> ms of each such delivery, counted when "accepted" comes (bounded, oldest first).
  std::unordered_multimap<std::string, std::int64_t> copied_before_accepted_;
  std::deque<std::string> copied_order_;
  std::vector<std::int64_t> delays_ms_;
};

int run_log_command(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                    std::ostream& err, std::time_t now);

}  // namespace app
