// Tests for obs/metrics_server.cpp: request handling and address checks.
#include "obs/metrics_server.h"

#include <gtest/gtest.h>

namespace {

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

// A registry with one counter and a server over it (not started: respond() is enough).
class MetricsServerTest : public ::testing::Test {
 protected:
  MetricsServerTest() { registry.counter("c_total", "C.").inc(); }
  obs::Registry registry;
  obs::MetricsServer server{registry, std::chrono::seconds(1)};
};

TEST_F(MetricsServerTest, AnswersGetMetricsAndRefusesTheRest) {
  std::string ok = server.respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_line(ok), "HTTP/1.1 200 OK");
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(ok.find("\r\n\r\n# HELP c_total C.\n"), std::string::npos);
  EXPECT_EQ(status_line(server.respond("GET /metrics?x=1 HTTP/1.0\r\n\r\n")), "HTTP/1.1 200 OK");
  EXPECT_EQ(status_line(server.respond("GET / HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(status_line(server.respond("POST /metrics HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(status_line(server.respond("hello\r\n\r\n")), "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(status_line(server.respond("GET /metrics SMTP/1.1\r\n\r\n")),
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(status_line(server.respond("get /metrics HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 400 Bad Request");
}

TEST_F(MetricsServerTest, HeadHasNoBody) {
  std::string head = server.respond("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_line(head), "HTTP/1.1 200 OK");
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
}

}  // namespace
