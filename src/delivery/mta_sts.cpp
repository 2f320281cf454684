// mta_sts.cpp — MTA-STS discovery, HTTPS fetch and cache (usage and invariants in
// mta_sts.h; RFC 8461 §3.1, §3.3, §5.1, §10.2; failure types of RFC 8460 §4.3.2.2).
#include "delivery/mta_sts.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/ascii.h"
#include "base/clock.h"
#include "delivery/pinned_https.h"

namespace delivery {
namespace {

constexpr std::size_t kMaxMemoryEntries = 10000;
constexpr std::string_view kCacheMagic = "smtpsd mta-sts cache 1";

struct Body {
  std::string text;
  std::size_t limit = 0;
  bool too_large = false;
};

std::size_t write_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  const std::size_t bytes = size * count;
  if (body->text.size() + bytes > body->limit) {
    body->too_large = true;
    return 0;  // CURLE_WRITE_ERROR: the transfer stops here
  }
  body->text.append(data, bytes);
  return bytes;
}

StsFetchError fetch_error(StsFailure failure, std::string detail) {
  return StsFetchError{failure, std::move(detail)};
}

bool is_text_plain(const char* content_type) {
  if (content_type == nullptr) return false;
  std::string_view type(content_type);
  type = type.substr(0, type.find(';'));  // "Additional Content-Type parameters are ignored"
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
    type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t'))
    type.remove_prefix(1);
  return base::equals_ignoring_case(type, "text/plain");
}

}  // namespace

std::string_view to_string(StsFailure failure) {
  switch (failure) {
    case StsFailure::kNone:
      return "";
    case StsFailure::kFetchError:
      return "sts-policy-fetch-error";
    case StsFailure::kInvalid:
      return "sts-policy-invalid";
    case StsFailure::kWebPki:
      return "sts-webpki-invalid";
  }
  return "";
}

std::string_view to_string(PolicyLookup::Source source) {
  switch (source) {
    case PolicyLookup::Source::kNone:
      return "none";
    case PolicyLookup::Source::kFresh:
      return "fresh";
    case PolicyLookup::Source::kCache:
      return "cache";
  }
  return "none";
}

base::Expected<std::string, StsFetchError> fetch_sts_policy(
    dns::Resolver& resolver, const MtaStsOptions& options, const std::string& domain,
    std::chrono::steady_clock::time_point deadline) {
  initialise_curl();
  const std::string host = "mta-sts." + domain;
  std::string why;
  const std::vector<std::string> addresses = resolved_addresses(resolver, host, deadline, why);
  if (addresses.empty()) {
    return base::unexpected(fetch_error(
        StsFailure::kFetchError, host + ": no address" + (why.empty() ? "" : " (" + why + ")")));
  }
  const long timeout_ms =
      static_cast<long>(std::min(options.fetch_timeout, base::time_left(deadline)).count());
  if (timeout_ms <= 0) {
    return base::unexpected(fetch_error(StsFailure::kFetchError, "deadline passed"));
  }
  const std::string port = std::to_string(options.https_port);
  // §3.3: "https://mta-sts.<domain>/.well-known/mta-sts.txt"; another port only in tests.
  const std::string url = "https://" + host + (options.https_port == 443 ? "" : ":" + port) +
                          "/.well-known/mta-sts.txt";
  // The name pinned to our resolver's answer (pinned_https.h): libcurl never asks the system;
  // no redirect followed (§3.3: "MUST NOT follow" 3xx), PKIX for the name host (§3.3).
  CurlList pins(nullptr);
  CurlHandle curl = pinned_https_handle(url, host, options.https_port, addresses, options.ca_file,
                                        timeout_ms, pins);
  if (!curl) {
    return base::unexpected(fetch_error(StsFailure::kFetchError, "libcurl: out of memory"));
  }
  CURL* handle = curl.get();
  Body body{{}, options.max_policy_bytes, false};
  char error_text[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE,
                   static_cast<curl_off_t>(options.max_policy_bytes));
  curl_easy_setopt(handle, CURLOPT_USERAGENT, "smtpsd (MTA-STS)");
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text);
  const CURLcode code = curl_easy_perform(handle);
  if (body.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    return base::unexpected(
        fetch_error(StsFailure::kInvalid,
                    "policy larger than " + std::to_string(options.max_policy_bytes) + " bytes"));
  }
  if (code != CURLE_OK) {
    std::string detail = url + ": " + (error_text[0] ? error_text : curl_easy_strerror(code));
    const bool certificate = code == CURLE_PEER_FAILED_VERIFICATION;
    return base::unexpected(
        fetch_error(certificate ? StsFailure::kWebPki : StsFailure::kFetchError, detail));
  }
  long status = 0;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    // §3.3: only 200 is a policy; "HTTP 3xx redirects MUST NOT be followed".
    return base::unexpected(
        fetch_error(StsFailure::kFetchError,
                    url + ": HTTP " + std::to_string(status) +
                        (status >= 300 && status < 400 ? " (a redirect: not followed)" : "")));
  }
  const char* content_type = nullptr;
  curl_easy_getinfo(handle, CURLINFO_CONTENT_TYPE, &content_type);
  if (!is_text_plain(content_type)) {
    return base::unexpected(
        fetch_error(StsFailure::kInvalid, url + ": Content-Type must be text/plain, not " +
                                              (content_type ? std::string(content_type) : "none")));
  }
  return std::move(body.text);
}

