// pinned_https.h — HTTPS for delivery's side channels (MTA-STS policies, RFC 8461 §3.3; TLS
// reports by POST, RFC 8460 §5.4) over libcurl, with the host's addresses from the server's
// own dns::Resolver pinned into libcurl (CURLOPT_RESOLVE): libcurl never asks the system's
// resolver, and a test's DNS server decides where a name goes.
//
// Invariants of what is built here: https only, the certificate verified (PKIX) for the URL's
// host against ca_file or the system store, TLS 1.2 at least, no redirect followed, no proxy
// (whatever the environment says), no signals (worker threads), every transfer bounded by
// its timeout. Blocking: delivery worker threads and the reporters' threads only.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "dns/resolver.h"

namespace delivery {

void initialise_curl();  // curl_global_init, once per process

struct CurlDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using CurlList = std::unique_ptr<curl_slist, CurlDeleter>;

// The addresses of host from our resolver only (A, then AAAA) by deadline; why says which
// lookups failed when there are none.
std::vector<std::string> resolved_addresses(dns::Resolver& resolver, const std::string& host,
                                            std::chrono::steady_clock::time_point deadline,
                                            std::string& why);

// A handle set up as the invariants above say for https://host:port/…, the name pinned to
// addresses (pins must outlive the transfer).
CurlHandle pinned_https_handle(const std::string& url, const std::string& host, std::uint16_t port,
                               const std::vector<std::string>& addresses,
                               const std::string& ca_file, long timeout_ms, CurlList& pins);

// RFC 8460 §5.4: POSTs body with content_type to an https: URL ("https://host[:port]/path");
// the HTTP status when the server answered (2xx: accepted), else why not.
base::Expected<long, std::string> https_post(dns::Resolver& resolver, const std::string& ca_file,
                                             std::string_view url, std::string_view content_type,
                                             std::string_view body,
                                             std::chrono::milliseconds timeout);

}  // namespace delivery
