// http01_webroot.h — http-01 (RFC 8555 §8.3) through a web server that already runs on port
// 80 (most MX hosts have one, and mta-sts.<domain> is served there too): publishing a
// challenge writes the key authorization to <webroot>/.well-known/acme-challenge/<token>,
// which that server serves as a static file; withdrawing removes it. No port is bound.
//
// Invariants: a token is base64url (§8.3), at most 256 octets: anything else (a '/', "..") is
// refused, so a file is never written outside the challenge directory. The directory is made
// when missing (0755) and the file is written atomically (0644, fsynced, renamed into place):
// the web server (another account) reads it, and never sees half of it. Blocking, on the
// renewal thread only.
#pragma once

#include <string>

#include "acme/client.h"
#include "base/expected.h"

namespace acme {

class WebrootPublisher : public ChallengePublisher {
 public:
  explicit WebrootPublisher(std::string webroot) : webroot_(std::move(webroot)) {}
  // key is the challenge's token.
  base::Expected<base::Ok, std::string> publish(const std::string& token,
                                                const std::string& key_authorization) override;
  void withdraw(const std::string& token) override;
  // <webroot>/.well-known/acme-challenge
  std::string directory() const { return webroot_ + "/.well-known/acme-challenge"; }

 private:
  std::string webroot_;
};

}  // namespace acme
