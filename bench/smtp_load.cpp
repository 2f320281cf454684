// smtp_load.cpp — a small SMTP-over-TLS load generator for measurements until
// `smtpsctl bench` exists. Blocking sockets, one thread per connection: simple, and with
// a handful of connections it is not the bottleneck against an event-driven server.
//
//   smtp_load --port P [--host 127.0.0.1] [--connections C] [--messages N]
//             [--per-connection K] [--size BYTES] [--implicit] [--to demo@localhost]
//             [--user ADDRESS --password-file FILE]   (AUTH PLAIN after TLS)
// Each connection: TCP, STARTTLS (or implicit TLS), EHLO, K transactions, QUIT; repeated
// until N messages in total were sent. Prints messages/s, connections/s and latency
// percentiles (end of data → 250) as one key=value line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/base64.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 8;
  long messages = 1000;
  int per_connection = 1;
  std::size_t size = 1024;
  bool implicit_tls = false;
  std::string to = "demo@localhost";
  std::string ca_file;
  std::string user;      // AUTH PLAIN as this user when set
  std::string password;  // read from --password-file
};

struct Totals {
  std::atomic<long> sent{0};
  std::atomic<long> failed{0};
  std::atomic<long> connections{0};
  std::mutex mutex;
  std::vector<double> latencies_ms;
};

class Conn {
 public:
  Conn(SSL_CTX* ctx, const Options& o) : ctx_(ctx), o_(o) {}
  ~Conn() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }

  bool open() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o_.port));
    inet_pton(AF_INET, o_.host.c_str(), &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bool ready;
    if (o_.implicit_tls) {
      ready = handshake() && expect(220) && command("EHLO bench.example\r\n", 250);
    } else {
      ready = expect(220) && command("EHLO bench.example\r\n", 250) &&
              command("STARTTLS\r\n", 220) && handshake() && command("EHLO bench.example\r\n", 250);
    }
    if (ready && !o_.user.empty()) {
      std::string plain = std::string(1, '\0') + o_.user + std::string(1, '\0') + o_.password;
      std::string line = "AUTH PLAIN ";
      base::append_base64(line, plain);
      ready = command(line + "\r\n", 235);
    }
    return ready;
  }

  bool send_message(const std::string& body, double& latency_ms) {
    std::string from = o_.user.empty() ? "bench@example.org" : o_.user;
    std::string head = "MAIL FROM:<" + from + ">\r\nRCPT TO:<" + o_.to + ">\r\nDATA\r\n";
    if (!write(head)) return false;
    if (!expect(250) || !expect(250) || !expect(354)) return false;
    if (!write(body)) return false;
    auto start = Clock::now();
    if (!expect(250)) return false;
    latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    return true;
  }

  void quit() { command("QUIT\r\n", 221); }

 private:
  bool handshake() {
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, "localhost");
    return SSL_connect(ssl_) == 1;
  }
  bool write(const std::string& data) {
    if (ssl_) return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) > 0;
    return ::send(fd_, data.data(), data.size(), 0) == static_cast<ssize_t>(data.size());
  }
  bool command(const std::string& line, int code) { return write(line) && expect(code); }
  // Reads one reply (all its lines) and checks its code.
  bool expect(int code) {
    for (;;) {
      std::size_t eol;
      while ((eol = buffer_.find("\r\n")) == std::string::npos) {
        char chunk[4096];
        int n = ssl_ ? SSL_read(ssl_, chunk, sizeof chunk)
                     : static_cast<int>(::recv(fd_, chunk, sizeof chunk, 0));
        if (n <= 0) return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
      }
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 2);
      if (line.size() < 3) return false;
      if (line.size() > 3 && line[3] == '-') continue;
      last_ = line;
      return std::atoi(line.c_str()) == code;
    }
  }

  SSL_CTX* ctx_;
  const Options& o_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string buffer_;
  std::string last_;
};

std::string make_body(std::size_t size) {
  std::string body = "From: bench@example.org\r\nTo: demo@localhost\r\nSubject: load\r\n\r\n";
  while (body.size() < size)
    body += "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwx\r\n";
  body.resize(size);
  if (body.size() >= 2) body.replace(body.size() - 2, 2, "\r\n");
  return body + ".\r\n";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--host")
      o.host = next();
    else if (a == "--port")
      o.port = std::atoi(next().c_str());
    else if (a == "--connections")
      o.connections = std::atoi(next().c_str());
    else if (a == "--messages")
      o.messages = std::atol(next().c_str());
    else if (a == "--per-connection")
      o.per_connection = std::atoi(next().c_str());
    else if (a == "--size")
      o.size = static_cast<std::size_t>(std::atol(next().c_str()));
    else if (a == "--implicit")
      o.implicit_tls = true;
    else if (a == "--to")
      o.to = next();
    else if (a == "--cafile")
      o.ca_file = next();
    else if (a == "--user")
      o.user = next();
    else if (a == "--password-file") {
      FILE* f = std::fopen(next().c_str(), "r");
      char line[1024] = {0};
      if (f == nullptr || std::fgets(line, sizeof line, f) == nullptr) {
        std::fprintf(stderr, "smtp_load: cannot read --password-file\n");
        return 2;
      }
      std::fclose(f);
      o.password = line;
      while (!o.password.empty() && (o.password.back() == '\n' || o.password.back() == '\r')) {
        o.password.pop_back();
      }
    } else {
      std::fprintf(stderr, "smtp_load: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.port == 0) {
    std::fprintf(stderr, "smtp_load: --port is required\n");
    return 2;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!o.ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  std::string body = make_body(o.size);
  Totals totals;
  std::atomic<long> claimed{0};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.connections; ++t) {
    threads.emplace_back([&] {
      std::vector<double> local;
      while (claimed.load() < o.messages) {
        Conn conn(ctx, o);
        if (!conn.open()) {
          totals.failed++;
          if (totals.failed > 100) return;
          continue;
        }
        totals.connections++;
        for (int k = 0; k < o.per_connection; ++k) {
          if (claimed.fetch_add(1) >= o.messages) break;
          double latency = 0;
          if (conn.send_message(body, latency)) {
            totals.sent++;
            local.push_back(latency);
          } else {
            totals.failed++;
            break;
          }
        }
        conn.quit();
      }
      std::lock_guard lock(totals.mutex);
      totals.latencies_ms.insert(totals.latencies_ms.end(), local.begin(), local.end());
    });
  }
  for (auto& t : threads)
    t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  auto& l = totals.latencies_ms;
  std::sort(l.begin(), l.end());
  auto pct = [&](double p) {
    return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<std::size_t>(p * l.size()))];
  };
  std::printf(
      "messages=%ld failed=%ld seconds=%.3f messages_per_s=%.1f connections_per_s=%.1f "
      "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
      totals.sent.load(), totals.failed.load(), seconds, totals.sent.load() / seconds,
      totals.connections.load() / seconds, pct(0.5), pct(0.9), pct(0.99), l.empty() ? 0 : l.back());
  SSL_CTX_free(ctx);
  return totals.failed.load() == 0 ? 0 : 1;
}
