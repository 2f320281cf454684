// pinned_https.cpp — see pinned_https.h.
#include "delivery/pinned_https.h"
#include "base/clock.h"

#include <charconv>
#include <mutex>

namespace delivery {
namespace {

std::size_t discard_body(char*, std::size_t size, std::size_t count, void*) {
  return size * count;
}

}  // namespace

void initialise_curl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::vector<std::string> resolved_addresses(dns::Resolver& resolver, const std::string& host,
                                            std::chrono::steady_clock::time_point deadline,
                                            std::string& why) {
  std::vector<std::string> addresses;
  for (dns::Type type : {dns::Type::kA, dns::Type::kAaaa}) {
    const auto left = base::time_left(deadline);
    if (left.count() == 0) break;
    dns::AnswerPtr answer = resolver.lookup_and_wait(host, type, left);
    if (answer->status == dns::Status::kOk) {
      addresses.insert(addresses.end(), answer->addresses.begin(), answer->addresses.end());
    } else {
      why += std::string(why.empty() ? "" : ", ") + std::string(dns::to_string(type)) + ": " +
             std::string(dns::to_string(answer->status));
    }
  }
  return addresses;
}

CurlHandle pinned_https_handle(const std::string& url, const std::string& host, std::uint16_t port,
                               const std::vector<std::string>& addresses,
                               const std::string& ca_file, long timeout_ms, CurlList& pins) {
  // CURLOPT_RESOLVE: "host:port:address,address" (IPv6 in brackets).
  std::string pinned = host + ":" + std::to_string(port) + ":";
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    const bool v6 = addresses[i].find(':') != std::string::npos;
    pinned += (i ? "," : "") + (v6 ? "[" + addresses[i] + "]" : addresses[i]);
  }
  pins.reset(curl_slist_append(nullptr, pinned.c_str()));
  CurlHandle curl(curl_easy_init());
  if (!curl || !pins) return nullptr;
  CURL* handle = curl.get();
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_RESOLVE, pins.get());
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(handle, CURLOPT_PROXY, "");
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(handle, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (!ca_file.empty()) {
    curl_easy_setopt(handle, CURLOPT_CAINFO, ca_file.c_str());
    curl_easy_setopt(handle, CURLOPT_CAPATH, nullptr);  // that file only, as for MX hosts
  }
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
  return curl;
}

base::Expected<long, std::string> https_post(dns::Resolver& resolver, const std::string& ca_file,
                                             std::string_view url, std::string_view content_type,
                                             std::string_view body,
                                             std::chrono::milliseconds timeout) {
  initialise_curl();
  // https://host[:port]/path — a literal address or userinfo is not a report endpoint.
  constexpr std::string_view kScheme = "https://";
  if (url.size() <= kScheme.size() || url.substr(0, kScheme.size()) != kScheme)
    return base::unexpected(std::string("not an https URL"));
  std::string_view authority = url.substr(kScheme.size());
  authority = authority.substr(0, authority.find_first_of("/?#"));
  std::string host(authority.substr(0, authority.find(':')));
  std::uint16_t port = 443;
  if (const std::size_t colon = authority.find(':'); colon != std::string_view::npos) {
    const std::string_view digits = authority.substr(colon + 1);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (error != std::errc() || end != digits.data() + digits.size() || port == 0)
      return base::unexpected(std::string("bad port in the URL"));
  }
  if (host.empty() || host.find_first_of("@[]") != std::string::npos)
    return base::unexpected(std::string("bad host in the URL"));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string why;
  const std::vector<std::string> addresses = resolved_addresses(resolver, host, deadline, why);
  if (addresses.empty())
    return base::unexpected(host + ": no address" + (why.empty() ? "" : " (" + why + ")"));
  const long timeout_ms = static_cast<long>(base::time_left(deadline).count());
  if (timeout_ms <= 0) return base::unexpected(std::string("deadline passed"));
  CurlList pins(nullptr);
  CurlHandle curl =
      pinned_https_handle(std::string(url), host, port, addresses, ca_file, timeout_ms, pins);
  if (!curl) return base::unexpected(std::string("libcurl could not start"));
  const std::string type_header = "Content-Type: " + std::string(content_type);
  CurlList headers(curl_slist_append(nullptr, type_header.c_str()));
  char error_text[CURL_ERROR_SIZE] = {};
  CURL* handle = curl.get();
  curl_easy_setopt(handle, CURLOPT_POST, 1L);
  curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(handle, CURLOPT_USERAGENT, "smtpsd (TLS reports)");
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text);
  const CURLcode code = curl_easy_perform(handle);
  if (code != CURLE_OK)
    return base::unexpected(std::string(error_text[0] ? error_text : curl_easy_strerror(code)));
  long status = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

}  // namespace delivery
