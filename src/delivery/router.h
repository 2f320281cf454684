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
// - Per domain (DomainRouting, docs/architecture.md "Where is X"): a local domain's mailboxes
//   go to its own agent (Maildir, or its LMTP server) before [delivery] lmtp; a relay
//   domain's recipients go to its next hop with the envelope as received; other domains go
//   through the relay of the sender's domain when it has one, else [delivery].
// - SRS (srs.h): a recipient at our SRS domain is turned back into the address it stands
//   for, as of the message's arrival (when RCPT checked it), and sent there; a bad one fails
//   permanently (5.1.1). A message that did not come from an authenticated user and leaves
//   for another domain (forwarded) has its envelope sender rewritten, unless that sender is
//   null or of one of our domains; relay domains keep the sender as received.
// Blocking; called from the queue's delivery threads (queue::DeliverFn).
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <map>
#include <memory>

#include "base/endpoint.h"
#include "delivery/next_hop.h"
#include "delivery/srs.h"
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

// A local domain's own delivery agent ([[domains]] delivery).
struct LocalAgent {
  bool maildir = false;                // Maildir even when [delivery] lmtp is set
  std::optional<base::Endpoint> lmtp;  // its own LMTP server
};

// What [[domains]] and [srs] change about routing, as of one configuration (lower-case
// domains as keys).
struct DomainRouting {
  std::map<std::string, LocalAgent> agents;
  std::map<std::string, NextHop> next_hops;      // relay domains
  std::map<std::string, NextHop> sender_relays;  // mail from these domains' senders
  std::shared_ptr<const Srs> srs;                // none: SRS off
};

// The ways out of the router.
struct Routes {
  // One local mailbox (message's recipient at index holds its canonical name).
  std::function<queue::DeliveryResult(const queue::StoredMessage& message, std::size_t index)>
      maildir;
  // Local mailboxes through LMTP, one result per index: to server, or (null) to the LMTP
  // server of [delivery]; empty: no LMTP server in [delivery], Maildir instead.
  std::function<std::vector<queue::DeliveryResult>(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> indices,
                                                   const base::Endpoint* server)>
      lmtp;
  // Whether mailboxes without an agent of their own go to lmtp (false: lmtp is there only
  // for the domains that name their own LMTP server).
  bool lmtp_by_default = true;
  // Recipients of one other domain (lower-case), one result per index; via: the server to
  // hand them to (null: [delivery] relay or the MX hosts).
  std::function<std::vector<queue::DeliveryResult>(const queue::StoredMessage& message,
                                                   std::span<const std::size_t> indices,
                                                   std::string_view domain, const NextHop* via)>
      remote;
};

class Router {
 public:
  Router(std::function<LocalRecipients()> local_in_service, Routes routes,
         std::function<std::shared_ptr<const DomainRouting>()> routing_in_service = {})
      : local_in_service_(std::move(local_in_service)),
        routes_(std::move(routes)),
        routing_in_service_(std::move(routing_in_service)) {}

  // One result per entry of recipients (indices into message.envelope.recipients), in order.
  std::vector<queue::DeliveryResult> deliver(const queue::StoredMessage& message,
                                             std::span<const std::size_t> recipients) const;
  // Whether deliver() keeps this recipient on this server (a mailbox, or a failure for one
  // of our domains or an address without a domain) rather than sending it onward: the
  // queue gives such recipients their own threads.
  bool stays_here(std::string_view address) const;
  // Whether deliver() puts this recipient into a Maildir on this machine: a mailbox of ours
  // whose domain has no LMTP server (its own or [delivery] lmtp). queue::Scheduler delivers a
  // message for such recipients only at acceptance (SchedulerOptions::at_acceptance).
  bool goes_to_maildir(std::string_view address) const;

 private:
  std::function<LocalRecipients()> local_in_service_;
  Routes routes_;
  std::function<std::shared_ptr<const DomainRouting>()> routing_in_service_;
};

}  // namespace delivery
