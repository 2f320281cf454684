// Tests for obs/log.cpp: values that could break the key=value format are quoted.
#include "obs/log.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/json.h"
#include "obs/log_capture.h"

namespace {

std::string value(std::string_view v) {
  std::string out;
  obs::append_value(out, v);
  return out;
}

TEST(LogTest, PlainValuesStayPlain) {
  EXPECT_EQ(value("TLSv1.3"), "TLSv1.3");
  EXPECT_EQ(value("192.0.2.7"), "192.0.2.7");
}

TEST(LogTest, ValuesThatCouldForgeKeysAreQuoted) {
  EXPECT_EQ(value("a b"), "\"a b\"");
  EXPECT_EQ(value("x=1"), "\"x=1\"");
  EXPECT_EQ(value(""), "\"\"");
  EXPECT_EQ(value("say \"hi\""), "\"say \\\"hi\\\"\"");
  // A CR/LF in a client-supplied value must not start a new log line.
  EXPECT_EQ(value("evil\r\nevent=forged"), "\"evil\\x0d\\x0aevent=forged\"");
}

}  // namespace

namespace {

std::string json(std::string_view v) {
  std::string out;
  base::append_json_string(out, v);
  return out;
}

TEST(LogJsonTest, StringsAreEscapedPerRfc8259) {
  EXPECT_EQ(json("plain"), "\"plain\"");
  EXPECT_EQ(json("say \"hi\" \\ back"), "\"say \\\"hi\\\" \\\\ back\"");
  EXPECT_EQ(json("a\r\nb\tc"), "\"a\\r\\nb\\tc\"");
  EXPECT_EQ(json(std::string_view("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(json("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\"");  // UTF-8 kept
}

TEST(LogJsonTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  EXPECT_EQ(json("a\xff"
                 "b"),
            "\"a\\ufffdb\"");
  EXPECT_EQ(json("\xc3"), "\"\\ufffd\"");                        // truncated sequence
  EXPECT_EQ(json("\xc0\xaf"), "\"\\ufffd\\ufffd\"");             // overlong '/'
  EXPECT_EQ(json("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");  // surrogate
}

// A datagram socket at a path in a fresh directory, drained by its own thread.
class Receiver {
 public:
  explicit Receiver(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    timeval tv{0, 100000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] {
      char buffer[4096];
      for (;;) {
        ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n > 0 &&
            std::string_view(buffer, static_cast<std::size_t>(n)).find("event=swap_test") !=
                std::string_view::npos)
          ++received;
        if (n < 0 && stop) return;
      }
    });
  }
  ~Receiver() {
    stop = true;
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::atomic<int> received{0};
  std::atomic<bool> stop{false};

 private:
  std::string path_;
  int fd_;
  std::thread thread_;
};

// A reload swaps the output while I/O threads write: every line reaches one of the two
// sockets (a line written to a socket closed under it would go to stderr, or nowhere).
TEST(LogOutputTest, SwappingSinksUnderConcurrentWritersLosesNoLine) {
  char dir_template[] = "/tmp/smtpsd-log-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  constexpr int kWriters = 4, kLines = 400;
  {
    Receiver a(dir + "/a.sock"), b(dir + "/b.sock");
    obs::set_output(obs::make_syslog_sink(dir + "/a.sock", LOG_LOCAL0));
    std::atomic<int> done{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&done, w] {
        for (int i = 0; i < kLines; ++i)
          obs::Log("swap_test").kv("writer", w).kv("line", i);
        ++done;
      });
    }
    for (int swaps = 0; done < kWriters; ++swaps) {
      auto sink = obs::make_syslog_sink(dir + (swaps % 2 ? "/a.sock" : "/b.sock"), LOG_LOCAL0);
      ASSERT_NE(sink, nullptr);
      obs::set_output(std::move(sink));
      std::this_thread::yield();
    }
    for (std::thread& t : writers)
      t.join();
    obs::set_output(nullptr);
    for (int waited = 0; a.received + b.received < kWriters * kLines && waited < 100; ++waited)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(a.received + b.received, kWriters * kLines);
  }
  ::rmdir(dir.c_str());
}

TEST(LogOutputTest, SocketPathTooLongForAnAddressIsRefused) {
  EXPECT_EQ(obs::make_syslog_sink("/" + std::string(200, 'x'), LOG_MAIL), nullptr);
}

// While it lives, stderr is a fresh temporary file; text() reads what was written to it.
class StderrToFile {
 public:
  StderrToFile() {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    char path[] = "/tmp/smtpsd-log-stderr-XXXXXX";
    int fd = ::mkstemp(path);
    path_ = path;
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~StderrToFile() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::unlink(path_.c_str());
  }
  StderrToFile(const StderrToFile&) = delete;
  StderrToFile& operator=(const StderrToFile&) = delete;
  std::string text() const {
    std::string out;
    if (FILE* f = std::fopen(path_.c_str(), "rb")) {
      char buffer[4096];
      for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0;)
        out.append(buffer, n);
      std::fclose(f);
    }
    return out;
  }

