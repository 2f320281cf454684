// stream_test.cpp — tls::Stream with the poll(2) waiter over a real socket pair: a server
// and a client context from a development PKI, each side driven by its own thread as a
// real server and client would be. Handshake, data both ways (one write spanning several
// TLS records of at most 16 KiB, RFC 8446 §5.1), close_notify and TCP EOF seen as closed,
// garbage and an old protocol version refused with a reason, and a deadline that expires.
#include "tls/stream.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tls/dev_pki.h"
#include "tls/policy.h"
#include "tls/poll_waiter.h"
#include "tls_test_support.h"

namespace tls {
namespace {

using Clock = std::chrono::steady_clock;
using testing::TempDir;

Deadline in_seconds(int seconds) {
  return Clock::now() + std::chrono::seconds(seconds);
}

// Two connected non-blocking stream sockets, closed at the end of the test.
struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    client = fds[0];
    server = fds[1];
  }
  ~SocketPair() {
    close_client();
    close_server();
  }
  void close_client() {
    if (client >= 0) ::close(client);
    client = -1;
  }
  void close_server() {
    if (server >= 0) ::close(server);
    server = -1;
  }
  int client = -1;
  int server = -1;
};

// A payload that shows where a byte went missing: position-dependent and not periodic at
// any record size.
std::string payload(std::size_t size, unsigned seed) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    data[i] = static_cast<char>((i * 31 + i / 251 + seed) & 0xff);
  return data;
}

// Reads exactly `size` bytes (several reads: one record at most each); what came, on failure.
Result read_exactly(Stream& stream, std::size_t size, std::string& into) {
  std::vector<char> buffer(8192);
  while (into.size() < size) {
    Result result = poll_read(stream, buffer, in_seconds(10));
    if (!result.done()) return result;
    into.append(buffer.data(), result.bytes);
  }
  return Result{};
}

class StreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // As smtpsd and smtpsctl do: OpenSSL writes an alert to a peer that may be gone (its
    // socket BIO uses write(2)), which must be an EPIPE, not the end of the process.
    std::signal(SIGPIPE, SIG_IGN);
    dir_ = new TempDir();
    auto paths = ensure_dev_pki(dir_->path(), {"localhost", "127.0.0.1"});
    ASSERT_TRUE(paths) << paths.error();
    paths_ = new DevPkiPaths(paths.value());
  }
  static void TearDownTestSuite() {
    delete paths_;
    delete dir_;
    paths_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    auto server = make_server_context(Policy{}, {{paths_->ecdsa_chain, paths_->ecdsa_key}});
    ASSERT_TRUE(server) << server.error();
    server_context_ = std::move(server.value());
    auto client = make_client_context(paths_->ca_certificate);
    ASSERT_TRUE(client) << client.error();
    client_context_ = std::move(client.value());
  }

  static Stream open(SSL_CTX* context, int fd, Stream::Side side) {
    auto stream = Stream::open(context, fd, side);
    EXPECT_TRUE(stream) << stream.error();
    return stream ? std::move(stream.value()) : Stream{};
  }
  Stream open_client(int fd) {
    Stream stream = open(client_context_.get(), fd, Stream::Side::kClient);
    EXPECT_TRUE(stream.set_server_name("localhost"));
    EXPECT_TRUE(stream.expect_peer_name("localhost"));
    return stream;
  }
  Stream open_server(int fd) { return open(server_context_.get(), fd, Stream::Side::kServer); }

  // The server side in its own thread: a handshake, then `then` on the established stream.
  template <typename Then>
  std::future<Result> serve(int fd, Then then) {
    return std::async(std::launch::async, [this, fd, then] {
      Stream stream = open_server(fd);
      Result shaken = poll_handshake(stream, in_seconds(10));
      if (!shaken.done()) return shaken;
      return then(stream);
    });
  }

  static TempDir* dir_;
  static DevPkiPaths* paths_;
  SslCtxPtr server_context_;
  SslCtxPtr client_context_;
};

TempDir* StreamTest::dir_ = nullptr;
DevPkiPaths* StreamTest::paths_ = nullptr;

