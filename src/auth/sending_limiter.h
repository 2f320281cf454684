// sending_limiter.h — what one authenticated user may send: the one limiter behind
// [sending_limits] (README "Sending limits", docs/architecture.md "Sending limits").
//
// Two kinds of bound, per user (the login name of SMTP AUTH or a client certificate, or
// the local user of the local socket; ASCII case is ignored, as queue selection and the
// FailureLimiter ignore it, and a Containment names the user in lower case):
// - messages_per_hour: messages in any sliding hour. Asked at MAIL (may_start_message):
//   past it the session answers 451 4.7.1 and the client tries later. Counted as
//   net::SlidingWindowTable does (two fixed windows, the previous one weighted by how much
//   of it still overlaps the last hour).
// - external_recipients_per_hour / _per_day: distinct recipients that are not of this
//   server (the caller says which), in the last hour and the last 24 hours: the
//   leaked-credential bounds. Asked at the end of data of a message about to be stored
//   (admit_message). The message that crosses a bound is accepted and held in the queue
//   ("hold": kept in our queue, never a folder), and so is every later message of the
//   user, until an administrator lifts the containment (lift(): `smtpsctl queue release
//   --user U`, which also releases the held mail, or `smtpsctl auth unlock U`). A stolen
//   password then sends at most about a bound's worth of mail, and none of it leaves.
//   A normal user writes to far fewer distinct outside addresses than the defaults; a
//   spammer, who writes to new addresses all the time, is held within a few dozen.
//
// What survives a restart: the containments (which users are held and why), written to
// state_file (one line each, replaced atomically) whenever one begins or ends, and read
// back at construction. The counts do not: after a restart a user who was not yet held
// starts again from zero. Restarts are the administrator's doing, not an attacker's, so
// this gives a leaked password at most one more bound's worth per restart, while a user
// already held stays held.
//
// Memory is bounded: at most max_users users; each keeps the distinct recipients of the
// longest window with a bound, which is at most that bound plus one message's recipients
// (past it the user is held, the recipients are dropped and nothing more is counted).
// A user idle for a day is swept out (unless held) when the table is full; if it is still
// full, a new user is let through uncounted (such a number of users sending at once is
// beyond what this server is for).
//
// Thread-safe: one mutex, held for a hash lookup and a walk over one user's recipients;
// the state file is written outside it (rarely: when a containment begins or ends).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace auth {

struct SendingLimits {
  std::uint64_t messages_per_hour = 1000;           // 0: no bound
  std::uint64_t external_recipients_per_hour = 50;  // 0: no bound
  std::uint64_t external_recipients_per_day = 200;  // 0: no bound
  bool operator==(const SendingLimits&) const = default;
};

// The window of a recipient bound: its name in logs, metrics and the state file.
enum class SendingWindow { kHour, kDay };
std::string_view to_string(SendingWindow window);  // "1h", "24h"

// Why a user's mail is held.
struct Containment {
  std::string user;
  SendingWindow window = SendingWindow::kHour;
  std::uint64_t count = 0;  // distinct external recipients in the window, when crossed
  std::uint64_t bound = 0;
  std::int64_t since_unix = 0;
};

struct MessageDecision {
  bool hold = false;                   // store the message held
  std::optional<Containment> crossed;  // this message crossed a bound (log it, count it)
};

class SendingLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::hours kHour{1};
  static constexpr std::chrono::hours kDay{24};

  // state_file: where containments are kept across restarts ("" keeps them in memory only).
  // A line of it that cannot be read is skipped with a warning.
  explicit SendingLimiter(SendingLimits limits, std::string state_file = {},
                          std::size_t max_users = 100000);

  const SendingLimits& limits() const { return limits_; }

  // At MAIL: whether one more message of user stays within messages_per_hour (not counted).
  bool may_start_message(std::string_view user, Clock::time_point now);

  // A message of user is about to be stored, with these recipients not of this server
  // (compared without regard to ASCII case): counts it and them, and says whether it is
  // held. now_unix dates a containment that begins here.
  MessageDecision admit_message(std::string_view user,
                                std::span<const std::string> external_recipients,
                                Clock::time_point now, std::int64_t now_unix);

  // Ends user's containment and forgets the recipients counted (the administrator has
  // looked): true when the user was held.
  bool lift(std::string_view user);

  std::optional<Containment> containment(std::string_view user) const;
  std::vector<Containment> containments() const;  // by user name

 private:
  struct Entry {
    Clock::time_point window_start{};  // of the current message window
    std::uint64_t current = 0;         // messages in the current window
    std::uint64_t previous = 0;        // and in the one before
    // Distinct external recipients (keyed hash of the lower-cased address) → last sent to.
    std::unordered_map<std::uint64_t, Clock::time_point> recipients;
    std::optional<Containment> containment;
    Clock::time_point last_seen{};
  };

  std::uint64_t recipient_key(std::string_view address) const;
  void roll(Entry& entry, Clock::time_point now) const;
  double estimate(const Entry& entry, Clock::time_point now) const;
  Entry* find_or_add(const std::string& user, Clock::time_point now);
  void load();
  void save();  // writes the containments to state_file_ (without mutex_ held)

  const SendingLimits limits_;
  const std::string state_file_;
  const std::size_t max_users_;
  std::array<unsigned char, 16> hash_key_{};  // of recipient_key(), random per limiter
  std::mutex save_mutex_;                     // orders the writes of state_file_
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mutex_
  Clock::time_point last_sweep_{};                  // guarded by mutex_
};

// The state file's encoding of a user name: bytes that are '%', space, control or not
// ASCII become %XX (exposed for tests).
std::string encode_user(std::string_view user);
std::optional<std::string> decode_user(std::string_view field);

}  // namespace auth