 private:
  int saved_;
  std::string path_;
};

std::string device_and_inode(int fd, long long inode_delta = 0) {
  struct stat status {};
  EXPECT_EQ(::fstat(fd, &status), 0);
  return std::to_string(status.st_dev) + ":" + std::to_string(status.st_ino + inode_delta);
}

// systemd.exec(5): $JOURNAL_STREAM is "DEVICE:INODE" of the stream; it is inherited, so it
// only counts when it names what stderr is now.
TEST(LogJournalTest, JournalStreamMustNameStderrItself) {
  StderrToFile capture;
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(obs::stderr_is_journal());
  ::setenv("JOURNAL_STREAM", device_and_inode(STDERR_FILENO).c_str(), 1);
  EXPECT_TRUE(obs::stderr_is_journal());
  ::setenv("JOURNAL_STREAM", device_and_inode(STDERR_FILENO, 1).c_str(), 1);
  EXPECT_FALSE(obs::stderr_is_journal());
  for (const char* bad : {"", ":", "12", "12:", ":34", "x:y", "12:34:56"}) {
    ::setenv("JOURNAL_STREAM", bad, 1);
    EXPECT_FALSE(obs::stderr_is_journal()) << bad;
  }
  ::unsetenv("JOURNAL_STREAM");
}

// sd-daemon(3) priorities, no timestamp of our own (the journal records the time).
TEST(LogJournalTest, LinesStartWithTheSyslogPriorityInsteadOfATimestamp) {
  StderrToFile capture;
  obs::set_min_level(obs::Level::kDebug);
  obs::set_stderr_journal(true);
  obs::Log("journal_test", obs::Level::kError).kv("n", 1);
  obs::Log("journal_test", obs::Level::kWarning).kv("client", "192.0.2.7");
  obs::Log("journal_test", obs::Level::kInfo);
  obs::Log("journal_test", obs::Level::kDebug);
  obs::set_format(obs::Format::kJson);
  obs::Log("journal_test", obs::Level::kWarning);
  obs::set_format(obs::Format::kKeyValue);
  obs::set_stderr_journal(false);
  obs::Log("journal_test", obs::Level::kInfo);
  obs::set_min_level(obs::Level::kInfo);
  std::string text = capture.text();
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1)
    lines.push_back(text.substr(start, end - start));
  ASSERT_EQ(lines.size(), 6u) << text;
  EXPECT_EQ(lines[0], "<3>level=error event=journal_test n=1");
  EXPECT_EQ(lines[1], "<4>level=warning event=journal_test client=192.0.2.7");
  EXPECT_EQ(lines[2], "<6>level=info event=journal_test");
  EXPECT_EQ(lines[3], "<7>level=debug event=journal_test");
  EXPECT_EQ(lines[4].substr(0, 12), "<4>{\"time\":\"") << lines[4];  // JSON keeps its time
  EXPECT_NE(lines[4].find("\"level\":\"warning\",\"event\":\"journal_test\"}"), std::string::npos)
      << lines[4];
  EXPECT_NE(lines[5].find("Z level=info event=journal_test"), std::string::npos) << lines[5];
  EXPECT_EQ(lines[5][0], '2') << lines[5];  // off again: the timestamp is back
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  for (std::size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1)
    lines.push_back(text.substr(start, end - start));
  return lines;
}

