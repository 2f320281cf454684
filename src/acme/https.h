// https.h — how the ACME client talks to the CA: one request at a time over HTTPS with
// libcurl (RFC 8555 §6.1), behind an interface so the protocol (client.h) is unit-tested
// with a scripted server.
//
// Invariants of CurlTransport (as delivery/pinned_https.h): https only, the CA's certificate
// verified (PKIX) against ca_file or the system store, TLS 1.2 at least, no redirect, no
// proxy, no signals, every request bounded by the timeout and the body by kMaxBodyBytes;
// host names are resolved by the server's own dns::Resolver and pinned (CURLOPT_RESOLVE),
// never by the system resolver; an IP literal needs no lookup. Blocking: the ACME thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "dns/resolver.h"

namespace acme {

inline constexpr std::size_t kMaxBodyBytes = 1 << 20;

struct HttpResponse {
  long status = 0;
  std::string body;
  std::string content_type;
  std::string location;      // Location
  std::string replay_nonce;  // Replay-Nonce (RFC 8555 §6.5)
  std::string retry_after;   // Retry-After, as sent (RFC 9110 §10.2.3)
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // method: "GET", "HEAD" or "POST" (body sent as application/jose+json).
  virtual base::Expected<HttpResponse, std::string> request(std::string_view method,
                                                            const std::string& url,
                                                            std::string_view body) = 0;
};

class CurlTransport : public HttpTransport {
 public:
  // resolver may be null: then only IP-literal URLs work. cancel (may be null): once true, a
  // request under way ends at once (the server stops), "cancelled".
  CurlTransport(std::shared_ptr<dns::Resolver> resolver, std::string ca_file,
                std::chrono::milliseconds timeout, const std::atomic<bool>* cancel = nullptr);
  base::Expected<HttpResponse, std::string> request(std::string_view method, const std::string& url,
                                                    std::string_view body) override;

 private:
  std::shared_ptr<dns::Resolver> resolver_;
  std::string ca_file_;
  std::chrono::milliseconds timeout_;
  const std::atomic<bool>* cancel_;
};

// "https://host[:port]/…" → host (without brackets) and port; false if not such a URL.
bool split_https_url(std::string_view url, std::string& host, std::uint16_t& port);

}  // namespace acme
