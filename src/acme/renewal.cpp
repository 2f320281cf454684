// renewal.cpp — see renewal.h.
#include "acme/renewal.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/clock.h"
#include "base/file_write.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace acme {
namespace {

std::string when(std::int64_t unix_seconds) {
  return base::utc_text(unix_seconds, "%Y-%m-%dT%H:%M:%SZ");
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names)
    out += (out.empty() ? "" : ",") + name;
  return out;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

}  // namespace

base::Expected<base::Ok, std::string> prepare_files(const std::string& acme_dir,
                                                    const std::vector<std::string>& names) {
  std::error_code error;
  std::filesystem::create_directories(acme_dir, error);
  if (error) return base::unexpected("cannot create " + acme_dir + ": " + error.message());
  if (::chmod(acme_dir.c_str(), 0700) != 0)
    return base::unexpected(acme_dir + ": " + std::strerror(errno));
  auto account = load_or_create_key(account_key_path(acme_dir), KeyType::kEcdsaP256);
  if (!account) return base::unexpected(account.error());
  for (const CertificatePaths& paths : certificate_paths(acme_dir)) {
    auto key = load_or_create_key(paths.key, paths.type);
    if (!key) return base::unexpected(key.error());
    if (exists(paths.chain)) {
      // A chain that does not belong to the key (edited by hand, or the key replaced) would
      // stop the server: a placeholder instead, and the renewal makes a real one.
      auto text = read_file(paths.chain);
      if (text && inspect_chain(text.value(), key->get())) continue;
      obs::Log("acme_placeholder", obs::Level::kWarning)
          .kv("file", paths.chain)
          .kv("reason", text ? "the certificate does not belong to the key" : text.error());
    }
    auto written = write_placeholder(paths.chain, key->get(), names);
    if (!written) return base::unexpected(paths.chain + ": " + written.error());
  }
  return base::Ok{};
}

Renewer::Renewer(RenewalOptions options, std::shared_ptr<dns::Resolver> resolver,
                 ChallengePublisher& publisher)
    : options_(std::move(options)), resolver_(std::move(resolver)), publisher_(publisher) {
  const std::int64_t now = now_ms();
  for (const CertificatePaths& paths : certificate_paths(options_.acme_dir)) {
    keys_.push_back(KeyState{paths});
    schedule(keys_.back(), now);
    update_metrics(keys_.back());
  }
}

Renewer::~Renewer() {
  stop();
}

void Renewer::start() {
  thread_ = std::thread([this] { run(); });
}

void Renewer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Renewer::renew_now() {
  {
    std::lock_guard lock(mutex_);
    forced_ = true;
  }
  wake_.notify_all();
}

void Renewer::schedule(KeyState& state, std::int64_t now) const {
  auto text = read_file(state.paths.chain);
  auto info = text ? inspect_chain(text.value(), nullptr)
                   : base::Expected<ChainInfo, std::string>(base::unexpected(text.error()));
  if (!info || info->self_signed) {
    state.due_ms = now;
    return;
  }
  const std::int64_t lifetime = std::max<std::int64_t>(info->not_after - info->not_before, 0);
  state.due_ms = 1000 * (options_.renew_before ? info->not_after - options_.renew_before->count()
                                               : info->not_before + lifetime * 2 / 3);
}

void Renewer::update_metrics(const KeyState& state) const {
  auto text = read_file(state.paths.chain);
  if (!text) return;
  auto info = inspect_chain(text.value(), nullptr);
  if (!info) return;
  const std::string key(to_string(state.paths.type));
  obs::metrics()
      .gauge("smtpsd_acme_certificate_days_left",
             "Whole days until the ACME certificate expires (negative: expired).", {{"key", key}})
      .set((info->not_after - base::unix_now()) / 86400);
}

