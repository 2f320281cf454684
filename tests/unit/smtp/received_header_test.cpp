// received_header_test.cpp — the trace field of RFC 5321 §4.4: the network form names the
// client's address literal; a local submission names the host user instead.
#include "smtp/received_header.h"

#include <gtest/gtest.h>

namespace smtp {
namespace {

ReceivedFields base_fields() {
  ReceivedFields f;
  f.helo = "client.example";
  f.client_address = "192.0.2.7";
  f.by_hostname = "mx.example.org";
  f.with_protocol = "ESMTPS";
  f.queue_id = "Q1";
  f.unix_time = 0;
  return f;
}

TEST(ReceivedHeaderTest, NetworkClientIsNamedByItsAddressLiteral) {
  std::string header = received_header(base_fields());
  EXPECT_EQ(header.rfind("Received: from client.example ([192.0.2.7])\r\n\tby mx.example.org "
                         "(smtpsd) with ESMTPS id Q1",
                         0),
            0u)
      << header;
}

TEST(ReceivedHeaderTest, LocalSubmissionNamesTheHostUserAndNoAddress) {
  ReceivedFields f = base_fields();
  f.client_address = "local";
  f.with_protocol = "ESMTPA";
  f.local_user = "www-data";
  f.local_uid = 33;
  std::string header = received_header(f);
  EXPECT_EQ(header.rfind("Received: by mx.example.org (smtpsd, from local user www-data, uid 33)"
                         "\r\n\twith ESMTPA id Q1",
                         0),
            0u)
      << header;
  EXPECT_EQ(header.find("[local]"), std::string::npos);
}

TEST(ReceivedHeaderTest, LocalUserNameCannotInjectALine) {
  ReceivedFields f = base_fields();
  f.local_user = "evil\r\nBcc: x@example";
  std::string header = received_header(f);
  EXPECT_EQ(header.find("\r\nBcc"), std::string::npos) << header;
}

}  // namespace
}  // namespace smtp
