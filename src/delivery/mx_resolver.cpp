// mx_resolver.cpp — MX, A and AAAA lookups with c-ares, driven by poll() (see mx_resolver.h).
//
// One resolve() runs at most two rounds of queries on one c-ares channel: the MX query, then
// the A and AAAA queries of every MX host at once. A c-ares 1.18 channel is not thread-safe,
// so each call leases a channel of its own from a small pool (created on demand, returned
// after the call). Replies are classified as c-ares reports them for ares_query():
// NOERROR with no record of the type -> ARES_ENODATA, NXDOMAIN -> ARES_ENOTFOUND, and
// SERVFAIL, REFUSED, timeouts and socket errors -> temporary (RFC 5321 §4.5.4.1: retry).
// CNAME chains in an answer are followed by c-ares' reply parsers (RFC 5321 §5.1 allows the
// domain to be an alias; the MX exchange SHOULD NOT be one but is resolved all the same).
#include "delivery/mx_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <utility>

#include "base/ascii.h"

namespace delivery {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxDomainLength = 253;  // RFC 1035 §2.3.4, without the final dot
constexpr std::size_t kMaxLabelLength = 63;
constexpr int kMaxParsedAddresses = 64;

std::once_flag library_once;
int library_status = ARES_SUCCESS;

// ares_library_init is not thread-safe in 1.18; it runs once for the process, and the
// library stays initialised until exit (no ares_library_cleanup: other channels may live).
int init_library() {
  std::call_once(library_once, [] { library_status = ares_library_init(ARES_LIB_INIT_ALL); });
  return library_status;
}

// One query's outcome, copied out of the c-ares callback.
struct QueryResult {
  bool done = false;
  int status = ARES_ECANCELLED;
  std::vector<unsigned char> reply;
};

void on_reply(void* argument, int status, int /*timeouts*/, unsigned char* reply, int length) {
  auto* result = static_cast<QueryResult*>(argument);
  result->done = true;
  result->status = status;
  if (status == ARES_SUCCESS && reply != nullptr && length > 0) {
    result->reply.assign(reply, reply + length);
  }
}

bool is_temporary(int status) {
  return status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND &&
         status != ARES_EBADNAME;
}

std::string describe(int status, bool deadline_passed) {
  if (deadline_passed) return "DNS timeout (deadline passed)";
  switch (status) {
    case ARES_ETIMEOUT:
      return "DNS timeout";
    case ARES_ESERVFAIL:
      return "DNS server failure (SERVFAIL)";
    case ARES_EREFUSED:
      return "DNS query refused (REFUSED)";
    case ARES_ENOTFOUND:
      return "no such domain (NXDOMAIN)";
    case ARES_ENODATA:
      return "no record";
    case ARES_ECONNREFUSED:
      // c-ares 1.18 also ends here when every server answered REFUSED.
      return "DNS server unreachable or refusing (connection refused or REFUSED)";
    default:
      return std::string("DNS error: ") + ares_strerror(status);
  }
}

// text for a log line or DSN: at most 255 bytes, control and non-ASCII bytes as '?'.
std::string printable(std::string_view text) {
  std::string result(text.substr(0, 255));
  for (char& ch : result) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) ch = '?';
  }
  return result;
}

// A host name as DNS can carry it in a query: LDH labels (and '_', seen in the wild), each
// 1..63 octets, 253 in all. Non-ASCII (a U-label) is refused: IDNA is the caller's.
bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxDomainLength) return false;
  std::size_t label_length = 0;
  for (char ch : name) {
    if (ch == '.') {
      if (label_length == 0) return false;
      label_length = 0;
      continue;
    }
    auto c = static_cast<unsigned char>(ch);
    if (!std::isalnum(c) && c != '-' && c != '_') return false;
    if (++label_length > kMaxLabelLength) return false;
  }
  return label_length > 0;
}

