// acme_service.h — the daemon's ACME certificates ([acme], acme/renewal.h), wired in three
// steps that follow the daemon's start-up: prepare() before the certificates are read (keys
// and a placeholder, so the server starts serving at once), bind() before the privilege drop
// (the http-01 port, 80 by default, or the tls-alpn-01 port, 443), start() once the server runs
// (the responder's and the renewal's threads). The control socket's "cert status", "cert renew" and
// "cert revoke" go to handle_request().
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "acme/dns01_hook.h"
#include "acme/http01_responder.h"
#include "acme/http01_webroot.h"
#include "acme/renewal.h"
#include "acme/tls_alpn_responder.h"
#include "base/expected.h"
#include "config/config.h"
#include "dns/resolver.h"

namespace app {

class AcmeService {
 public:
  explicit AcmeService(const config::AcmeSettings& settings) : settings_(settings) {}
  ~AcmeService();
  // Keys and placeholders in <data_dir>/acme; the caller runs it as the owner of data_dir
  // (privileges.h write_as_data_dir_owner), so that root never writes where the account can.
  base::Expected<base::Ok, std::string> prepare();
  base::Expected<base::Ok, std::string> bind();
  void start(std::shared_ptr<dns::Resolver> resolver);
  void stop();
  // The words after "cert": "status", "renew", or "revoke" KEY REASON (KEY "ecdsa", "rsa" or
  // "all"; REASON an RFC 5280 §5.3.1 code that ACME CAs accept: 0, 1, 3, 4 or 5).
  std::string handle_request(const std::vector<std::string>& words);

 private:
  config::AcmeSettings settings_;
  // The responder of the configured challenge (one of the two).
  std::unique_ptr<acme::Http01Responder> http_responder_;
  std::unique_ptr<acme::TlsAlpnResponder> tls_alpn_responder_;
  std::unique_ptr<acme::Dns01HookPublisher> dns_publisher_;  // dns-01: the hook, no port
  std::unique_ptr<acme::WebrootPublisher> webroot_;          // http-01 by a web server
  std::atomic<bool> stopping_{false};
  std::unique_ptr<acme::Renewer> renewer_;
};

}  // namespace app