base::Expected<std::unique_ptr<MtaSts>, std::string> MtaSts::create(
    std::shared_ptr<dns::Resolver> resolver, MtaStsOptions options) {
  initialise_curl();
  dns::Resolver* raw = resolver.get();
  MtaStsOptions copy = options;
  StsFetcher fetcher = [raw, copy](const std::string& domain,
                                   std::chrono::steady_clock::time_point deadline) {
    return fetch_sts_policy(*raw, copy, domain, deadline);
  };
  return create(std::move(resolver), std::move(options), std::move(fetcher), base::unix_now);
}

base::Expected<std::unique_ptr<MtaSts>, std::string> MtaSts::create(
    std::shared_ptr<dns::Resolver> resolver, MtaStsOptions options, StsFetcher fetcher,
    UnixClock now) {
  const std::string& directory = options.cache_directory;
  if (directory.empty()) return base::unexpected(std::string("MTA-STS: no cache directory"));
  if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
    return base::unexpected(directory + ": " + std::strerror(errno));
  }
  struct stat status {};
  if (::lstat(directory.c_str(), &status) != 0 || !S_ISDIR(status.st_mode)) {
    return base::unexpected(directory + ": not a directory");
  }
  if ((status.st_mode & 077) != 0 && ::chmod(directory.c_str(), 0700) != 0) {
    return base::unexpected(directory + ": " + std::strerror(errno));
  }
  return std::unique_ptr<MtaSts>(
      new MtaSts(std::move(resolver), std::move(options), std::move(fetcher), std::move(now)));
}

MtaSts::MtaSts(std::shared_ptr<dns::Resolver> resolver, MtaStsOptions options, StsFetcher fetcher,
               UnixClock now)
    : resolver_(std::move(resolver)),
      options_(std::move(options)),
      fetcher_(std::move(fetcher)),
      now_(std::move(now)) {}

std::shared_ptr<std::timed_mutex> MtaSts::domain_lock(const std::string& domain) {
  std::lock_guard lock(mutex_);
  if (domain_locks_.size() > 1000) {
    std::erase_if(domain_locks_, [](const auto& entry) { return entry.second.use_count() == 1; });
  }
  auto& slot = domain_locks_[domain];
  if (!slot) slot = std::make_shared<std::timed_mutex>();
  return slot;
}

std::optional<MtaSts::Cached> MtaSts::load(const std::string& domain) {
  {
    std::lock_guard lock(mutex_);
    if (auto found = memory_.find(domain); found != memory_.end()) return found->second;
  }
  std::ifstream file(options_.cache_directory + "/" + domain, std::ios::binary);
  if (!file) return std::nullopt;
  std::string magic, id_line, fetched_line, blank;
  if (!std::getline(file, magic) || magic != kCacheMagic || !std::getline(file, id_line) ||
      !std::getline(file, fetched_line) || !std::getline(file, blank) || !blank.empty() ||
      !id_line.starts_with("id ") || !fetched_line.starts_with("fetched ")) {
    return std::nullopt;
  }
  std::ostringstream rest;
  rest << file.rdbuf();
  auto policy = parse_sts_policy(rest.str());
  auto id = parse_sts_record("v=STSv1; id=" + id_line.substr(3));
  if (!policy || !id) return std::nullopt;
  Cached entry{*policy, *id, 0};
  try {
    entry.fetched_at = std::stoll(fetched_line.substr(8));
  } catch (...) {
    return std::nullopt;
  }
  std::lock_guard lock(mutex_);
  if (memory_.size() >= kMaxMemoryEntries) memory_.clear();
  memory_[domain] = entry;
  return entry;
}

void MtaSts::store(const std::string& domain, const Cached& entry, std::string_view body) {
  {
    std::lock_guard lock(mutex_);
    if (memory_.size() >= kMaxMemoryEntries) memory_.clear();
    memory_[domain] = entry;
  }
  static std::atomic<unsigned> counter{0};
  const std::string path = options_.cache_directory + "/" + domain;
  const std::string temporary = options_.cache_directory + "/." + domain + ".tmp." +
                                std::to_string(::getpid()) + "." + std::to_string(++counter);
  const std::string content = std::string(kCacheMagic) + "\nid " + entry.id + "\nfetched " +
                              std::to_string(entry.fetched_at) + "\n\n" + std::string(body);
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;  // the memory copy still serves this process
  std::size_t written = 0;
  bool ok = true;
  while (ok && written < content.size()) {
    ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) written += static_cast<std::size_t>(n);
  }
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return;
  }
  int directory = ::open(options_.cache_directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory >= 0) {
    ::fsync(directory);
    ::close(directory);
  }
}

