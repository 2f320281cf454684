// acme_service.cpp — see acme_service.h.
#include "app/smtpsd/acme_service.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "obs/log.h"

namespace app {

AcmeService::~AcmeService() {
  stop();
}

base::Expected<base::Ok, std::string> AcmeService::prepare() {
  auto prepared = acme::prepare_files(settings_.directory_on_disk, settings_.names);
  if (!prepared) return base::unexpected("[acme]: " + prepared.error());
  return base::Ok{};
}

base::Expected<base::Ok, std::string> AcmeService::bind() {
  auto bound = acme::Http01Responder::bind(settings_.http_address, settings_.http_port);
  if (!bound) return base::unexpected("[acme] http_port: " + bound.error());
  responder_ = std::move(bound).value();
  return base::Ok{};
}

void AcmeService::start(std::shared_ptr<dns::Resolver> resolver) {
  responder_->start();
  acme::RenewalOptions options;
  options.acme_dir = settings_.directory_on_disk;
  options.names = settings_.names;
  options.client.directory_url = settings_.directory;
  options.client.contact = settings_.contact;
  options.ca_file = settings_.ca_file;
  if (settings_.renew_before)
    options.renew_before =
        std::chrono::duration_cast<std::chrono::seconds>(*settings_.renew_before);
  options.retry_min = settings_.retry_wait;
  options.retry_max = settings_.retry_max_wait;
  renewer_ = std::make_unique<acme::Renewer>(std::move(options), std::move(resolver), *responder_);
  obs::Log("acme_started")
      .kv("directory", settings_.directory)
      .kv("http_port", static_cast<unsigned>(responder_->port()))
      .kv("dir", settings_.directory_on_disk);
  renewer_->start();
}

void AcmeService::stop() {
  if (renewer_) renewer_->stop();
  if (responder_) responder_->stop();
}

std::string AcmeService::handle_request(std::string_view verb) {
  if (!renewer_) return "error: ACME is not running\n";
  if (verb == "status") return renewer_->status();
  if (verb == "renew") {
    renewer_->renew_now();
    return "renewal started: see smtpsctl cert status and the log (acme_renewed, acme_failed)\n";
  }
  return "error: unknown cert command (status, renew)\n";
}

}  // namespace app
