// domain_routing.cpp — see domain_routing.h.
#include "app/smtpsd/domain_routing.h"

#include <fstream>

#include "base/ascii.h"
#include "delivery/srs.h"

namespace app {
namespace {

delivery::NextHop next_hop_of(const config::DomainHop& hop) {
  delivery::NextHop next{hop.url, hop.tls, hop.user, {}};
  if (!hop.password_file.empty()) {
    std::ifstream in(hop.password_file);
    std::getline(in, next.password);
  }
  return next;
}

delivery::Srs srs_of(const config::SrsSettings& settings) {
  return delivery::Srs(
      delivery::SrsOptions{settings.domain, settings.secrets, settings.max_age_days, 4});
}

}  // namespace

std::optional<smtp::RecipientVerdict> srs_verdict(const config::Config& config,
                                                  std::string_view address, std::int64_t now) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos || !config.srs) return std::nullopt;
  if (base::equals_ignoring_case(address.substr(at + 1), config.srs->domain)) {
    auto original = srs_of(*config.srs).reverse(address, now);
    if (original) return smtp::RecipientVerdict::kAccept;
    switch (original.error()) {
      case delivery::SrsError::kNotSrs:
        break;  // an ordinary address of that domain: the mailbox lookup decides
      case delivery::SrsError::kExpired:
        return smtp::RecipientVerdict::kSrsExpired;
      case delivery::SrsError::kMalformed:
      case delivery::SrsError::kBadHash:
        return smtp::RecipientVerdict::kSrsInvalid;
    }
  }
  return std::nullopt;
}

std::optional<smtp::RecipientVerdict> relay_domain_verdict(const config::Config& config,
                                                           std::string_view address) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view local = address.substr(0, at);
  const std::string_view domain_name = address.substr(at + 1);
  if (const config::Domain* relay = config.find_relay_domain(domain_name)) {
    // RFC 5321 §4.5.1: postmaster of a domain we accept mail for always exists.
    if (base::equals_ignoring_case(local, "postmaster")) return smtp::RecipientVerdict::kAccept;
    for (const std::string& known : relay->recipients) {
      if (base::equals_ignoring_case(local, known)) return smtp::RecipientVerdict::kAccept;
    }
    return smtp::RecipientVerdict::kUnknownUser;
  }
  return std::nullopt;
}

std::optional<smtp::RecipientVerdict> forwarding_verdict(const config::Config& config,
                                                         std::string_view address,
                                                         std::int64_t now) {
  if (auto verdict = srs_verdict(config, address, now)) return verdict;
  return relay_domain_verdict(config, address);
}

std::uint64_t recipient_size_limit(const config::Config& config, std::string_view address) {
  const std::uint64_t limit = config.max_message_size_for(address);
  return limit < config.limits.max_message_size ? limit : 0;
}

std::shared_ptr<const delivery::DomainRouting> domain_routing_of(const config::Config& config) {
  auto routing = std::make_shared<delivery::DomainRouting>();
  for (const config::Domain& domain : config.domains) {
    if (domain.maildir || domain.lmtp) {
      routing->agents[domain.name] = delivery::LocalAgent{domain.maildir, domain.lmtp};
    }
    if (domain.relay) routing->sender_relays[domain.name] = next_hop_of(*domain.relay);
  }
  for (const config::Domain& domain : config.relay_domains) {
    if (domain.next_hop) routing->next_hops[domain.name] = next_hop_of(*domain.next_hop);
  }
  if (config.srs) routing->srs = std::make_shared<const delivery::Srs>(srs_of(*config.srs));
  return routing;
}

std::shared_ptr<const delivery::DomainRouting> DomainRoutingCache::get(
    const std::shared_ptr<const config::Config>& snapshot) {
  std::lock_guard lock(mutex_);
  if (snapshot != built_for_) {
    routing_ = domain_routing_of(*snapshot);
    built_for_ = snapshot;
  }
  return routing_;
}

}  // namespace app
