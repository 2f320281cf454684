// dnsmasq.h — a dnsmasq of a unit test's own on a free 127.0.0.1 port, serving the records
// given (no upstream, no /etc/hosts: no query ever leaves the loopback interface); shared by
// the tests of dns::Resolver and delivery::MxResolver. Killed by its pid when the object
// goes away, and with the test process (PR_SET_PDEATHSIG) if that crashes.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/endpoint.h"

namespace test_support {

using namespace std::chrono_literals;

inline std::string find_dnsmasq() {
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/local/sbin";
  std::stringstream directories(path);
  std::string directory;
  while (std::getline(directories, directory, ':')) {
    if (directory.empty()) continue;
    std::string candidate = directory + "/dnsmasq";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// A port free for both UDP and TCP on 127.0.0.1 (the kernel picks it for TCP).
inline int free_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(tcp, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(tcp, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ::close(tcp);
      continue;
    }
    int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
    bool free = ::bind(udp, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(udp);
    ::close(tcp);
    if (free) return ntohs(address.sin_port);
  }
  return -1;
}

// True when something answers a DNS query (any rcode) on 127.0.0.1:port within wait.
// The kernel may give the probe's socket the very port it sends to while nothing listens
// there yet (a UDP "self-connect"): the probe then receives its own query, hence the QR check.
inline bool answers_dns(int port, std::chrono::milliseconds wait) {
  // ID 0x1234, RD, one question: "ready.invalid" A IN.
  const unsigned char query[] = {0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0, 0,   0,   0,
                                 0,    5,    'r',  'e',  'a', 'd', 'y', 7, 'i', 'n', 'v',
                                 'a',  'l',  'i',  'd',  0,   0,   1,   0, 1};
  int sock = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  bool answered = false;
  if (::connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::send(sock, query, sizeof query, 0) == static_cast<ssize_t>(sizeof query)) {
    pollfd fd{sock, POLLIN, 0};
    unsigned char reply[512];
    answered = ::poll(&fd, 1, static_cast<int>(wait.count())) == 1 &&
               ::recv(sock, reply, sizeof reply, 0) >= 12 && reply[0] == 0x12 && reply[1] == 0x34 &&
               (reply[2] & 0x80) != 0;  // QR: a response, not our own query come back
  }
  ::close(sock);
  return answered;
}

// A dnsmasq of our own: started in the foreground on a free loopback port, killed (by the
// pid we started) when this object goes away. Its log is kept for failure messages.
class Dnsmasq {
 public:
  Dnsmasq() {
    char pattern[] = "/tmp/smtpsd-dns-test-XXXXXX";
    if (::mkdtemp(pattern) != nullptr) directory_ = pattern;
  }
  ~Dnsmasq() {
    stop();
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }
  Dnsmasq(const Dnsmasq&) = delete;
  Dnsmasq& operator=(const Dnsmasq&) = delete;

  // "" on success, else why it did not start.
  std::string start(const std::vector<std::string>& records) {
    std::string binary = find_dnsmasq();
    if (binary.empty()) {
      return "dnsmasq not found: run scripts/install-deps.sh (Debian package dnsmasq-base)";
    }
    if (directory_.empty()) return "mkdtemp failed";
    for (int attempt = 0; attempt < 5; ++attempt) {
      int port = free_port();
      if (port < 0) return "no free loopback port";
      std::vector<std::string> args = {binary,
                                       "--keep-in-foreground",
                                       "--no-resolv",
                                       "--no-hosts",
                                       "--no-poll",
                                       "--conf-file=/dev/null",
                                       "--pid-file=",
                                       "--user=root",
                                       "--group=root",
                                       "--port=" + std::to_string(port),
                                       "--listen-address=127.0.0.1",
                                       "--bind-interfaces",
                                       "--log-facility=" + log_path(),
                                       "--log-queries",
                                       "--cache-size=0",
                                       "--local=/test/"};
      args.insert(args.end(), records.begin(), records.end());
      pid_ = spawn(args);
      if (pid_ < 0) return "fork failed";
      auto deadline = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < deadline) {
        if (answers_dns(port, 100ms)) {
          port_ = port;
          return "";
        }
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
      stop();
      if (log().find("Address already in use") == std::string::npos) break;
    }
    return "dnsmasq did not start; its log:\n" + log();
  }

  int port() const { return port_; }
  // For failure messages: where it listens and whether it still runs.
  std::string describe() const {
    bool alive = pid_ > 0 && ::kill(pid_, 0) == 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0;
    return "dnsmasq pid " + std::to_string(pid_) + " on " + base::to_string(server()) +
           (alive ? " (running)" : " (not running)");
  }
  base::HostPort server() const { return {"127.0.0.1", static_cast<std::uint16_t>(port_)}; }
  std::string log() const {
    std::ifstream in(log_path());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string log_path() const { return directory_ + "/dnsmasq.log"; }

  pid_t spawn(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& arg : args)
      argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::string log_file = log_path();
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
      int null_fd = ::open("/dev/null", O_RDONLY);
      int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (null_fd >= 0) ::dup2(null_fd, 0);
      if (log_fd >= 0) {
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string directory_;
  pid_t pid_ = -1;
  int port_ = -1;
};

}  // namespace test_support
