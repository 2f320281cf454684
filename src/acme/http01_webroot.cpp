// http01_webroot.cpp — see http01_webroot.h.
#include "acme/http01_webroot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/file_write.h"

namespace acme {
namespace {

bool base64url_token(const std::string& token) {
  if (token.empty() || token.size() > 256) return false;
  for (char c : token) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

base::Expected<base::Ok, std::string> WebrootPublisher::publish(
    const std::string& token, const std::string& key_authorization) {
  if (!base64url_token(token))
    return base::unexpected("the CA's token is not base64url: refused as a file name");
  const std::string dir = directory();
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    std::filesystem::create_directories(dir, error);
    if (error) return base::unexpected("cannot create " + dir + ": " + error.message());
    // The web server's account reads it: 0755 whatever the umask (the directories above too,
    // when made here).
    for (std::string path = dir; path.size() > webroot_.size();
         path = path.substr(0, path.rfind('/'))) {
      if (::chmod(path.c_str(), 0755) != 0)
        return base::unexpected("chmod " + path + ": " + std::strerror(errno));
    }
  }
  auto written = base::write_file_atomically(dir + "/" + token, key_authorization, 0644);
  if (!written) return base::unexpected(written.error());
  return base::Ok{};
}

void WebrootPublisher::withdraw(const std::string& token) {
  if (base64url_token(token)) ::unlink((directory() + "/" + token).c_str());
}

}  // namespace acme
