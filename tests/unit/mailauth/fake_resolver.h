// fake_resolver.h — an in-memory dns::Resolver for tests: a zone of (name, type) → answer,
// answered at once (as from a cache) or deferred until run_pending() (as from the resolver's
// thread, later). Names are matched without case and without a trailing dot. A name with
// no record of the type asked is kNoData when the zone knows the name, else kNxDomain; a
// CNAME is followed (at most 8 times) like a recursive resolver would. Every lookup is
// recorded in order, for tests that count queries.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/ascii.h"
#include "dns/resolver.h"

namespace mailauth_test {

class FakeResolver : public dns::Resolver {
 public:
  enum class Mode { kAtOnce, kDeferred };
  explicit FakeResolver(Mode mode = Mode::kAtOnce) : mode_(mode) {}

  void add_txt(std::string_view name, std::string text) {
    entry(name, dns::Type::kTxt).texts.push_back(std::move(text));
  }
  void add_address(std::string_view name, std::string address) {
    dns::Type type = address.find(':') == std::string::npos ? dns::Type::kA : dns::Type::kAaaa;
    entry(name, type).addresses.push_back(std::move(address));
  }
  void add_mx(std::string_view name, std::uint16_t preference, std::string exchange) {
    entry(name, dns::Type::kMx).mx.push_back({preference, std::move(exchange)});
  }
  void add_ptr(std::string_view name, std::string target) {
    entry(name, dns::Type::kPtr).names.push_back(std::move(target));
  }
  void add_cname(std::string_view name, std::string target) {
    entry(name, dns::Type::kCname).names.push_back(std::move(target));
  }
  // The name exists (kNoData for types it lacks) without any record.
  void add_name(std::string_view name) { names_.insert(key(name)); }
  // Every lookup of the name for a type it has no record of ends with `status` (kTemporary,
  // kBogus, ...), as the suite's TIMEOUT means.
  void set_status(std::string_view name, dns::Status status) { statuses_[key(name)] = status; }

  void lookup(std::string_view name, dns::Type type, Callback callback) override {
    auto answer = resolve(key(name), type);
    {
      std::lock_guard lock(mutex_);
      queries_.emplace_back(key(name), type);
      if (mode_ == Mode::kDeferred) {
        pending_.emplace_back(std::move(callback), std::move(answer));
        return;
      }
    }
    callback(std::move(answer));
  }

  // Deferred mode: answers every lookup asked so far and those they lead to; returns how
  // many callbacks ran.
  std::size_t run_pending() {
    std::size_t ran = 0;
    for (;;) {
      std::pair<Callback, dns::AnswerPtr> next;
      {
        std::lock_guard lock(mutex_);
        if (pending_.empty()) return ran;
        next = std::move(pending_.front());
        pending_.pop_front();
      }
      next.first(std::move(next.second));
      ++ran;
    }
  }

  std::vector<std::pair<std::string, dns::Type>> queries() const {
    std::lock_guard lock(mutex_);
    return queries_;
  }

  bool validates() const override { return false; }
  std::string describe() const override { return "fake"; }

 private:
  static std::string key(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    return base::ascii_lowercase(name);
  }
  dns::Answer& entry(std::string_view name, dns::Type type) {
    names_.insert(key(name));
    auto& answer = zone_[{key(name), type}];
    answer.status = dns::Status::kOk;
    return answer;
  }

  dns::AnswerPtr resolve(std::string name, dns::Type type) const {
    auto out = std::make_shared<dns::Answer>();
    for (int hops = 0; hops <= 8; ++hops) {
      if (auto found = zone_.find({name, type}); found != zone_.end()) {
        *out = found->second;
        return out;
      }
      if (auto status = statuses_.find(name); status != statuses_.end()) {
        out->status = status->second;
        out->detail = std::string(dns::to_string(status->second));
        return out;
      }
      auto cname = zone_.find({name, dns::Type::kCname});
      if (type == dns::Type::kCname || cname == zone_.end() || cname->second.names.empty()) break;
      name = key(cname->second.names.front());
    }
    out->status = names_.count(name) ? dns::Status::kNoData : dns::Status::kNxDomain;
    return out;
  }

  Mode mode_;
  std::map<std::pair<std::string, dns::Type>, dns::Answer> zone_;
  std::set<std::string> names_;
  std::map<std::string, dns::Status> statuses_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, dns::Type>> queries_;
  std::deque<std::pair<Callback, dns::AnswerPtr>> pending_;
};

}  // namespace mailauth_test
