// sending_limiter.cpp — see sending_limiter.h.
//
// The state file (<data_dir>/sending-limits.held), one line per held user:
//   <user> <window> <count> <bound> <since_unix>
// user (lower case: users are keyed as control_commands' queue selection and the
// FailureLimiter match them, ignoring ASCII case) encoded by encode_user(), window "1h" or
// "24h". Replaced whole (base::write_file_atomically) when a containment begins or ends.
#include "auth/sending_limiter.h"

#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "auth/crypto_primitives.h"
#include "base/ascii.h"
#include "base/file_write.h"
#include "obs/log.h"

namespace auth {
namespace {

template <typename Number>
std::optional<Number> parse_number(std::string_view text) {
  Number value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

// SipHash-2-4 under a key of this limiter: a sender who chooses the addresses (any local
// part, "victim+anything@…") cannot make many of them count as one, as it could find
// collisions of an unkeyed hash such as std::hash.
std::uint64_t SendingLimiter::recipient_key(std::string_view address) const {
  const std::string folded = base::ascii_lowercase(address);
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, reinterpret_cast<const unsigned char*>(folded.data()), folded.size(),
                   hash_key_.data());
  std::uint64_t key = 0;
  std::memcpy(&key, out, sizeof key);
  return key;
}

std::string_view to_string(SendingWindow window) {
  return window == SendingWindow::kHour ? "1h" : "24h";
}

std::string encode_user(std::string_view user) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : user) {
    if (c <= 0x20 || c >= 0x7f || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::optional<std::string> decode_user(std::string_view field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '%') {
      out += field[i];
      continue;
    }
    if (i + 2 >= field.size()) return std::nullopt;
    unsigned value = 0;
    auto [end, error] = std::from_chars(field.data() + i + 1, field.data() + i + 3, value, 16);
    if (error != std::errc() || end != field.data() + i + 3) return std::nullopt;
    out += static_cast<char>(value);
    i += 2;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

SendingLimiter::SendingLimiter(SendingLimits limits, std::string state_file, std::size_t max_users)
    : limits_(limits), state_file_(std::move(state_file)), max_users_(max_users) {
  static_assert(crypto_shorthash_KEYBYTES == std::tuple_size_v<decltype(hash_key_)>);
  ensure_sodium();
  randombytes_buf(hash_key_.data(), hash_key_.size());
  load();
}

void SendingLimiter::roll(Entry& entry, Clock::time_point now) const {
  if (now < entry.window_start + kHour) return;
  auto windows = (now - entry.window_start) / kHour;
  entry.previous = windows == 1 ? entry.current : 0;
  entry.current = 0;
  entry.window_start += windows * kHour;
}

double SendingLimiter::estimate(const Entry& entry, Clock::time_point now) const {
  double into = std::chrono::duration<double>(now - entry.window_start).count() /
                std::chrono::duration<double>(kHour).count();
  return static_cast<double>(entry.previous) * (1.0 - into) + static_cast<double>(entry.current);
}

SendingLimiter::Entry* SendingLimiter::find_or_add(const std::string& user, Clock::time_point now) {
  auto it = entries_.find(user);
  if (it != entries_.end()) return &it->second;
  if (entries_.size() >= max_users_) {
    if (now - last_sweep_ >= std::chrono::seconds(1)) {
      last_sweep_ = now;
      std::erase_if(entries_, [&](const auto& item) {
        return !item.second.containment && now - item.second.last_seen >= kDay;
      });
    }
    if (entries_.size() >= max_users_) return nullptr;
  }
  Entry entry;
  entry.window_start = now;
  entry.last_seen = now;
  return &entries_.emplace(user, std::move(entry)).first->second;
}

bool SendingLimiter::may_start_message(std::string_view user, Clock::time_point now) {
  if (limits_.messages_per_hour == 0) return true;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(base::ascii_lowercase(user));
  if (it == entries_.end()) return true;
  roll(it->second, now);
  return estimate(it->second, now) < static_cast<double>(limits_.messages_per_hour);
}

MessageDecision SendingLimiter::admit_message(std::string_view user,
                                              std::span<const std::string> external_recipients,
                                              Clock::time_point now, std::int64_t now_unix) {
  MessageDecision decision;
  const std::string key = base::ascii_lowercase(user);
  {
    std::lock_guard lock(mutex_);
    Entry* entry = find_or_add(key, now);
    if (entry == nullptr) return decision;  // the table is full: uncounted (see the header)
    entry->last_seen = now;
    roll(*entry, now);
    ++entry->current;
    if (entry->containment) {
      decision.hold = true;
      return decision;
    }
    const std::uint64_t per_hour = limits_.external_recipients_per_hour;
    const std::uint64_t per_day = limits_.external_recipients_per_day;
    if (per_hour == 0 && per_day == 0) return decision;
    // Kept as long as a bound looks back: a day, or an hour without a day bound.
    const Clock::duration kept = per_day != 0 ? Clock::duration(kDay) : Clock::duration(kHour);
    std::erase_if(entry->recipients, [&](const auto& item) { return now - item.second >= kept; });
    for (const std::string& address : external_recipients)
      entry->recipients[recipient_key(address)] = now;
    const auto in_day = static_cast<std::uint64_t>(entry->recipients.size());
    const auto in_hour = static_cast<std::uint64_t>(
        std::count_if(entry->recipients.begin(), entry->recipients.end(),
                      [&](const auto& item) { return now - item.second < kHour; }));
    if (per_hour != 0 && in_hour > per_hour) {
      entry->containment = Containment{key, SendingWindow::kHour, in_hour, per_hour, now_unix};
    } else if (per_day != 0 && in_day > per_day) {
      entry->containment = Containment{key, SendingWindow::kDay, in_day, per_day, now_unix};
    } else {
      return decision;
    }
    entry->recipients.clear();  // nothing more is counted while held
    decision.hold = true;
    decision.crossed = entry->containment;
  }
  // XXX: written on the caller's I/O thread (a small file, fsynced): it happens once per
  // crossing, which is rare by design, and a containment must survive a crash at once.
  save();
  return decision;
}

bool SendingLimiter::lift(std::string_view user) {
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(base::ascii_lowercase(user));
    if (it == entries_.end() || !it->second.containment) return false;
    it->second.containment.reset();
    it->second.recipients.clear();
  }
  save();
  return true;
}

std::optional<Containment> SendingLimiter::containment(std::string_view user) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(base::ascii_lowercase(user));
  if (it == entries_.end()) return std::nullopt;
  return it->second.containment;
}

std::vector<Containment> SendingLimiter::containments() const {
  std::vector<Containment> out;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [user, entry] : entries_) {
      if (entry.containment) out.push_back(*entry.containment);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Containment& a, const Containment& b) { return a.user < b.user; });
  return out;
}

