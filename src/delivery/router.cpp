// router.cpp — see router.h.
#include "delivery/router.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "base/ascii.h"
#include "base/clock.h"

namespace delivery {
namespace {

// The domain of address in lower case; "" when it has none.

// When the message's SRS stamp is taken and checked: its arrival, so that the router agrees
// with the RCPT check that accepted it however long it waited.
std::int64_t srs_time(const queue::StoredMessage& message) {
  return message.received_unix != 0 ? message.received_unix : base::unix_now();
}

// Whether mail leaving for another domain is forwarded mail whose sender SRS rewrites: not
// from one of our users, not a bounce, and not from one of our domains (router.h).
bool rewrites_sender(const queue::StoredMessage& message, const LocalRecipients& local,
                     const DomainRouting& routing) {
  if (!routing.srs || message.envelope.authenticated) return false;
  const std::string& sender = message.envelope.reverse_path;
  const std::string domain = base::address_domain(sender);
  if (sender.empty() || domain.empty()) return false;
  return domain != routing.srs->options().domain && !local.is_local_domain(domain) &&
         !routing.next_hops.contains(domain);
}

// The mailbox "Bob@x" spelled with the detail of its address "bob+news@x": "Bob+news@x".
// (The address names that mailbox, so its local part starts with the mailbox's.)
std::string with_detail(const std::string& address, const std::string& mailbox) {
  const std::size_t at_address = address.rfind('@');
  const std::size_t at_mailbox = mailbox.rfind('@');
  if (at_address == std::string::npos || at_mailbox == std::string::npos ||
      at_address <= at_mailbox) {
    return mailbox;
  }
  return mailbox.substr(0, at_mailbox) + address.substr(at_mailbox, at_address - at_mailbox) +
         mailbox.substr(at_mailbox);
}

}  // namespace

bool Router::stays_here(std::string_view address) const {
  const LocalRecipients local = local_in_service_();
  if (local.mailbox(address)) return true;
  const std::string domain = base::address_domain(address);
  if (address.find('@') == std::string_view::npos || domain.empty()) return true;
  if (const auto routing = routing_in_service_ ? routing_in_service_() : nullptr) {
    if (routing->next_hops.contains(domain)) return false;
    if (routing->srs && domain == routing->srs->options().domain) {
      // A good SRS address leaves; a bad one fails here.
      return !routing->srs->reverse(address, base::unix_now()).has_value();
    }
  }
  return local.is_local_domain(domain);
}

bool Router::goes_to_maildir(std::string_view address) const {
  const LocalRecipients local = local_in_service_();
  const std::optional<std::string> mailbox = local.mailbox(address);
  if (!mailbox) return false;
  const std::shared_ptr<const DomainRouting> routing =
      routing_in_service_ ? routing_in_service_() : nullptr;
  if (routing && routing->srs && base::address_domain(address) == routing->srs->options().domain) {
    return false;  // deliver() turns SRS addresses back first
  }
  const LocalAgent* agent = nullptr;
  if (routing) {
    const auto found = routing->agents.find(base::address_domain(*mailbox));
    if (found != routing->agents.end()) agent = &found->second;
  }
  if (agent != nullptr && agent->lmtp) return false;
  return !(routes_.lmtp && routes_.lmtp_by_default && (agent == nullptr || !agent->maildir));
}

std::vector<queue::DeliveryResult> Router::deliver(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> recipients) const {
  const LocalRecipients local = local_in_service_();
  const std::shared_ptr<const DomainRouting> routing =
      routing_in_service_ ? routing_in_service_() : nullptr;
  static const DomainRouting kNoRouting;
  const DomainRouting& domains = routing ? *routing : kNoRouting;

  std::vector<queue::DeliveryResult> results(recipients.size());
  // LMTP positions by server ("" for [delivery] lmtp), with the server.
  std::map<std::string, std::vector<std::size_t>> lmtp_positions;
  std::map<std::string, base::Endpoint> lmtp_servers;
  std::map<std::string, std::vector<std::size_t>> remote_positions;  // domain -> positions
  std::map<std::string, std::vector<std::size_t>> relay_positions;   // relay domain -> positions
  queue::StoredMessage canonical = message;  // local recipients under their mailbox names
  // What leaves for other domains: SRS addresses turned back, the sender rewritten when the
  // message is forwarded.
  queue::StoredMessage outgoing = message;
  if (rewrites_sender(message, local, domains)) {
    outgoing.envelope.reverse_path =
        domains.srs->forward(message.envelope.reverse_path, srs_time(message));
  }
  for (std::size_t k = 0; k < recipients.size(); ++k) {
    const std::size_t index = recipients[k];
    if (message.envelope.recipients[index].expansion_record) {
      // Not a destination: the alias its targets came from (RFC 3461 §5.2.7).
      results[k] = {queue::DeliveryStatus::kDelivered, "expanded at RCPT", "alias"};
      results[k].expanded = true;
      continue;
    }
    std::string address = message.envelope.recipients[index].address;
    std::string domain = base::address_domain(address);
    if (domains.srs && !domain.empty() && domain == domains.srs->options().domain) {
      auto original = domains.srs->reverse(address, srs_time(message));
      if (original) {
        address = *original;
        domain = base::address_domain(address);
        outgoing.envelope.recipients[index].address = address;
        canonical.envelope.recipients[index].address = address;
      } else if (original.error() != SrsError::kNotSrs) {
        results[k] = {queue::DeliveryStatus::kPermanent,
                      std::string(to_string(original.error())) + ": " + address, "srs", "5.1.1"};
        continue;
      }
    }
    std::optional<std::string> mailbox = local.mailbox(address);
    if (!mailbox) {
      if (domains.next_hops.contains(domain)) {
        relay_positions[domain].push_back(k);
        continue;
      }
      if (!domain.empty() && local.is_local_domain(domain)) {
        results[k] = {queue::DeliveryStatus::kPermanent, "no mailbox " + address + " here any more",
                      "maildir", "5.1.1"};
        continue;
      }
      remote_positions[domain].push_back(k);
      continue;
    }
    bool duplicate = false;
    for (std::size_t earlier = 0; earlier < index && !duplicate; ++earlier) {
      if (message.envelope.recipients[earlier].expansion_record) continue;
      if (local.mailbox(canonical.envelope.recipients[earlier].address) == mailbox) {
        results[k] = {queue::DeliveryStatus::kDelivered,
                      "same mailbox as recipient " + std::to_string(earlier), "maildir"};
        duplicate = true;
      }
    }
    if (duplicate) continue;
    const auto agent = domains.agents.find(base::address_domain(*mailbox));
    if (agent != domains.agents.end() && agent->second.lmtp) {
      // LMTP gets the mailbox's name with the +detail the address had: the server there
      // files it.
      canonical.envelope.recipients[index].address = with_detail(address, *mailbox);
      const std::string key = base::to_string(*agent->second.lmtp);
      lmtp_servers.emplace(key, *agent->second.lmtp);
      lmtp_positions[key].push_back(k);
      continue;
    }
    if (routes_.lmtp && routes_.lmtp_by_default &&
        (agent == domains.agents.end() || !agent->second.maildir)) {
      canonical.envelope.recipients[index].address = with_detail(address, *mailbox);
      lmtp_positions[""].push_back(k);
      continue;
    }
    canonical.envelope.recipients[index].address = *mailbox;
    std::string folder = local.folder && message.folder.empty() ? local.folder(address) : "";
    if (folder.empty()) {
      results[k] = routes_.maildir(canonical, index);
    } else {
      queue::StoredMessage with_folder = canonical;
      with_folder.folder = std::move(folder);
      with_folder.folder_if_exists = true;
      results[k] = routes_.maildir(with_folder, index);
    }
  }
  for (const auto& [key, positions] : lmtp_positions) {
    std::vector<std::size_t> indices;
    for (std::size_t k : positions)
      indices.push_back(recipients[k]);
    const base::Endpoint* server = key.empty() ? nullptr : &lmtp_servers.at(key);
    std::vector<queue::DeliveryResult> lmtp =
        routes_.lmtp ? routes_.lmtp(canonical, indices, server)
                     : std::vector<queue::DeliveryResult>(
                           indices.size(),
                           {queue::DeliveryStatus::kTransient, "no LMTP route", "lmtp", "4.3.5"});
    for (std::size_t j = 0; j < positions.size(); ++j)
      results[positions[j]] = std::move(lmtp[j]);
  }
  // A relay domain's mail goes to its next hop as it came (the next hop is one of ours).
  for (const auto& [domain, positions] : relay_positions) {
    std::vector<std::size_t> indices;
    for (std::size_t k : positions)
      indices.push_back(recipients[k]);
    std::vector<queue::DeliveryResult> relayed =
        routes_.remote(message, indices, domain, &domains.next_hops.at(domain));
    for (std::size_t j = 0; j < positions.size(); ++j)
      results[positions[j]] = std::move(relayed[j]);
  }
  // A domain's own relay carries its users' mail only: forwarded mail (not authenticated)
  // whose sender claims one of our domains must not leave through that domain's account.
  const auto sender_relay =
      message.envelope.authenticated
          ? domains.sender_relays.find(base::address_domain(outgoing.envelope.reverse_path))
          : domains.sender_relays.end();
  const NextHop* via =
      sender_relay == domains.sender_relays.end() ? nullptr : &sender_relay->second;
  for (auto& [domain, positions] : remote_positions) {
    std::vector<std::size_t> indices;
    for (std::size_t k : positions)
      indices.push_back(recipients[k]);
    std::vector<queue::DeliveryResult> remote =
        domain.empty() ? std::vector<queue::DeliveryResult>(
                             indices.size(), {queue::DeliveryStatus::kPermanent,
                                              "address without a domain", "", "5.1.3"})
                       : routes_.remote(outgoing, indices, domain, via);
    for (std::size_t j = 0; j < positions.size(); ++j)
      results[positions[j]] = std::move(remote[j]);
  }
  return results;
}

}  // namespace delivery