// What a batch holds reaches stderr when it ends, in order; a line after it at once; a batch
// inside another writes nothing of its own.
TEST(LogBatchTest, LinesAreHeldUntilTheOutermostBatchEndsThenWrittenInOrder) {
  StderrToFile capture;
  {
    obs::LogBatch outer;
    obs::Log("batch_test").kv("n", 1);
    {
      obs::LogBatch inner;
      obs::Log("batch_test").kv("n", 2);
    }
    obs::Log("batch_test").kv("n", 3);
    EXPECT_EQ(capture.text(), "");
  }
  std::vector<std::string> lines = split_lines(capture.text());
  ASSERT_EQ(lines.size(), 3u) << capture.text();
  for (int n = 1; n <= 3; ++n)
    EXPECT_NE(lines[n - 1].find("event=batch_test n=" + std::to_string(n)), std::string::npos);
  obs::Log("batch_test").kv("n", 4);
  EXPECT_EQ(split_lines(capture.text()).size(), 4u);
}

// No write holds more than PIPE_BUF bytes (on a pipe, a longer one could take in another
// thread's line), unless a line alone is longer: it goes alone, after what was held.
TEST(LogBatchTest, AWriteHoldsAtMostPipeBufBytesUnlessOneLineIsLonger) {
  StderrToFile capture;
  std::vector<std::size_t> written;  // the size of stderr after each line
  {
    obs::LogBatch batch;
    for (int n = 0; n < 30; ++n) {
      obs::Log("batch_test").kv("n", n).kv("pad", std::string(n == 20 ? 6000 : 300, 'x'));
      written.push_back(capture.text().size());
    }
  }
  const std::string text = capture.text();
  written.push_back(text.size());
  std::size_t before = 0;
  int writes = 0;
  for (std::size_t size : written) {
    if (size == before) continue;
    ++writes;
    EXPECT_EQ(text[size - 1], '\n');  // whole lines only
    const std::string chunk = text.substr(before, size - before);
    const std::vector<std::string> in_chunk = split_lines(chunk);
    if (chunk.find(std::string(6000, 'x')) != std::string::npos) {
      // what was held, then the long line, last
      ASSERT_FALSE(in_chunk.empty());
      EXPECT_NE(in_chunk.back().find(std::string(6000, 'x')), std::string::npos);
      EXPECT_LE(chunk.size() - in_chunk.back().size() - 1, 4096u);
    } else {
      EXPECT_LE(chunk.size(), 4096u);
    }
    before = size;
  }
  // Held: nothing reached stderr with the first line, and 30 lines took a few writes.
  EXPECT_EQ(written.front(), 0u);
  EXPECT_GE(writes, 3);
  EXPECT_LE(writes, 6);
  std::vector<std::string> lines = split_lines(text);
  ASSERT_EQ(lines.size(), 30u);
  for (int n = 0; n < 30; ++n)
    EXPECT_NE(lines[n].find(" n=" + std::to_string(n) + " "), std::string::npos) << n;
}

// A syslog daemon gets each line as its own datagram, at once, batch or not.
TEST(LogBatchTest, SyslogLinesAreSentAtOnceInsideABatch) {
  obs_test::LogCapture capture;
  obs::LogBatch batch;
  obs::Log("batch_syslog_test");
  EXPECT_EQ(capture.count("event=batch_syslog_test"), 1u);
}

}  // namespace
