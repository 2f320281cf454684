// https.cpp — see https.h.
#include "acme/https.h"

#include <curl/curl.h>

#include <charconv>
#include <mutex>

#include "base/ascii.h"
#include "base/clock.h"
#include "base/network.h"

namespace acme {
namespace {

struct CurlDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using CurlList = std::unique_ptr<curl_slist, CurlDeleter>;

struct Collected {
  HttpResponse response;
  bool too_large = false;
};

std::size_t collect_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* collected = static_cast<Collected*>(user);
  const std::size_t bytes = size * count;
  if (collected->response.body.size() + bytes > kMaxBodyBytes) {
    collected->too_large = true;
    return 0;  // ends the transfer
  }
  collected->response.body.append(data, bytes);
  return bytes;
}

std::size_t collect_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* collected = static_cast<Collected*>(user);
  std::string_view line(data, size * count);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  if (line.starts_with("HTTP/")) collected->response = HttpResponse{};  // a new response
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * count;
  const std::string name = base::ascii_lowercase(line.substr(0, colon));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  if (name == "location") collected->response.location = value;
  if (name == "replay-nonce") collected->response.replay_nonce = value;
  if (name == "retry-after") collected->response.retry_after = value;
  if (name == "content-type") collected->response.content_type = value;
  return size * count;
}

// CURLOPT_XFERINFOFUNCTION: non-zero ends the transfer (called about once a second and on
// every chunk of data).
int cancel_if_stopping(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancel)->load() ? 1 : 0;
}

}  // namespace

bool split_https_url(std::string_view url, std::string& host, std::uint16_t& port) {
  constexpr std::string_view kScheme = "https://";
  if (!url.starts_with(kScheme)) return false;
  std::string_view authority = url.substr(kScheme.size());
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) return false;
  port = 443;
  std::string_view port_text;
  if (authority.starts_with("[")) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return false;
      port_text = authority.substr(close + 2);
    }
  } else {
    const std::size_t colon = authority.find(':');
    host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (!port_text.empty()) {
    auto [end, error] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (error != std::errc() || end != port_text.data() + port_text.size() || port == 0)
      return false;
  }
  return !host.empty();
}

CurlTransport::CurlTransport(std::shared_ptr<dns::Resolver> resolver, std::string ca_file,
                             std::chrono::milliseconds timeout, const std::atomic<bool>* cancel)
    : resolver_(std::move(resolver)),
      ca_file_(std::move(ca_file)),
      timeout_(timeout),
      cancel_(cancel) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

base::Expected<HttpResponse, std::string> CurlTransport::request(std::string_view method,
                                                                 const std::string& url,
                                                                 std::string_view body) {
  std::string host;
  std::uint16_t port = 0;
  if (!split_https_url(url, host, port)) return base::unexpected("not an https URL: " + url);
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  CurlList pins(nullptr);
  if (!base::parse_ip(host)) {
    // The name through our resolver, pinned: libcurl never asks the system.
    if (!resolver_) return base::unexpected(host + ": no resolver for a host name");
    std::string pinned = host + ":" + std::to_string(port) + ":";
    bool any = false;
    for (dns::Type type : {dns::Type::kA, dns::Type::kAaaa}) {
      const auto left = base::time_left(deadline);
      if (left.count() == 0) break;
      dns::AnswerPtr answer = resolver_->lookup_and_wait(host, type, left);
      if (answer->status != dns::Status::kOk) continue;
      for (const std::string& address : answer->addresses) {
        const bool v6 = address.find(':') != std::string::npos;
        pinned += std::string(any ? "," : "") + (v6 ? "[" + address + "]" : address);
        any = true;
      }
    }
    if (!any) return base::unexpected(host + ": no address");
    pins.reset(curl_slist_append(nullptr, pinned.c_str()));
  }
  const long timeout_ms = static_cast<long>(base::time_left(deadline).count());
  if (timeout_ms <= 0) return base::unexpected(std::string("deadline passed"));
  CurlHandle curl(curl_easy_init());
  if (!curl) return base::unexpected(std::string("libcurl could not start"));
  CURL* handle = curl.get();
  Collected collected;
  char error_text[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  if (pins) curl_easy_setopt(handle, CURLOPT_RESOLVE, pins.get());
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(handle, CURLOPT_PROXY, "");
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(handle, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (!ca_file_.empty()) {
    curl_easy_setopt(handle, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(handle, CURLOPT_CAPATH, nullptr);
  }
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(handle, CURLOPT_USERAGENT, "smtpsd (ACME)");
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &collected);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, collect_header);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &collected);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text);
  if (cancel_ != nullptr) {
    if (cancel_->load()) return base::unexpected(std::string("cancelled"));
    curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, cancel_if_stopping);
    curl_easy_setopt(handle, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel_));
    curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
  }
  CurlList headers(nullptr);
  if (method == "POST") {
    headers.reset(curl_slist_append(nullptr, "Content-Type: application/jose+json"));
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(handle, CURLOPT_POST, 1L);
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (method == "HEAD") {
    curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
  }
  const CURLcode code = curl_easy_perform(handle);
  if (collected.too_large) return base::unexpected(std::string("response body too large"));
  if (code == CURLE_ABORTED_BY_CALLBACK) return base::unexpected(std::string("cancelled"));
  if (code != CURLE_OK)
    return base::unexpected(std::string(error_text[0] ? error_text : curl_easy_strerror(code)));
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &collected.response.status);
  return std::move(collected.response);
}

}  // namespace acme