// "192.0.2.1" / "::1" -> the canonical text of the address; "" when text is not one.
std::string canonical_address(std::string_view text) {
  std::string input(text);
  unsigned char buffer[sizeof(in6_addr)];
  char output[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, input.c_str(), buffer) == 1) {
    return inet_ntop(AF_INET, buffer, output, sizeof output);
  }
  if (inet_pton(AF_INET6, input.c_str(), buffer) == 1) {
    return inet_ntop(AF_INET6, buffer, output, sizeof output);
  }
  return "";
}

// RFC 5321 §4.1.3: "[" IPv4-address-literal "]" or "[IPv6:" IPv6-addr "]". A General-
// address-literal (another tag) names nothing we can reach. Returns the address, or "".
std::string domain_literal_address(std::string_view literal) {
  if (literal.size() < 3 || literal.front() != '[' || literal.back() != ']') return "";
  std::string_view inside = literal.substr(1, literal.size() - 2);
  constexpr std::string_view kIpv6Tag = "IPv6:";
  if (inside.size() > kIpv6Tag.size() &&
      base::ascii_lowercase(inside.substr(0, kIpv6Tag.size())) == "ipv6:") {
    std::string_view address = inside.substr(kIpv6Tag.size());
    std::string input(address);
    in6_addr parsed;
    if (inet_pton(AF_INET6, input.c_str(), &parsed) != 1) return "";
    return canonical_address(address);
  }
  std::string input(inside);
  in_addr parsed;
  if (inet_pton(AF_INET, input.c_str(), &parsed) != 1) return "";
  return canonical_address(inside);
}

MxAnswer single_address(std::string_view name, const std::string& address) {
  MxAnswer answer;
  answer.status = MxStatus::kOk;
  answer.targets.push_back(MxTarget{std::string(name), 0, {address}, false});
  answer.detail = std::string(name) + " is an address literal (no DNS lookup)";
  return answer;
}

std::string_view strip_final_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

struct MxRecord {
  std::string host;
  unsigned preference;
};

// The MX records of a reply, as c-ares parses them ("" for the root, "." in the zone file).
std::vector<MxRecord> parse_mx(const std::vector<unsigned char>& reply, int* status) {
  std::vector<MxRecord> records;
  ares_mx_reply* list = nullptr;
  *status = ares_parse_mx_reply(reply.data(), static_cast<int>(reply.size()), &list);
  if (*status != ARES_SUCCESS) return records;
  for (ares_mx_reply* item = list; item != nullptr; item = item->next) {
    records.push_back(MxRecord{item->host != nullptr ? item->host : "", item->priority});
  }
  ares_free_data(list);
  if (records.empty()) *status = ARES_ENODATA;
  return records;
}

std::vector<std::string> parse_addresses(const std::vector<unsigned char>& reply, int family,
                                         int* status) {
  std::vector<std::string> addresses;
  int count = kMaxParsedAddresses;
  char text[INET6_ADDRSTRLEN];
  const auto* data = reply.data();
  auto length = static_cast<int>(reply.size());
  if (family == AF_INET) {
    std::array<ares_addrttl, kMaxParsedAddresses> parsed{};
    *status = ares_parse_a_reply(data, length, nullptr, parsed.data(), &count);
    for (int i = 0; *status == ARES_SUCCESS && i < count; ++i) {
      addresses.emplace_back(inet_ntop(AF_INET, &parsed[i].ipaddr, text, sizeof text));
    }
  } else {
    std::array<ares_addr6ttl, kMaxParsedAddresses> parsed{};
    *status = ares_parse_aaaa_reply(data, length, nullptr, parsed.data(), &count);
    for (int i = 0; *status == ARES_SUCCESS && i < count; ++i) {
      addresses.emplace_back(inet_ntop(AF_INET6, &parsed[i].ip6addr, text, sizeof text));
    }
  }
  if (*status == ARES_SUCCESS && addresses.empty()) *status = ARES_ENODATA;
  return addresses;
}

