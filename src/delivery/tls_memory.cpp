// tls_memory.cpp — see tls_memory.h.
#include "delivery/tls_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "base/ascii.h"

namespace delivery {
namespace {}  // namespace

std::string_view to_string(SeenTls level) {
  switch (level) {
    case SeenTls::kNone:
      return "none";
    case SeenTls::kEncrypted:
      return "encrypted";
    case SeenTls::kVerified:
      return "verified";
  }
  return "none";
}

TlsMemory::TlsMemory(std::string path) : path_(std::move(path)) {
  std::ifstream in(path_);
  std::string line;
  long number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream fields(line);
    std::string domain, level;
    std::int64_t since = 0;
    if (!(fields >> domain >> level >> since)) {
      load_errors_ += path_ + ":" + std::to_string(number) + ": unreadable line ignored\n";
      continue;
    }
    if (level == "exception") {
      // One that has ended is dropped (the next save forgets it).
      if (since > static_cast<std::int64_t>(std::time(nullptr)))
        exceptions_[base::ascii_lowercase(domain)] = since;
      continue;
    }
    SeenTls seen = level == "verified"    ? SeenTls::kVerified
                   : level == "encrypted" ? SeenTls::kEncrypted
                                          : SeenTls::kNone;
    domains_[base::ascii_lowercase(domain)] = {seen, since};
  }
}

SeenTls TlsMemory::best(std::string_view domain) const {
  std::lock_guard lock(mutex_);
  auto it = domains_.find(base::ascii_lowercase(domain));
  return it == domains_.end() ? SeenTls::kNone : it->second.first;
}

bool TlsMemory::record(std::string_view domain, SeenTls level, std::int64_t now_unix) {
  if (level == SeenTls::kNone) return false;
  std::lock_guard lock(mutex_);
  auto& entry = domains_[base::ascii_lowercase(domain)];
  if (entry.second != 0 && entry.first >= level) return false;
  entry = {level, now_unix};
  save();
  return true;
}

bool TlsMemory::forget(std::string_view domain) {
  std::lock_guard lock(mutex_);
  if (domains_.erase(base::ascii_lowercase(domain)) == 0) return false;
  save();
  return true;
}

std::vector<std::pair<std::string, SeenTls>> TlsMemory::entries() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, SeenTls>> out;
  for (const auto& [domain, entry] : domains_)
    out.emplace_back(domain, entry.first);
  std::sort(out.begin(), out.end());
  return out;
}

bool TlsMemory::except(std::string_view domain, std::int64_t until_unix) {
  std::lock_guard lock(mutex_);
  const std::string name = base::ascii_lowercase(domain);
  if (until_unix == 0) {
    if (exceptions_.erase(name) == 0) return false;
  } else {
    exceptions_[name] = until_unix;
  }
  save();
  return true;
}

std::optional<std::int64_t> TlsMemory::exception_until(std::string_view domain,
                                                       std::int64_t now_unix) const {
  std::lock_guard lock(mutex_);
  auto it = exceptions_.find(base::ascii_lowercase(domain));
  if (it == exceptions_.end() || it->second <= now_unix) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, std::int64_t>> TlsMemory::exceptions() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::int64_t>> out(exceptions_.begin(), exceptions_.end());
  std::sort(out.begin(), out.end());
  return out;
}

void TlsMemory::save() const {
  std::vector<std::string> lines;
  for (const auto& [domain, entry] : domains_) {
    lines.push_back(domain + " " + std::string(to_string(entry.first)) + " " +
                    std::to_string(entry.second) + "\n");
  }
  for (const auto& [domain, until] : exceptions_)
    lines.push_back(domain + " exception " + std::to_string(until) + "\n");
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const std::string& line : lines)
    text += line;
  std::string temporary = path_ + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;  // the memory still works for this process
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (ok) {
    std::rename(temporary.c_str(), path_.c_str());
  } else {
    ::unlink(temporary.c_str());
  }
}

}  // namespace delivery