void SendingLimiter::load() {
  if (state_file_.empty()) return;
  std::ifstream in(state_file_);
  if (!in) return;  // none yet: nobody is held
  const Clock::time_point now = Clock::now();
  std::string line;
  long number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    std::istringstream words(line);
    std::string user, window, count, bound, since;
    words >> user >> window >> count >> bound >> since;
    auto name = decode_user(user);
    if (name) *name = base::ascii_lowercase(*name);  // written by a version that kept case
    auto count_value = parse_number<std::uint64_t>(count);
    auto bound_value = parse_number<std::uint64_t>(bound);
    auto since_value = parse_number<std::int64_t>(since);
    if (!name || (window != "1h" && window != "24h") || !count_value || !bound_value ||
        !since_value) {
      obs::Log("sending_limits_state_skipped", obs::Level::kWarning)
          .kv("file", state_file_)
          .kv("line", static_cast<std::int64_t>(number));
      continue;
    }
    Entry entry;
    entry.window_start = now;
    entry.last_seen = now;
    entry.containment =
        Containment{*name, window == "1h" ? SendingWindow::kHour : SendingWindow::kDay,
                    *count_value, *bound_value, *since_value};
    entries_.insert_or_assign(*name, std::move(entry));
  }
}

void SendingLimiter::save() {
  if (state_file_.empty()) return;
  std::lock_guard order(save_mutex_);
  std::string content;
  for (const Containment& held : containments()) {
    content += encode_user(held.user) + " " + std::string(to_string(held.window)) + " " +
               std::to_string(held.count) + " " + std::to_string(held.bound) + " " +
               std::to_string(held.since_unix) + "\n";
  }
  auto written = base::write_file_atomically(state_file_, content, 0600);
  if (!written) {
    obs::Log("sending_limits_state_failed", obs::Level::kError)
        .kv("file", state_file_)
        .kv("error", written.error());
  }
}

}  // namespace auth
