// domain_routing.h — what [[domains]] and [srs] mean for the session policy and the router:
// the RCPT verdict for relay domains and SRS addresses, each recipient domain's size limit,
// and delivery::DomainRouting built from a configuration snapshot (relay passwords read from
// their files once per snapshot). docs/architecture.md "Where is X" says where each is used.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "config/config.h"
#include "delivery/router.h"
#include "smtp/server_session.h"

namespace app {

// The SRS reverse lookup at RCPT: for an SRS0/SRS1 address of [srs] domain, kAccept when
// its hash is good and it has not expired (the router turns it back: delivery/router.h),
// else kSrsInvalid or kSrsExpired; nothing for any other address (an ordinary address of the
// SRS domain included). now: unix time.
std::optional<smtp::RecipientVerdict> srs_verdict(const config::Config& config,
                                                  std::string_view address, std::int64_t now);

// For an address of a relay domain: kAccept when it is on the domain's list, or postmaster
// (RFC 5321 §4.5.1); else kUnknownUser (550 5.1.1 at RCPT: never a bounce later). Nothing
// for any other address.
std::optional<smtp::RecipientVerdict> relay_domain_verdict(const config::Config& config,
                                                           std::string_view address);

// srs_verdict, then relay_domain_verdict: what the RCPT policy asks before the mailboxes.
std::optional<smtp::RecipientVerdict> forwarding_verdict(const config::Config& config,
                                                         std::string_view address,
                                                         std::int64_t now);

// The recipient domain's own size limit when smaller than limits.max_message_size; else 0.
std::uint64_t recipient_size_limit(const config::Config& config, std::string_view address);

// DomainRouting for a snapshot; passwords of [[domains]] relays are read from their files.
std::shared_ptr<const delivery::DomainRouting> domain_routing_of(const config::Config& config);

// The routing of the snapshot in service, built once per snapshot (thread-safe).
class DomainRoutingCache {
 public:
  std::shared_ptr<const delivery::DomainRouting> get(
      const std::shared_ptr<const config::Config>& snapshot);

 private:
  std::mutex mutex_;
  std::shared_ptr<const config::Config> built_for_;
  std::shared_ptr<const delivery::DomainRouting> routing_;
};

}  // namespace app
