// Tests for acme/http01_responder.cpp: only /.well-known/acme-challenge/<token> of a
// challenge under way gets its key authorization; a real socket on its own thread.
#include "acme/http01_responder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

std::string fetch(std::uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string out;
  char buffer[1024];
  for (ssize_t got; (got = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;)
    out.append(buffer, static_cast<std::size_t>(got));
  ::close(fd);
  return out;
}

TEST(Http01ResponderTest, AnswersOnlyTheChallengesUnderWay) {
  auto responder = acme::Http01Responder::bind("127.0.0.1", 0);
  ASSERT_TRUE(responder.has_value()) << responder.error();
  acme::Http01Responder& r = *responder.value();
  r.publish("tok", "tok.thumb");
  const std::string ok =
      r.answer("GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Length: 9\r\n"), std::string::npos);
  EXPECT_EQ(ok.substr(ok.size() - 9), "tok.thumb");
  const std::string head = r.answer("HEAD /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
  EXPECT_EQ(r.answer("GET /.well-known/acme-challenge/other HTTP/1.1\r\n\r\n").substr(9, 3), "404");
  EXPECT_EQ(r.answer("GET /.well-known/acme-challenge/ HTTP/1.1\r\n\r\n").substr(9, 3), "404");
  EXPECT_EQ(r.answer("GET /index.html HTTP/1.1\r\n\r\n").substr(9, 3), "404");
  EXPECT_EQ(r.answer("GET /../.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n").substr(9, 3),
            "404");
  EXPECT_EQ(r.answer("POST /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n").substr(9, 3), "405");
  EXPECT_EQ(r.answer("garbage\r\n\r\n").substr(9, 3), "400");
  r.withdraw("tok");
  EXPECT_EQ(r.answer("GET /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n").substr(9, 3), "404");
}

TEST(Http01ResponderTest, ServesOverASocketOnItsOwnThread) {
  auto responder = acme::Http01Responder::bind("127.0.0.1", 0);
  ASSERT_TRUE(responder.has_value()) << responder.error();
  acme::Http01Responder& r = *responder.value();
  ASSERT_NE(r.port(), 0);
  r.publish("abc", "abc.key");
  r.start();
  std::string answer =
      fetch(r.port(), "GET /.well-known/acme-challenge/abc HTTP/1.1\r\nHost: mx\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer;
  EXPECT_EQ(answer.substr(answer.size() - 7), "abc.key");
  // A request head split over segments is put together.
  answer = fetch(r.port(), "GET /.well-known/acme-challenge/nope HTTP/1.0\r\n\r\n");
  EXPECT_EQ(answer.substr(9, 3), "404");
  r.stop();
}

// Idle connections (more than the old backlog of 16) do not make the CA's request wait: the
// responder serves them all at once, and pushes out the oldest of a client over its cap.
TEST(Http01ResponderTest, IdleConnectionsDoNotDelayARealRequest) {
  auto responder = acme::Http01Responder::bind("127.0.0.1", 0);
  ASSERT_TRUE(responder.has_value()) << responder.error();
  acme::Http01Responder& r = *responder.value();
  r.publish("abc", "abc.key");
  r.start();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(r.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    idle.push_back(fd);
  }
  // One at a time, each idle connection held the responder for kRequestTimeout (2 s): 40 s.
  const auto started = std::chrono::steady_clock::now();
  const std::string answer =
      fetch(r.port(), "GET /.well-known/acme-challenge/abc HTTP/1.1\r\nHost: mx\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer;
  EXPECT_LT(std::chrono::steady_clock::now() - started,
            10 * acme::Http01Responder::kRequestTimeout);
  for (int fd : idle)
    ::close(fd);
  r.stop();
}

TEST(Http01ResponderTest, APortInUseIsAClearError) {
  auto first = acme::Http01Responder::bind("127.0.0.1", 0);
  ASSERT_TRUE(first.has_value());
  auto second = acme::Http01Responder::bind("127.0.0.1", first.value()->port());
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().find("cannot listen on 127.0.0.1:"), std::string::npos)
      << second.error();
  EXPECT_NE(second.error().find("Address already in use"), std::string::npos);
  EXPECT_FALSE(acme::Http01Responder::bind("not-an-address", 80).has_value());
}

}  // namespace