// The A and AAAA lookups of one host.
struct HostLookup {
  std::string host;
  QueryResult aaaa;
  QueryResult a;
};

enum class HostOutcome { kAddresses, kNone, kNoSuchHost, kTemporary };

// Addresses of one host, IPv6 first (RFC 6724 prefers it by default), deduplicated and
// bounded. reason says why there are none.
HostOutcome collect(const HostLookup& lookup, bool deadline_passed,
                    std::vector<std::string>* addresses, std::string* reason) {
  int statuses[2] = {lookup.aaaa.status, lookup.a.status};
  const QueryResult* results[2] = {&lookup.aaaa, &lookup.a};
  const int families[2] = {AF_INET6, AF_INET};
  for (int i = 0; i < 2; ++i) {
    if (statuses[i] != ARES_SUCCESS) continue;
    for (auto& address : parse_addresses(results[i]->reply, families[i], &statuses[i])) {
      if (addresses->size() >= kMaxAddressesPerTarget) break;
      if (std::find(addresses->begin(), addresses->end(), address) == addresses->end()) {
        addresses->push_back(std::move(address));
      }
    }
  }
  if (!addresses->empty()) return HostOutcome::kAddresses;
  // No address: temporary if either family could not be answered, else permanent.
  for (int i = 0; i < 2; ++i) {
    if (is_temporary(statuses[i])) {
      *reason = describe(statuses[i], deadline_passed && statuses[i] == ARES_ECANCELLED) +
                " looking up " + (families[i] == AF_INET6 ? "AAAA" : "A") + " of " + lookup.host;
      return HostOutcome::kTemporary;
    }
  }
  if (statuses[0] == ARES_ENOTFOUND || statuses[1] == ARES_ENOTFOUND) {
    *reason = "host " + lookup.host + " does not exist (NXDOMAIN)";
    return HostOutcome::kNoSuchHost;
  }
  *reason = "no A/AAAA record for " + lookup.host;
  return HostOutcome::kNone;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string result;
  for (const auto& part : parts) {
    if (!result.empty()) result += separator;
    result += part;
  }
  return result;
}

std::mt19937& random_engine() {
  thread_local std::mt19937 engine{std::random_device{}()};
  return engine;
}

}  // namespace

std::string_view to_string(MxStatus status) {
  switch (status) {
    case MxStatus::kOk:
      return "ok";
    case MxStatus::kNullMx:
      return "null-mx";
    case MxStatus::kNoDomain:
      return "no-domain";
    case MxStatus::kTemporary:
      return "temporary";
  }
  return "unknown";
}

// A c-ares channel and the queries in flight on it, driven to completion with poll().
struct MxResolver::Channel {
  ares_channel channel = nullptr;

  Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel() {
    if (channel != nullptr) ares_destroy(channel);
  }

  void query(const std::string& name, int type, QueryResult* result) {
    in_flight.push_back(result);
    ares_query(channel, name.c_str(), ns_c_in, type, on_reply, result);
  }

  // Runs until every query has called back, or until deadline: then the rest are cancelled
  // (their callbacks see ARES_ECANCELLED) and false is returned.
  bool run(Clock::time_point deadline) {
    bool in_time = drive(deadline);
    in_flight.clear();
    return in_time;
  }

 private:
  std::vector<QueryResult*> in_flight;  // of this round; every one is done when run() returns

  bool all_done() const {
    return std::all_of(in_flight.begin(), in_flight.end(),
                       [](const QueryResult* result) { return result->done; });
  }

