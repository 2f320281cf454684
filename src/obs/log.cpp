// log.cpp — see log.h. Timestamps are UTC with milliseconds (RFC 3339).
#include "obs/log.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "base/json.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <utility>

namespace obs {

class SyslogSink {
 public:
  SyslogSink(int fd, int facility, const sockaddr_un& address)
      : fd(fd), facility(facility), pid(static_cast<int>(::getpid())), address(address) {}
  ~SyslogSink() { ::close(fd); }
  SyslogSink(const SyslogSink&) = delete;
  SyslogSink& operator=(const SyslogSink&) = delete;

  const int fd;
  const int facility;
  const int pid;  // the TAG's [pid]: read once, not a syscall per line
  const sockaddr_un address;
};

namespace {

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> json_format{false};
std::atomic<bool> stderr_journal{false};
// The syslog sink in service (null: stderr). A line holds its own reference while it is
// sent, so a reload that replaces the sink never closes a socket under a writer.
std::mutex output_mutex;
std::shared_ptr<const SyslogSink> output;  // output_mutex
std::atomic<bool> to_syslog{false};        // output != nullptr, read without the lock

std::shared_ptr<const SyslogSink> current_output() {
  if (!to_syslog.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard lock(output_mutex);
  return output;
}

std::string_view to_string(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

int syslog_severity(Level level) {
  switch (level) {
    case Level::kDebug:
      return LOG_DEBUG;
    case Level::kInfo:
      return LOG_INFO;
    case Level::kWarning:
      return LOG_WARNING;
    case Level::kError:
      return LOG_ERR;
  }
  return LOG_INFO;
}

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void write_stderr(std::string_view line) {
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t written = ::write(STDERR_FILENO, data, left);
    if (written <= 0) return;  // nowhere to report a failing log
    data += written;
    left -= static_cast<std::size_t>(written);
  }
}

// The lines held by the LogBatch of this thread (log.h); null outside one.
thread_local std::string* held_lines = nullptr;

}  // namespace

LogBatch::LogBatch() : outermost_(held_lines == nullptr) {
  if (!outermost_) return;
  thread_local std::string buffer;  // kept between batches: no allocation once grown
  buffer.clear();
  held_lines = &buffer;
}

LogBatch::~LogBatch() {
  if (!outermost_) return;
  if (!held_lines->empty()) write_stderr(*held_lines);
  held_lines = nullptr;
}

void set_min_level(Level level) {
  min_level.store(static_cast<int>(level));
}

void set_format(Format format) {
  json_format.store(format == Format::kJson);
}

bool stderr_is_journal() {
  const char* value = std::getenv("JOURNAL_STREAM");
  if (value == nullptr) return false;
  std::string_view text(value);
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  unsigned long long device = 0;
  unsigned long long inode = 0;
  auto parse = [](std::string_view digits, unsigned long long& out) {
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return ec == std::errc() && end == digits.data() + digits.size() && !digits.empty();
  };
  if (!parse(text.substr(0, colon), device) || !parse(text.substr(colon + 1), inode)) {
    return false;
  }
  struct stat status {};
  if (::fstat(STDERR_FILENO, &status) != 0) return false;
  return static_cast<unsigned long long>(status.st_dev) == device &&
         static_cast<unsigned long long>(status.st_ino) == inode;
}

void set_stderr_journal(bool on) {
  stderr_journal.store(on);
}

constexpr std::pair<std::string_view, int> kFacilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};

int syslog_facility(std::string_view name) {
  for (const auto& [known, code] : kFacilities) {
    if (known == name) return code;
  }
  return -1;
}

std::string_view syslog_facility_name(int facility) {
  for (const auto& [name, code] : kFacilities) {
    if (code == facility) return name;
  }
  return {};
}

std::shared_ptr<const SyslogSink> make_syslog_sink(const std::string& socket_path, int facility) {
  sockaddr_un address{};
  if (socket_path.size() >= sizeof address.sun_path) return nullptr;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  return std::make_shared<const SyslogSink>(fd, facility, address);
}

void set_output(std::shared_ptr<const SyslogSink> sink) {
  std::shared_ptr<const SyslogSink> replaced;  // closed after the lock is released
  std::lock_guard lock(output_mutex);
  replaced = std::exchange(output, std::move(sink));
  to_syslog.store(output != nullptr, std::memory_order_release);
}

void append_value(std::string& out, std::string_view value) {
  if (!needs_quotes(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < ' ' || c == 0x7f) {
      out.append("\\x");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

Log::Log(std::string_view event, Level level)
    : enabled_(static_cast<int>(level) >= min_level.load(std::memory_order_relaxed)),
      json_(json_format.load(std::memory_order_relaxed)),
      journal_(stderr_journal.load(std::memory_order_relaxed)),
      level_(level) {
  if (!enabled_) return;
  line_.reserve(256);
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char stamp[40];
  std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char ms[5] = {'.', static_cast<char>('0' + millis / 100),
                static_cast<char>('0' + millis / 10 % 10), static_cast<char>('0' + millis % 10),
                'Z'};
  // The journal's priority first (sd-daemon(3): "<N>", one digit), then
  // {"time":"…","level":"…","event":"…"  or  … level=… event=… (the journal has the time)
  if (journal_) {
    line_.push_back('<');
    line_.push_back(static_cast<char>('0' + syslog_severity(level)));
    line_.push_back('>');
  }
  if (json_) {
    line_.append("{\"time\":\"");
    line_.append(stamp, n);
    line_.append(ms, 5);
    line_.append("\",\"level\":\"");
  } else {
    if (!journal_) {
      line_.append(stamp, n);
      line_.append(ms, 5);
      line_.push_back(' ');
    }
    line_.append("level=");
  }
  line_.append(to_string(level));
  line_.append(json_ ? "\",\"event\":" : " event=");
  if (json_) {
    base::append_json_string(line_, event);
  } else {
    append_value(line_, event);
  }
}

Log::~Log() {
  if (!enabled_) return;
  if (json_) line_.push_back('}');
  if (std::shared_ptr<const SyslogSink> sink = current_output()) {
    // RFC 3164 §4.1: <PRI>TIMESTAMP TAG: MSG — the daemon adds the host name. Our own
    // timestamp is left out of MSG (the daemon's record has one); JSON keeps its "time".
    std::string_view message = line_;
    if (journal_) {
      message.remove_prefix(3);  // "<N>"
    } else if (!json_) {
      message.remove_prefix(std::min(message.find(' ') + 1, message.size()));
    }
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char header[64];
    int pri = sink->facility | syslog_severity(level_);
    int n = std::snprintf(header, sizeof header, "<%d>", pri);
    n += static_cast<int>(std::strftime(header + n, sizeof header - static_cast<std::size_t>(n),
                                        "%b %e %H:%M:%S ", &tm));
    n += std::snprintf(header + n, sizeof header - static_cast<std::size_t>(n),
                       "smtpsd[%d]: ", sink->pid);
    // One datagram from two pieces, without copying the line into a buffer of its own.
    iovec parts[2] = {{header, static_cast<std::size_t>(n)},
                      {const_cast<char*>(message.data()), message.size()}};
    msghdr datagram{};
    datagram.msg_name = const_cast<sockaddr_un*>(&sink->address);
    datagram.msg_namelen = sizeof sink->address;
    datagram.msg_iov = parts;
    datagram.msg_iovlen = 2;
    if (::sendmsg(sink->fd, &datagram, MSG_NOSIGNAL) ==
        static_cast<ssize_t>(parts[0].iov_len + parts[1].iov_len))
      return;
    // The syslog daemon is away (restarting, not installed): keep the line on stderr.
  }
  line_.push_back('\n');
  if (std::string* held = held_lines) {
    if (held->size() + line_.size() > PIPE_BUF && !held->empty()) {
      write_stderr(*held);
      held->clear();
    }
    if (line_.size() <= PIPE_BUF) {  // a write no other thread's splits
      held->append(line_);
      return;
    }
  }
  write_stderr(line_);
}

std::optional<Level> parse_level(std::string_view name) {
  for (Level level : {Level::kDebug, Level::kInfo, Level::kWarning, Level::kError}) {
    if (name == to_string(level)) return level;
  }
  return std::nullopt;
}

Log& Log::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  if (json_) {
    line_.push_back(',');
    base::append_json_string(line_, key);
    line_.push_back(':');
    base::append_json_string(line_, value);
    return *this;
  }
  line_.push_back(' ');
  line_.append(key);
  line_.push_back('=');
  append_value(line_, value);
  return *this;
}

Log& Log::raw(std::string_view key, std::string_view json_number) {
  if (!enabled_) return *this;
  if (!json_) return kv(key, json_number);
  line_.push_back(',');
  base::append_json_string(line_, key);
  line_.push_back(':');
  line_.append(json_number);
  return *this;
}

Log& Log::kv(std::string_view key, std::int64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  return raw(key, std::string_view(buffer, static_cast<std::size_t>(end - buffer)));
}

Log& Log::kv(std::string_view key, std::uint64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  return raw(key, std::string_view(buffer, static_cast<std::size_t>(end - buffer)));
}

}  // namespace obs
