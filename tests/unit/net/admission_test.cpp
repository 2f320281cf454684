// Connection admission: the total and per-client limits, release, and new limits.
#include "net/admission.h"

#include "net/server.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <memory>

namespace net {
namespace {

class AdmissionTest : public ::testing::Test {
 protected:
  std::shared_ptr<Connection> connection() {
    return std::make_shared<Connection>(asio::ip::tcp::socket(context_));
  }
  asio::io_context context_;
};

TEST_F(AdmissionTest, RefusesPastTheTotalAndTakesAgainAfterARelease) {
  Admission admission("mx.example", 2, 10, 0);
  auto a = connection(), b = connection(), c = connection();
  EXPECT_FALSE(admission.admit(a, "192.0.2.1", true));
  EXPECT_FALSE(admission.admit(b, "192.0.2.2", true));
  auto refused = admission.admit(c, "192.0.2.3", true);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->limit, "total");
  EXPECT_EQ(admission.open_connections().size(), 2u);
  admission.release(a, "192.0.2.1", true);
  EXPECT_FALSE(admission.admit(c, "192.0.2.3", true));
}

TEST_F(AdmissionTest, CountsEachClientSeparately) {
  Admission admission("mx.example", 100, 2, 0);
  auto a = connection(), b = connection(), c = connection(), d = connection();
  EXPECT_FALSE(admission.admit(a, "192.0.2.1", true));
  EXPECT_FALSE(admission.admit(b, "192.0.2.1", true));
  auto refused = admission.admit(c, "192.0.2.1", true);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->limit, "per_ip");
  EXPECT_FALSE(admission.admit(d, "192.0.2.2", true));  // another client is not affected
  admission.release(a, "192.0.2.1", true);
  EXPECT_FALSE(admission.admit(c, "192.0.2.1", true));
}

// An IPv6 client is its /64 (base::client_network): a second address of the same /64 is
// the same client for the open-connection limit and the rate, another /64 is not; an
// IPv4-mapped address is its IPv4 client.
TEST_F(AdmissionTest, Ipv6ClientsAreCountedPerPrefix) {
  Admission admission("mx.example", 100, 2, 0);
  auto a = connection(), b = connection(), c = connection(), d = connection();
  EXPECT_FALSE(admission.admit(a, "2001:db8:1:2::1", true));
  EXPECT_FALSE(admission.admit(b, "2001:db8:1:2::2", true));
  auto refused = admission.admit(c, "2001:db8:1:2:ffff::3", true);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->limit, "per_ip");
  EXPECT_FALSE(admission.admit(d, "2001:db8:1:3::1", true));  // another /64
  admission.release(a, "2001:db8:1:2::1", true);              // released by its own address
  EXPECT_FALSE(admission.admit(c, "2001:db8:1:2:ffff::3", true));

  Admission mapped("mx.example", 100, 1, 0);
  EXPECT_FALSE(mapped.admit_client("192.0.2.7"));
  EXPECT_TRUE(mapped.admit_client("::ffff:192.0.2.7"));

  Admission narrow("mx.example", 100, 1, 0, /*ipv6_prefix=*/128);
  EXPECT_FALSE(narrow.admit_client("2001:db8:1:2::1"));
  EXPECT_FALSE(narrow.admit_client("2001:db8:1:2::2"));

  Admission rate("mx.example", 100, 100, 2);
  EXPECT_FALSE(rate.admit_client("2001:db8:1:2::1"));
  EXPECT_FALSE(rate.admit_client("2001:db8:1:2::2"));
  auto too_fast = rate.admit_client("2001:db8:1:2::3");
  ASSERT_TRUE(too_fast);
  EXPECT_EQ(too_fast->limit, "rate");
  EXPECT_FALSE(rate.admit_client("2001:db8:1:3::1"));
}

TEST_F(AdmissionTest, AProxiedConnectionIsCountedForItsClientOnlyOnceNamed) {
  Admission admission("mx.example", 100, 1, 0);
  auto a = connection(), b = connection();
  EXPECT_FALSE(admission.admit(a, "10.0.0.1", /*per_client=*/false));  // the proxy's address
  EXPECT_FALSE(admission.admit(b, "10.0.0.1", /*per_client=*/false));  // not counted for it
  EXPECT_FALSE(admission.admit_client("198.51.100.7"));
  auto refused = admission.admit_client("198.51.100.7");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->limit, "per_ip");
  admission.release(a, "198.51.100.7", true);
  admission.release(b, "10.0.0.1", false);
  EXPECT_TRUE(admission.none_open());
  EXPECT_FALSE(admission.admit_client("198.51.100.7"));
}

TEST_F(AdmissionTest, NewLimitsApplyToTheNextConnection) {
  Admission admission("mx.example", 1, 10, 0);
  auto a = connection(), b = connection();
  EXPECT_FALSE(admission.admit(a, "192.0.2.1", true));
  EXPECT_TRUE(admission.admit(b, "192.0.2.2", true));
  admission.set_limits(2, 10);
  EXPECT_FALSE(admission.admit(b, "192.0.2.2", true));
}

TEST_F(AdmissionTest, RefusesPastTheRatePerMinute) {
  Admission admission("mx.example", 100, 100, 2);
  auto a = connection(), b = connection(), c = connection();
  EXPECT_FALSE(admission.admit(a, "192.0.2.1", true));
  admission.release(a, "192.0.2.1", true);
  EXPECT_FALSE(admission.admit(b, "192.0.2.1", true));
  admission.release(b, "192.0.2.1", true);
  auto refused = admission.admit(c, "192.0.2.1", true);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->limit, "rate");
}

// A refused connection gets the 421 on a plaintext role and nothing on implicit TLS (where
// the client expects a ClientHello answer), and is closed either way.
TEST_F(AdmissionTest, RefuseWritesThe421OnlyWhereThePeerSpeaksPlaintextFirst) {
  Admission admission("mx.example", 100, 100, 0);
  asio::ip::tcp::acceptor acceptor(context_,
                                   asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  for (bool implicit_tls : {false, true}) {
    asio::ip::tcp::socket client(context_);
    client.connect(acceptor.local_endpoint());
    Connection accepted(acceptor.accept());
    ListenerOptions options;
    options.role = implicit_tls ? "submissions" : "smtp";
    options.implicit_tls = implicit_tls;
    admission.refuse(accepted, options, "s1", "127.0.0.1",
                     Refusal{"Too many connections, try again later", "total"});
    EXPECT_FALSE(accepted.socket.is_open());
    std::string received;
    std::array<char, 256> buffer;
    std::error_code error;
    for (;;) {
      std::size_t n = client.read_some(asio::buffer(buffer), error);
      if (error) break;
      received.append(buffer.data(), n);
    }
    EXPECT_EQ(error, asio::error::eof);
    EXPECT_EQ(received,
              implicit_tls ? "" : "421 4.7.0 mx.example Too many connections, try again later\r\n");
  }
}

}  // namespace
}  // namespace net