void Renewer::attempt(KeyState& state, Client& client, const AccountKey& account) {
  (void)account;
  const std::string key_name(to_string(state.paths.type));
  obs::Log("acme_order").kv("key", key_name).kv("names", joined(options_.names));
  base::Expected<std::string, Failure> chain = base::unexpected(Failure{"key", ""});
  auto key = load_or_create_key(state.paths.key, state.paths.type);
  if (!key) {
    chain = base::unexpected(Failure{"key", key.error()});
  } else if (auto csr = make_csr(key->get(), options_.names); !csr) {
    chain = base::unexpected(Failure{"csr", csr.error()});
  } else {
    chain = client.issue(options_.names, csr.value());
  }
  if (chain) {
    // The chain must parse and belong to our key before the reload can see it.
    auto info = inspect_chain(chain.value(), key->get());
    if (!info) {
      chain = base::unexpected(Failure{"certificate", info.error()});
    } else if (auto written = base::write_file_atomically(state.paths.chain, chain.value(), 0644);
               !written) {
      chain = base::unexpected(Failure{"write", written.error()});
    } else {
      const std::int64_t now = base::unix_now();
      obs::Log("acme_renewed")
          .kv("key", key_name)
          .kv("names", joined(options_.names))
          .kv("not_after", when(info->not_after))
          .kv("days_left", (info->not_after - now) / 86400)
          .kv("issuer", info->issuer)
          .kv("file", state.paths.chain);
      obs::metrics()
          .counter("smtpsd_acme_renewals_total", "ACME certificate renewals by result.",
                   {{"key", key_name}, {"result", "success"}})
          .inc();
      std::lock_guard lock(mutex_);
      state.failures = 0;
      state.backoff = std::chrono::milliseconds(0);
      state.last_attempt_unix = now;
      state.last_result = "renewed at " + when(now);
      schedule(state, now_ms());
      update_metrics(state);
      return;
    }
  }
  const Failure& failure = chain.error();
  if (failure.stopped) return;
  const std::int64_t now = base::unix_now();
  std::lock_guard lock(mutex_);
  ++state.failures;
  state.backoff = state.backoff.count() == 0 ? options_.retry_min
                                             : std::min(state.backoff * 2, options_.retry_max);
  std::chrono::milliseconds wait =
      std::max<std::chrono::milliseconds>(state.backoff, failure.retry_after);
  state.last_attempt_unix = now;
  state.last_result = "failed at " + failure.step + ": " + failure.message;
  // The old certificate stays in service; how urgent is it?
  obs::Level level = obs::Level::kWarning;
  std::int64_t days_left = 0;
  if (auto text = read_file(state.paths.chain); text) {
    if (auto info = inspect_chain(text.value(), nullptr); info) {
      days_left = (info->not_after - now) / 86400;
      const std::int64_t lifetime = info->not_after - info->not_before;
      if (!info->self_signed && info->not_after - now < lifetime / 6) level = obs::Level::kError;
    }
  }
  obs::Log("acme_failed", level)
      .kv("key", key_name)
      .kv("step", failure.step)
      .kv("error", failure.message)
      .kv("failures", state.failures)
      .kv("days_left", days_left)
      .kv("retry_in_ms", static_cast<std::int64_t>(wait.count()));
  obs::metrics()
      .counter("smtpsd_acme_renewals_total", "ACME certificate renewals by result.",
               {{"key", key_name}, {"result", "failure"}})
      .inc();
  state.due_ms = now_ms() + wait.count();
  state.last_result += " (retry at " + when(state.due_ms / 1000) + ")";
}

void Renewer::run() {
  auto account_key = load_or_create_key(account_key_path(options_.acme_dir), KeyType::kEcdsaP256);
  if (!account_key) {
    obs::Log("acme_failed", obs::Level::kError)
        .kv("step", "account_key")
        .kv("error", account_key.error());
    return;
  }
  const AccountKey account(std::move(account_key).value());
  CurlTransport transport(resolver_, options_.ca_file, options_.request_timeout);
  Waiter waiter = [this](std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, wait, [this] { return stopping_; });
  };
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const std::int64_t now = now_ms();
    const bool forced = forced_;
    forced_ = false;
    std::vector<KeyState*> due;
    for (KeyState& state : keys_)
      if (forced || state.due_ms <= now) due.push_back(&state);
    if (!due.empty()) {
      lock.unlock();
      // One conversation per round: the account is looked up once, authorizations are
      // reused by the second order.
      Client client(transport, account, publisher_, options_.client, waiter);
      for (KeyState* state : due)
        attempt(*state, client, account);
      lock.lock();
      continue;
    }
    std::int64_t next = keys_.front().due_ms;
    for (const KeyState& state : keys_)
      next = std::min(next, state.due_ms);
    // Wake at the next due time, or hourly to refresh the days-left gauge.
    const std::int64_t wait = std::clamp<std::int64_t>(next - now, 1, 3'600'000);
    wake_.wait_for(lock, std::chrono::milliseconds(wait), [this] { return stopping_ || forced_; });
    if (!stopping_) {
      for (const KeyState& state : keys_)
        update_metrics(state);
    }
  }
}

std::string Renewer::status() const {
  std::lock_guard lock(mutex_);
  std::string out =
      "acme directory=" + options_.client.directory_url + " names=" + joined(options_.names) + "\n";
  const std::int64_t now = base::unix_now();
  for (const KeyState& state : keys_) {
    out += std::string(to_string(state.paths.type)) + ": ";
    auto text = read_file(state.paths.chain);
    auto info = text ? inspect_chain(text.value(), nullptr)
                     : base::Expected<ChainInfo, std::string>(base::unexpected(text.error()));
    if (!info) {
      out += "no certificate (" + info.error() + ")";
    } else {
      out +=
          std::string(info->self_signed ? "placeholder (self-signed)" : "issuer=" + info->issuer) +
          " not_after=" + when(info->not_after) +
          " days_left=" + std::to_string((info->not_after - now) / 86400);
    }
    out += " next_attempt=" + when(std::max(state.due_ms / 1000, now));
    if (!state.last_result.empty()) out += " last=\"" + state.last_result + "\"";
    out += "\n";
  }
  return out;
}

}  // namespace acme
