// duration_test.cpp — the duration syntax of the configuration (src/config/duration.h):
// the parser alone, then the reader's errors that name file, line and key.
#include "config/duration.h"

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace {

using std::chrono::milliseconds;

constexpr const char* kMinimalDurationConfig = R"([server]
hostname = "mx.example.org"
data_dir = "/var/lib/smtpsd"

[[tls.certificates]]
certificate = "/etc/smtpsd/cert.pem"
key = "/etc/smtpsd/key.pem"

[[domains]]
name = "example.org"

[[listeners]]
role = "smtp"
address = "0.0.0.0"
)";

TEST(DurationTest, NumbersWithUnitsAreWholeMilliseconds) {
  EXPECT_EQ(config::parse_duration("250ms").value(), milliseconds(250));
  EXPECT_EQ(config::parse_duration("0ms").value(), milliseconds(0));
  EXPECT_EQ(config::parse_duration("1.5s").value(), milliseconds(1500));
  EXPECT_EQ(config::parse_duration("0.25s").value(), milliseconds(250));
  EXPECT_EQ(config::parse_duration("0.001s").value(), milliseconds(1));
  EXPECT_EQ(config::parse_duration("900s").value(), std::chrono::minutes(15));
  EXPECT_EQ(config::parse_duration("15m").value(), std::chrono::minutes(15));
  EXPECT_EQ(config::parse_duration("1.5m").value(), std::chrono::seconds(90));
  EXPECT_EQ(config::parse_duration("2h").value(), std::chrono::hours(2));
  EXPECT_EQ(config::parse_duration("7d").value(), std::chrono::hours(7 * 24));
  EXPECT_EQ(config::parse_duration("1.000s").value(), milliseconds(1000));
}

TEST(DurationTest, BadTextSaysWhatIsWrong) {
  struct Case {
    const char* text;
    const char* why;
  };
  for (const Case& c :
       {Case{"", "must start with a number"}, Case{"ms", "must start with a number"},
        Case{"-1s", "must not be negative"}, Case{"10", "no unit"}, Case{"1.5", "no unit"},
        Case{"10 s", "unknown unit \" s\""}, Case{"10sec", "unknown unit \"sec\""},
        Case{"10S", "unknown unit \"S\""}, Case{"1.s", "no digit after the decimal point"},
        Case{".5s", "must start with a number"}, Case{"0.5ms", "finer than a millisecond"},
        Case{"0.0001s", "finer than a millisecond"},
        Case{"1.0000000001s", "finer than a millisecond"},
        Case{"99999999999999999999s", "too large"}, Case{"9999999999999999d", "too large"},
        Case{"1e3s", "unknown unit"}, Case{"1,5s", "unknown unit"}}) {
    auto parsed = config::parse_duration(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_NE(parsed.error().find(c.why), std::string::npos) << c.text << ": " << parsed.error();
    // The error quotes the text and shows the syntax.
    EXPECT_NE(parsed.error().find(std::string("\"") + c.text + "\""), std::string::npos)
        << parsed.error();
    EXPECT_NE(parsed.error().find("\"250ms\""), std::string::npos) << parsed.error();
  }
}

TEST(DurationTest, FormatReadsBack) {
  EXPECT_EQ(config::format_duration(std::chrono::minutes(15)), "900s");
  EXPECT_EQ(config::format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(config::format_duration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(config::format_duration(milliseconds(0)), "0s");
  for (milliseconds value : {milliseconds(1), milliseconds(999), milliseconds(60'000)}) {
    EXPECT_EQ(config::parse_duration(config::format_duration(value)).value(), value);
  }
}

TEST(DurationConfigTest, IntegersAreSecondsAndStringsCarryUnits) {
  auto parsed = config::parse(std::string(kMinimalDurationConfig) + R"(
[auth]
failure_window = "250ms"
failure_delay = "20ms"

[timeouts]
command = 2
data = "1.5s"
handshake = "10m"
shutdown_grace = "0s"
)",
                              "/etc/smtpsd/test.toml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().to_string();
  const config::Config& c = parsed.value();
  EXPECT_EQ(c.auth.failure_window, milliseconds(250));
  EXPECT_EQ(c.auth.failure_delay, milliseconds(20));
  EXPECT_EQ(c.command_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c.data_timeout, milliseconds(1500));
  EXPECT_EQ(c.handshake_timeout, std::chrono::minutes(10));
  EXPECT_EQ(c.shutdown_grace, milliseconds(0));
  EXPECT_NE(config::describe(c).find("within 250ms"), std::string::npos) << config::describe(c);
  EXPECT_NE(config::describe(c).find("timeouts: command 2s, data 1500ms, handshake 600s"),
            std::string::npos)
      << config::describe(c);
}

TEST(DurationConfigTest, TheCertificateWatchPollsEveryTwoSecondsUnlessToldOtherwise) {
  auto plain = config::parse(std::string(kMinimalDurationConfig), "/etc/smtpsd/test.toml");
  ASSERT_TRUE(plain.has_value()) << plain.error().to_string();
  EXPECT_EQ(plain.value().certificate_poll, std::chrono::seconds(2));
  auto quick =
      config::parse(std::string(kMinimalDurationConfig) + "\n[tls]\nwatch_interval = \"100ms\"\n",
                    "/etc/smtpsd/test.toml");
  ASSERT_TRUE(quick.has_value()) << quick.error().to_string();
  EXPECT_EQ(quick.value().certificate_poll, milliseconds(100));
}

TEST(DurationConfigTest, BadValuesNameFileLineAndKey) {
  struct Case {
    const char* toml;
    const char* key;
    const char* why;
  };
  for (const Case& c : {
           Case{"[timeouts]\ncommand = \"5 minutes\"\n", "timeouts.command", "unknown unit"},
           Case{"[timeouts]\ncommand = \"300\"\n", "timeouts.command", "no unit"},
           Case{"[timeouts]\ndata = 1.5\n", "timeouts.data", "must be a duration"},
           Case{"[timeouts]\ndata = true\n", "timeouts.data", "must be a duration"},
           Case{"[timeouts]\nhandshake = -1\n", "timeouts.handshake", "must not be negative"},
           Case{"[timeouts]\nhandshake = \"0ms\"\n", "timeouts.handshake",
                "must be between 1ms and 600s"},
           Case{"[timeouts]\nhandshake = \"11m\"\n", "timeouts.handshake",
                "must be between 1ms and 600s"},
           Case{"[timeouts]\ncommand = 9223372036854775807\n", "timeouts.command",
                "must be between 1ms and 3600s"},
           Case{"[auth]\nfailure_window = \"0.1ms\"\n", "auth.failure_window",
                "finer than a millisecond"},
           Case{"[auth]\nfailure_delay = \"2m\"\n", "auth.failure_delay",
                "must be between 0s and 60s"},
           Case{"[tls]\nwatch_interval = \"10ms\"\n", "tls.watch_interval",
                "must be between 50ms and 3600s"},
       }) {
    auto parsed =
        config::parse(std::string(kMinimalDurationConfig) + "\n" + c.toml, "/etc/smtpsd/test.toml");
    ASSERT_FALSE(parsed.has_value()) << c.toml;
    const config::ConfigError& e = parsed.error();
    EXPECT_EQ(e.file, "/etc/smtpsd/test.toml");
    EXPECT_EQ(e.key, c.key) << c.toml;
    EXPECT_EQ(e.line, 17) << c.toml;  // the key's own line, after the table header
    EXPECT_NE(e.message.find(c.why), std::string::npos) << c.toml << ": " << e.message;
  }
}

}  // namespace