  bool drive(Clock::time_point deadline) {
    while (!all_done()) {
      auto now = Clock::now();
      if (now >= deadline) {
        ares_cancel(channel);
        return false;
      }
      std::array<ares_socket_t, ARES_GETSOCK_MAXNUM> sockets{};
      int bits = ares_getsock(channel, sockets.data(), ARES_GETSOCK_MAXNUM);
      std::array<pollfd, ARES_GETSOCK_MAXNUM> fds{};
      nfds_t count = 0;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short events = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
        if (events != 0) fds[count++] = pollfd{sockets[i], events, 0};
      }
      timeval limit{};
      timeval wait{};
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
      limit.tv_sec = static_cast<time_t>(left.count() / 1000000);
      limit.tv_usec = static_cast<suseconds_t>(left.count() % 1000000);
      timeval* next = ares_timeout(channel, &limit, &wait);
      int milliseconds =
          static_cast<int>(next->tv_sec * 1000 + (next->tv_usec + 999) / 1000);  // round up
      int ready = ::poll(fds.data(), count, milliseconds);
      if (ready < 0) {
        if (errno == EINTR) continue;
        ares_cancel(channel);
        return false;
      }
      if (ready == 0) {
        ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts, retries
        continue;
      }
      for (nfds_t i = 0; i < count; ++i) {
        short revents = fds[i].revents;
        if (revents == 0) continue;
        ares_socket_t readable =
            (revents & (POLLIN | POLLERR | POLLHUP)) != 0 ? fds[i].fd : ARES_SOCKET_BAD;
        ares_socket_t writable = (revents & POLLOUT) != 0 ? fds[i].fd : ARES_SOCKET_BAD;
        ares_process_fd(channel, readable, writable);
      }
    }
    return true;
  }
};

// A channel borrowed from the pool for one call; returned to the pool when done.
class MxResolver::ChannelLease {
 public:
  ChannelLease(MxResolver* owner, std::unique_ptr<Channel> channel, std::string error)
      : owner_(owner), channel_(std::move(channel)), error_(std::move(error)) {}
  ChannelLease(const ChannelLease&) = delete;
  ChannelLease& operator=(const ChannelLease&) = delete;
  ~ChannelLease() {
    if (channel_ == nullptr) return;
    std::lock_guard lock(owner_->mutex_);
    owner_->idle_channels_.push_back(std::move(channel_));
  }
  Channel* get() const { return channel_.get(); }
  const std::string& error() const { return error_; }

 private:
  MxResolver* owner_;
  std::unique_ptr<Channel> channel_;
  std::string error_;
};

MxResolver::MxResolver(ResolverOptions options) : options_(std::move(options)) {}

MxResolver::~MxResolver() = default;

base::Expected<std::unique_ptr<MxResolver>, std::string> MxResolver::create(
    const ResolverOptions& options) {
  if (options.tries == 0) return base::unexpected(std::string("resolver tries must be >= 1"));
  if (options.timeout.count() <= 0) {
    return base::unexpected(std::string("resolver timeout must be positive"));
  }
  if (int status = init_library(); status != ARES_SUCCESS) {
    return base::unexpected(std::string("c-ares initialisation: ") + ares_strerror(status));
  }
  std::unique_ptr<MxResolver> resolver(new MxResolver(options));
  auto channel = resolver->make_channel();  // checks the options now, not at first delivery
  if (!channel) return base::unexpected(channel.error());
  resolver->idle_channels_.push_back(std::move(channel).value());
  return resolver;
}

base::Expected<std::unique_ptr<MxResolver::Channel>, std::string> MxResolver::make_channel() const {
  ares_options settings{};
  // DNS only ("b"ind; not /etc/hosts), no search list: a mail domain is always absolute.
  char lookups[] = "b";
  settings.lookups = lookups;
  settings.domains = nullptr;
  settings.ndomains = 0;
  settings.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  settings.timeout = static_cast<int>(options_.timeout.count());
  settings.tries = static_cast<int>(options_.tries);
  int mask =
      ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS | ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  auto channel = std::make_unique<Channel>();
  if (int status = ares_init_options(&channel->channel, &settings, mask); status != ARES_SUCCESS) {
    channel->channel = nullptr;
    return base::unexpected(std::string("c-ares channel: ") + ares_strerror(status));
  }
  if (!options_.servers.empty()) {
    std::string csv;  // c-ares's own form: "127.0.0.1:5353,[::1]:53"
    for (const base::HostPort& server : options_.servers)
      csv += (csv.empty() ? "" : ",") + base::to_string(server);
    if (int status = ares_set_servers_ports_csv(channel->channel, csv.c_str());
        status != ARES_SUCCESS) {
      return base::unexpected("DNS servers \"" + csv + "\": " + ares_strerror(status));
    }
  }
  return channel;
}

