// config.h — the validated, immutable configuration snapshot (STYLE.md habit 6).
//
// One TOML file (README "Configuration" documents every key). Loading is strict: an
// unknown key, a wrong type or an unsafe value is an error that names the file, the line
// and the key; nothing is silently ignored. Relative paths are resolved against the
// directory of the configuration file. Exceptions stay inside the loader (start-up only).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "smtp/server_session.h"
#include "tls/policy.h"

namespace config {

// Listener roles of DESIGN.md §3 (RFC 8314 names).
enum class Role { kSubmissions, kSubmission, kSmtp };
std::string_view role_name(Role role);

struct Listener {
  Role role = Role::kSmtp;
  std::string address;          // required: where to listen (IPv4 or IPv6 literal)
  std::uint16_t port = 25;      // 0: the kernel picks one (logged at start)
  bool session_tickets = true;  // default false on the smtp role (Microsoft STARTTLS trouble)
  bool require_tls = false;     // smtp role only: 530 5.7.0 until STARTTLS
  // Submission roles only: PEM file of the CAs whose client certificates may authenticate
  // with SASL EXTERNAL (mutual TLS); empty: no client certificates, no EXTERNAL.
  std::string client_ca;
};

struct Domain {
  std::string name;                // lower-case
  std::vector<std::string> users;  // local parts that have a mailbox
};

// [auth]: the users file and the failure limiter (README "Configuration").
struct AuthSettings {
  std::string users_file;                    // default <data_dir>/users
  unsigned max_failures_per_user = 5;        // per (client IP, user) in the window → 454 4.7.0
  unsigned max_failures_per_ip = 30;         // per client IP, all users together
  std::chrono::seconds failure_window{900};  // counting window and lockout length
  std::vector<std::string> exempt_networks;  // CIDR ("192.0.2.0/24", "2001:db8::/32")
  bool received_names_user = false;          // name the authenticated user in Received
  std::chrono::seconds verified_cache{600};  // remember a verified password (0: never)
};

struct Config {
  std::string source_file;
  std::string hostname;
  std::string data_dir;
  unsigned io_threads = 0;         // 0: one per core
  std::string log_level = "info";  // debug, info, warning, error
  std::string control_socket;      // default <data_dir>/control.sock (smtpsctl auth …)
  std::vector<Domain> domains;
  tls::Policy tls;
  std::vector<tls::CertificatePair> certificates;
  std::vector<long> certificate_lines;  // line of each [[tls.certificates]] entry, for errors
  std::vector<Listener> listeners;
  AuthSettings auth;
  std::size_t max_connections = 10000;      // [limits]: open connections in total …
  std::size_t max_connections_per_ip = 50;  // … and from one client address (421 4.7.0)
  smtp::SessionLimits limits;
  std::chrono::seconds command_timeout{300};  // RFC 5321 §4.5.3.2.7: at least 5 minutes
  std::chrono::seconds data_timeout{180};     // RFC 5321 §4.5.3.2.5: 3 minutes per data block
  std::chrono::seconds handshake_timeout{30};

  // Pure lookups used by the session policy.
  const Domain* find_domain(std::string_view domain) const;
};

struct ConfigError {
  std::string file;
  long line = 0;  // 0 when the error is not tied to one line
  std::string key;
  std::string message;
  // "FILE:LINE: KEY: MESSAGE"
  std::string to_string() const;
};

base::Expected<Config, ConfigError> load_file(const std::string& path);
base::Expected<Config, ConfigError> parse(std::string_view text, const std::string& file_name);

// Human summary of the effective policy, for `smtpsd check`.
std::string describe(const Config& config);

}  // namespace config
