// router.h — where each recipient of a queued message goes: a local mailbox to Maildir, or
// to the LMTP server when one is configured; another domain onward through the smarthost or
// the domain's MX hosts (outbound.h decides which), one transaction per domain.
//
// Invariants:
// - One copy per local mailbox: recipients that name the same mailbox (<demo@x>, <DEMO@x>,
//   <postmaster> beside <postmaster@x>) are delivered once, by the first of them in the
//   envelope; the others are reported delivered.
// - A recipient of one of our own domains without a mailbox (removed from the configuration
//   while the message waited) fails permanently (5.1.1, RFC 3463): it is never sent out to
//   our own MX.
// - The record of an expansion (smtp::Recipient::expansion_record) is never delivered: it is
//   reported delivered with the flag `expanded` at once (a success DSN says "expanded").
// - A recipient without a domain fails permanently (5.1.3); remote recipients are grouped by
//   their domain in lower case (domains are case-insensitive, RFC 5321 §2.4).
// - The local recipients are asked for once per delivery: those of the configuration in
//   service when the delivery starts, for all of its recipients.
// Blocking; called from the queue's delivery threads (queue::DeliverFn).
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "queue/scheduler.h"

namespace delivery {

// This server's own mailboxes, as of one moment (built by the application from its
// configuration).
struct LocalRecipients {
  // "user@domain" as configured, or nothing when address is not a local mailbox.
  std::function<std::optional<std::string>(std::string_view address)> mailbox;
  // Whether a lower-case domain is one of ours.
  std::function<bool(std::string_view domain)> is_local_domain;
  // The Maildir folder a mailbox address goes to ("news" for alice+news@ when sub-address
  // folders are on), "" for the INBOX; empty function: always the INBOX. A folder a check
  // chose for the message wins.
  std::function<std::string(std::string_view address)> folder;
};

// The ways out of the router.
struct Routes {
  // One local mailbox (message's recipient at index holds its canonical name).
  std::function<queue::DeliveryResult(const queue::StoredMessage& message, std::size_t index)>
      maildir;
  // Local mailboxes through LMTP, one result per index; empty: no LMTP, Maildir instead.
  std::function<std::vector<queue::DeliveryResult>(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> indices)>
      lmtp;
  // Recipients of one other domain (lower-case), one result per index.
  std::function<std::vector<queue::DeliveryResult>(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> indices,
                                                   std::string_view domain)>
      remote;
};

class Router {
 public:
  Router(std::function<LocalRecipients()> local_in_service, Routes routes)
      : local_in_service_(std::move(local_in_service)), routes_(std::move(routes)) {}

  // One result per entry of recipients (indices into message.envelope.recipients), in order.
  std::vector<queue::DeliveryResult> deliver(const queue::StoredMessage& message,
                                             std::span<const std::size_t> recipients) const;
  // Whether deliver() keeps this recipient on this server (a mailbox, or a failure for one
  // of our domains or an address without a domain) rather than sending it onward: the
  // queue gives such recipients their own threads.
  bool stays_here(std::string_view address) const;

 private:
  std::function<LocalRecipients()> local_in_service_;
  Routes routes_;
};

}  // namespace delivery
