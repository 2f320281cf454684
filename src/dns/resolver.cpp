// resolver.cpp — the names of types and statuses, and the blocking wait of worker threads.
#include "dns/resolver.h"

#include <arpa/inet.h>

#include <condition_variable>
#include <mutex>

namespace dns {

namespace {

// The reversed labels of an IP literal and whether it was IPv6; "" when not a literal.
std::string reversed(std::string_view ip, bool& v6) {
  const std::string text(ip);
  unsigned char octets[16];
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  v6 = false;
  if (::inet_pton(AF_INET, text.c_str(), octets) == 1) {
    for (int i = 3; i >= 0; --i)
      name += std::to_string(octets[i]) + ".";
    return name;
  }
  if (::inet_pton(AF_INET6, text.c_str(), octets) == 1) {
    v6 = true;
    for (int i = 15; i >= 0; --i) {
      name += kHex[octets[i] & 0x0F];
      name += '.';
      name += kHex[octets[i] >> 4];
      name += '.';
    }
    return name;
  }
  return {};
}

}  // namespace

std::string reverse_labels(std::string_view ip) {
  bool v6 = false;
  return reversed(ip, v6);
}

std::string reverse_name(std::string_view ip) {
  bool v6 = false;
  std::string name = reversed(ip, v6);
  if (name.empty()) return name;
  return name + (v6 ? "ip6.arpa" : "in-addr.arpa");
}

std::string_view to_string(Type type) {
  switch (type) {
    case Type::kA:
      return "A";
    case Type::kNs:
      return "NS";
    case Type::kCname:
      return "CNAME";
    case Type::kPtr:
      return "PTR";
    case Type::kMx:
      return "MX";
    case Type::kTxt:
      return "TXT";
    case Type::kAaaa:
      return "AAAA";
    case Type::kTlsa:
      return "TLSA";
  }
  return "?";
}

std::string_view to_string(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kNoData:
      return "nodata";
    case Status::kNxDomain:
      return "nxdomain";
    case Status::kTemporary:
      return "temporary";
    case Status::kBogus:
      return "bogus";
  }
  return "?";
}

AnswerPtr Resolver::lookup_and_wait(std::string_view name, Type type,
                                    std::chrono::milliseconds deadline) {
  // Shared with the callback, which may run after this call gave up waiting.
  struct Wait {
    std::mutex mutex;
    std::condition_variable ready;
    AnswerPtr answer;
  };
  auto wait = std::make_shared<Wait>();
  lookup(name, type, [wait](AnswerPtr answer) {
    std::lock_guard lock(wait->mutex);
    wait->answer = std::move(answer);
    wait->ready.notify_all();
  });
  std::unique_lock lock(wait->mutex);
  if (!wait->ready.wait_for(lock, deadline, [&] { return wait->answer != nullptr; })) {
    auto timed_out = std::make_shared<Answer>();
    timed_out->status = Status::kTemporary;
    timed_out->detail = "timed out";
    return timed_out;
  }
  return wait->answer;
}

}  // namespace dns