void MtaSts::forget(const std::string& domain) {
  {
    std::lock_guard lock(mutex_);
    memory_.erase(domain);
  }
  ::unlink((options_.cache_directory + "/" + domain).c_str());
}

PolicyLookup MtaSts::policy_for(std::string_view domain_name,
                                std::chrono::steady_clock::time_point deadline) {
  PolicyLookup result;
  const std::string domain = normalized_host(domain_name);
  if (domain.empty()) {
    result.detail = "not a domain name";
    return result;
  }
  // One discovery per domain at a time: a second thread waits and then finds the cache.
  auto lock = domain_lock(domain);
  std::unique_lock guard(*lock, std::defer_lock);
  const bool locked = guard.try_lock_until(deadline);

  const std::int64_t now = now_();
  std::optional<Cached> cached = load(domain);
  if (cached && now >= cached->fetched_at + cached->policy.max_age) {
    forget(domain);  // expired: as if never seen (§5.1)
    cached.reset();
  }
  auto from_cache = [&](StsFailure failure, std::string detail) {
    PolicyLookup lookup;
    lookup.failure = failure;
    lookup.detail = std::move(detail);
    if (!cached) return lookup;
    lookup.source = PolicyLookup::Source::kCache;
    lookup.policy = cached->policy;
    lookup.id = cached->id;
    lookup.fetched_at = cached->fetched_at;
    lookup.expires_at = cached->fetched_at + cached->policy.max_age;
    return lookup;
  };
  if (!locked) return from_cache(StsFailure::kNone, "another discovery of this domain is running");

  // §3.1 / §5.1: the TXT record says whether the cached policy is current.
  dns::AnswerPtr answer =
      resolver_->lookup_and_wait("_mta-sts." + domain, dns::Type::kTxt, base::time_left(deadline));
  if (answer->status == dns::Status::kTemporary || answer->status == dns::Status::kBogus) {
    return from_cache(StsFailure::kNone, "_mta-sts." + domain + " TXT: " +
                                             std::string(dns::to_string(answer->status)) +
                                             (answer->detail.empty() ? "" : " " + answer->detail));
  }
  if (answer->status != dns::Status::kOk) {
    return from_cache(StsFailure::kNone, "no _mta-sts." + domain + " TXT record");
  }
  auto id = select_sts_record(answer->texts);
  if (!id) return from_cache(StsFailure::kNone, "_mta-sts." + domain + " TXT: " + id.error());
  const bool current = cached && cached->id == *id;
  const bool fresh_enough = current && now < cached->fetched_at + cached->policy.max_age / 2;
  if (fresh_enough) return from_cache(StsFailure::kNone, "");

  auto body = fetcher_(domain, deadline);
  if (!body) return from_cache(body.error().failure, body.error().detail);
  auto policy = parse_sts_policy(*body);
  if (!policy) {
    return from_cache(StsFailure::kInvalid,
                      "https://mta-sts." + domain + "/.well-known/mta-sts.txt: " + policy.error());
  }
  Cached entry{*policy, *id, now};
  store(domain, entry, *body);
  result.source = PolicyLookup::Source::kFresh;
  result.policy = entry.policy;
  result.id = entry.id;
  result.fetched_at = now;
  result.expires_at = now + entry.policy.max_age;
  return result;
}

std::vector<MtaSts::Refreshed> MtaSts::refresh_cache(std::chrono::milliseconds per_domain) {
  std::vector<std::string> domains;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.cache_directory, ec)) {
    const std::string name = entry.path().filename().string();
    // Cache files are named after their domain; temporary files start with '.'.
    if (!name.starts_with('.') && normalized_host(name) == name) domains.push_back(name);
  }
  std::vector<Refreshed> out;
  for (const std::string& domain : domains) {
    std::optional<Cached> cached = load(domain);
    if (!cached) continue;
    const std::int64_t now = now_();
    if (now >= cached->fetched_at + cached->policy.max_age) {
      forget(domain);  // §5.1: an expired policy is as if never seen
      Refreshed expired{domain, {}, cached->fetched_at};
      expired.lookup.detail = "expired";
      out.push_back(std::move(expired));
      continue;
    }
    if (now < cached->fetched_at + cached->policy.max_age / 2) continue;
    out.push_back(Refreshed{domain,
                            policy_for(domain, std::chrono::steady_clock::now() + per_domain),
                            cached->fetched_at});
  }
  return out;
}

}  // namespace delivery
