// log.h — one line per event, key=value or JSON, to stderr or syslog (docs/architecture.md
// "Security rules").
//
// A line is built in a per-event buffer and written with one write(2) (or one datagram to
// the syslog socket), so lines from different threads never interleave. Values with spaces, quotes,
// '=' or control bytes are quoted and escaped so that a line can always be split back into its
// keys. Never pass a password, an AUTH payload or a message body.
//
//   obs::Log("session_end").kv("session", id).kv("client", ip).kv("tls", "TLSv1.3");
//   → 2026-11-24T03:43:30.123Z level=info event=session_end session=… client=… tls=TLSv1.3
//   → {"time":"2026-11-24T03:43:30.123Z","level":"info","event":"session_end","session":"…",…}
// When stderr is systemd's journal (see stderr_is_journal), a line leaves its timestamp out
// (the journal records one) and starts with the sd-daemon(3) priority instead, so that
// journald stores the level as the entry's PRIORITY and the message as "level=… event=…":
//   → <6>level=info event=session_end session=… client=… tls=TLSv1.3
// In JSON, integers stay numbers and every other value is a string (RFC 8259 §7 escapes;
// bytes that are not UTF-8 become U+FFFD). README "## Logs" lists every event and its keys.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace obs {

enum class Level { kDebug, kInfo, kWarning, kError };

enum class Format { kKeyValue, kJson };

// Process-wide settings, set at start-up and again by a reload (SIGHUP); any thread may
// be writing a line meanwhile.
void set_min_level(Level level);
void set_format(Format format);

// True when stderr is the stream systemd connected to the journal: $JOURNAL_STREAM holds
// "DEVICE:INODE" of that stream (systemd.exec(5)), and it names stderr only if fstat(2) of
// stderr gives the same pair (a child whose stderr was redirected inherits the variable).
bool stderr_is_journal();
// Turns the journal framing of stderr lines on or off (off at start).
void set_stderr_journal(bool on);

// A syslog daemon's socket: every line goes as one datagram (RFC 3164 framing:
// "<PRI>Mmm dd hh:mm:ss smtpsd[pid]: line"), facility as in syslog(3) (LOG_MAIL, …).
// A datagram that cannot be sent goes to stderr instead.
class SyslogSink;
// nullptr if no socket can be made (or the path does not fit a socket address), so that a
// reload can refuse it before changing anything.
std::shared_ptr<const SyslogSink> make_syslog_sink(const std::string& socket_path, int facility);
// Puts sink in service (nullptr: stderr). The sink it replaces is closed once the last
// line being written to it is sent.
void set_output(std::shared_ptr<const SyslogSink> sink);
// "mail", "daemon", "user", "local0".."local7" → LOG_MAIL …; -1 if unknown.
int syslog_facility(std::string_view name);
// The other way round ("mail" for LOG_MAIL); "" if unknown.
std::string_view syslog_facility_name(int facility);

class Log {
 public:
  explicit Log(std::string_view event, Level level = Level::kInfo);
  ~Log();  // writes the line
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  Log& kv(std::string_view key, std::string_view value);
  Log& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  Log& kv(std::string_view key, const std::string& value) {
    return kv(key, std::string_view(value));
  }
  // The pair only when value is not empty (an optional field of a line).
  Log& kv_if(std::string_view key, std::string_view value) {
    return value.empty() ? *this : kv(key, value);
  }
  Log& kv(std::string_view key, std::int64_t value);
  Log& kv(std::string_view key, std::uint64_t value);
  Log& kv(std::string_view key, int value) { return kv(key, static_cast<std::int64_t>(value)); }
  Log& kv(std::string_view key, unsigned value) {
    return kv(key, static_cast<std::uint64_t>(value));
  }
  Log& kv(std::string_view key, long long value) {
    return kv(key, static_cast<std::int64_t>(value));
  }
  Log& kv(std::string_view key, unsigned long long value) {
    return kv(key, static_cast<std::uint64_t>(value));
  }
  Log& kv(std::string_view key, bool value) { return kv(key, value ? "yes" : "no"); }

 private:
  Log& raw(std::string_view key, std::string_view json_number);
  bool enabled_;
  bool json_;
  bool journal_;  // line_ starts with "<N>" and, in key=value, has no timestamp
  Level level_;
  std::string line_;
};

// While a LogBatch lives, the stderr lines its thread logs are held and written together, in
// the order they were logged, when it ends: one write(2) for a loop that logs a line per item
// (a commit batch's deliveries) instead of one per line. A write never holds more than
// PIPE_BUF bytes (4,096) unless one line alone does, so that on a pipe or the journal's
// stream no other thread's line lands inside it; held lines that would pass that are
// written first. Lines to a syslog socket are sent one datagram each, at once, as ever.
// A LogBatch inside another on the same thread adds nothing: the outer one writes. Lines
// held when the process dies (a crash, an abort) are lost: keep a batch to a loop's span.
class LogBatch {
 public:
  LogBatch();
  ~LogBatch();  // writes what is held
  LogBatch(const LogBatch&) = delete;
  LogBatch& operator=(const LogBatch&) = delete;

 private:
  bool outermost_;
};

// Parses "debug", "info", "warning", "error"; nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);

// Appends value to out, quoted and escaped if it needs to be (exposed for tests).
void append_value(std::string& out, std::string_view value);

}  // namespace obs
