// open_files.h — the files this process holds open under a directory (/proc/self/fd), for
// tests that check nothing of the spool stays open for writing once idle.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace test_support {

// The targets of this process's descriptors that lie under `directory` (made canonical, as
// /proc shows them), in descriptor order.
inline std::vector<std::string> open_files_under(const std::string& directory) {
  const std::string prefix = std::filesystem::canonical(directory).string() + "/";
  std::vector<std::string> open;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ignored;
    std::string target = std::filesystem::read_symlink(entry.path(), ignored).string();
    if (target.starts_with(prefix)) open.push_back(std::move(target));
  }
  return open;
}

}  // namespace test_support
