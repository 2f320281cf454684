// endpoint_test.cpp — base/endpoint.h: HOST:PORT, unix:/path and smtp(s):// URLs, the good
// forms and the bad ones every caller relies on being refused.
#include "base/endpoint.h"

#include <gtest/gtest.h>

namespace {

using base::HostPort;
using base::HostPortForm;

// Forms by their fields (designated initializers would leave fields out, which -Wextra flags).
HostPortForm form(std::optional<std::uint16_t> default_port, bool numeric_host = false,
                  bool port_zero = false, bool bare_ipv6 = false) {
  HostPortForm out;
  out.default_port = default_port;
  out.numeric_host = numeric_host;
  out.port_zero = port_zero;
  out.bare_ipv6 = bare_ipv6;
  return out;
}

TEST(EndpointTest, HostAndPortInEachForm) {
  EXPECT_EQ(base::parse_host_port("127.0.0.1:25").value(), (HostPort{"127.0.0.1", 25}));
  EXPECT_EQ(base::parse_host_port("[::1]:2525").value(), (HostPort{"::1", 2525}));
  EXPECT_EQ(base::parse_host_port("mx.example.net:65535").value(),
            (HostPort{"mx.example.net", 65535}));
  const HostPortForm optional_port = form(25);
  EXPECT_EQ(base::parse_host_port("mx.example.net", optional_port).value(),
            (HostPort{"mx.example.net", 25}));
  EXPECT_EQ(base::parse_host_port("[2001:db8::1]", optional_port).value(),
            (HostPort{"2001:db8::1", 25}));
  const HostPortForm bare = form(53, false, false, true);
  EXPECT_EQ(base::parse_host_port("2001:db8::53", bare).value(), (HostPort{"2001:db8::53", 53}));
  const HostPortForm listener = form(std::nullopt, true, true);
  EXPECT_EQ(base::parse_host_port("[::1]:0", listener).value(), (HostPort{"::1", 0}));
}

TEST(EndpointTest, BadHostPortTextsAreRefusedWithAReason) {
  struct Bad {
    const char* text;
    HostPortForm form;
    const char* reason;
  };
  for (const Bad& bad : std::initializer_list<Bad>{
           {"127.0.0.1", {}, "missing :PORT"},
           {"127.0.0.1:", {}, "the port must be 1 to 65535"},
           {"127.0.0.1:0", {}, "the port must be 1 to 65535"},
           {"127.0.0.1:65536", {}, "the port must be 1 to 65535"},
           {"127.0.0.1:70000", form(std::nullopt, false, true), "the port must be 0 to 65535"},
           {"127.0.0.1:+25", {}, "the port must be 1 to 65535"},
           {"127.0.0.1:25a", {}, "the port must be 1 to 65535"},
           {":25", {}, "no host"},
           {"", form(25), "no host"},
           {"[::1", {}, "missing ']'"},
           {"[::1]25", {}, "unexpected text after ']'"},
           {"[mx.example.net]:25", {}, "not an IPv6 address"},
           {"[127.0.0.1]:25", {}, "not an IPv6 address"},
           {"::1:25", {}, "in brackets"},
           {"2001:db8::1", form(25), "in brackets"},
           {"x:y:z", form(25, false, false, true), "not an IP address"},
           {"localhost:9464", form(std::nullopt, true), "not an IP address"},
           {"user@mx.example.net:25", {}, "not a host name"},
           {"mx.example.net/x:25", {}, "not a host name"},
       }) {
    auto parsed = base::parse_host_port(bad.text, bad.form);
    ASSERT_FALSE(parsed) << bad.text;
    EXPECT_NE(parsed.error().find(bad.reason), std::string::npos)
        << bad.text << ": " << parsed.error();
  }
}

TEST(EndpointTest, ToStringPutsTheBracketsBack) {
  EXPECT_EQ(base::to_string(HostPort{"2001:db8::1", 53}), "[2001:db8::1]:53");
  EXPECT_EQ(base::to_string(HostPort{"192.0.2.1", 25}), "192.0.2.1:25");
  for (const char* text : {"[2001:db8::1]:53", "192.0.2.1:25", "mx.example.net:587"}) {
    EXPECT_EQ(base::to_string(base::parse_host_port(text).value()), text);
  }
}

TEST(EndpointTest, Lists) {
  const HostPortForm dns = form(53, true, false, true);
  auto list = base::parse_host_port_list("127.0.0.1:5353,[::1]:53,::2", dns);
  ASSERT_TRUE(list) << list.error();
  EXPECT_EQ(list.value(), (std::vector<HostPort>{{"127.0.0.1", 5353}, {"::1", 53}, {"::2", 53}}));
  EXPECT_FALSE(base::parse_host_port_list("", dns));
  EXPECT_FALSE(base::parse_host_port_list("127.0.0.1,", dns));
  auto bad = base::parse_host_port_list("127.0.0.1,dns.example:53", dns);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "'dns.example:53': not an IP address");
}

TEST(EndpointTest, UnixSocketsAndTcp) {
  auto unix_socket = base::parse_endpoint("unix:/run/dovecot/lmtp");
  ASSERT_TRUE(unix_socket) << unix_socket.error();
  EXPECT_TRUE(unix_socket->is_unix());
  EXPECT_EQ(unix_socket->unix_path, "/run/dovecot/lmtp");
  EXPECT_EQ(base::to_string(*unix_socket), "unix:/run/dovecot/lmtp");
  auto tcp = base::parse_endpoint("[::1]:24");
  ASSERT_TRUE(tcp) << tcp.error();
  EXPECT_FALSE(tcp->is_unix());
  EXPECT_EQ(tcp->tcp, (HostPort{"::1", 24}));
  EXPECT_EQ(base::to_string(*tcp), "[::1]:24");
  for (const std::string& bad :
       {std::string("unix:"), std::string("unix:/"), std::string("unix:relative/lmtp"),
        "unix:/" + std::string(107, 'x'), std::string("/run/dovecot/lmtp"),
        std::string("127.0.0.1:")}) {
    EXPECT_FALSE(base::parse_endpoint(bad)) << bad;
  }
  EXPECT_TRUE(base::parse_endpoint("unix:/" + std::string(106, 'x')));  // sun_path is 108
}

TEST(EndpointTest, SmtpUrls) {
  EXPECT_EQ(base::parse_smtp_url("smtps://mail.example.net").value(),
            (base::SmtpUrl{true, "mail.example.net", 465}));
  EXPECT_EQ(base::parse_smtp_url("smtp://mail.example.net/").value(),
            (base::SmtpUrl{false, "mail.example.net", 587}));
  EXPECT_EQ(base::parse_smtp_url("smtp://[::1]:2525").value(), (base::SmtpUrl{false, "::1", 2525}));
  EXPECT_EQ(base::to_string(base::SmtpUrl{true, "::1", 465}), "smtps://[::1]:465");
  for (const char* bad :
       {"mail.example.net", "https://x.example", "SMTP://x.example", "smtp://", "smtp:///",
        "smtp://x:", "smtp://x:0", "smtp://x:70000", "smtp://x:12a", "smtps://[::1", "smtp://u@x",
        "smtp://x//", "smtp://x/path", "smtp://::1", "smtp://a:b:c"}) {
    EXPECT_FALSE(base::parse_smtp_url(bad)) << bad;
  }
  EXPECT_NE(base::parse_smtp_url("http://x").error().find("smtps://HOST[:PORT]"),
            std::string::npos);
}

}  // namespace
