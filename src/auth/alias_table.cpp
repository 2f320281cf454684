// alias_table.cpp — parsing, writing and editing the aliases file (format: alias_table.h)
// and the AliasDirectory that keeps its snapshot.
//
// Invariants: parse() accepts only what serialize() writes plus comments, blank lines and
// runs of blanks between the two fields; every refusal names file and line. save() is the
// users file's atomic replacement (replace_file_atomically).
#include "auth/alias_table.h"

#include <algorithm>

#include "auth/line_file.h"
#include "base/ascii.h"
#include "obs/log.h"

namespace auth {
namespace {

constexpr std::string_view kVersionLine = "smtpsd-aliases 1";
constexpr std::size_t kMaxFileSize = 16 * 1024 * 1024;

base::Expected<base::Ok, std::string> validate_targets(const std::string& address,
                                                       const std::vector<std::string>& targets) {
  if (targets.empty()) return base::unexpected(std::string("an alias needs at least one target"));
  if (targets.size() > kMaxAliasTargets) {
    return base::unexpected("more than " + std::to_string(kMaxAliasTargets) + " targets");
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (auto valid = validate_address(targets[i]); !valid) {
      return base::unexpected("target '" + targets[i] + "': " + valid.error());
    }
    if (same_address(targets[i], address)) {
      // A mailbox that keeps a copy lists itself among its targets ("alice → alice, archive");
      // an alias that is only itself is a loop.
      if (targets.size() == 1) {
        return base::unexpected("alias " + address + " has itself as its only target (a loop)");
      }
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (same_address(targets[i], targets[j])) {
        return base::unexpected("target " + targets[i] + " listed twice");
      }
    }
  }
  return base::Ok{};
}

}  // namespace

base::Expected<base::Ok, std::string> validate_alias_address(std::string_view address) {
  if (address.starts_with('@')) {
    // "@domain": validate "x@domain" for the domain's syntax.
    std::string probe = "x" + std::string(address);
    if (auto valid = validate_address(probe); !valid) {
      return base::unexpected("catch-all " + std::string(address) + ": " + valid.error());
    }
    return base::Ok{};
  }
  return validate_address(address);
}

base::Expected<AliasTable, std::string> AliasTable::load(const std::string& path) {
  auto text = read_bounded_file(path, kMaxFileSize);
  if (!text) return base::unexpected(text.error());
  return parse(text.value(), path);
}

base::Expected<AliasTable, std::string> AliasTable::parse(std::string_view text,
                                                          const std::string& path_for_errors) {
  AliasTable table;
  constexpr LineFileFormat kFormat{"smtpsd-aliases", "1", "aliases file", "alias"};
  auto read = read_line_file(
      text, path_for_errors, kFormat,
      [&](std::size_t line_number,
          const std::vector<std::string_view>& fields) -> base::Expected<base::Ok, std::string> {
        auto fail = [](std::string why) { return base::unexpected(std::move(why)); };
        if (fields.size() != 2) {
          return fail("expected 2 fields: address target[,target]... (no blank after a comma)");
        }
        Alias alias;
        if (auto valid = validate_alias_address(fields[0]); !valid) return fail(valid.error());
        alias.address = std::string(fields[0]);
        if (table.find(alias.address) != nullptr) return fail("duplicate alias " + alias.address);
        std::string_view list = fields[1];
        std::size_t start = 0;
        while (true) {
          std::size_t comma = list.find(',', start);
          alias.targets.emplace_back(
              list.substr(start, comma == std::string_view::npos ? comma : comma - start));
          if (comma == std::string_view::npos) break;
          start = comma + 1;
        }
        if (auto valid = validate_targets(alias.address, alias.targets); !valid) {
          return fail(valid.error());
        }
        alias.line = line_number;
        table.index_.emplace(base::ascii_lowercase(alias.address), table.aliases_.size());
        table.aliases_.push_back(std::move(alias));
        return base::Ok{};
      });
  if (!read) return base::unexpected(read.error());
  return table;
}

std::string AliasTable::serialize() const {
  std::string out;
  out += "# smtpsd aliases file (README \"Mailboxes and aliases\"). Edit with `smtpsctl alias`.\n";
  out += kVersionLine;
  out += '\n';
  for (const Alias& alias : aliases_) {
    out += alias.address;
    out += ' ';
    for (std::size_t i = 0; i < alias.targets.size(); ++i) {
      if (i > 0) out += ',';
      out += alias.targets[i];
    }
    out += '\n';
  }
  return out;
}

base::Expected<base::Ok, std::string> AliasTable::save(const std::string& path) const {
  return replace_file_atomically(path, serialize());
}

const Alias* AliasTable::find(std::string_view address) const {
  auto it = index_.find(base::ascii_lowercase(address));
  return it == index_.end() ? nullptr : &aliases_[it->second];
}

void AliasTable::rebuild_index() {
  index_.clear();
  for (std::size_t i = 0; i < aliases_.size(); ++i)
    index_.emplace(base::ascii_lowercase(aliases_[i].address), i);
}

base::Expected<base::Ok, std::string> AliasTable::add(std::string_view address,
                                                      const std::vector<std::string>& targets) {
  if (auto valid = validate_alias_address(address); !valid) return valid;
  auto it = std::find_if(aliases_.begin(), aliases_.end(),
                         [&](const Alias& alias) { return same_address(alias.address, address); });
  std::vector<std::string> combined =
      it == aliases_.end() ? std::vector<std::string>{} : it->targets;
  combined.insert(combined.end(), targets.begin(), targets.end());
  if (auto valid = validate_targets(std::string(address), combined); !valid) return valid;
  if (it == aliases_.end()) {
    index_.emplace(base::ascii_lowercase(address), aliases_.size());
    aliases_.push_back(Alias{std::string(address), std::move(combined), 0});
  } else {
    it->targets = std::move(combined);
  }
  return base::Ok{};
}

bool AliasTable::remove(std::string_view address, std::string_view target) {
  auto it = std::find_if(aliases_.begin(), aliases_.end(),
                         [&](const Alias& alias) { return same_address(alias.address, address); });
  if (it == aliases_.end()) return false;
  if (target.empty()) {
    aliases_.erase(it);
    rebuild_index();
    return true;
  }
  auto t = std::find_if(it->targets.begin(), it->targets.end(), [&](const std::string& existing) {
    return same_address(existing, target);
  });
  if (t == it->targets.end()) return false;
  it->targets.erase(t);
  if (it->targets.empty()) {
    aliases_.erase(it);
    rebuild_index();
  }
  return true;
}

// --- AliasDirectory ---------------------------------------------------------------------

AliasDirectory::AliasDirectory(std::string path)
    : source_(make_file_system_source()),
      snapshot_(std::make_shared<const AliasTable>()),
      path_(std::move(path)) {
  std::lock_guard lock(reload_mutex_);
  reload_locked(source_->signature(path_));
}

AliasDirectory::~AliasDirectory() = default;

bool AliasDirectory::refresh() {
  std::lock_guard lock(reload_mutex_);
  const UsersFileSource::Signature signature = source_->signature(path_);
  if (signature == seen_) return false;
  return reload_locked(signature);
}

void AliasDirectory::start_watching(std::chrono::milliseconds poll_interval) {
  watcher_.start(poll_interval, [this] { refresh(); });
}

bool AliasDirectory::reload_locked(const UsersFileSource::Signature& signature) {
  seen_ = signature;
  if (!signature.exists) {
    snapshot_.store(std::make_shared<const AliasTable>());
    last_error_.clear();
    return true;
  }
  auto text = source_->read(path_);
  auto loaded = text ? AliasTable::parse(text.value(), path_)
                     : base::Expected<AliasTable, std::string>(base::unexpected(text.error()));
  if (!loaded) {
    last_error_ = loaded.error();
    obs::Log("aliases_reload_failed", obs::Level::kError)
        .kv("file", path_)
        .kv("error", last_error_)
        .kv("kept_aliases", static_cast<std::uint64_t>(current()->size()));
    return false;
  }
  // In service before the line says so (UserDirectory::reload_locked).
  const auto count = static_cast<std::uint64_t>(loaded->size());
  snapshot_.store(std::make_shared<const AliasTable>(std::move(loaded.value())));
  obs::Log("aliases_loaded").kv("file", path_).kv("aliases", count);
  last_error_.clear();
  return true;
}

std::string AliasDirectory::last_error() const {
  std::lock_guard lock(reload_mutex_);
  return last_error_;
}

std::string AliasDirectory::path() const {
  std::lock_guard lock(reload_mutex_);
  return path_;
}

base::Expected<base::Ok, std::string> AliasDirectory::switch_to(std::string path) {
  std::lock_guard lock(reload_mutex_);
  if (path == path_) return base::Ok{};
  const UsersFileSource::Signature signature = source_->signature(path);
  auto snapshot = std::make_shared<const AliasTable>();
  if (signature.exists) {
    auto loaded = AliasTable::load(path);
    if (!loaded) return base::unexpected(loaded.error());
    snapshot = std::make_shared<const AliasTable>(std::move(loaded.value()));
  }
  path_ = std::move(path);
  seen_ = signature;
  last_error_.clear();
  snapshot_.store(std::move(snapshot));
  return base::Ok{};
}

}  // namespace auth
