// acme_service.h — the daemon's ACME certificates ([acme], acme/renewal.h), wired in three
// steps that follow the daemon's start-up: prepare() before the certificates are read (keys
// and a placeholder, so the server starts serving at once), bind() before the privilege drop
// (the http-01 port, 80 by default), start() once the server runs (the responder's and the
// renewal's threads). The control socket's "cert status" and "cert renew" go to
// handle_request().
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "acme/http01_responder.h"
#include "acme/renewal.h"
#include "base/expected.h"
#include "config/config.h"
#include "dns/resolver.h"

namespace app {

class AcmeService {
 public:
  explicit AcmeService(const config::AcmeSettings& settings) : settings_(settings) {}
  ~AcmeService();
  base::Expected<base::Ok, std::string> prepare();
  // Started as root to run as an account: <data_dir>/acme and its files become the account's.
  base::Expected<base::Ok, std::string> give_to(uid_t uid, gid_t gid);
  base::Expected<base::Ok, std::string> bind();
  void start(std::shared_ptr<dns::Resolver> resolver);
  void stop();
  // "status" or "renew" (the words after "cert").
  std::string handle_request(std::string_view verb);

 private:
  config::AcmeSettings settings_;
  std::unique_ptr<acme::Http01Responder> responder_;
  std::unique_ptr<acme::Renewer> renewer_;
};

}  // namespace app
