// config.h — the validated, immutable configuration snapshot (STYLE.md habit 6).
//
// One TOML file (README "Configuration" documents every key). Loading is strict: an
// unknown key, a wrong type or an unsafe value is an error that names the file, the line
// and the key; nothing is silently ignored. Relative paths are resolved against the
// directory of the configuration file; a path starting "%credentials%/" names a file in
// $CREDENTIALS_DIRECTORY (systemd's LoadCredential=), the one value read from the
// environment. Exceptions stay inside the loader (start-up only).
#pragma once

#include <syslog.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/endpoint.h"
#include "base/expected.h"
#include "base/network.h"
#include "obs/log.h"
#include "smtp/session_limits.h"
#include "tls/policy.h"

namespace config {

// Listener roles of docs/architecture.md "Listener roles" (RFC 8314 names).
enum class Role { kSubmissions, kSubmission, kSmtp };
std::string_view to_string(Role role);

struct Listener {
  Role role = Role::kSmtp;
  base::IpBytes address{};      // required: where to listen (an IPv4 or IPv6 literal) …
  std::string address_text;     // … as written, for logs and the listening socket
  std::uint16_t port = 25;      // 0: the kernel picks one (logged at start)
  bool session_tickets = true;  // default false on the smtp role (Microsoft STARTTLS trouble)
  bool require_tls = false;     // smtp role only: 530 5.7.0 until STARTTLS
  // Submission roles only: PEM file of the CAs whose client certificates may authenticate
  // with SASL EXTERNAL (mutual TLS); empty: no client certificates, no EXTERNAL.
  std::string client_ca;
  // PROXY protocol v1/v2 (HAProxy): each connection starts with a header naming the real
  // client; accepted only from these networks (CIDR, required when on), others are refused.
  bool proxy_protocol = false;
  std::vector<base::Network> proxy_from;
  // The [[milters]] its sessions go through, in order (names checked to exist).
  std::vector<std::string> milters;
  long line = 0;  // of its [[listeners]] entry, for errors
};

// [[milters]]: a filter speaking the Sendmail milter protocol (README "Filtering with
// milters"; intake/milter_check.h).
enum class MilterDefaultAction { kTempfail, kAccept };
std::string_view to_string(MilterDefaultAction action);  // "tempfail", "accept"

struct Milter {
  std::string name;        // letters, digits, '-', '_', '.'; unique
  base::Endpoint address;  // unix:/path or IP:PORT (no host names: no system resolver)
  std::chrono::milliseconds timeout{10000};  // each step's wait for the milter's answer
  // When the milter is down, times out or fails mid-conversation (Postfix's
  // milter_default_action).
  MilterDefaultAction default_action = MilterDefaultAction::kTempfail;
  // macros = { connect = ["j", "{client_addr}"], … }: the macros sent at a stage ("connect",
  // "helo", "mail", "rcpt", "data", "eoh", "eom"); a stage not named keeps the default list.
  std::vector<std::pair<std::string, std::vector<std::string>>> macros;
  long line = 0;
  bool operator==(const Milter&) const = default;
};

// [[domains]] kind: a domain whose mailboxes are here, or one we accept on port 25 and pass to
// a next hop (backup MX, inbound gateway).
enum class DomainKind { kLocal, kRelay };
std::string_view to_string(DomainKind kind);  // "local", "relay"

// An SMTP server mail is handed to: [[domains]] relay (outbound from the domain's senders)
// or next_hop (a relay domain's inbound mail).
struct DomainHop {
  base::SmtpUrl url;  // host lower-case
  tls::OutboundLevel tls = tls::OutboundLevel::kVerify;
  std::string user;
  std::string password_file;  // first line is the password (never in this file)
  bool operator==(const DomainHop&) const = default;
};

// One DKIM signing key of a local domain ([[domains]] dkim = [{ selector, key }]).
struct DkimKeyFile {
  std::string selector;  // s= (RFC 6376 §3.1): the name under <selector>._domainkey.<domain>
  std::string key_file;  // PEM (PKCS#8) private key, RSA or Ed25519; mode 0600 or 0400
  std::string pem;       // its text, read when the configuration is loaded (the server only)
  long line = 0;         // of the entry, for errors
  bool operator==(const DkimKeyFile&) const = default;
};

// How an authenticity result is acted on ([authenticity], README "Mail authenticity").
enum class SpfEnforcement {
  kOff,     // no SPF check
  kRecord,  // recorded in Authentication-Results, never refused
  kDmarc,   // fail refused (550 5.7.1) only when the sender's domain publishes no DMARC record
            // (RFC 7489 §10.1: DMARC decides); temperror and permerror recorded
  kStrict,  // fail 550 5.7.1, permerror 550 5.5.2, temperror 451 4.4.3 (RFC 7208 §8)
};
enum class DmarcEnforcement {
  kOff,      // no DMARC evaluation
  kMonitor,  // evaluated and recorded, never acted on
  kEnforce,  // p=reject → 550 5.7.1 at the end of data; p=quarantine → the Junk folder
};
std::string_view to_string(SpfEnforcement value);    // "off", "record", "dmarc", "strict"
std::string_view to_string(DmarcEnforcement value);  // "off", "monitor", "enforce"

struct Domain {
  std::string name;                // lower-case
  std::vector<std::string> users;  // local parts that have a mailbox
  DomainKind kind = DomainKind::kLocal;
  // Largest message for a recipient of this domain; 0: limits.max_message_size.
  std::uint64_t max_message_size = 0;
  // kLocal: delivery = "maildir" (maildir) or an LMTP endpoint (lmtp); neither: [delivery].
  bool maildir = false;
  std::optional<base::Endpoint> lmtp{};
  // kLocal: the smarthost for mail from this domain's senders; none: [delivery] relay or MX.
  std::optional<DomainHop> relay{};
  // kRelay: where its mail goes, and the recipients it has (local parts, compared without
  // regard to case; from `recipients` and `recipients_file`); anyone else gets 550 5.1.1.
  std::optional<DomainHop> next_hop{};
  std::vector<std::string> recipients{};
  std::string recipients_file{};
  // kLocal: the keys that sign its users' mail (dkim = [...]); empty: not signed.
  std::vector<DkimKeyFile> dkim{};
  // kLocal: DMARC enforcement for mail to this domain; none: [authenticity] dmarc.
  std::optional<DmarcEnforcement> dmarc{};
  long line = 0;  // of its [[domains]] entry, for errors
};

// [authenticity]: SPF, DKIM and DMARC on port 25, DKIM signing of our users' mail.
struct AuthenticitySettings {
  bool verify = true;       // SPF, DKIM and DMARC for mail on listeners of role "smtp"
  std::string authserv_id;  // of Authentication-Results (RFC 8601 §2.5); default hostname
  SpfEnforcement spf = SpfEnforcement::kDmarc;
  DmarcEnforcement dmarc = DmarcEnforcement::kEnforce;
  // A DNS temporary failure (SPF or DMARC temperror): false accepts and records it, true
  // answers 451 4.4.3 so the sender tries again later.
  bool defer_on_temperror = false;
  unsigned max_signatures = 8;  // DKIM signatures verified per message; the rest are ignored
  // Maildir folder of a message whose DMARC disposition is quarantine (it also gets
  // X-Spam-Flag: YES, for an LMTP server's Sieve); "" keeps it in INBOX with the header.
  std::string quarantine_folder = "Junk";
  // Clients whose mail is never refused or quarantined by DMARC (a mailing list or forwarder
  // you trust, RFC 7489 §7.2.1.1 PolicyOverride "trusted_forwarder"): evaluated, recorded.
  std::vector<base::Network> trusted_forwarders;
  // Mailing lists you trust, by the domain they sign with (d=, lower-case): a DMARC fail that
  // carries a DKIM pass of one of them is recorded, not acted on (PolicyOverride
  // "mailing_list": lists rewrite Subject and body, so the author's signature breaks).
  std::vector<std::string> mailing_lists;
  // ARC sealers you trust (the d= of the latest ARC-Seal, lower-case): a DMARC fail on a
  // message whose ARC chain passes (RFC 8617 §5.2) and was last sealed by one of them is
  // recorded, not acted on (PolicyOverride "local_policy", comment "arc=pass sealer=…").
  std::vector<std::string> trusted_arc_sealers;
  std::chrono::milliseconds deadline{8000};  // for all lookups of one message
  bool operator==(const AuthenticitySettings&) const = default;
};

// [dmarc_reports]: DMARC aggregate reports (RFC 7489 §7.2); [tls_reports]: SMTP TLS reports
// (RFC 8460). Each is off without its table.
struct ReportSettings {
  std::string org_name;   // the reporting organisation, named in every report
  std::string from;       // the reports' sender address (lower-case domain)
  std::string directory;  // default <data_dir>/dmarc or /tls-reports: the current period
  std::chrono::seconds interval{86400};  // one report per domain per interval
  // [tls_reports] only: the counts are saved to disk at most this often when they changed
  // (and at stop), and due POST retries are tried at the same pace.
  std::chrono::seconds save_interval{60};
  // [tls_reports] only: a failed HTTPS POST is tried again after post_retry_delay, then 5, 30
  // and 60 times that, until post_retry_lifetime after its first failure.
  std::chrono::seconds post_retry_delay{60};
  std::chrono::seconds post_retry_lifetime{86400};
  bool operator==(const ReportSettings&) const = default;
};
using DmarcReportSettings = ReportSettings;

// [srs]: the Sender Rewriting Scheme for forwarded mail (delivery/srs.h); off without it.
struct SrsSettings {
  std::string domain;                // lower-case: where SRS0/SRS1 addresses live
  std::string secrets_file;          // one secret a line, the first signs; mode 0600 or 0400
  std::vector<std::string> secrets;  // read from secrets_file when the configuration is loaded
  unsigned max_age_days = 21;
  bool operator==(const SrsSettings&) const = default;
};

// [auth]: the users file and the failure limiter (README "Configuration").
struct AuthSettings {
  std::string users_file;              // default <data_dir>/users
  unsigned max_failures_per_user = 5;  // per (client IP, user) in the window → 454 4.7.0
  unsigned max_failures_per_ip = 30;   // per client IP, all users together
  std::chrono::milliseconds failure_window{900'000};  // counting window and lockout length
  // The delay before the 535 of a second failure; it doubles with each further failure, up
  // to four times this (1 s: 0, 1, 2, 4 s).
  std::chrono::milliseconds failure_delay{1000};
  // How often the users and aliases files are looked at for changes (restart to change).
  std::chrono::milliseconds watch_interval{500};
  std::vector<base::Network> exempt_networks;  // from CIDR ("192.0.2.0/24", "2001:db8::/32")
  bool received_names_user = false;            // name the authenticated user in Received
  std::chrono::seconds verified_cache{600};    // remember a verified password (0: never)
  bool operator==(const AuthSettings&) const = default;
};

// [queue]: how long and how often the queue tries before it gives up (RFC 5321 §4.5.4.1).
struct QueueSettings {
  // Delay before attempt n+1 after the n-th temporary failure; the last one repeats.
  std::vector<std::chrono::seconds> retry_schedule{
      std::chrono::seconds(60), std::chrono::seconds(300), std::chrono::seconds(900),
      std::chrono::seconds(1800), std::chrono::seconds(3600)};
  std::chrono::seconds max_lifetime{5 * 86400};  // then a DSN says "failed" (4.4.7)
  std::chrono::seconds delay_warning{0};         // 0: no "delayed" DSN
  unsigned delivery_threads = 8;                 // deliveries in parallel (blocking I/O)
  // Threads for local mailboxes only, so that they never wait behind remote delivery.
  unsigned local_delivery_threads = 2;
  // Success DSNs (NOTIFY=SUCCESS) for unauthenticated senders, at most this many a minute.
  unsigned success_dsns_per_minute = 10;
  // A message whose recipients are all Maildir mailboxes here goes into them before the 250
  // instead of through the queue (queue::GroupCommitter::set_deliverer).
  bool deliver_at_acceptance = true;
  // reply_after = "log": the 250 comes once the message is durable in the commit log, and the
  // Maildir copies are made right after it (queue::GroupCommitter::set_reply_after_log);
  // "mailbox" (the default): once the copies are durable in the mailboxes.
  bool reply_after_log = false;
  bool operator==(const QueueSettings&) const = default;
};

// One entry of [[delivery.tls_policy]]: the TLS a remote domain must be reached with.
struct DestinationTls {
  std::string domain;  // lower-case
  tls::OutboundLevel level = tls::OutboundLevel::kMay;
  bool operator==(const DestinationTls&) const = default;
};

// [dns]: the server's one resolver (docs/architecture.md "DNS"). The deprecated
// [delivery] dns_servers sets servers (forward mode) with validation off.
struct DnsSettings {
  enum class Mode {
    kSystem,     // the servers of /etc/resolv.conf (the default)
    kForward,    // `servers`
    kRecursive,  // from the root hints, asking the authorities directly
  };
  enum class Validation { kAuto, kYes, kNo };
  Mode mode = Mode::kSystem;
  std::vector<base::HostPort> servers;  // "127.0.0.1:5353" or a list; port 53 by default
  Validation validation = Validation::kAuto;
  std::string trust_anchor = "/usr/share/dns/root.key";
  std::chrono::seconds timeout{5};  // per lookup
  bool operator==(const DnsSettings&) const = default;
};

// [delivery]: where mail for other domains and for local mailboxes goes.
struct DeliverySettings {
  // "smtps://host[:465]" (implicit TLS) or "smtp://host[:587]" (STARTTLS), host lower-case;
  // none: deliver straight to each domain's MX hosts.
  std::optional<base::SmtpUrl> relay;
  tls::OutboundLevel relay_tls = tls::OutboundLevel::kVerify;
  std::string relay_user;
  std::string relay_password_file;  // first line is the password (never in this file)
  std::string ca_file;              // CAs for verifying remote servers; empty: system store
  // Local mailboxes go to this LMTP server instead of Maildir: "unix:/path" or "HOST:PORT"
  // (HOST an IP literal or a name, looked up as the system does); none: Maildir.
  std::optional<base::Endpoint> lmtp;
  std::uint16_t mx_port = 25;
  // The HTTPS port of MTA-STS policy hosts (RFC 8461 §3.3 says 443; tests set another).
  std::uint16_t mta_sts_port = 443;
  // How often the cached MTA-STS policies are walked and those past half their max_age
  // fetched again, mail or no mail (RFC 8461 §10.2); 0: only when mail goes there.
  std::chrono::seconds mta_sts_refresh{3600};
  tls::OutboundLevel default_tls = tls::OutboundLevel::kMay;  // MX delivery
  std::vector<DestinationTls> tls_policy;
  // Connections at once to one destination; below delivery_threads, so that one slow
  // destination cannot hold every delivery thread.
  unsigned max_per_destination = 4;
  // Transactions at once with one server address, for every domain it serves.
  unsigned max_per_host = 4;
  std::chrono::seconds connection_cache{5};  // keep an idle connection this long for reuse
  unsigned max_messages_per_connection = 100;
  std::chrono::seconds connect_timeout{30};
  std::chrono::seconds command_timeout{300};  // RFC 5321 §4.5.3.2: 5 min (10 min after DATA)
  std::chrono::seconds attempt_timeout{900};  // one whole attempt, first connect to last reply
  std::string helo_name;                      // default: server.hostname
  bool operator==(const DeliverySettings&) const = default;
};

// [local_submission]: `sendmail` on this host without credentials (docs/architecture.md
// "Listener roles", role local): a unix socket, never a network address; the peer is known
// from SO_PEERCRED. Off when the table is absent.
struct LocalSubmissionSettings {
  bool enabled = false;
  std::string socket;                               // default <data_dir>/public/submit.sock
  std::vector<std::string> allow_users;             // user names; empty: every local user
  std::vector<std::string> may_set_sender{"root"};  // may keep their own envelope sender
  std::string domain;  // the sender's domain: default the first [[domains]] name, else hostname
  std::vector<std::string> milters;  // [[milters]] for local submissions (non_smtpd_milters)
  bool operator==(const LocalSubmissionSettings&) const = default;
};

// [addressing]: aliases, sub-addressing and role accounts (README "Mailboxes and aliases";
// the resolver is auth/recipient_resolver.h).
struct AddressingSettings {
  std::string aliases_file;  // default <data_dir>/aliases (watched like the users file)
  // The mailbox postmaster@ and abuse@ (role_accounts) of every domain resolve to; "" none:
  // postmaster@<domain> is then a mailbox of its own (RFC 5321 §4.5.1) and abuse@ unknown.
  std::string administrator;
  std::vector<std::string> role_accounts{"postmaster", "abuse"};  // local parts, lower-case
  std::string subaddress_separator = "+";  // local+detail@ → local@; "" off
  bool subaddress_folders = false;         // Maildir: deliver +detail into the folder .detail
  unsigned max_alias_depth = 10;           // aliases of aliases, deeper is a loop (5.4.6)
  unsigned max_alias_targets = 100;        // addresses one recipient may expand to
  bool operator==(const AddressingSettings&) const = default;
};

// [metrics]: the Prometheus endpoint (off when the table is absent).
struct MetricsSettings {
  // From "127.0.0.1:9464" (an IP literal; port 0: the kernel picks one); none: no endpoint.
  std::optional<base::HostPort> address;
  bool allow_non_loopback = false;  // serve on a non-loopback address too
  bool operator==(const MetricsSettings&) const = default;
};

// [screening]: what the `smtp` role does about clients before their mail (README
// "Screening"): DNS block/allow lists (filter/dns_list_check.h) and early talkers.
struct DnsListAnswerSettings {
  base::Network network;      // an answer (a /32) or a range of answers that counts
  std::optional<int> weight;  // else the list's
  bool operator==(const DnsListAnswerSettings&) const = default;
};
struct DnsListSettings {
  std::string zone;                            // lower case, no trailing dot
  int weight = 1;                              // negative: an allowlist
  std::vector<DnsListAnswerSettings> answers;  // empty: any 127.0.0.0/8 answer but error codes
  bool operator==(const DnsListSettings&) const = default;
};
enum class DnsListRefuseAt { kRcpt, kConnect };
std::string_view to_string(DnsListRefuseAt where);  // "rcpt", "connect"

struct ScreeningSettings {
  std::vector<DnsListSettings> dns_lists;  // [[screening.dns_lists]]
  int dns_list_threshold = 1;              // listed at this score
  DnsListRefuseAt refuse_at = DnsListRefuseAt::kRcpt;
  // Clients that skip every screen (lists, pre-greet wait, pipelining): your own networks.
  std::vector<base::Network> allow_networks;
  // The pre-greet wait: "220-" first, the final "220 " after this; a client that talks in
  // between is refused. 0: off (the default: every new client pays it once).
  std::chrono::milliseconds pregreet_wait{0};
  std::chrono::milliseconds pregreet_pass_ttl{86'400'000};  // a client that passed skips it
  std::size_t pregreet_pass_entries = 100'000;              // clients remembered at most
  // Bytes after a command that must end a pipelined group (RFC 2920 §3.1), or pipelining
  // after HELO: refused (true) or only logged.
  bool refuse_improper_pipelining = false;
  bool operator==(const ScreeningSettings&) const = default;
};

// [acme]: certificates from an ACME CA (RFC 8555; acme/renewal.h). When set, the pairs of
// <data_dir>/acme/ (ecdsa.key/.crt, rsa.key/.crt) are added to Config::certificates as the
// set of `names`, and the daemon keeps them renewed.
struct AcmeSettings {
  std::string directory;           // the CA's directory URL (https://…)
  std::string contact;             // e-mail address given to the CA; "" none
  std::vector<std::string> names;  // default: [server] hostname
  std::string http_address;        // the http-01 responder's address; "" every address
  std::uint16_t http_port = 80;    // … and port (RFC 8555 §8.3: the CA connects to 80)
  // http-01 through a web server already on port 80: the token files go under
  // <http_webroot>/.well-known/acme-challenge/ and no responder is bound. "" the responder.
  std::string http_webroot;
  std::string challenge = "http-01";  // or "tls-alpn-01" (RFC 8737), "dns-01" (§8.4)
  std::string tls_alpn_address;       // the tls-alpn-01 responder's address; "" every address
  std::uint16_t tls_alpn_port = 443;  // … and port (RFC 8737 §3: the CA connects to 443)
  // dns-01 (RFC 8555 §8.4): the hook's argv (run with add|remove NAME VALUE appended), how long
  // it may run, and how long the TXT record may take to become visible through [dns].
  std::vector<std::string> dns_hook;
  std::chrono::milliseconds dns_hook_timeout{60'000};
  std::chrono::milliseconds dns_propagation_timeout{300'000};
  std::string ca_file;  // trust for the CA's HTTPS; "" the system store
  std::optional<std::chrono::milliseconds> renew_before;    // none: at 2/3 of the lifetime
  std::chrono::milliseconds retry_wait{60'000};             // first retry after a failure
  std::chrono::milliseconds retry_max_wait{6 * 3'600'000};  // backoff doubles up to this
  // External Account Binding (RFC 8555 §7.3.4): the CA's key identifier and the file (mode
  // 0600) that holds its MAC key in base64url; eab_hmac_key is that key decoded (raw bytes,
  // never logged; left empty when smtpsctl reads the file, Reading::kClient). All "" for none.
  std::string eab_kid;
  std::string eab_hmac_key_file;
  std::string eab_hmac_key;
  long line = 0;                  // of [acme], for errors
  std::string directory_on_disk;  // <data_dir>/acme
  bool operator==(const AcmeSettings&) const = default;
};

// [log]: where and how log lines go.
enum class LogOutput { kStderr, kSyslog };
std::string_view to_string(LogOutput output);  // "stderr", "syslog"

struct LogSettings {
  obs::Format format = obs::Format::kKeyValue;  // "kv" (key=value) or "json" (one object a line)
  LogOutput output = LogOutput::kStderr;        // "stderr" or "syslog"
  int facility = LOG_MAIL;  // syslog(3) code of "mail", "daemon", … (RFC 5424 §6.2.1)
  std::string syslog_socket = "/dev/log";  // the local syslog daemon's datagram socket
  bool operator==(const LogSettings&) const = default;
};

struct Config {
  std::string source_file;
  std::string hostname;
  std::string data_dir;
  unsigned io_threads = 0;                   // 0: one per core
  obs::Level log_level = obs::Level::kInfo;  // debug, info, warning, error
  std::string control_socket;                // default <data_dir>/control.sock (smtpsctl auth …)
  // The read-only listing socket (mode 0666) through which any local user's `mailq` lists
  // that user's own messages; "" (the default): none, only root and the server's user list.
  std::string mailq_socket;
  std::string user;                   // started as root: switch to this account after start-up
  std::string group;                  // default: the user's primary group
  bool run_as_root = false;           // started as root without `user`: stay root (not advised)
  std::vector<Domain> domains;        // [[domains]] of kind "local" (mailboxes here)
  std::vector<Domain> relay_domains;  // [[domains]] of kind "relay" (passed to a next hop)
  std::optional<SrsSettings> srs;     // [srs]; none: off
  tls::Policy tls;
  // Every pair; pairs with the same `names` form one certificate set (SNI), the set without
  // names (or else the first) is the default (tls/certificate_store.h).
  // [limits] free_space_check_interval: how long a measure of the spool's free space is used
  // before the next MAIL measures again (queue/spool_space.h; restart to change).
  std::chrono::milliseconds free_space_check{1000};
  // [tls] watch_interval: how often the certificate files are looked at besides inotify's
  // events (app/smtpsd/reload.cpp); short for tests.
  std::chrono::milliseconds certificate_poll{2000};
  std::vector<tls::CertificatePair> certificates;
  std::vector<long> certificate_lines;  // line of each [[tls.certificates]] entry, for errors
  std::vector<Listener> listeners;
  AuthSettings auth;
  AddressingSettings addressing;
  AuthenticitySettings authenticity;
  std::optional<DmarcReportSettings> dmarc_reports;
  std::optional<ReportSettings> tls_reports;
  // Deprecated forms still read, one "file:line: key: what to do" each; logged at start and
  // printed by `smtpsd check`.
  std::vector<std::string> deprecations;
  // Settings that are valid but likely a mistake, same form; logged at start (config_warning)
  // and printed by `smtpsd check`.
  std::vector<std::string> warnings;
  QueueSettings queue;
  DeliverySettings delivery;
  DnsSettings dns;
  MetricsSettings metrics;
  LogSettings log;
  LocalSubmissionSettings local_submission;
  ScreeningSettings screening;
  std::vector<Milter> milters;                       // [[milters]], in the file's order
  std::optional<AcmeSettings> acme;                  // [acme]; none: off
  std::size_t max_connections = 10000;               // [limits]: open connections in total …
  std::size_t max_connections_per_ip = 50;           // … and from one client address (421 4.7.0)
  unsigned max_connections_per_minute_per_ip = 120;  // new connections a minute (IPv6: /64); 0 off
  // [sending_limits]: what one authenticated user may send (auth/sending_limiter.h); 0 turns
  // a bound off. messages_per_hour was [limits] max_messages_per_user_per_hour (still read).
  struct SendingLimits {
    std::uint64_t messages_per_hour = 1000;           // at MAIL: 451 4.7.1 past it
    std::uint64_t external_recipients_per_hour = 50;  // distinct, not ours: past it, held
    std::uint64_t external_recipients_per_day = 200;
    bool operator==(const SendingLimits&) const = default;
  } sending_limits;
  // [limits] ipv6_prefix: the per-client limits above and the AUTH failure limiter count an
  // IPv6 client as its prefix of this length (base::client_network), 32..128.
  unsigned ipv6_prefix = 64;
  std::uint64_t min_free_space = 64u << 20;  // spool space kept free; below it MAIL gets 452
  // [limits] max_received_headers: a message whose header section already has this many
  // Received fields (ours would be one more) is a mail loop, refused by the received-loop
  // check (intake/loop_check.h, RFC 5321 §6.3); 0: the check is off.
  std::size_t max_received_headers = 50;
  smtp::SessionLimits limits;
  // [timeouts]: durations (config/duration.h), whole milliseconds.
  std::chrono::milliseconds command_timeout{300'000};  // RFC 5321 §4.5.3.2.7: at least 5 minutes
  std::chrono::milliseconds data_timeout{180'000};     // RFC 5321 §4.5.3.2.5: 3 minutes per block
  std::chrono::milliseconds handshake_timeout{30'000};
  // A PROXY protocol header from a listener's proxy_from (the proxy sends it at once).
  std::chrono::milliseconds proxy_header_timeout{5'000};
  std::chrono::milliseconds shutdown_grace{30'000};  // SIGTERM: open transactions finish this long

  // Pure lookups used by the session policy.
  const Domain* find_domain(std::string_view domain) const;
  const Domain* find_relay_domain(std::string_view domain) const;
  // The largest message for recipient (its domain's max_message_size, else limits').
  std::uint64_t max_message_size_for(std::string_view recipient) const;
};

struct ConfigError {
  std::string file;
  long line = 0;  // 0 when the error is not tied to one line
  std::string key;
  std::string message;
  // "FILE:LINE: KEY: MESSAGE"
  std::string to_string() const;
};

// Who reads the file. kClient is a program that talks to the running server (smtpsctl queue,
// mailq, sendmail, often as an ordinary user): the same checks, except that the files only the
// server's account may read ([srs] secrets_file, a relay domain's recipients_file) are named
// but never opened (Config::srs->secrets and the domain's recipients stay empty).
enum class Reading { kServer, kClient };

base::Expected<Config, ConfigError> load_file(const std::string& path,
                                              Reading reading = Reading::kServer);
base::Expected<Config, ConfigError> parse(std::string_view text, const std::string& file_name,
                                          Reading reading = Reading::kServer);

// Human summary of the effective policy, for `smtpsd check`.
std::string describe(const Config& config);

}  // namespace config
