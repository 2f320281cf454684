// acme_service.cpp — see acme_service.h.
#include "app/smtpsd/acme_service.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "base/endpoint.h"
#include "dns/unbound_resolver.h"
#include "obs/log.h"

namespace app {
namespace {

// "ecdsa", "rsa" or "all" (type left empty); false for anything else.
bool key_type_of(const std::string& word, std::optional<acme::KeyType>& type) {
  if (word == "ecdsa") {
    type = acme::KeyType::kEcdsaP256;
  } else if (word == "rsa") {
    type = acme::KeyType::kRsa2048;
  } else if (word != "all") {
    return false;
  }
  return true;
}

}  // namespace

AcmeService::~AcmeService() {
  stop();
}

base::Expected<base::Ok, std::string> AcmeService::prepare() {
  auto prepared = acme::prepare_files(settings_.directory_on_disk, settings_.names);
  if (!prepared) return base::unexpected("[acme]: " + prepared.error());
  return base::Ok{};
}

base::Expected<base::Ok, std::string> AcmeService::bind() {
  if (settings_.challenge == "dns-01") return base::Ok{};  // the hook, no port
  if (!settings_.http_webroot.empty()) return base::Ok{};  // the web server's port
  if (settings_.challenge == "tls-alpn-01") {
    auto bound = acme::TlsAlpnResponder::bind(settings_.tls_alpn_address, settings_.tls_alpn_port);
    if (!bound) return base::unexpected("[acme] tls_alpn_port: " + bound.error());
    tls_alpn_responder_ = std::move(bound).value();
    return base::Ok{};
  }
  auto bound = acme::Http01Responder::bind(settings_.http_address, settings_.http_port);
  if (!bound) return base::unexpected("[acme] http_port: " + bound.error());
  http_responder_ = std::move(bound).value();
  return base::Ok{};
}

void AcmeService::start(std::shared_ptr<dns::Resolver> resolver) {
  acme::ChallengePublisher* publisher = nullptr;
  std::uint16_t port = 0;
  if (settings_.challenge == "dns-01") {
    dns_publisher_ = std::make_unique<acme::Dns01HookPublisher>(
        settings_.dns_hook, settings_.dns_hook_timeout, resolver, settings_.dns_propagation_timeout,
        &stopping_);
    publisher = dns_publisher_.get();
  } else if (!settings_.http_webroot.empty()) {
    webroot_ = std::make_unique<acme::WebrootPublisher>(settings_.http_webroot);
    publisher = webroot_.get();
  } else if (tls_alpn_responder_) {
    tls_alpn_responder_->start();
    publisher = tls_alpn_responder_.get();
    port = tls_alpn_responder_->port();
  } else {
    http_responder_->start();
    publisher = http_responder_.get();
    port = http_responder_->port();
  }
  acme::RenewalOptions options;
  options.acme_dir = settings_.directory_on_disk;
  options.names = settings_.names;
  options.client.directory_url = settings_.directory;
  options.client.contact = settings_.contact;
  options.client.challenge = settings_.challenge;
  options.client.eab_kid = settings_.eab_kid;
  options.client.eab_hmac_key = settings_.eab_hmac_key;
  options.ca_file = settings_.ca_file;
  if (settings_.renew_before)
    options.renew_before =
        std::chrono::duration_cast<std::chrono::seconds>(*settings_.renew_before);
  options.retry_min = settings_.retry_wait;
  options.retry_max = settings_.retry_max_wait;
  // A key rollover asks each authoritative nameserver directly: a resolver of its own per
  // server (port 53, nothing cached, no validation: our resolver has validated the RRset).
  options.authoritative = [](const std::string& ip) -> std::shared_ptr<dns::Resolver> {
    dns::Options direct;
    direct.mode = dns::Options::Mode::kForward;
    direct.servers.push_back(base::HostPort{ip, 53});
    direct.validation = dns::Options::Validation::kOff;
    auto made = dns::create_resolver(direct);
    if (!made) return nullptr;
    return std::shared_ptr<dns::Resolver>(std::move(made).value());
  };
  renewer_ = std::make_unique<acme::Renewer>(std::move(options), std::move(resolver), *publisher);
  obs::Log started("acme_started");
  started.kv("directory", settings_.directory).kv("challenge", settings_.challenge);
  if (webroot_)
    started.kv("http_webroot", webroot_->directory());
  else if (!dns_publisher_)
    started.kv(tls_alpn_responder_ ? "tls_alpn_port" : "http_port", static_cast<unsigned>(port));
  started.kv("dir", settings_.directory_on_disk);
  renewer_->start();
}

void AcmeService::stop() {
  stopping_ = true;  // ends a dns-01 wait for the record
  if (renewer_) renewer_->stop();
  if (http_responder_) http_responder_->stop();
  if (tls_alpn_responder_) tls_alpn_responder_->stop();
}

std::string AcmeService::handle_request(const std::vector<std::string>& words) {
  if (!renewer_) return "error: ACME is not running\n";
  const std::string verb = words.empty() ? "" : words[0];
  if (verb == "status" && words.size() == 1) return renewer_->status();
  if (verb == "renew" && words.size() == 1) {
    renewer_->renew_now();
    return "renewal started: see smtpsctl cert status and the log (acme_renewed, acme_failed)\n";
  }
  if (verb == "revoke" && words.size() == 3) {
    std::optional<acme::KeyType> type;
    if (!key_type_of(words[1], type)) return "error: the key is ecdsa, rsa or all\n";
    // RFC 5280 §5.3.1 codes a subscriber may give (CAs refuse 2, 6 and up for it):
    // unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation.
    static const std::vector<std::string> kReasons = {"0", "1", "3", "4", "5"};
    if (std::find(kReasons.begin(), kReasons.end(), words[2]) == kReasons.end())
      return "error: the reason is 0 (unspecified), 1 (keyCompromise), 3 (affiliationChanged), "
             "4 (superseded) or 5 (cessationOfOperation)\n";
    renewer_->revoke_now(type, std::stoi(words[2]));
    return "revocation started (" + words[1] + ", reason " + words[2] +
           "): a new key and certificate follow; see smtpsctl cert status and the log "
           "(acme_revoked, acme_key_replaced, acme_renewed)\n";
  }
  if (verb == "rollover" && words.size() == 3 && (words[2] == "wait" || words[2] == "force")) {
    std::optional<acme::KeyType> type;
    if (!key_type_of(words[1], type)) return "error: the key is ecdsa, rsa or all\n";
    const bool force = words[2] == "force";
    renewer_->rollover_now(type, force);
    return force ? "key change started (" + words[1] +
                       ", forced): a new key and its certificate serve once the CA answers; a "
                       "published TLSA 3 1 1 record of the old key stops matching\n"
                 : "key rollover started (" + words[1] +
                       "): publish the next key's TLSA record (smtpsctl dane tlsa --next) beside "
                       "the current one; the key changes once every authoritative nameserver "
                       "shows it and twice its TTL has passed (smtpsctl cert status, log "
                       "acme_key_rollover)\n";
  }
  return "error: unknown cert command (status, renew, revoke KEY REASON, rollover KEY "
         "wait|force)\n";
}

}  // namespace app
