// renewal.cpp — see renewal.h.
#include "acme/renewal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "base/clock.h"
#include "base/file_write.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "tls/spki_digest.h"

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

// Times in milliseconds that saturate instead of overflowing.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out))
    return b > 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
  return out;
}

std::int64_t ms_of(std::int64_t seconds) {
  std::int64_t out = 0;
  if (__builtin_mul_overflow(seconds, 1000, &out))
    return seconds > 0 ? std::numeric_limits<std::int64_t>::max()
                       : std::numeric_limits<std::int64_t>::min();
  return out;
}

std::string lowercase(std::string text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return text;
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

// Puts a rolled-over pair in service: the chain beside the current pair, the key renamed over
// the current key, the chain over the current chain (prepare_files ends a switch cut between
// the two renames).
base::Expected<base::Ok, std::string> switch_pair(const CertificatePaths& paths,
                                                  const std::string& chain) {
  auto written = base::write_file_atomically(paths.next_chain, chain, 0644);
  if (!written) return written;
  written = rename_durably(paths.next_key, paths.key);
  if (!written) return written;
  return rename_durably(paths.next_chain, paths.chain);
}

}  // namespace

base::Expected<base::Ok, std::string> prepare_files(const std::string& acme_dir,
                                                    const std::vector<std::string>& names) {
  std::error_code error;
  std::filesystem::create_directories(acme_dir, error);
  if (error) return base::unexpected("cannot create " + acme_dir + ": " + error.message());
  // The directory itself, never what a link in its place points to (O_NOFOLLOW).
  const int directory = ::open(acme_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (directory < 0) {
    const int saved = errno;
    struct stat link {};
    if (::lstat(acme_dir.c_str(), &link) == 0 && S_ISLNK(link.st_mode))
      return base::unexpected(acme_dir + ": is a symbolic link; refusing to use it");
    return base::unexpected(acme_dir + ": " + std::strerror(saved));
  }
  const bool private_mode = ::fchmod(directory, 0700) == 0;
  const int saved = errno;
  ::close(directory);
  if (!private_mode) return base::unexpected(acme_dir + ": " + std::strerror(saved));
  auto account = load_or_create_key(account_key_path(acme_dir), KeyType::kEcdsaP256);
  if (!account) return base::unexpected(account.error());
  for (const CertificatePaths& paths : certificate_paths(acme_dir)) {
    auto key = load_or_create_key(paths.key, paths.type);
    if (!key) return base::unexpected(key.error());
    // A key rollover stopped between its renames: the key is in place, its chain beside.
    if (exists(paths.next_chain)) {
      auto next = read_file(paths.next_chain);
      if (next && inspect_chain(next.value(), key->get())) {
        auto renamed = rename_durably(paths.next_chain, paths.chain);
        if (!renamed) return base::unexpected(renamed.error());
      } else {
        ::unlink(paths.next_chain.c_str());  // written before the key moved: ordered again
      }
    }
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

std::int64_t due_by_lifetime(const ChainInfo& info,
                             std::optional<std::chrono::seconds> renew_before) {
  const std::int64_t lifetime = std::max<std::int64_t>(info.not_after - info.not_before, 0);
  if (!renew_before) return info.not_before + lifetime * 2 / 3;
  return std::max(
      info.not_before + lifetime / 2,
      saturating_add(info.not_after, -std::max<std::int64_t>(renew_before->count(), 0)));
}

bool names_match(const ChainInfo& info, const std::vector<std::string>& names) {
  std::vector<std::string> have;
  std::vector<std::string> want;
  for (const std::string& name : info.dns_names)
    have.push_back(lowercase(name));
  for (const std::string& name : names)
    want.push_back(lowercase(name));
  std::sort(have.begin(), have.end());
  have.erase(std::unique(have.begin(), have.end()), have.end());
  std::sort(want.begin(), want.end());
  want.erase(std::unique(want.begin(), want.end()), want.end());
  return have == want;
}

std::int64_t latest_renewal(const ChainInfo& info) {
  const std::int64_t lifetime = std::max<std::int64_t>(info.not_after - info.not_before, 0);
  return info.not_after - lifetime / 6;
}

Renewer::Renewer(RenewalOptions options, std::shared_ptr<dns::Resolver> resolver,
                 ChallengePublisher& publisher)
    : options_(std::move(options)), resolver_(std::move(resolver)), publisher_(publisher) {
  const std::int64_t now = now_ms();
  for (const CertificatePaths& paths : certificate_paths(options_.acme_dir)) {
    keys_.push_back(KeyState{paths});
    keys_.back().rollover_staged = exists(paths.next_key);  // a rollover under way goes on
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
  cancel_ = true;
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

void Renewer::revoke_now(std::optional<KeyType> type, int reason) {
  {
    std::lock_guard lock(mutex_);
    for (KeyState& state : keys_)
      if (!type || state.paths.type == *type) state.revoke_reason = reason;
  }
  wake_.notify_all();
}

void Renewer::rollover_now(std::optional<KeyType> type, bool force) {
  {
    std::lock_guard lock(mutex_);
    for (KeyState& state : keys_) {
      if (type && state.paths.type != *type) continue;
      state.rollover_asked = true;
      state.rollover_force = state.rollover_force || force;
      state.rollover_check_ms = 0;
    }
  }
  wake_.notify_all();
}

void Renewer::end_rollover(KeyState& state) {
  state.rollover_staged = false;
  state.rollover_force = false;
  state.rollover_switch_ms = 0;
  state.rollover_status.clear();
}

bool Renewer::rollover_due(const KeyState& state, std::int64_t now) const {
  return state.rollover_asked || state.rollover_force ||
         (state.rollover_staged && state.rollover_check_ms <= now);
}

void Renewer::roll(KeyState& state, Client& client, const AccountKey& account) {
  const std::string key_name(to_string(state.paths.type));
  bool force = false;
  {
    std::lock_guard lock(mutex_);
    force = state.rollover_force;
    state.rollover_asked = false;
  }
  const bool staged = exists(state.paths.next_key);
  auto next =
      staged ? load_key(state.paths.next_key, state.paths.type) : make_key(state.paths.type);
  if (next && !staged) {
    // Staged now: the record to publish beside the current one.
    if (auto written = write_key(state.paths.next_key, next->get()); !written)
      next = base::unexpected(written.error());
    if (next) {
      obs::Log("acme_key_staged", obs::Level::kWarning)
          .kv("key", key_name)
          .kv("tlsa", "3 1 1 " + tls::spki_sha256_hex(next->get()))
          .kv("file", state.paths.next_key)
          .kv("action", force ? "the key changes now (forced)"
                              : "publish this TLSA record beside the current one (smtpsctl dane "
                                "tlsa --next); the key changes once the DNS shows it");
    }
  }
  if (!next) {
    obs::Log("acme_failed", obs::Level::kError)
        .kv("key", key_name)
        .kv("step", "next_key")
        .kv("error", next.error());
    std::lock_guard lock(mutex_);
    state.rollover_force = false;
    state.rollover_staged = exists(state.paths.next_key);
    state.rollover_status = "failed: " + next.error();
    state.rollover_check_ms = saturating_add(now_ms(), options_.retry_min.count());
    return;
  }
  {
    std::lock_guard lock(mutex_);
    state.rollover_staged = true;
  }
  const std::int64_t recheck = std::min<std::int64_t>(options_.retry_min.count(), 300'000);
  std::string switch_reason = "forced";
  if (!force) {
    TlsaVisibility seen;
    if (!resolver_ || !options_.authoritative) {
      seen.detail = "no resolver to ask the DNS with";
    } else {
      seen = check_tlsa_visible(*resolver_, options_.authoritative, options_.names,
                                tls::spki_sha256(next->get()), std::chrono::milliseconds(5000));
    }
    const std::int64_t now = now_ms();
    std::unique_lock lock(mutex_);
    if (seen.state == TlsaVisibility::State::kNotYet) {
      if (state.rollover_status != "waiting: " + seen.detail) {
        obs::Log("acme_key_rollover")
            .kv("key", key_name)
            .kv("step", "waiting")
            .kv("detail", seen.detail);
      }
      state.rollover_status = "waiting: " + seen.detail;
      state.rollover_switch_ms = 0;
      state.rollover_check_ms = saturating_add(now, recheck);
      return;
    }
    if (seen.state == TlsaVisibility::State::kVisible) {
      if (state.rollover_switch_ms == 0) {
        // RFC 7671 §8.1: caches may hold the RRset without the new record for a TTL; twice
        // that, and every validating client has seen "current + next".
        state.rollover_switch_ms = saturating_add(now, ms_of(seen.ttl.count()) * 2);
        state.rollover_status =
            "visible; the key changes at " + when(state.rollover_switch_ms / 1000);
        obs::Log("acme_key_rollover")
            .kv("key", key_name)
            .kv("step", "visible")
            .kv("ttl", static_cast<std::int64_t>(seen.ttl.count()))
            .kv("switch_at", when(state.rollover_switch_ms / 1000));
      }
      if (now < state.rollover_switch_ms) {
        state.rollover_check_ms = std::min(saturating_add(now, recheck), state.rollover_switch_ms);
        return;
      }
      switch_reason = "the record has been visible for twice its TTL";
    } else {
      switch_reason = "no name has a DNSSEC-signed TLSA record";
    }
  }
  obs::Log("acme_key_rollover")
      .kv("key", key_name)
      .kv("step", "switching")
      .kv("reason", switch_reason);
  attempt(state, client, account, true);
  std::lock_guard lock(mutex_);
  if (exists(state.paths.next_key)) {
    // The order failed: tried again with the renewal's backoff; the current pair serves.
    state.rollover_check_ms = state.due_ms;
    state.rollover_status = "switch failed; retry at " + when(state.due_ms / 1000);
  } else {
    end_rollover(state);
  }
}

void Renewer::revoke(KeyState& state, Client& client) {
  const std::string key_name(to_string(state.paths.type));
  int reason = 0;
  {
    std::lock_guard lock(mutex_);
    reason = state.revoke_reason.value_or(0);
    state.revoke_reason.reset();
  }
  auto fail = [&](const std::string& step, const std::string& error) {
    obs::Log("acme_revoke_failed", obs::Level::kWarning)
        .kv("key", key_name)
        .kv("step", step)
        .kv("error", error);
    std::lock_guard lock(mutex_);
    state.last_attempt_unix = base::unix_now();
    state.last_result = "revocation failed at " + step + ": " + error;
  };
  auto text = read_file(state.paths.chain);
  auto info = text ? inspect_chain(text.value(), nullptr)
                   : base::Expected<ChainInfo, std::string>(base::unexpected(text.error()));
  if (!info) return fail("certificate", info.error());
  if (info->self_signed) return fail("certificate", "the placeholder serves: nothing to revoke");
  auto revoked = client.revoke(text.value(), reason);
  if (!revoked) {
    if (revoked.error().stopped || cancel_) return;
    return fail(revoked.error().step, revoked.error().message);
  }
  obs::Log("acme_revoked", obs::Level::kWarning)
      .kv("key", key_name)
      .kv("serial", info->serial)
      .kv("reason", reason);
  // The key may be what was compromised: a new one, served with a placeholder until the new
  // certificate is written (a restart meanwhile orders it at once, with the new key).
  // A staged next key is used (its TLSA record may be published already).
  const bool staged = exists(state.paths.next_key);
  auto key = staged ? load_key(state.paths.next_key, state.paths.type) : make_key(state.paths.type);
  base::Expected<base::Ok, std::string> written =
      !key     ? base::Expected<base::Ok, std::string>(base::unexpected(key.error()))
      : staged ? rename_durably(state.paths.next_key, state.paths.key)
               : write_key(state.paths.key, key->get());
  if (written) written = write_placeholder(state.paths.chain, key->get(), options_.names);
  if (!written) return fail("key", written.error());
  obs::Log("acme_key_replaced", obs::Level::kWarning)
      .kv("key", key_name)
      .kv("tlsa", "3 1 1 " + tls::spki_sha256_hex(key->get()))
      .kv("action",
          "the key changed: a published TLSA 3 1 1 record for it must change to this one "
          "(smtpsctl dane tlsa)");
  std::lock_guard lock(mutex_);
  end_rollover(state);
  state.last_result = "revoked at " + when(base::unix_now()) + ", new key";
  state.due_ms = now_ms();
  state.failures = 0;
  state.backoff = std::chrono::milliseconds(0);
  state.renewal_info_next_ms = 0;
  state.window.reset();
}

void Renewer::schedule(KeyState& state, std::int64_t now) const {
  auto text = read_file(state.paths.chain);
  auto info = text ? inspect_chain(text.value(), nullptr)
                   : base::Expected<ChainInfo, std::string>(base::unexpected(text.error()));
  // A name added to [acme] names (or one removed) is not covered: due now.
  if (!info || info->self_signed || !names_match(info.value(), options_.names)) {
    state.due_ms = now;
    return;
  }
  state.due_ms = ms_of(due_by_lifetime(info.value(), options_.renew_before));
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

void Renewer::attempt(KeyState& state, Client& client, const AccountKey& account, bool next_key) {
  (void)account;
  const std::string key_name(to_string(state.paths.type));
  obs::Log("acme_order")
      .kv("key", key_name)
      .kv("names", joined(options_.names))
      .kv("key_file", next_key ? state.paths.next_key : state.paths.key);
  base::Expected<std::string, Failure> chain = base::unexpected(Failure{"key", ""});
  auto key = next_key ? load_key(state.paths.next_key, state.paths.type)
                      : load_or_create_key(state.paths.key, state.paths.type);
  if (!key) {
    chain = base::unexpected(Failure{"key", key.error()});
  } else if (auto csr = make_csr(key->get(), options_.names); !csr) {
    chain = base::unexpected(Failure{"csr", csr.error()});
  } else {
    // RFC 9773 §5: the order names the certificate it replaces (a placeholder replaces none).
    std::string replaces;
    if (auto current = read_file(state.paths.chain); current) {
      if (auto info = inspect_chain(current.value(), nullptr); info && !info->self_signed) {
        if (auto id = certificate_id(current.value()); id) replaces = id.value();
      }
    }
    chain = client.issue(options_.names, csr.value(), replaces);
  }
  if (chain) {
    // The chain must parse and belong to our key before the reload can see it.
    auto info = inspect_chain(chain.value(), key->get());
    if (!info) {
      chain = base::unexpected(Failure{"certificate", info.error()});
    } else if (!names_match(info.value(), options_.names)) {
      // Kept out of service: it would be due again at once (a loop of orders).
      chain = base::unexpected(Failure{"certificate", "its names (" + joined(info->dns_names) +
                                                          ") are not the names ordered (" +
                                                          joined(options_.names) + ")"});
    } else if (auto written =
                   next_key ? switch_pair(state.paths, chain.value())
                            : base::write_file_atomically(state.paths.chain, chain.value(), 0644);
               !written) {
      chain = base::unexpected(Failure{"write", written.error()});
    } else {
      if (next_key) {
        obs::Log("acme_key_rollover", obs::Level::kWarning)
            .kv("key", key_name)
            .kv("step", "switched")
            .kv("tlsa", "3 1 1 " + tls::spki_sha256_hex(key->get()))
            .kv("action",
                "the new key serves: the old key's TLSA record can be removed from the DNS");
      }
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
      state.renewal_info_next_ms = 0;  // the new certificate's window, next round
      state.window.reset();
      update_metrics(state);
      return;
    }
  }
  const Failure& failure = chain.error();
  if (failure.stopped || cancel_) return;  // the server stops: no failure to record
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
  state.due_ms = saturating_add(now_ms(), wait.count());
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
  std::shared_ptr<HttpTransport> transport = options_.transport;
  if (!transport)
    transport = std::make_shared<CurlTransport>(resolver_, options_.ca_file,
                                                options_.request_timeout, &cancel_);
  Waiter waiter = [this](std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, wait, [this] { return stopping_; });
  };
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    {
      lock.unlock();
      Client asking(*transport, account, publisher_, options_.client, waiter);
      refresh_renewal_info(asking);
      lock.lock();
      if (stopping_) break;
    }
    const std::int64_t now = now_ms();
    const bool forced = forced_;
    forced_ = false;
    std::vector<KeyState*> due;
    for (KeyState& state : keys_)
      if (forced || state.due_ms <= now || state.revoke_reason || rollover_due(state, now))
        due.push_back(&state);
    if (!due.empty()) {
      lock.unlock();
      // One conversation per round: the account is looked up once, authorizations are
      // reused by the second order. A revocation first, then the order for the new key.
      Client client(*transport, account, publisher_, options_.client, waiter);
      for (KeyState* state : due) {
        bool revoking = false;
        {
          std::lock_guard guard(mutex_);
          revoking = state->revoke_reason.has_value();
        }
        if (revoking) {
          revoke(*state, client);
          std::lock_guard guard(mutex_);
          if (state->due_ms > now_ms()) continue;  // the revocation failed: nothing changed
        }
        bool rolling = false;
        {
          std::lock_guard guard(mutex_);
          rolling = !revoking && rollover_due(*state, now_ms());
        }
        if (rolling) {
          roll(*state, client, account);
          std::lock_guard guard(mutex_);
          if (!state->rollover_staged) continue;              // switched: a new certificate
          if (!forced && state->due_ms > now_ms()) continue;  // no renewal due besides
        }
        attempt(*state, client, account);
      }
      lock.lock();
      continue;
    }
    std::int64_t next = keys_.front().due_ms;
    for (const KeyState& state : keys_)
      next = std::min(next, state.due_ms);
    for (const KeyState& state : keys_) {
      if (state.renewal_info_next_ms > 0) next = std::min(next, state.renewal_info_next_ms);
      if (state.rollover_staged) next = std::min(next, state.rollover_check_ms);
    }
    // Wake at the next due time or window question, or hourly for the days-left gauge.
    const std::int64_t wait = std::clamp<std::int64_t>(saturating_add(next, -now), 1, 3'600'000);
    wake_.wait_for(lock, std::chrono::milliseconds(wait), [this] {
      return stopping_ || forced_ ||
             std::any_of(keys_.begin(), keys_.end(), [](const KeyState& state) {
               return state.revoke_reason.has_value() || state.rollover_asked;
             });
    });
    if (!stopping_) {
      for (const KeyState& state : keys_)
        update_metrics(state);
    }
  }
}

void Renewer::refresh_renewal_info(Client& client) {
  constexpr std::int64_t kDefaultPoll = 6 * 3'600'000;  // RFC 9773 §4.3: without Retry-After
  static thread_local std::mt19937_64 random{std::random_device{}()};
  for (KeyState& state : keys_) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || state.failures > 0 || state.renewal_info_next_ms > now_ms()) continue;
    }
    auto text = read_file(state.paths.chain);
    auto info = text ? inspect_chain(text.value(), nullptr)
                     : base::Expected<ChainInfo, std::string>(base::unexpected(text.error()));
    if (!info || info->self_signed) continue;  // due now anyway
    auto id = certificate_id(text.value());
    auto window = id ? client.renewal_info(id.value())
                     : base::Expected<RenewalWindow, Failure>(
                           base::unexpected(Failure{"renewal_info", id.error()}));
    const std::string key_name(to_string(state.paths.type));
    std::lock_guard lock(mutex_);
    if (!window) {
      if (window.error().stopped || cancel_) return;
      const bool offered = window.error().message != "not offered by the CA";
      if (offered) {
        obs::Log("acme_renewal_info_failed", obs::Level::kWarning)
            .kv("key", key_name)
            .kv("error", window.error().message);
      }
      // Not offered: the lifetime decides; asked again later, as the CA may add it.
      state.renewal_info_next_ms = now_ms() + (offered ? 3'600'000 : kDefaultPoll);
      continue;
    }
    const RenewalWindow& w = window.value();
    const bool changed =
        !state.window || state.window->start != w.start || state.window->end != w.end;
    if (changed) {
      // §4.2: a uniformly random time inside the window (at once when it has passed), but
      // the window is the CA's word, not trusted blindly: never later than a sixth of the
      // lifetime before the end; a window that starts after that (or ends before it starts)
      // leaves the lifetime's rule in charge.
      const std::int64_t latest = ms_of(latest_renewal(info.value()));
      const std::int64_t start = ms_of(w.start);
      const std::int64_t end = std::min(ms_of(w.end), latest);
      if (start <= end) {
        std::uniform_int_distribution<std::int64_t> pick(start, end);
        state.due_ms = pick(random);
      } else {
        state.due_ms = ms_of(due_by_lifetime(info.value(), options_.renew_before));
      }
      obs::Log("acme_renewal_info")
          .kv("key", key_name)
          .kv("window_start", when(w.start))
          .kv("window_end", when(w.end))
          .kv("renew_at", when(state.due_ms / 1000));
    }
    state.window = w;
    const std::int64_t poll =
        w.retry_after.count() > 0
            ? std::clamp<std::int64_t>(w.retry_after.count() * 1000, 60'000, 24 * 3'600'000)
            : kDefaultPoll;
    state.renewal_info_next_ms = now_ms() + poll;
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
    if (state.window)
      out += " ari_window=" + when(state.window->start) + ".." + when(state.window->end);
    if (!state.last_result.empty()) out += " last=\"" + state.last_result + "\"";
    if (state.rollover_staged || state.rollover_asked) {
      out += " next_key=";
      if (auto next = load_key(state.paths.next_key, state.paths.type))
        out += "\"3 1 1 " + tls::spki_sha256_hex(next->get()) + "\"";
      else
        out += "staging";
      if (!state.rollover_status.empty()) out += " rollover=\"" + state.rollover_status + "\"";
    }
    out += "\n";
  }
  return out;
}

}  // namespace acme
