// cache.cpp — a bounded TTL cache of answers (see cache.h).
#include "dns/cache.h"

#include <algorithm>
#include <utility>

#include "base/ascii.h"

namespace dns {

constexpr std::size_t kMaxCachedAnswerSize = 8192;

Cache::Cache(Limits limits, Now now) : limits_(limits), now_(std::move(now)) {}

std::string Cache::key(std::string_view name, Type type) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return base::ascii_lowercase(name) + "/" + std::to_string(static_cast<unsigned>(type));
}

AnswerPtr Cache::find(std::string_view name, Type type) {
  const std::string wanted = key(name, type);
  const auto now = now_();
  std::lock_guard lock(mutex_);
  auto where = entries_.find(wanted);
  if (where == entries_.end()) return nullptr;
  if (where->second.expires <= now) {
    erase(where);
    return nullptr;
  }
  return where->second.answer;
}

void Cache::store(std::string_view name, Type type, AnswerPtr answer) {
  if (answer == nullptr || answer->status == Status::kTemporary || limits_.max_entries == 0) {
    return;
  }
  // Entries are counted, not weighed: a large answer (many or long TXT records, which any
  // sender's zone can serve) is not kept, so 10,000 entries stay a few tens of MiB at most.
  std::size_t size = 0;
  for (const std::string& text : answer->texts)
    size += text.size();
  for (const std::string& name : answer->names)
    size += name.size();
  for (const TlsaRecord& record : answer->tlsa)
    size += record.data.size();
  if (size > kMaxCachedAnswerSize) return;
  std::chrono::seconds ttl = answer->status == Status::kBogus
                                 ? limits_.min_ttl
                                 : std::clamp(answer->ttl, limits_.min_ttl, limits_.max_ttl);
  std::string stored_key = key(name, type);
  const auto expires = now_() + ttl;
  std::lock_guard lock(mutex_);
  if (auto where = entries_.find(stored_key); where != entries_.end()) erase(where);
  while (entries_.size() >= limits_.max_entries && !by_expiry_.empty()) {
    erase(entries_.find(by_expiry_.begin()->second));
  }
  auto position = by_expiry_.emplace(expires, stored_key);
  entries_.emplace(std::move(stored_key), Entry{std::move(answer), expires, position});
}

std::size_t Cache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void Cache::erase(std::unordered_map<std::string, Entry>::iterator where) {
  by_expiry_.erase(where->second.by_expiry);
  entries_.erase(where);
}

}  // namespace dns
