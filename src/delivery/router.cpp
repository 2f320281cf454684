// router.cpp — see router.h.
#include "delivery/router.h"

#include "base/ascii.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace delivery {
namespace {

// The domain of address in lower case; "" when it has none.
std::string domain_of(const std::string& address) {
  const std::size_t at = address.rfind('@');
  return at == std::string::npos ? std::string() : base::ascii_lowercase(address.substr(at + 1));
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
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return true;
  const std::string domain = base::ascii_lowercase(address.substr(at + 1));
  return domain.empty() || local.is_local_domain(domain);
}

std::vector<queue::DeliveryResult> Router::deliver(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> recipients) const {
  const LocalRecipients local = local_in_service_();
  std::vector<queue::DeliveryResult> results(recipients.size());
  std::vector<std::size_t> lmtp_positions;
  std::map<std::string, std::vector<std::size_t>> remote_positions;  // domain -> positions
  queue::StoredMessage canonical = message;  // local recipients under their mailbox names
  for (std::size_t k = 0; k < recipients.size(); ++k) {
    const std::size_t index = recipients[k];
    const std::string& address = message.envelope.recipients[index].address;
    if (message.envelope.recipients[index].expansion_record) {
      // Not a destination: the alias its targets came from (RFC 3461 §5.2.7).
      results[k] = {queue::DeliveryStatus::kDelivered, "expanded at RCPT", "alias"};
      results[k].expanded = true;
      continue;
    }
    std::optional<std::string> mailbox = local.mailbox(address);
    if (!mailbox) {
      std::string domain = domain_of(address);
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
      if (local.mailbox(message.envelope.recipients[earlier].address) == mailbox) {
        results[k] = {queue::DeliveryStatus::kDelivered,
                      "same mailbox as recipient " + std::to_string(earlier), "maildir"};
        duplicate = true;
      }
    }
    if (duplicate) continue;
    if (routes_.lmtp) {
      // LMTP gets the mailbox's name with the +detail the address had: the server there
      // files it.
      canonical.envelope.recipients[index].address = with_detail(address, *mailbox);
      lmtp_positions.push_back(k);
      continue;
    }
    canonical.envelope.recipients[index].address = *mailbox;
    std::string folder = local.folder && message.folder.empty() ? local.folder(address) : "";
    if (folder.empty()) {
      results[k] = routes_.maildir(canonical, index);
    } else {
      queue::StoredMessage with_folder = canonical;
      with_folder.folder = std::move(folder);
      results[k] = routes_.maildir(with_folder, index);
    }
  }
  if (!lmtp_positions.empty()) {
    std::vector<std::size_t> indices;
    for (std::size_t k : lmtp_positions)
      indices.push_back(recipients[k]);
    std::vector<queue::DeliveryResult> lmtp = routes_.lmtp(canonical, indices);
    for (std::size_t j = 0; j < lmtp_positions.size(); ++j)
      results[lmtp_positions[j]] = std::move(lmtp[j]);
  }
  for (auto& [domain, positions] : remote_positions) {
    std::vector<std::size_t> indices;
    for (std::size_t k : positions)
      indices.push_back(recipients[k]);
    std::vector<queue::DeliveryResult> remote =
        domain.empty() ? std::vector<queue::DeliveryResult>(
                             indices.size(), {queue::DeliveryStatus::kPermanent,
                                              "address without a domain", "", "5.1.3"})
                       : routes_.remote(message, indices, domain);
    for (std::size_t j = 0; j < positions.size(); ++j)
      results[positions[j]] = std::move(remote[j]);
  }
  return results;
}

}  // namespace delivery