MxResolver::ChannelLease MxResolver::lease() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_channels_.empty()) {
      auto channel = std::move(idle_channels_.back());
      idle_channels_.pop_back();
      return ChannelLease(this, std::move(channel), "");
    }
  }
  auto channel = make_channel();
  if (!channel) return ChannelLease(this, nullptr, channel.error());
  return ChannelLease(this, std::move(channel).value(), "");
}

std::chrono::milliseconds MxResolver::deadline() const {
  return options_.timeout * options_.tries * 2;
}

MxAnswer MxResolver::resolve(std::string_view domain_text) {
  MxAnswer answer;
  if (domain_text.starts_with('[')) {
    std::string address = domain_literal_address(domain_text);
    if (address.empty()) {
      answer.status = MxStatus::kNoDomain;
      answer.detail = "invalid address literal " + printable(domain_text) + " (RFC 5321 §4.1.3)";
      return answer;
    }
    return single_address(domain_text, address);
  }
  std::string domain = base::ascii_lowercase(strip_final_dot(domain_text));
  if (!is_valid_name(domain)) {
    answer.status = MxStatus::kNoDomain;
    answer.detail = "invalid domain name \"" + printable(domain_text) + "\"";
    return answer;
  }

  ChannelLease channel = lease();
  if (channel.get() == nullptr) {
    answer.detail = "resolver unavailable: " + channel.error();
    return answer;
  }
  const auto deadline = Clock::now() + this->deadline();

  // Round 1: MX.
  QueryResult mx_result;
  channel.get()->query(domain, ns_t_mx, &mx_result);
  bool in_time = channel.get()->run(deadline);
  int status = mx_result.status;
  std::vector<MxRecord> records;
  if (status == ARES_SUCCESS) records = parse_mx(mx_result.reply, &status);
  if (status == ARES_ENOTFOUND) {
    answer.status = MxStatus::kNoDomain;
    answer.detail = "domain " + domain + " does not exist (NXDOMAIN)";
    return answer;
  }
  if (status != ARES_SUCCESS && status != ARES_ENODATA) {
    answer.status = is_temporary(status) ? MxStatus::kTemporary : MxStatus::kNoDomain;
    answer.detail = describe(status, !in_time) + " looking up MX of " + domain;
    return answer;
  }

  // RFC 7505 §3: a null MX is the only MX of its domain; "." with any other record is a
  // broken zone, and the "." entry is skipped (it cannot be connected to either way).
  std::vector<std::string> notes;
  if (records.size() == 1 && (records[0].host.empty() || records[0].host == ".")) {
    answer.status = MxStatus::kNullMx;
    answer.detail = domain + " accepts no mail (null MX, RFC 7505)";
    return answer;
  }

  std::vector<MxTarget> targets;
  if (records.empty()) {
    // RFC 5321 §5.1: "If an empty list of MXs is returned, the address is treated as if it
    // was associated with an implicit MX RR, with a preference of 0, pointing to that host."
    targets.push_back(MxTarget{domain, 0, {}, true});
  } else {
    std::map<std::string, unsigned> best;  // one target per host, at its best preference
    for (auto& record : records) {
      std::string host = base::ascii_lowercase(strip_final_dot(record.host));
      if (host.empty()) {
        notes.push_back("null MX \".\" among other MX records skipped (RFC 7505 §3)");
        continue;
      }
      if (!canonical_address(host).empty() || host.starts_with('[')) {
        notes.push_back("MX " + host +
                        " is an IP address, not a host name: skipped (RFC 5321 §5.1)");
        continue;
      }
      if (!is_valid_name(host)) {
        notes.push_back("MX \"" + printable(host) + "\" is not a valid host name: skipped");
        continue;
      }
      auto [where, inserted] = best.emplace(host, record.preference);
      if (!inserted) where->second = std::min(where->second, record.preference);
    }
    for (auto& [host, preference] : best)
      targets.push_back(MxTarget{host, preference, {}, false});
    // §5.1: "If there are multiple destinations with the same preference and there is no
    // clear reason to favor one ... the SMTP client SHOULD pick one of them at random".
    std::shuffle(targets.begin(), targets.end(), random_engine());
    std::stable_sort(targets.begin(), targets.end(), [](const MxTarget& a, const MxTarget& b) {
      return a.preference < b.preference;
    });
    if (targets.size() > kMaxMxTargets) {
      notes.push_back(std::to_string(targets.size() - kMaxMxTargets) +
                      " MX records beyond the first " + std::to_string(kMaxMxTargets) + " ignored");
      targets.resize(kMaxMxTargets);
    }
    if (targets.empty()) {
      // §5.1: with MX records present the implicit MX does not apply; none can be used.
      answer.status = MxStatus::kNoDomain;
      answer.detail = "no usable MX for " + domain + ": " + join(notes, "; ");
      return answer;
    }
  }

  // Round 2: A and AAAA of every target, all at once.
  std::vector<HostLookup> lookups(targets.size());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    lookups[i].host = targets[i].host;
    channel.get()->query(lookups[i].host, ns_t_aaaa, &lookups[i].aaaa);
    channel.get()->query(lookups[i].host, ns_t_a, &lookups[i].a);
  }
  in_time = channel.get()->run(deadline);

  bool implicit = records.empty();
  std::vector<std::string> failures;
  bool any_temporary = false;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    std::string reason;
    switch (collect(lookups[i], !in_time, &targets[i].addresses, &reason)) {
      case HostOutcome::kAddresses:
        break;
      case HostOutcome::kTemporary:
        any_temporary = true;
        failures.push_back(reason);
        break;
      case HostOutcome::kNone:
      case HostOutcome::kNoSuchHost:
        failures.push_back(reason);
        break;
    }
  }

  if (implicit) {
    if (targets[0].addresses.empty()) {
      answer.status = any_temporary ? MxStatus::kTemporary : MxStatus::kNoDomain;
      answer.detail = any_temporary ? failures[0] + " (no MX record for " + domain + ")"
                                    : "no MX or A/AAAA record for " + domain;
      if (any_temporary) answer.targets = std::move(targets);
      return answer;
    }
    answer.status = MxStatus::kOk;
    answer.detail = "no MX record for " + domain + ": its own A/AAAA (implicit MX, RFC 5321 §5.1)";
    answer.targets = std::move(targets);
    return answer;
  }

  std::vector<MxTarget> reachable;
  for (auto& target : targets) {
    if (!target.addresses.empty()) reachable.push_back(std::move(target));
  }
  notes.insert(notes.end(), failures.begin(), failures.end());
  if (reachable.empty()) {
    // XXX: an MX host that does not exist is a broken zone, and a retry may find it fixed;
    // no address for any MX host is reported as temporary, with every host kept.
    answer.status = MxStatus::kTemporary;
    answer.detail = "no address for any MX host of " + domain + ": " + join(notes, "; ");
    answer.targets = std::move(targets);
    return answer;
  }
  answer.status = MxStatus::kOk;
  answer.detail = std::to_string(reachable.size()) + " MX host" +
                  (reachable.size() == 1 ? "" : "s") + " for " + domain;
  if (!notes.empty()) answer.detail += " (" + join(notes, "; ") + ")";
  answer.targets = std::move(reachable);
  return answer;
}

}  // namespace delivery