TEST_F(StreamTest, HandshakeAndDataBothWays) {
  SocketPair sockets;
  const std::string up = payload(40000, 1);    // client → server: three records
  const std::string down = payload(70000, 2);  // server → client: five records
  std::string server_got;
  std::string server_name;
  auto server = serve(sockets.server, [&](Stream& stream) {
    server_name = describe(stream.get()).sni;
    Result read = read_exactly(stream, up.size(), server_got);
    if (!read.done()) return read;
    return poll_write_all(stream, down, in_seconds(10));
  });

  Stream client = open_client(sockets.client);
  Result shaken = poll_handshake(client, in_seconds(10));
  ASSERT_TRUE(shaken.done()) << shaken.reason;
  EXPECT_EQ(SSL_get_verify_result(client.get()), X509_V_OK);
  EXPECT_EQ(describe(client.get()).version, "TLSv1.3");
  Result written = poll_write_all(client, up, in_seconds(10));
  ASSERT_TRUE(written.done()) << written.reason;
  EXPECT_EQ(written.bytes, up.size());
  std::string client_got;
  Result read = read_exactly(client, down.size(), client_got);
  ASSERT_TRUE(read.done()) << read.reason;

  Result served = server.get();
  ASSERT_TRUE(served.done()) << served.reason;
  EXPECT_EQ(served.bytes, down.size());
  EXPECT_EQ(server_name, "localhost");
  EXPECT_TRUE(server_got == up) << "the server read " << server_got.size() << " bytes";
  EXPECT_TRUE(client_got == down) << "the client read " << client_got.size() << " bytes";
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(StreamTest, CloseNotifyIsSeenAsClosed) {
  SocketPair sockets;
  auto server = serve(sockets.server, [](Stream& stream) { return stream.shutdown(); });
  Stream client = open_client(sockets.client);
  ASSERT_TRUE(poll_handshake(client, in_seconds(10)).done());
  ASSERT_TRUE(server.get().done());
  std::vector<char> buffer(1024);
  Result read = poll_read(client, buffer, in_seconds(10));
  EXPECT_EQ(read.status, Status::kClosed) << read.reason;
  // Answering the peer's close_notify with ours is still possible, and harmless.
  EXPECT_TRUE(client.shutdown().done());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(StreamTest, TcpEofWithoutCloseNotifyIsSeenAsClosed) {
  SocketPair sockets;
  auto server = serve(sockets.server, [&](Stream&) {
    sockets.close_server();  // gone without a close_notify
    return Result{};
  });
  Stream client = open_client(sockets.client);
  ASSERT_TRUE(poll_handshake(client, in_seconds(10)).done());
  ASSERT_TRUE(server.get().done());
  std::vector<char> buffer(1024);
  Result read = poll_read(client, buffer, in_seconds(10));
  EXPECT_EQ(read.status, Status::kClosed) << read.reason;
  EXPECT_TRUE(client.shutdown().done());  // sends nothing to a peer that is gone
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(StreamTest, PeerClosingDuringTheHandshakeIsClosed) {
  SocketPair sockets;
  Stream server = open_server(sockets.server);
  sockets.close_client();
  Result result = poll_handshake(server, in_seconds(10));
  EXPECT_EQ(result.status, Status::kClosed) << result.reason;
}

TEST_F(StreamTest, GarbageFromThePeerIsAnErrorWithAReason) {
  SocketPair sockets;
  // A plaintext SMTP client talking to a TLS port.
  const std::string garbage = "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n";
  ASSERT_EQ(::write(sockets.client, garbage.data(), garbage.size()),
            static_cast<ssize_t>(garbage.size()));
  Stream server = open_server(sockets.server);
  Result result = poll_handshake(server, in_seconds(10));
  EXPECT_EQ(result.status, Status::kError);
  EXPECT_EQ(result.reason, "wrong version number");
  EXPECT_TRUE(server.shutdown().done());  // nothing is sent after an error
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(StreamTest, Tls11OnlyClientIsRefusedWithAReason) {
  SocketPair sockets;
  auto server = std::async(std::launch::async, [&] {
    Stream stream = open_server(sockets.server);
    return poll_handshake(stream, in_seconds(10));
  });
  SSL_CTX_set_min_proto_version(client_context_.get(), TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(client_context_.get(), TLS1_1_VERSION);
  SSL_CTX_set_security_level(client_context_.get(), 0);
  SSL_CTX_set_cipher_list(client_context_.get(), "ALL:@SECLEVEL=0");
  Stream client = open_client(sockets.client);
  Result client_result = poll_handshake(client, in_seconds(10));
  Result server_result = server.get();
  EXPECT_EQ(server_result.status, Status::kError);
  EXPECT_EQ(server_result.reason, "unsupported protocol");
  EXPECT_EQ(client_result.status, Status::kError);
  EXPECT_EQ(client_result.reason, "tlsv1 alert protocol version");
}

TEST_F(StreamTest, ExpiredDeadlineIsATimeout) {
  SocketPair sockets;  // the server side never answers
  Stream client = open_client(sockets.client);
  const auto started = Clock::now();
  Result result = poll_handshake(client, started + std::chrono::milliseconds(200));
  const auto waited = Clock::now() - started;
  EXPECT_EQ(result.status, Status::kTimeout);
  EXPECT_GE(waited, std::chrono::milliseconds(190));
  EXPECT_LT(waited, std::chrono::seconds(5));

  std::vector<char> buffer(16);
  Result read = poll_read(client, buffer, Clock::now() - std::chrono::seconds(1));
  EXPECT_EQ(read.status, Status::kTimeout);
}

TEST_F(StreamTest, OpenFailsWithAReason) {
  auto stream = Stream::open(nullptr, -1, Stream::Side::kClient);
  ASSERT_FALSE(stream);
  EXPECT_FALSE(stream.error().empty());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace tls
