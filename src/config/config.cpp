// config.cpp — TOML → Config, strict: every key is known, typed and range-checked, and
// every error names file, line and key (see config.h).
#include "config/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include "base/ascii.h"
#include "base/base64.h"
#include "base/endpoint.h"
#include "base/network.h"
#include "config/duration.h"
#include "obs/log.h"

namespace config {
namespace {

// A list file named by the configuration (a relay domain's recipients) is read whole at
// start and at each reload: a million addresses fit.
constexpr std::uintmax_t kMaxListFileSize = 16u << 20;

struct Failure {
  ConfigError error;
};

class Reader {
 public:
  explicit Reader(std::string file, Reading reading = Reading::kServer)
      : file_(std::move(file)), reading_(reading) {}
  // Whether the server's private files are opened (config.h Reading).
  bool opens_private_files() const { return reading_ == Reading::kServer; }

  [[noreturn]] void fail(const toml::node* node, const std::string& key,
                         const std::string& message) const {
    long line = node ? static_cast<long>(node->source().begin.line) : 0;
    throw Failure{ConfigError{file_, line, key, message}};
  }

  // Refuses keys of `table` that are not in `known`.
  void only_keys(const toml::table& table, const std::string& prefix,
                 std::initializer_list<std::string_view> known) const {
    for (auto&& [key, node] : table) {
      if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
        std::string known_list;
        for (auto k : known) {
          if (!known_list.empty()) known_list += ", ";
          known_list += k;
        }
        fail(&node, join(prefix, key.str()), "unknown key (known here: " + known_list + ")");
      }
    }
  }

  static std::string join(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

  std::string string_at(const toml::table& table, const std::string& prefix, std::string_view key,
                        const std::string& fallback, bool required = false) const {
    const toml::node* node = table.get(key);
    if (!node) {
      if (required) fail(&table, join(prefix, key), "missing (required)");
      return fallback;
    }
    if (!node->is_string()) fail(node, join(prefix, key), "must be a string");
    return std::string(node->as_string()->get());
  }

  bool bool_at(const toml::table& table, const std::string& prefix, std::string_view key,
               bool fallback) const {
    const toml::node* node = table.get(key);
    if (!node) return fallback;
    if (!node->is_boolean()) fail(node, join(prefix, key), "must be true or false");
    return node->as_boolean()->get();
  }

  std::int64_t int_at(const toml::table& table, const std::string& prefix, std::string_view key,
                      std::int64_t fallback, std::int64_t min, std::int64_t max) const {
    const toml::node* node = table.get(key);
    if (!node) return fallback;
    if (!node->is_integer()) fail(node, join(prefix, key), "must be an integer");
    std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      fail(node, join(prefix, key), fmt::format("must be between {} and {}", min, max));
    }
    return value;
  }

  // A duration (config/duration.h): whole seconds as an integer, or a string such as
  // "250ms" or "1.5s"; the range is checked in milliseconds.
  std::chrono::milliseconds duration_at(const toml::table& table, const std::string& prefix,
                                        std::string_view key, std::chrono::milliseconds fallback,
                                        std::chrono::milliseconds min,
                                        std::chrono::milliseconds max) const {
    const toml::node* node = table.get(key);
    if (!node) return fallback;
    std::chrono::milliseconds value{0};
    if (node->is_integer()) {
      std::int64_t seconds = node->as_integer()->get();
      if (seconds < 0) fail(node, join(prefix, key), "must not be negative");
      if (seconds > max.count() / 1000 + 1) {
        fail(node, join(prefix, key),
             fmt::format("must be between {} and {}", format_duration(min), format_duration(max)));
      }
      value = std::chrono::seconds(seconds);
    } else if (node->is_string()) {
      auto parsed = parse_duration(node->as_string()->get());
      if (!parsed) fail(node, join(prefix, key), parsed.error());
      value = parsed.value();
    } else {
      fail(node, join(prefix, key),
           "must be a duration: whole seconds (900) or a string such as \"250ms\" or \"1.5s\"");
    }
    if (value < min || value > max) {
      fail(node, join(prefix, key),
           fmt::format("must be between {} and {}", format_duration(min), format_duration(max)));
    }
    return value;
  }

  const toml::table* table_at(const toml::table& table, const std::string& prefix,
                              std::string_view key) const {
    const toml::node* node = table.get(key);
    if (!node) return nullptr;
    if (!node->is_table()) fail(node, join(prefix, key), "must be a table");
    return node->as_table();
  }

  const toml::array* array_at(const toml::table& table, const std::string& prefix,
                              std::string_view key) const {
    const toml::node* node = table.get(key);
    if (!node) return nullptr;
    if (!node->is_array()) fail(node, join(prefix, key), "must be an array");
    return node->as_array();
  }

  std::string path_at(const toml::table& table, const std::string& prefix, std::string_view key,
                      const std::string& base_dir, bool required) const {
    std::string value = string_at(table, prefix, key, "", required);
    if (value.empty()) {
      if (required) fail(table.get(key), join(prefix, key), "must not be empty");
      return value;
    }
    // "%credentials%/NAME": a file that systemd's LoadCredential= copied into
    // $CREDENTIALS_DIRECTORY, readable by the service's account only (docs/architecture.md
    // "Privileges").
    constexpr std::string_view kCredentials = "%credentials%/";
    if (value.starts_with(kCredentials)) {
      const char* directory = std::getenv("CREDENTIALS_DIRECTORY");
      if (directory == nullptr || directory[0] != '/') {
        fail(table.get(key), join(prefix, key),
             "uses %credentials% but $CREDENTIALS_DIRECTORY is not set (systemd's "
             "LoadCredential= sets it)");
      }
      value = std::string(directory) + "/" + value.substr(kCredentials.size());
    }
    std::filesystem::path path(value);
    if (path.is_relative()) path = std::filesystem::path(base_dir) / path;
    std::string normal = path.lexically_normal().string();
    while (normal.size() > 1 && normal.back() == '/')
      normal.pop_back();
    return normal;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  Reading reading_ = Reading::kServer;
};

bool valid_domain_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c == '.') {
      if (label == 0 || name[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (!(std::isalnum(c) || c == '-' || c >= 0x80)) return false;
    if (label == 0 && c == '-') return false;
    if (++label > 63) return false;
  }
  return label > 0 && name.back() != '-';
}

bool valid_local_part(std::string_view local) {
  if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.') {
    return false;
  }
  for (unsigned char c : local) {
    if (c <= ' ' || c == '/' || c == '@' || c == '"' || c == '\\' || c == 0x7f) return false;
  }
  return local.find("..") == std::string_view::npos;
}

// "unix:/absolute/path", or an IP literal (IPv6 in brackets) or a host name, ':' and a port.
std::optional<base::Endpoint> parse_lmtp(std::string_view spec) {
  auto endpoint = base::parse_endpoint(spec);
  if (!endpoint) return std::nullopt;
  if (!endpoint->is_unix() && !base::parse_ip(endpoint->tcp.host) &&
      !valid_domain_name(base::ascii_lowercase(endpoint->tcp.host))) {
    return std::nullopt;
  }
  return endpoint.value();
}

// Each entry of a list of networks in CIDR form (key names the list in errors).
std::vector<base::Network> networks_at(const toml::array& list, const std::string& key,
                                       std::string_view examples, const Reader& reader) {
  std::vector<base::Network> networks;
  for (const toml::node& node : list) {
    auto network = base::parse_network(node.is_string() ? node.as_string()->get() : "");
    if (!network) {
      reader.fail(&node, key, "not a network in CIDR form (" + std::string(examples) + ")");
    }
    networks.push_back(network.value());
  }
  return networks;
}

tls::OutboundLevel level_at(const toml::table& table, const Reader& reader,
                            const std::string& prefix, std::string_view key,
                            tls::OutboundLevel fallback) {
  if (!table.get(key)) return fallback;
  std::string text = reader.string_at(table, prefix, key, "");
  tls::OutboundLevel level = fallback;
  if (!tls::parse_outbound_level(text, level)) {
    reader.fail(table.get(key), prefix + "." + std::string(key),
                "must be \"none\", \"may\", \"encrypt\" or \"verify\", not '" + text + "'");
  }
  return level;
}

// [queue]
// [metrics] and [log] (README "## Metrics", "## Logs").
void read_observability(const toml::table& root, Reader& reader, Config& config) {
  if (const toml::table* table = reader.table_at(root, "", "metrics")) {
    MetricsSettings& m = config.metrics;
    reader.only_keys(*table, "metrics", {"address", "allow_non_loopback"});
    const std::string text = reader.string_at(*table, "metrics", "address", "", true);
    base::HostPortForm form;  // an IP literal; port 0: the kernel picks one
    form.numeric_host = true;
    form.port_zero = true;
    auto address = base::parse_host_port(text, form);
    if (!address) {
      reader.fail(table->get("address"), "metrics.address",
                  "must be a numeric address and a port (\"127.0.0.1:9464\", \"[::1]:9464\"), "
                  "not '" +
                      text + "'");
    }
    m.address = address.value();
    m.allow_non_loopback = reader.bool_at(*table, "metrics", "allow_non_loopback", false);
    if (!m.allow_non_loopback && !base::is_loopback_address(m.address->host)) {
      reader.fail(table->get("address"), "metrics.address",
                  "'" + m.address->host +
                      "' is not a loopback address: metrics tell anyone who can reach them "
                      "about your traffic; set metrics.allow_non_loopback = true to serve them "
                      "there anyway");
    }
  }
  if (const toml::table* table = reader.table_at(root, "", "log")) {
    LogSettings& l = config.log;
    reader.only_keys(*table, "log", {"format", "output", "facility", "syslog_socket"});
    const std::string format = reader.string_at(*table, "log", "format", "kv");
    if (format != "kv" && format != "json") {
      reader.fail(table->get("format"), "log.format", "must be \"kv\" or \"json\"");
    }
    l.format = format == "json" ? obs::Format::kJson : obs::Format::kKeyValue;
    const std::string output = reader.string_at(*table, "log", "output", "stderr");
    if (output != "stderr" && output != "syslog") {
      reader.fail(table->get("output"), "log.output", "must be \"stderr\" or \"syslog\"");
    }
    l.output = output == "syslog" ? LogOutput::kSyslog : LogOutput::kStderr;
    l.facility = obs::syslog_facility(reader.string_at(*table, "log", "facility", "mail"));
    if (l.facility < 0) {
      reader.fail(table->get("facility"), "log.facility",
                  "must be one of mail, daemon, user, local0 … local7");
    }
    l.syslog_socket = reader.string_at(*table, "log", "syslog_socket", l.syslog_socket);
    if (l.syslog_socket.empty() || l.syslog_socket.front() != '/') {
      reader.fail(table->get("syslog_socket"), "log.syslog_socket",
                  "must be an absolute path to a datagram socket");
    }
  }
}

// A list of local user names (login names: no '@', no spaces or control characters).
std::vector<std::string> user_names_at(const toml::table& table, const std::string& prefix,
                                       std::string_view key, std::vector<std::string> fallback,
                                       const Reader& reader) {
  const toml::array* list = reader.array_at(table, prefix, key);
  if (!list) return fallback;
  std::vector<std::string> names;
  for (const toml::node& node : *list) {
    const std::string name = node.is_string() ? std::string(node.as_string()->get()) : "";
    const bool valid =
        !name.empty() && name.size() <= 256 && std::none_of(name.begin(), name.end(), [](char c) {
          return static_cast<unsigned char>(c) <= ' ' || c == '@' || c == 0x7f;
        });
    if (!valid) {
      reader.fail(&node, Reader::join(prefix, key),
                  "each entry is a local user name (as in /etc/passwd), not '" + name + "'");
    }
    names.push_back(name);
  }
  return names;
}

// [[milters]] (config.h Milter); before [[listeners]] and [local_submission], which name them.
void read_milters(const toml::table& root, Reader& reader, Config& config) {
  const toml::array* milters = reader.array_at(root, "", "milters");
  if (!milters) return;
  std::size_t index = 0;
  for (const toml::node& node : *milters) {
    const std::string p = fmt::format("milters[{}]", index++);
    if (!node.is_table()) reader.fail(&node, p, "must be a table");
    const toml::table& entry = *node.as_table();
    reader.only_keys(entry, p, {"name", "address", "timeout", "default_action", "macros"});
    Milter milter;
    milter.line = static_cast<long>(node.source().begin.line);
    milter.name = reader.string_at(entry, p, "name", "", true);
    const bool valid_name =
        !milter.name.empty() && milter.name.size() <= 64 &&
        std::all_of(milter.name.begin(), milter.name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (!valid_name) {
      reader.fail(entry.get("name"), p + ".name",
                  "letters, digits, '-', '_' and '.' only (at most 64), not '" + milter.name + "'");
    }
    for (const Milter& other : config.milters) {
      if (other.name == milter.name) {
        reader.fail(entry.get("name"), p + ".name",
                    fmt::format("'{}' is already the name of the milter on line {}", milter.name,
                                other.line));
      }
    }
    const std::string address = reader.string_at(entry, p, "address", "", true);
    base::HostPortForm form;
    form.numeric_host = true;
    auto endpoint = base::parse_endpoint(address, form);
    if (!endpoint) {
      reader.fail(
          entry.get("address"), p + ".address",
          endpoint.error() +
              " (\"unix:/run/milter.sock\" or an IP address and port, \"127.0.0.1:11332\")");
    }
    milter.address = endpoint.value();
    milter.timeout = reader.duration_at(entry, p, "timeout", milter.timeout,
                                        std::chrono::milliseconds(10), std::chrono::minutes(10));
    const std::string action = reader.string_at(entry, p, "default_action", "tempfail");
    if (action == "tempfail") {
      milter.default_action = MilterDefaultAction::kTempfail;
    } else if (action == "accept") {
      milter.default_action = MilterDefaultAction::kAccept;
    } else {
      reader.fail(entry.get("default_action"), p + ".default_action",
                  "must be \"tempfail\" (451 4.7.1: the client tries again) or \"accept\" (as if "
                  "the milter were not configured), not '" +
                      action + "'");
    }
    if (const toml::table* macros = reader.table_at(entry, p, "macros")) {
      const std::string macros_key = fmt::format("milters[{}].macros", index - 1);
      reader.only_keys(*macros, macros_key,
                       {"connect", "helo", "mail", "rcpt", "data", "eoh", "eom"});
      for (auto&& [stage, list] : *macros) {
        const std::string key = macros_key + "." + std::string(stage.str());
        if (!list.is_array()) reader.fail(&list, key, "must be an array of macro names");
        std::vector<std::string> names;
        for (const toml::node& item : *list.as_array()) {
          const std::string name = item.is_string() ? std::string(item.as_string()->get()) : "";
          const bool valid =
              !name.empty() && name.size() <= 64 &&
              std::all_of(name.begin(), name.end(), [](char c) { return c > ' ' && c < 0x7f; });
          if (!valid) {
            reader.fail(&item, key,
                        "each entry is a macro name such as \"j\" or \"{client_addr}\", not '" +
                            name + "'");
          }
          names.push_back(name);
        }
        milter.macros.emplace_back(std::string(stage.str()), std::move(names));
      }
    }
    config.milters.push_back(std::move(milter));
  }
}

// A listener's or the local submission's `milters`: names of [[milters]], each once.
std::vector<std::string> milter_names_at(const toml::table& table, const std::string& prefix,
                                         const Reader& reader, const Config& config) {
  std::vector<std::string> names;
  const toml::array* list = reader.array_at(table, prefix, "milters");
  if (!list) return names;
  for (const toml::node& node : *list) {
    const std::string name = node.is_string() ? std::string(node.as_string()->get()) : "";
    const bool known = std::any_of(config.milters.begin(), config.milters.end(),
                                   [&](const Milter& milter) { return milter.name == name; });
    if (!known) {
      reader.fail(&node, prefix + ".milters",
                  "no [[milters]] entry is named '" + name + "'" +
                      (config.milters.empty() ? std::string(" (there are none)") : std::string()));
    }
    if (std::find(names.begin(), names.end(), name) != names.end())
      reader.fail(&node, prefix + ".milters", "'" + name + "' is named twice");
    names.push_back(name);
  }
  return names;
}

// [local_submission] (config.h LocalSubmissionSettings); after [[domains]] and [server].
void read_local_submission(const toml::table& root, Reader& reader, const std::string& base_dir,
                           Config& config) {
  LocalSubmissionSettings& l = config.local_submission;
  const toml::table* table = reader.table_at(root, "", "local_submission");
  if (!table) return;
  const std::string p = "local_submission";
  reader.only_keys(*table, p,
                   {"enabled", "socket", "allow_users", "may_set_sender", "domain", "milters"});
  l.milters = milter_names_at(*table, p, reader, config);
  l.enabled = reader.bool_at(*table, p, "enabled", true);
  l.socket = table->get("socket") ? reader.path_at(*table, p, "socket", base_dir, true)
                                  : config.data_dir + "/public/submit.sock";
  // sun_path holds 108 octets with its NUL (unix(7)).
  if (l.socket.size() > 107) {
    reader.fail(table->get("socket"), p + ".socket",
                "longer than 107 octets, the limit of a unix socket path");
  }
  l.allow_users = user_names_at(*table, p, "allow_users", {}, reader);
  l.may_set_sender = user_names_at(*table, p, "may_set_sender", l.may_set_sender, reader);
  l.domain = base::ascii_lowercase(reader.string_at(*table, p, "domain", ""));
  if (l.domain.empty()) {
    l.domain = config.domains.empty() ? config.hostname : config.domains.front().name;
  } else if (!valid_domain_name(l.domain)) {
    reader.fail(table->get("domain"), p + ".domain", "not a valid domain: '" + l.domain + "'");
  }
}

DmarcEnforcement dmarc_enforcement_at(const toml::table& table, const std::string& prefix,
                                      const Reader& reader, DmarcEnforcement fallback) {
  const std::string text =
      reader.string_at(table, prefix, "dmarc", std::string(to_string(fallback)));
  for (DmarcEnforcement value :
       {DmarcEnforcement::kOff, DmarcEnforcement::kMonitor, DmarcEnforcement::kEnforce}) {
    if (text == to_string(value)) return value;
  }
  reader.fail(table.get("dmarc"), Reader::join(prefix, "dmarc"),
              "must be \"enforce\" (p=reject refused, p=quarantine to Junk), \"monitor\" "
              "(recorded only) or \"off\", not '" +
                  text + "'");
  return fallback;
}

// [authenticity] (after [server]: the authserv-id defaults to the hostname).
void read_authenticity(const toml::table& root, Reader& reader, Config& config) {
  AuthenticitySettings& a = config.authenticity;
  a.authserv_id = config.hostname;
  const toml::table* table = reader.table_at(root, "", "authenticity");
  if (!table) return;
  const std::string p = "authenticity";
  reader.only_keys(
      *table, p,
      {"verify", "authserv_id", "spf", "dmarc", "temperror", "max_signatures", "quarantine_folder",
       "trusted_forwarders", "mailing_lists", "trusted_arc_sealers", "deadline"});
  a.verify = reader.bool_at(*table, p, "verify", true);
  a.authserv_id = base::ascii_lowercase(reader.string_at(*table, p, "authserv_id", a.authserv_id));
  if (!valid_domain_name(a.authserv_id)) {
    reader.fail(
        table->get("authserv_id"), p + ".authserv_id",
        "not a host name: '" + a.authserv_id + "' (RFC 8601 §2.5: usually this host's name)");
  }
  const std::string spf = reader.string_at(*table, p, "spf", std::string(to_string(a.spf)));
  bool known = false;
  for (SpfEnforcement value : {SpfEnforcement::kOff, SpfEnforcement::kRecord,
                               SpfEnforcement::kDmarc, SpfEnforcement::kStrict}) {
    if (spf == to_string(value)) {
      a.spf = value;
      known = true;
    }
  }
  if (!known) {
    reader.fail(table->get("spf"), p + ".spf",
                "must be \"dmarc\" (fail refused unless the domain publishes DMARC), \"strict\" "
                "(fail, permerror and temperror refused), \"record\" or \"off\", not '" +
                    spf + "'");
  }
  a.dmarc = dmarc_enforcement_at(*table, p, reader, a.dmarc);
  const std::string temperror = reader.string_at(*table, p, "temperror", "accept");
  if (temperror != "accept" && temperror != "defer") {
    reader.fail(
        table->get("temperror"), p + ".temperror",
        "must be \"accept\" (accept and record) or \"defer\" (451 4.4.3), not '" + temperror + "'");
  }
  a.defer_on_temperror = temperror == "defer";
  a.max_signatures =
      static_cast<unsigned>(reader.int_at(*table, p, "max_signatures", a.max_signatures, 1, 50));
  a.quarantine_folder = reader.string_at(*table, p, "quarantine_folder", a.quarantine_folder);
  // A Maildir++ folder name (queue::Spool::is_valid_folder says the same at delivery).
  const bool folder_ok =
      a.quarantine_folder.size() <= 200 && !a.quarantine_folder.starts_with('.') &&
      !a.quarantine_folder.ends_with('.') && a.quarantine_folder.find("..") == std::string::npos &&
      std::all_of(a.quarantine_folder.begin(), a.quarantine_folder.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
      });
  if (!folder_ok) {
    reader.fail(table->get("quarantine_folder"), p + ".quarantine_folder",
                "not a Maildir folder name: '" + a.quarantine_folder +
                    "' (letters, digits, '-', '_', '.' between names; \"\" keeps INBOX)");
  }
  if (const toml::array* networks = reader.array_at(*table, p, "trusted_forwarders")) {
    a.trusted_forwarders = networks_at(*networks, p + ".trusted_forwarders",
                                       "\"192.0.2.0/24\", \"2001:db8::/32\"", reader);
  }
  if (const toml::array* lists = reader.array_at(*table, p, "mailing_lists")) {
    for (const toml::node& node : *lists) {
      const std::string domain =
          base::ascii_lowercase(node.is_string() ? std::string(node.as_string()->get()) : "");
      if (!valid_domain_name(domain)) {
        reader.fail(&node, p + ".mailing_lists",
                    "each entry is the domain a list signs with (d=), not '" + domain + "'");
      }
      a.mailing_lists.push_back(domain);
    }
  }
  if (const toml::array* sealers = reader.array_at(*table, p, "trusted_arc_sealers")) {
    for (const toml::node& node : *sealers) {
      const std::string domain =
          base::ascii_lowercase(node.is_string() ? std::string(node.as_string()->get()) : "");
      if (!valid_domain_name(domain)) {
        reader.fail(&node, p + ".trusted_arc_sealers",
                    "each entry is the domain an ARC sealer signs with (the ARC-Seal d=), not '" +
                        domain + "'");
      }
      a.trusted_arc_sealers.push_back(domain);
    }
  }
  a.deadline = std::chrono::milliseconds(
      reader.int_at(*table, p, "deadline", a.deadline.count(), 500, 60000));
}

// [dmarc_reports] and [tls_reports] (after [server]: the directory defaults under data_dir,
// in the folder `folder`).
std::optional<ReportSettings> read_reports(const toml::table& root, Reader& reader,
                                           const std::string& base_dir, const Config& config,
                                           const std::string& p, const std::string& folder,
                                           const std::string& example) {
  const toml::table* table = reader.table_at(root, "", p);
  if (!table) return std::nullopt;
  const bool tls = p == "tls_reports";
  // Each table's keys under its literal name: the man page test reads these lists.
  if (tls) {
    reader.only_keys(*table, "tls_reports",
                     {"org_name", "from", "directory", "interval", "save_interval",
                      "post_retry_delay", "post_retry_lifetime"});
  } else {
    reader.only_keys(*table, "dmarc_reports", {"org_name", "from", "directory", "interval"});
  }
  ReportSettings r;
  r.org_name = reader.string_at(*table, p, "org_name", "", true);
  if (r.org_name.empty() || r.org_name.size() > 200 ||
      std::any_of(r.org_name.begin(), r.org_name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    reader.fail(table->get("org_name"), p + ".org_name",
                "must name your organisation in one line (\"Example Mail\")");
  }
  r.from = reader.string_at(*table, p, "from", "", true);
  const std::size_t at = r.from.rfind('@');
  if (at == std::string::npos || !valid_local_part(r.from.substr(0, at)) ||
      !valid_domain_name(r.from.substr(at + 1))) {
    reader.fail(table->get("from"), p + ".from",
                "not an address: '" + r.from + "' (the reports' sender, e.g. " + example + ")");
  }
  r.from = r.from.substr(0, at + 1) + base::ascii_lowercase(r.from.substr(at + 1));
  r.directory = table->get("directory") ? reader.path_at(*table, p, "directory", base_dir, true)
                                        : config.data_dir + "/" + folder;
  r.interval = std::chrono::seconds(reader.int_at(*table, p, "interval", 86400, 1, 86400 * 7));
  if (tls) {
    r.save_interval = std::chrono::seconds(reader.int_at(*table, p, "save_interval", 60, 1, 3600));
    r.post_retry_delay =
        std::chrono::seconds(reader.int_at(*table, p, "post_retry_delay", 60, 1, 3600));
    r.post_retry_lifetime =
        std::chrono::seconds(reader.int_at(*table, p, "post_retry_lifetime", 86400, 1, 86400 * 7));
  }
  return r;
}

// [addressing] (after [[domains]]: the administrator must be a mailbox address of ours).
void read_addressing(const toml::table& root, Reader& reader, const std::string& base_dir,
                     Config& config) {
  AddressingSettings& a = config.addressing;
  a.aliases_file = config.data_dir + "/aliases";
  const toml::table* table = reader.table_at(root, "", "addressing");
  if (!table) return;
  reader.only_keys(*table, "addressing",
                   {"aliases_file", "administrator", "role_accounts", "subaddress_separator",
                    "subaddress_folders", "max_alias_depth", "max_alias_targets"});
  if (table->get("aliases_file")) {
    a.aliases_file = reader.path_at(*table, "addressing", "aliases_file", base_dir, true);
  }
  a.administrator = reader.string_at(*table, "addressing", "administrator", "");
  if (!a.administrator.empty()) {
    const std::size_t at = a.administrator.rfind('@');
    const bool ours = at != std::string::npos && at > 0 &&
                      valid_local_part(std::string_view(a.administrator).substr(0, at)) &&
                      config.find_domain(std::string_view(a.administrator).substr(at + 1));
    if (!ours) {
      reader.fail(table->get("administrator"), "addressing.administrator",
                  "must be a mailbox address of one of the [[domains]]: '" + a.administrator + "'");
    }
  }
  if (const toml::array* roles = reader.array_at(*table, "addressing", "role_accounts")) {
    a.role_accounts.clear();
    for (const toml::node& node : *roles) {
      if (!node.is_string() || !valid_local_part(node.as_string()->get()) ||
          node.as_string()->get().find('+') != std::string::npos) {
        reader.fail(&node, "addressing.role_accounts", "must be local parts such as \"abuse\"");
      }
      a.role_accounts.push_back(base::ascii_lowercase(node.as_string()->get()));
    }
  }
  a.subaddress_separator =
      reader.string_at(*table, "addressing", "subaddress_separator", a.subaddress_separator);
  if (a.subaddress_separator.size() > 1 ||
      (a.subaddress_separator.size() == 1 &&
       std::string_view("+-_=").find(a.subaddress_separator[0]) == std::string_view::npos)) {
    reader.fail(table->get("subaddress_separator"), "addressing.subaddress_separator",
                "must be one of \"+\", \"-\", \"_\", \"=\" or \"\" (off)");
  }
  a.subaddress_folders = reader.bool_at(*table, "addressing", "subaddress_folders", false);
  a.max_alias_depth =
      static_cast<unsigned>(reader.int_at(*table, "addressing", "max_alias_depth", 10, 1, 100));
  a.max_alias_targets = static_cast<unsigned>(
      reader.int_at(*table, "addressing", "max_alias_targets", 100, 1, 10000));
}

void read_queue(const toml::table& root, Reader& reader, QueueSettings& queue) {
  const toml::table* table = reader.table_at(root, "", "queue");
  if (!table) return;
  reader.only_keys(*table, "queue",
                   {"retry_schedule", "max_lifetime", "delay_warning", "delivery_threads",
                    "local_delivery_threads", "success_dsns_per_minute", "deliver_at_acceptance",
                    "reply_after"});
  if (const toml::array* schedule = reader.array_at(*table, "queue", "retry_schedule")) {
    queue.retry_schedule.clear();
    for (const toml::node& step : *schedule) {
      if (!step.is_integer() || step.as_integer()->get() < 1 || step.as_integer()->get() > 86400) {
        reader.fail(&step, "queue.retry_schedule",
                    "each delay is a number of seconds between 1 and 86400");
      }
      queue.retry_schedule.emplace_back(step.as_integer()->get());
    }
    if (queue.retry_schedule.empty()) {
      reader.fail(table->get("retry_schedule"), "queue.retry_schedule",
                  "must list at least one delay in seconds");
    }
  }
  queue.max_lifetime = std::chrono::seconds(
      reader.int_at(*table, "queue", "max_lifetime", queue.max_lifetime.count(), 1, 60 * 86400));
  queue.delay_warning = std::chrono::seconds(
      reader.int_at(*table, "queue", "delay_warning", queue.delay_warning.count(), 0, 60 * 86400));
  queue.delivery_threads = static_cast<unsigned>(
      reader.int_at(*table, "queue", "delivery_threads", queue.delivery_threads, 1, 256));
  queue.local_delivery_threads = static_cast<unsigned>(reader.int_at(
      *table, "queue", "local_delivery_threads", queue.local_delivery_threads, 1, 64));
  queue.success_dsns_per_minute = static_cast<unsigned>(reader.int_at(
      *table, "queue", "success_dsns_per_minute", queue.success_dsns_per_minute, 0, 100000));
  queue.deliver_at_acceptance =
      reader.bool_at(*table, "queue", "deliver_at_acceptance", queue.deliver_at_acceptance);
  const std::string reply_after =
      reader.string_at(*table, "queue", "reply_after", queue.reply_after_log ? "log" : "mailbox");
  if (reply_after != "mailbox" && reply_after != "log") {
    reader.fail(table->get("reply_after"), "queue.reply_after", "must be \"mailbox\" or \"log\"");
  } else if (reply_after == "log" && !queue.deliver_at_acceptance) {
    reader.fail(table->get("reply_after"), "queue.reply_after",
                "\"log\" delivers Maildir mail right after the reply: it needs "
                "deliver_at_acceptance = true (with false, all mail is queued first)");
  }
  queue.reply_after_log = reply_after == "log";
}

// A DNS server list: "IP[:PORT],..." or an array of "IP[:PORT]" (port 53 unless given).
std::vector<base::HostPort> dns_servers_at(const toml::node& node, const Reader& reader,
                                           const std::string& key) {
  base::HostPortForm form;
  form.default_port = 53;
  form.numeric_host = true;
  form.bare_ipv6 = true;
  const std::string what =
      "must be IP addresses, each with an optional port, in a string separated by commas or "
      "in a list (\"127.0.0.1:5353,[::1]:53\")";
  std::vector<base::HostPort> servers;
  auto add = [&](const toml::node& item, std::string_view text) {
    auto list = base::parse_host_port_list(text, form);
    if (!list) reader.fail(&item, key, what + ": " + list.error());
    servers.insert(servers.end(), list.value().begin(), list.value().end());
  };
  if (const auto* text = node.as_string()) {
    add(node, text->get());
  } else if (const auto* array = node.as_array()) {
    for (const toml::node& item : *array) {
      if (!item.is_string()) reader.fail(&item, key, what);
      add(item, item.as_string()->get());
    }
  } else {
    reader.fail(&node, key, what);
  }
  if (servers.empty()) reader.fail(&node, key, what + ": the list is empty");
  return servers;
}

// [dns] (after [delivery], whose deprecated dns_servers it may replace)
void read_dns(const toml::table& root, Reader& reader, const std::string& base_dir,
              Config& config) {
  DnsSettings& dns = config.dns;
  const toml::table* table = reader.table_at(root, "", "dns");
  if (!table) return;
  const std::string p = "dns";
  reader.only_keys(*table, p, {"mode", "servers", "validation", "trust_anchor", "timeout"});
  if (const toml::node* servers = table->get("servers")) {
    if (!dns.servers.empty()) {
      reader.fail(servers, "dns.servers",
                  "set here and by the deprecated delivery.dns_servers: keep this one only");
    }
    dns.servers = dns_servers_at(*servers, reader, "dns.servers");
    dns.mode = DnsSettings::Mode::kForward;
    dns.validation = DnsSettings::Validation::kAuto;
  }
  if (const std::string mode = reader.string_at(*table, p, "mode", ""); !mode.empty()) {
    const toml::node* node = table->get("mode");
    if (mode == "system") {
      dns.mode = DnsSettings::Mode::kSystem;
    } else if (mode == "forward") {
      dns.mode = DnsSettings::Mode::kForward;
    } else if (mode == "recursive") {
      dns.mode = DnsSettings::Mode::kRecursive;
    } else {
      reader.fail(node, "dns.mode",
                  "must be \"system\" (the servers of /etc/resolv.conf), \"forward\" (dns.servers) "
                  "or \"recursive\", not '" +
                      mode + "'");
    }
    if (dns.mode == DnsSettings::Mode::kForward && dns.servers.empty()) {
      reader.fail(node, "dns.mode", "\"forward\" needs dns.servers");
    }
    if (dns.mode != DnsSettings::Mode::kForward && !dns.servers.empty()) {
      reader.fail(
          node, "dns.mode",
          "\"" + mode + "\" asks no configured server: remove dns.servers or use \"forward\"");
    }
  }
  if (const std::string validation = reader.string_at(*table, p, "validation", "");
      !validation.empty()) {
    if (validation == "auto") {
      dns.validation = DnsSettings::Validation::kAuto;
    } else if (validation == "yes") {
      dns.validation = DnsSettings::Validation::kYes;
    } else if (validation == "no") {
      dns.validation = DnsSettings::Validation::kNo;
    } else {
      reader.fail(table->get("validation"), "dns.validation",
                  "must be \"auto\" (validate DNSSEC when the path to the root allows it), "
                  "\"yes\" or \"no\", not '" +
                      validation + "'");
    }
  }
  if (table->get("trust_anchor")) {
    dns.trust_anchor = reader.path_at(*table, p, "trust_anchor", base_dir, true);
  }
  dns.timeout = std::chrono::seconds(reader.int_at(*table, p, "timeout", 5, 1, 60));
}

// [delivery] and [[delivery.tls_policy]]
void read_delivery(const toml::table& root, Reader& reader, const std::string& base_dir,
                   Config& config) {
  DeliverySettings& d = config.delivery;
  d.helo_name = config.hostname;
  const toml::table* table = reader.table_at(root, "", "delivery");
  if (!table) return;
  const std::string p = "delivery";
  // Bin-packed: clang-format would put one key a line from 20 keys on.
  // clang-format off
  reader.only_keys(
      *table, p,
      {"relay", "relay_tls", "relay_user", "relay_password_file", "ca_file", "lmtp", "dns_servers",
       "mx_port", "default_tls", "tls_policy", "max_per_destination", "connection_cache",
       "max_messages_per_connection", "connect_timeout", "command_timeout", "helo_name",
       "max_per_host", "attempt_timeout", "mta_sts_port", "mta_sts_refresh"});
  // clang-format on
  if (const std::string relay = reader.string_at(*table, p, "relay", ""); !relay.empty()) {
    auto url = base::parse_smtp_url(relay);
    if (!url) {
      reader.fail(table->get("relay"), "delivery.relay",
                  "must be \"smtps://HOST[:PORT]\" (implicit TLS) or \"smtp://HOST[:PORT]\" "
                  "(STARTTLS), not '" +
                      relay + "'");
    }
    d.relay = url.value();
    base::lower_in_place(d.relay->host);
  }
  const bool relay_implicit_tls = d.relay && d.relay->implicit_tls;
  d.relay_tls = level_at(*table, reader, p, "relay_tls", d.relay_tls);
  d.relay_user = reader.string_at(*table, p, "relay_user", "");
  if (table->get("relay_password_file")) {
    d.relay_password_file = reader.path_at(*table, p, "relay_password_file", base_dir, true);
  }
  if (!d.relay_user.empty() && d.relay_password_file.empty()) {
    reader.fail(table->get("relay_user"), "delivery.relay_user",
                "needs delivery.relay_password_file (the password never goes in this file)");
  }
  // The relay password goes only to a relay whose certificate was verified: "encrypt" (or
  // smtps:// without "verify") would hand it to whoever answers in the middle.
  if (!d.relay_user.empty() && d.relay_tls < tls::OutboundLevel::kVerify) {
    reader.fail(table->get("relay_tls"), "delivery.relay_tls",
                "must be \"verify\" when relay_user is set (the password is never sent "
                "without TLS, nor to a relay whose certificate was not verified)");
  }
  if (relay_implicit_tls && d.relay_tls < tls::OutboundLevel::kEncrypt) {
    d.relay_tls = tls::OutboundLevel::kEncrypt;  // smtps:// is always encrypted
  }
  if (table->get("ca_file")) d.ca_file = reader.path_at(*table, p, "ca_file", base_dir, true);
  if (const std::string lmtp = reader.string_at(*table, p, "lmtp", ""); !lmtp.empty()) {
    d.lmtp = parse_lmtp(lmtp);
    if (!d.lmtp) {
      reader.fail(table->get("lmtp"), "delivery.lmtp",
                  "must be \"unix:/absolute/path\" or \"HOST:PORT\" (\"127.0.0.1:24\", "
                  "\"[::1]:24\", \"localhost:24\", \"lmtp.example.net:24\"), not '" +
                      lmtp + "'");
    }
  }

  if (const toml::node* servers = table->get("dns_servers")) {
    config.dns.servers = dns_servers_at(*servers, reader, "delivery.dns_servers");
    config.dns.mode = DnsSettings::Mode::kForward;
    config.dns.validation = DnsSettings::Validation::kNo;
    config.deprecations.push_back(fmt::format(
        "{}:{}: delivery.dns_servers: deprecated: write [dns] servers = \"...\" (and validation "
        "= \"no\" to keep DNSSEC validation off, as dns_servers does)",
        reader.file(), servers->source().begin.line));
  }
  d.mx_port = static_cast<std::uint16_t>(reader.int_at(*table, p, "mx_port", d.mx_port, 1, 65535));
  d.mta_sts_port = static_cast<std::uint16_t>(
      reader.int_at(*table, p, "mta_sts_port", d.mta_sts_port, 1, 65535));
  d.mta_sts_refresh = std::chrono::seconds(
      reader.int_at(*table, p, "mta_sts_refresh", d.mta_sts_refresh.count(), 0, 86400));
  d.default_tls = level_at(*table, reader, p, "default_tls", d.default_tls);
  if (const toml::array* policies = reader.array_at(*table, p, "tls_policy")) {
    for (std::size_t i = 0; i < policies->size(); ++i) {
      const toml::node& node = (*policies)[i];
      std::string prefix = "delivery.tls_policy[" + std::to_string(i) + "]";
      if (!node.is_table()) reader.fail(&node, prefix, "must be a table (domain, level)");
      const toml::table& entry = *node.as_table();
      reader.only_keys(entry, prefix, {"domain", "level"});
      DestinationTls policy;
      policy.domain = base::ascii_lowercase(reader.string_at(entry, prefix, "domain", "", true));
      if (!valid_domain_name(policy.domain)) {
        reader.fail(entry.get("domain"), prefix + ".domain",
                    "not a valid domain name: '" + policy.domain + "'");
      }
      if (!entry.get("level")) reader.fail(&entry, prefix + ".level", "missing (required)");
      policy.level = level_at(entry, reader, prefix, "level", policy.level);
      d.tls_policy.push_back(policy);
    }
  }
  d.max_per_destination = static_cast<unsigned>(
      reader.int_at(*table, p, "max_per_destination", d.max_per_destination, 1, 1000));
  d.connection_cache = std::chrono::seconds(
      reader.int_at(*table, p, "connection_cache", d.connection_cache.count(), 0, 300));
  d.max_messages_per_connection = static_cast<unsigned>(reader.int_at(
      *table, p, "max_messages_per_connection", d.max_messages_per_connection, 1, 100000));
  d.connect_timeout = std::chrono::seconds(
      reader.int_at(*table, p, "connect_timeout", d.connect_timeout.count(), 1, 600));
  d.command_timeout = std::chrono::seconds(
      reader.int_at(*table, p, "command_timeout", d.command_timeout.count(), 1, 3600));
  d.max_per_host =
      static_cast<unsigned>(reader.int_at(*table, p, "max_per_host", d.max_per_host, 1, 1000));
  d.attempt_timeout = std::chrono::seconds(
      reader.int_at(*table, p, "attempt_timeout", d.attempt_timeout.count(), 1, 86400));
  if (table->get("helo_name")) {
    d.helo_name = base::ascii_lowercase(reader.string_at(*table, p, "helo_name", "", true));
    if (!valid_domain_name(d.helo_name)) {
      reader.fail(table->get("helo_name"), "delivery.helo_name",
                  "not a valid host name: '" + d.helo_name + "'");
    }
  }
}

// tls.certificates[N].names: host names or "*.example.com" wildcards (RFC 6125 §6.4.3: the
// wildcard is the whole leftmost label), lower-case, each once.
std::vector<std::string> read_server_names(const toml::table& entry, const std::string& prefix,
                                           const Reader& reader) {
  std::vector<std::string> names;
  const toml::array* list = reader.array_at(entry, prefix, "names");
  if (list == nullptr) return names;
  if (list->empty()) {
    reader.fail(entry.get("names"), prefix + ".names",
                "must name at least one server name (leave it out for the default set)");
  }
  for (const toml::node& node : *list) {
    if (!node.is_string()) reader.fail(&node, prefix + ".names", "must be strings");
    std::string name = base::ascii_lowercase(std::string(node.as_string()->get()));
    if (!name.empty() && name.back() == '.') name.pop_back();
    std::string_view domain = name;
    const bool wildcard = domain.rfind("*.", 0) == 0;
    if (wildcard) domain.remove_prefix(2);
    // A wildcard covers one label under a domain of at least two ("*.com" would be
    // every name in a top-level domain).
    if (!valid_domain_name(domain) || (wildcard && domain.find('.') == std::string_view::npos)) {
      reader.fail(&node, prefix + ".names",
                  "not a server name: '" + name +
                      "' (a host name such as mail.example.org, or *.example.org)");
    }
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      reader.fail(&node, prefix + ".names", "'" + name + "' is listed twice");
    }
    names.push_back(std::move(name));
  }
  return names;
}

// Pairs with the same names form one set; a name in two different sets would make the choice
// depend on the order of the file, so it is refused.
void check_certificate_sets(const toml::array& nodes,
                            const std::vector<tls::CertificatePair>& pairs, const Reader& reader) {
  std::map<std::string, std::size_t> owner;  // name → first entry that has it
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    std::vector<std::string> set_i = pairs[i].names;
    std::sort(set_i.begin(), set_i.end());
    for (const std::string& name : pairs[i].names) {
      auto [it, inserted] = owner.emplace(name, i);
      if (inserted) continue;
      std::vector<std::string> set_owner = pairs[it->second].names;
      std::sort(set_owner.begin(), set_owner.end());
      if (set_owner == set_i) continue;  // the same set (e.g. its RSA pair)
      const toml::node* node = nodes.get(i);
      const toml::node* where = node && node->is_table() ? node->as_table()->get("names") : node;
      reader.fail(where, fmt::format("tls.certificates[{}].names", i),
                  fmt::format("'{}' is already in tls.certificates[{}], whose names differ "
                              "(entries with the same names form one set; a name belongs to "
                              "one set only)",
                              name, it->second));
    }
  }
}

// A smarthost of [[domains]]: KEY (a smtps:// or smtp:// URL), KEY_tls and, for a relay,
// relay_user and relay_password_file (as [delivery] relay, README "Delivery").
std::optional<DomainHop> read_domain_hop(const toml::table& entry, const std::string& prefix,
                                         std::string_view key, bool with_credentials,
                                         const Reader& reader, const std::string& base_dir) {
  const std::string text = reader.string_at(entry, prefix, key, "");
  if (!entry.get(key)) return std::nullopt;
  auto url = base::parse_smtp_url(text);
  if (!url) {
    reader.fail(entry.get(key), Reader::join(prefix, key),
                "must be \"smtps://HOST[:PORT]\" (implicit TLS) or \"smtp://HOST[:PORT]\" "
                "(STARTTLS), not '" +
                    text + "'");
  }
  DomainHop hop;
  hop.url = url.value();
  base::lower_in_place(hop.url.host);
  const std::string tls_key = std::string(key) + "_tls";
  hop.tls = level_at(entry, reader, prefix, tls_key, hop.tls);
  if (with_credentials) {
    hop.user = reader.string_at(entry, prefix, "relay_user", "");
    if (entry.get("relay_password_file")) {
      hop.password_file =
          reader.path_at(entry, prefix, "relay_password_file", base_dir, /*required=*/true);
    }
    if (!hop.user.empty() && hop.password_file.empty()) {
      reader.fail(
          entry.get("relay_user"), prefix + ".relay_user",
          "needs " + prefix + ".relay_password_file (the password never goes in this file)");
    }
    if (!hop.user.empty() && hop.tls < tls::OutboundLevel::kVerify) {
      reader.fail(entry.get(tls_key), Reader::join(prefix, tls_key),
                  "must be \"verify\" when relay_user is set (the password is never sent "
                  "without TLS, nor to a relay whose certificate was not verified)");
    }
  }
  if (hop.url.implicit_tls && hop.tls < tls::OutboundLevel::kEncrypt) {
    hop.tls = tls::OutboundLevel::kEncrypt;  // smtps:// is always encrypted
  }
  return hop;
}

// A local part of a relay domain's recipient list ("alice", or "alice@<the domain>").
std::string recipient_local_part(std::string text, const std::string& domain) {
  const std::size_t at = text.rfind('@');
  if (at != std::string::npos && base::equals_ignoring_case(text.substr(at + 1), domain)) {
    text.resize(at);
  }
  return text;
}

// A private key file the server reads at start: owned by the server's account, not readable
// by others, bounded (a PEM key is a few KiB).
std::string read_private_pem(const toml::node* where, const std::string& key,
                             const std::string& path, const Reader& reader) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    reader.fail(where, key, "cannot read " + path + ": " + std::strerror(errno));
  }
  if ((info.st_mode & 077) != 0) {
    reader.fail(where, key,
                fmt::format("{} is readable or writable by others (mode {:04o}): whoever reads it "
                            "can sign mail as your domain; chmod 600 it",
                            path, info.st_mode & 07777));
  }
  if (info.st_size > 65536) reader.fail(where, key, path + " is larger than 64 KiB: not a key");
  std::ifstream in(path);
  if (!in) reader.fail(where, key, "cannot read " + path + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find("-----BEGIN PRIVATE KEY-----") == std::string::npos) {
    reader.fail(where, key,
                path +
                    " holds no PEM private key (\"-----BEGIN PRIVATE KEY-----\"; `smtpsctl "
                    "dkim keygen` writes one)");
  }
  return text;
}

// [[domains]] dkim = [{ selector = "…", key = "path" }, …]: the keys that sign the domain's mail.
void read_dkim_keys(const toml::table& entry, const std::string& prefix, const Reader& reader,
                    const std::string& base_dir, Domain& domain) {
  const toml::array* list = reader.array_at(entry, prefix, "dkim");
  if (!list) return;
  std::size_t index = 0;
  for (const toml::node& node : *list) {
    const std::string key = fmt::format("{}.dkim[{}]", prefix, index++);
    if (!node.is_table()) {
      reader.fail(&node, key, "must be a table: { selector = \"s1\", key = \"dkim/s1.key\" }");
    }
    const toml::table& item = *node.as_table();
    reader.only_keys(item, key, {"selector", "key"});
    DkimKeyFile file;
    file.line = static_cast<long>(node.source().begin.line);
    file.selector = base::ascii_lowercase(reader.string_at(item, key, "selector", "", true));
    // A selector is one or more labels (RFC 6376 §3.1).
    if (!valid_domain_name(file.selector)) {
      reader.fail(item.get("selector"), key + ".selector",
                  "not a valid selector: '" + file.selector + "' (letters, digits, '-', dots)");
    }
    for (const DkimKeyFile& other : domain.dkim) {
      if (other.selector == file.selector) {
        reader.fail(item.get("selector"), key + ".selector",
                    "selector '" + file.selector + "' listed twice");
      }
    }
    file.key_file = reader.path_at(item, key, "key", base_dir, true);
    if (reader.opens_private_files()) {
      file.pem = read_private_pem(item.get("key"), key + ".key", file.key_file, reader);
    }
    domain.dkim.push_back(std::move(file));
  }
}

// [[domains]] settings besides name and users (README "Domains").
void read_domain_settings(const toml::table& entry, const std::string& prefix, const Reader& reader,
                          const std::string& base_dir, Domain& domain) {
  const std::string kind = reader.string_at(entry, prefix, "kind", "local");
  if (kind == "relay") {
    domain.kind = DomainKind::kRelay;
  } else if (kind != "local") {
    reader.fail(
        entry.get("kind"), prefix + ".kind",
        "must be \"local\" (mailboxes here) or \"relay\" (passed to next_hop), not '" + kind + "'");
  }
  // At least what RFC 5321 §4.5.3.1.7 asks of any server (64 KiB), at most 1 TiB.
  domain.max_message_size = static_cast<std::uint64_t>(
      reader.int_at(entry, prefix, "max_message_size", 0, 65536, std::int64_t{1} << 40));
  const bool relay = domain.kind == DomainKind::kRelay;
  auto only_for = [&](std::string_view key, bool allowed, std::string_view kind_needed) {
    if (entry.get(key) && !allowed) {
      reader.fail(
          entry.get(key), Reader::join(prefix, key),
          "only for kind = \"" + std::string(kind_needed) + "\" (this domain is \"" + kind + "\")");
    }
  };
  for (std::string_view key : {"users", "delivery", "relay", "relay_tls", "relay_user",
                               "relay_password_file", "dkim", "dmarc"}) {
    only_for(key, !relay, "local");
  }
  for (std::string_view key : {"next_hop", "next_hop_tls", "recipients", "recipients_file"}) {
    only_for(key, relay, "relay");
  }
  if (const std::string delivery = reader.string_at(entry, prefix, "delivery", "");
      entry.get("delivery")) {
    if (delivery == "maildir") {
      domain.maildir = true;
    } else {
      domain.lmtp = parse_lmtp(delivery);
      if (!domain.lmtp) {
        reader.fail(entry.get("delivery"), prefix + ".delivery",
                    "must be \"maildir\" or an LMTP server, \"unix:/absolute/path\" or "
                    "\"HOST:PORT\" (\"127.0.0.1:24\"), not '" +
                        delivery + "'");
      }
    }
  }
  if (entry.get("relay_tls") && !entry.get("relay")) {
    reader.fail(entry.get("relay_tls"), prefix + ".relay_tls", "needs " + prefix + ".relay");
  }
  if ((entry.get("relay_user") || entry.get("relay_password_file")) && !entry.get("relay")) {
    const char* key = entry.get("relay_user") ? "relay_user" : "relay_password_file";
    reader.fail(entry.get(key), Reader::join(prefix, key), "needs " + prefix + ".relay");
  }
  domain.relay = read_domain_hop(entry, prefix, "relay", true, reader, base_dir);
  if (entry.get("dmarc")) {
    domain.dmarc = dmarc_enforcement_at(entry, prefix, reader, DmarcEnforcement::kEnforce);
  }
  read_dkim_keys(entry, prefix, reader, base_dir, domain);
  if (!relay) return;

  domain.next_hop = read_domain_hop(entry, prefix, "next_hop", false, reader, base_dir);
  if (!domain.next_hop) {
    reader.fail(&entry, prefix + ".next_hop",
                "missing (required for kind = \"relay\": the server this domain's mail goes to, "
                "\"smtp://HOST[:PORT]\")");
  }
  if (const toml::array* list = reader.array_at(entry, prefix, "recipients")) {
    for (const toml::node& node : *list) {
      if (!node.is_string()) reader.fail(&node, prefix + ".recipients", "must be strings");
      std::string local = recipient_local_part(std::string(node.as_string()->get()), domain.name);
      if (!valid_local_part(local)) {
        reader.fail(&node, prefix + ".recipients",
                    "not a recipient of " + domain.name + ": '" + local + "'");
      }
      domain.recipients.push_back(std::move(local));
    }
  }
  if (entry.get("recipients_file")) {
    domain.recipients_file = reader.path_at(entry, prefix, "recipients_file", base_dir, true);
    if (!reader.opens_private_files()) return;
    std::error_code size_error;
    const std::uintmax_t size = std::filesystem::file_size(domain.recipients_file, size_error);
    if (!size_error && size > kMaxListFileSize) {
      reader.fail(entry.get("recipients_file"), prefix + ".recipients_file",
                  domain.recipients_file + " is larger than 16 MiB");
    }
    std::ifstream in(domain.recipients_file);
    if (!in) {
      reader.fail(entry.get("recipients_file"), prefix + ".recipients_file",
                  "cannot read " + domain.recipients_file + ": " + std::strerror(errno));
    }
    std::string line;
    long number = 0;
    while (std::getline(in, line)) {
      ++number;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      const std::size_t first = line.find_first_not_of(" \t");
      if (first == std::string::npos || line[first] == '#') continue;
      std::string local = recipient_local_part(line.substr(first), domain.name);
      if (!valid_local_part(local)) {
        reader.fail(entry.get("recipients_file"), prefix + ".recipients_file",
                    fmt::format("{} line {}: not a recipient of {}: '{}'", domain.recipients_file,
                                number, domain.name, local));
      }
      domain.recipients.push_back(std::move(local));
    }
  }
  if (domain.recipients.empty()) {
    reader.fail(&entry, prefix + ".recipients",
                "a relay domain needs its list of recipients (recipients = [...] or "
                "recipients_file): without it every address would be accepted and unknown ones "
                "bounced later (backscatter)");
  }
}

// [srs] (README "SRS"): the secrets come from their own file, which only the account may read.
void read_srs(const toml::table& root, const Reader& reader, const std::string& base_dir,
              Config& config) {
  const toml::table* table = reader.table_at(root, "", "srs");
  if (!table) return;
  reader.only_keys(*table, "srs", {"domain", "secrets_file", "max_age_days"});
  SrsSettings srs;
  srs.domain = base::ascii_lowercase(reader.string_at(*table, "srs", "domain", "", true));
  if (!valid_domain_name(srs.domain) || srs.domain.find('.') == std::string::npos) {
    reader.fail(table->get("domain"), "srs.domain",
                "not a valid domain: '" + srs.domain + "' (a domain whose MX is this server)");
  }
  if (config.find_relay_domain(srs.domain)) {
    reader.fail(table->get("domain"), "srs.domain",
                "'" + srs.domain + "' is a relay domain: SRS addresses must come back here");
  }
  // libsrs2's stamp counts 1024 days; postsrsd's default window is 21.
  srs.max_age_days =
      static_cast<unsigned>(reader.int_at(*table, "srs", "max_age_days", 21, 1, 1000));
  srs.secrets_file = reader.path_at(*table, "srs", "secrets_file", base_dir, true);
  const toml::node* where = table->get("secrets_file");
  if (!reader.opens_private_files()) {
    config.srs = std::move(srs);
    return;
  }
  struct stat info {};
  if (::stat(srs.secrets_file.c_str(), &info) != 0) {
    reader.fail(where, "srs.secrets_file",
                "cannot read " + srs.secrets_file + ": " + std::strerror(errno));
  }
  if ((info.st_mode & 077) != 0) {
    reader.fail(where, "srs.secrets_file",
                fmt::format("{} is readable or writable by others (mode {:04o}): whoever reads "
                            "it can forge bounces through this server; chmod 600 it",
                            srs.secrets_file, info.st_mode & 07777));
  }
  if (info.st_size > 65536) {
    reader.fail(where, "srs.secrets_file",
                srs.secrets_file + " is larger than 64 KiB (one secret a line)");
  }
  std::ifstream in(srs.secrets_file);
  if (!in) {
    reader.fail(where, "srs.secrets_file",
                "cannot read " + srs.secrets_file + ": " + std::strerror(errno));
  }
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    if (!line.empty()) srs.secrets.push_back(line);
  }
  if (srs.secrets.empty()) {
    reader.fail(where, "srs.secrets_file",
                srs.secrets_file + " holds no secret (one a line; the first signs, all verify)");
  }
  for (const std::string& secret : srs.secrets) {
    if (secret.size() < 16) {
      reader.fail(where, "srs.secrets_file",
                  srs.secrets_file +
                      ": a secret is shorter than 16 characters (use e.g. "
                      "`head -c 24 /dev/urandom | base64`)");
    }
  }
  config.srs = std::move(srs);
}

// Bounds on [screening]: each list costs an A lookup per client and each answer a
// comparison per listed reply; far more than any real policy uses.
constexpr std::size_t kMaxDnsLists = 16;
constexpr std::size_t kMaxDnsListAnswers = 32;

// [screening] (config.h ScreeningSettings; README "Screening").
void read_screening(const toml::table& root, Reader& reader, Config& config) {
  ScreeningSettings& sc = config.screening;
  const toml::table* table = reader.table_at(root, "", "screening");
  if (!table) return;
  const std::string p = "screening";
  reader.only_keys(
      *table, p,
      {"dns_lists", "dns_list_threshold", "refuse_at", "allow_networks", "pregreet_wait",
       "pregreet_pass_ttl", "pregreet_pass_entries", "improper_pipelining"});
  if (const toml::array* lists = reader.array_at(*table, p, "dns_lists")) {
    const std::string lp = "screening.dns_lists";
    for (const toml::node& node : *lists) {
      if (sc.dns_lists.size() == kMaxDnsLists)
        reader.fail(&node, lp, fmt::format("at most {} lists", kMaxDnsLists));
      if (!node.is_table())
        reader.fail(&node, lp, "each entry is a table ([[screening.dns_lists]])");
      const toml::table& entry = *node.as_table();
      reader.only_keys(entry, lp, {"zone", "weight", "answers"});
      DnsListSettings list;
      list.zone = base::ascii_lowercase(reader.string_at(entry, lp, "zone", "", true));
      while (!list.zone.empty() && list.zone.back() == '.')
        list.zone.pop_back();
      if (!valid_domain_name(list.zone)) {
        reader.fail(entry.get("zone"), lp + ".zone",
                    "not a DNS zone: '" + list.zone + "' (e.g. \"zen.spamhaus.org\")");
      }
      for (const DnsListSettings& other : sc.dns_lists) {
        if (other.zone == list.zone)
          reader.fail(entry.get("zone"), lp + ".zone", "'" + list.zone + "' is listed twice");
      }
      list.weight = static_cast<int>(reader.int_at(entry, lp, "weight", 1, -100, 100));
      if (list.weight == 0) {
        reader.fail(entry.get("weight"), lp + ".weight",
                    "must not be 0 (positive: a block list, negative: an allowlist)");
      }
      if (const toml::array* answers = reader.array_at(entry, lp, "answers")) {
        const std::string ap = "screening.dns_lists.answers";
        for (const toml::node& answer_node : *answers) {
          if (list.answers.size() == kMaxDnsListAnswers)
            reader.fail(&answer_node, ap,
                        fmt::format("at most {} answers in a list", kMaxDnsListAnswers));
          DnsListAnswerSettings answer;
          std::string text;
          const toml::node* weight_node = nullptr;
          if (answer_node.is_string()) {
            text = std::string(answer_node.as_string()->get());
          } else if (answer_node.is_table()) {
            const toml::table& answer_table = *answer_node.as_table();
            reader.only_keys(answer_table, ap, {"answer", "weight"});
            text = reader.string_at(answer_table, ap, "answer", "", true);
            weight_node = answer_table.get("weight");
            if (weight_node)
              answer.weight =
                  static_cast<int>(reader.int_at(answer_table, ap, "weight", 0, -100, 100));
          } else {
            reader.fail(&answer_node, ap,
                        "each entry is an answer (\"127.0.0.2\", \"127.0.0.0/29\") or { answer = "
                        "\"127.0.0.10\", weight = 3 }");
          }
          auto network = base::parse_network(text);
          auto loopback = base::parse_network("127.0.0.0/8");
          if (!network || !loopback.value().contains(network->address) ||
              network->prefix_length < loopback.value().prefix_length) {
            reader.fail(&answer_node, ap,
                        "'" + text +
                            "' is not an answer of a DNS list: an address or network in "
                            "127.0.0.0/8 (RFC 5782 §2.3)");
          }
          answer.network = network.value();
          list.answers.push_back(answer);
        }
      }
      sc.dns_lists.push_back(std::move(list));
    }
  }
  sc.dns_list_threshold =
      static_cast<int>(reader.int_at(*table, p, "dns_list_threshold", 1, 1, 1000));
  const std::string where = reader.string_at(*table, p, "refuse_at", "rcpt");
  if (where != "rcpt" && where != "connect") {
    reader.fail(table->get("refuse_at"), p + ".refuse_at",
                "must be \"rcpt\" (550 5.7.1 to each RCPT but postmaster) or \"connect\" (554 "
                "instead of the greeting), not '" +
                    where + "'");
  }
  sc.refuse_at = where == "connect" ? DnsListRefuseAt::kConnect : DnsListRefuseAt::kRcpt;
  if (const toml::array* networks = reader.array_at(*table, p, "allow_networks")) {
    sc.allow_networks = networks_at(*networks, p + ".allow_networks",
                                    "\"192.0.2.0/24\", \"2001:db8::/32\"", reader);
  }
  sc.pregreet_wait = reader.duration_at(*table, p, "pregreet_wait", sc.pregreet_wait,
                                        std::chrono::milliseconds(0), std::chrono::seconds(30));
  sc.pregreet_pass_ttl = reader.duration_at(*table, p, "pregreet_pass_ttl", sc.pregreet_pass_ttl,
                                            std::chrono::seconds(0), std::chrono::hours(24 * 30));
  sc.pregreet_pass_entries = static_cast<std::size_t>(
      reader.int_at(*table, p, "pregreet_pass_entries",
                    static_cast<std::int64_t>(sc.pregreet_pass_entries), 1, 10'000'000));
  const std::string pipelining = reader.string_at(*table, p, "improper_pipelining", "log");
  if (pipelining != "log" && pipelining != "refuse") {
    reader.fail(table->get("improper_pipelining"), p + ".improper_pipelining",
                "must be \"log\" or \"refuse\", not '" + pipelining + "'");
  }
  sc.refuse_improper_pipelining = pipelining == "refuse";
}

// [acme] eab_kid and eab_hmac_key_file (RFC 8555 §7.3.4): both or neither; the key's file
// only the account may read, its text base64url (as CAs hand it out), never in an error.
void read_acme_eab(const toml::table& table, const Reader& reader, const std::string& base_dir,
                   AcmeSettings& a) {
  const std::string p = "acme";
  a.eab_kid = reader.string_at(table, p, "eab_kid", "");
  if (table.get("eab_hmac_key_file"))
    a.eab_hmac_key_file = reader.path_at(table, p, "eab_hmac_key_file", base_dir, true);
  if (a.eab_kid.empty() != a.eab_hmac_key_file.empty()) {
    const bool kid_missing = a.eab_kid.empty();
    reader.fail(kid_missing ? table.get("eab_hmac_key_file") : table.get("eab_kid"),
                p + (kid_missing ? ".eab_hmac_key_file" : ".eab_kid"),
                kid_missing ? "needs acme.eab_kid (the key identifier the CA gave with the key)"
                            : "needs acme.eab_hmac_key_file (a file, mode 0600, holding the MAC "
                              "key the CA gave with the key identifier, base64url)");
  }
  const bool printable = std::all_of(a.eab_kid.begin(), a.eab_kid.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '"' && c != '\\';
  });
  if (!printable || a.eab_kid.size() > 256) {
    reader.fail(table.get("eab_kid"), p + ".eab_kid",
                "not a key identifier (at most 256 printable ASCII characters, no space, quote "
                "or backslash)");
  }
  if (a.eab_hmac_key_file.empty() || !reader.opens_private_files()) return;
  const toml::node* where = table.get("eab_hmac_key_file");
  const std::string key = p + ".eab_hmac_key_file";
  const std::string& path = a.eab_hmac_key_file;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    reader.fail(where, key, "cannot read " + path + ": " + std::strerror(errno));
  if ((info.st_mode & 077) != 0) {
    reader.fail(where, key,
                fmt::format("{} is readable or writable by others (mode {:04o}): whoever reads it "
                            "can open accounts at the CA in your name; chmod 600 it",
                            path, info.st_mode & 07777));
  }
  if (info.st_size > 4096) reader.fail(where, key, path + " is larger than 4 KiB: not a MAC key");
  std::ifstream in(path);
  if (!in) reader.fail(where, key, "cannot read " + path + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  std::string decoded;
  if (!base::decode_base64url(text, decoded) || decoded.size() < 16) {
    reader.fail(where, key,
                path +
                    " does not hold a MAC key: one line of base64url (RFC 4648 §5, no "
                    "padding), at least 16 bytes once decoded, as the CA gives it");
  }
  a.eab_hmac_key = std::move(decoded);
}

// [acme] dns_hook (dns-01): a command, as a path or an argv array (no shell), with an absolute
// path; required with challenge = "dns-01" and only then.
void read_acme_dns_hook(const toml::table& table, const Reader& reader, const std::string& base_dir,
                        AcmeSettings& a) {
  const std::string p = "acme";
  const toml::node* node = table.get("dns_hook");
  for (const char* key : {"dns_hook", "dns_hook_timeout", "dns_propagation_timeout"}) {
    if (table.get(key) && a.challenge != "dns-01") {
      reader.fail(table.get(key), p + "." + key,
                  "only for challenge = \"dns-01\" (this is \"" + a.challenge + "\")");
    }
  }
  if (a.challenge != "dns-01") return;
  if (node == nullptr) {
    reader.fail(table.get("challenge"), p + ".dns_hook",
                "challenge = \"dns-01\" needs dns_hook, the command that adds and removes the "
                "TXT record (e.g. contrib/acme-dns-nsupdate)");
  }
  if (const auto* text = node->as_string()) {
    a.dns_hook = {text->get()};
  } else if (const auto* list = node->as_array()) {
    for (const toml::node& item : *list) {
      if (!item.is_string())
        reader.fail(node, p + ".dns_hook", "must be a path or an array of strings");
      a.dns_hook.push_back(item.as_string()->get());
    }
  } else {
    reader.fail(node, p + ".dns_hook", "must be a path or an array of strings");
  }
  if (a.dns_hook.empty() || a.dns_hook.front().empty())
    reader.fail(node, p + ".dns_hook", "names no command");
  std::string& command = a.dns_hook.front();
  if (command.front() != '/') command = base_dir + "/" + command;
  if (reader.opens_private_files() && ::access(command.c_str(), X_OK) != 0) {
    reader.fail(node, p + ".dns_hook",
                "cannot run " + command + ": " + std::strerror(errno) +
                    " (an executable, run without a shell)");
  }
  a.dns_hook_timeout = reader.duration_at(table, p, "dns_hook_timeout", a.dns_hook_timeout,
                                          std::chrono::milliseconds(100), std::chrono::hours(1));
  a.dns_propagation_timeout =
      reader.duration_at(table, p, "dns_propagation_timeout", a.dns_propagation_timeout,
                         std::chrono::milliseconds(100), std::chrono::hours(24));
}

// [acme] (after [server] and [tls]): adds the ACME pairs to the certificates.
void read_acme(const toml::table& root, Reader& reader, const std::string& base_dir,
               Config& config) {
  const toml::table* table = reader.table_at(root, "", "acme");
  if (table == nullptr) return;
  const std::string p = "acme";
  reader.only_keys(*table, p,
                   {"directory", "contact", "names", "http_address", "http_port", "ca_file",
                    "renew_before", "retry_wait", "retry_max_wait", "eab_kid", "eab_hmac_key_file",
                    "challenge", "tls_alpn_address", "tls_alpn_port", "dns_hook",
                    "dns_hook_timeout", "dns_propagation_timeout", "http_webroot"});
  AcmeSettings a;
  a.line = static_cast<long>(table->source().begin.line);
  a.directory = reader.string_at(*table, p, "directory", "", true);
  {
    // https://host[:port]/path: the CA is always reached over HTTPS (RFC 8555 §6.1).
    const std::string_view url = a.directory;
    std::string_view authority = url.starts_with("https://") ? url.substr(8) : std::string_view();
    authority = authority.substr(0, authority.find_first_of("/?#"));
    if (authority.empty() || authority.find('@') != std::string_view::npos) {
      reader.fail(table->get("directory"), p + ".directory",
                  "must be an https:// URL of the CA's directory, not '" + a.directory + "'");
    }
  }
  a.contact = reader.string_at(*table, p, "contact", "");
  if (!a.contact.empty()) {
    const std::size_t at = a.contact.rfind('@');
    if (at == std::string::npos || at == 0 ||
        !valid_domain_name(std::string_view(a.contact).substr(at + 1)) ||
        a.contact.find_first_of(" \t\r\n<>\"") != std::string::npos) {
      reader.fail(table->get("contact"), p + ".contact",
                  "not an e-mail address: '" + a.contact + "'");
    }
  }
  if (table->get("names")) {
    a.names = read_server_names(*table, p, reader);
    for (const std::string& name : a.names) {
      // RFC 8555 §7.1.3: a wildcard is validated by dns-01 only.
      if (name.starts_with("*.") &&
          reader.string_at(*table, p, "challenge", "http-01") != "dns-01") {
        reader.fail(table->get("names"), p + ".names",
                    "'" + name + "': a wildcard needs challenge = \"dns-01\"");
      }
    }
  } else {
    a.names = {config.hostname};
  }
  a.http_address = reader.string_at(*table, p, "http_address", "");
  if (!a.http_address.empty() && !base::parse_ip(a.http_address)) {
    reader.fail(table->get("http_address"), p + ".http_address",
                "must be an IP address, not '" + a.http_address + "'");
  }
  a.http_port = static_cast<std::uint16_t>(reader.int_at(*table, p, "http_port", 80, 0, 65535));
  a.challenge = reader.string_at(*table, p, "challenge", a.challenge);
  if (a.challenge != "http-01" && a.challenge != "tls-alpn-01" && a.challenge != "dns-01") {
    reader.fail(table->get("challenge"), p + ".challenge",
                "must be \"http-01\" (port 80), \"tls-alpn-01\" (port 443) or \"dns-01\" "
                "(dns_hook), not '" +
                    a.challenge + "'");
  }
  read_acme_dns_hook(*table, reader, base_dir, a);
  a.tls_alpn_address = reader.string_at(*table, p, "tls_alpn_address", "");
  if (!a.tls_alpn_address.empty() && !base::parse_ip(a.tls_alpn_address)) {
    reader.fail(table->get("tls_alpn_address"), p + ".tls_alpn_address",
                "must be an IP address, not '" + a.tls_alpn_address + "'");
  }
  a.tls_alpn_port =
      static_cast<std::uint16_t>(reader.int_at(*table, p, "tls_alpn_port", 443, 0, 65535));
  for (const char* key : {"tls_alpn_address", "tls_alpn_port"}) {
    if (table->get(key) && a.challenge != "tls-alpn-01") {
      reader.fail(table->get(key), p + "." + key,
                  "only for challenge = \"tls-alpn-01\" (this is \"" + a.challenge + "\")");
    }
  }
  if (table->get("http_webroot")) {
    a.http_webroot = reader.path_at(*table, p, "http_webroot", base_dir, true);
    std::error_code error;
    if (a.http_webroot.empty() || a.http_webroot.front() != '/' ||
        !std::filesystem::is_directory(a.http_webroot, error)) {
      reader.fail(table->get("http_webroot"), p + ".http_webroot",
                  "must be the existing directory your web server serves on port 80, not '" +
                      a.http_webroot + "'");
    }
    for (const char* key : {"http_address", "http_port"}) {
      if (table->get(key)) {
        reader.fail(table->get(key), p + "." + key,
                    "not with http_webroot: the web server answers on port 80, not smtpsd");
      }
    }
  }
  for (const char* key : {"http_address", "http_port", "http_webroot"}) {
    if (table->get(key) && a.challenge != "http-01") {
      reader.fail(table->get(key), p + "." + key,
                  "only for challenge = \"http-01\" (this is \"" + a.challenge + "\")");
    }
  }
  if (table->get("ca_file")) a.ca_file = reader.path_at(*table, p, "ca_file", base_dir, true);
  if (table->get("renew_before")) {
    a.renew_before = reader.duration_at(*table, p, "renew_before", std::chrono::hours(24 * 30),
                                        std::chrono::milliseconds(1), std::chrono::hours(24 * 365));
    // Longer than half of a 90-day certificate: the renewal falls back to half the lifetime
    // (acme/renewal.h), so the setting says more than it does.
    if (*a.renew_before > std::chrono::hours(24 * 45)) {
      config.warnings.push_back(fmt::format(
          "{}:{}: acme.renew_before: longer than half of a 90-day certificate's lifetime; a "
          "certificate is never renewed before half of its lifetime (shorter-lived ones "
          "likewise), so this setting has no effect beyond that",
          reader.file(), table->get("renew_before")->source().begin.line));
    }
  }
  a.retry_wait = reader.duration_at(*table, p, "retry_wait", a.retry_wait,
                                    std::chrono::milliseconds(10), std::chrono::hours(24));
  a.retry_max_wait = reader.duration_at(*table, p, "retry_max_wait", a.retry_max_wait,
                                        std::chrono::milliseconds(10), std::chrono::hours(24 * 7));
  if (a.retry_max_wait < a.retry_wait) {
    reader.fail(table->get("retry_max_wait"), p + ".retry_max_wait",
                "must not be shorter than acme.retry_wait");
  }
  read_acme_eab(*table, reader, base_dir, a);
  // A name ACME serves is not also in a [[tls.certificates]] set: one set per name.
  for (std::size_t i = 0; i < config.certificates.size(); ++i) {
    for (const std::string& name : a.names) {
      const auto& names = config.certificates[i].names;
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        reader.fail(table->get("names") ? table->get("names") : table, p + ".names",
                    fmt::format("'{}' is also in tls.certificates[{}] (line {}): ACME serves "
                                "its names itself, remove one",
                                name, i, config.certificate_lines[i]));
      }
    }
  }
  a.directory_on_disk = config.data_dir + "/acme";
  for (const char* type : {"ecdsa", "rsa"}) {
    config.certificates.push_back(tls::CertificatePair{a.directory_on_disk + "/" + type + ".crt",
                                                       a.directory_on_disk + "/" + type + ".key",
                                                       a.names});
    config.certificate_lines.push_back(a.line);
  }
  config.acme = std::move(a);
}

Config read(const toml::table& root, Reader& reader, const std::string& base_dir) {
  Config config;
  config.source_file = reader.file();
  reader.only_keys(
      root, "", {"server",         "tls",           "domains",     "listeners",        "limits",
                 "timeouts",       "auth",          "queue",       "delivery",         "dns",
                 "metrics",        "log",           "srs",         "local_submission", "addressing",
                 "authenticity",   "dmarc_reports", "tls_reports", "screening",        "milters",
                 "sending_limits", "acme"});

  // [server]
  const toml::table* server = reader.table_at(root, "", "server");
  if (!server) reader.fail(&root, "server", "missing table [server]");
  reader.only_keys(*server, "server",
                   {"hostname", "data_dir", "io_threads", "log_level", "control_socket",
                    "mailq_socket", "user", "group", "run_as_root"});
  config.hostname =
      base::ascii_lowercase(reader.string_at(*server, "server", "hostname", "", true));
  if (!valid_domain_name(config.hostname)) {
    reader.fail(server->get("hostname"), "server.hostname",
                "not a valid host name: '" + config.hostname + "'");
  }
  config.data_dir = reader.path_at(*server, "server", "data_dir", base_dir, true);
  config.control_socket = server->get("control_socket")
                              ? reader.path_at(*server, "server", "control_socket", base_dir, true)
                              : config.data_dir + "/control.sock";
  if (server->get("mailq_socket")) {
    config.mailq_socket = reader.path_at(*server, "server", "mailq_socket", base_dir, true);
  }
  config.io_threads =
      static_cast<unsigned>(reader.int_at(*server, "server", "io_threads", 0, 0, 256));
  // Privileges (README "Running in production"): started as root, the server binds its
  // ports, reads its keys and then becomes `user`; staying root takes a setting that says so.
  config.user = reader.string_at(*server, "server", "user", "");
  config.group = reader.string_at(*server, "server", "group", "");
  config.run_as_root = reader.bool_at(*server, "server", "run_as_root", false);
  if (config.user == "root" || config.user == "0") {
    reader.fail(server->get("user"), "server.user",
                "must be an unprivileged account; to stay root say run_as_root = true instead");
  }
  if (config.run_as_root && !config.user.empty()) {
    reader.fail(server->get("run_as_root"), "server.run_as_root",
                "contradicts server.user = \"" + config.user + "\": set one of them");
  }
  if (!config.group.empty() && config.user.empty()) {
    reader.fail(server->get("group"), "server.group", "needs server.user");
  }
  auto log_level = obs::parse_level(reader.string_at(*server, "server", "log_level", "info"));
  if (log_level) {
    config.log_level = *log_level;
  } else {
    reader.fail(server->get("log_level"), "server.log_level",
                "must be \"debug\", \"info\", \"warning\" or \"error\"");
  }

  // [tls]
  if (const toml::table* tls = reader.table_at(root, "", "tls")) {
    reader.only_keys(*tls, "tls",
                     {"min_version", "ciphers", "ciphersuites", "groups",
                      "allow_unsafe_tls_versions", "certificates", "watch_interval"});
    config.certificate_poll =
        reader.duration_at(*tls, "tls", "watch_interval", config.certificate_poll,
                           std::chrono::milliseconds(50), std::chrono::hours(1));
    config.tls.min_version = reader.string_at(*tls, "tls", "min_version", config.tls.min_version);
    config.tls.ciphers = reader.string_at(*tls, "tls", "ciphers", config.tls.ciphers);
    config.tls.ciphersuites =
        reader.string_at(*tls, "tls", "ciphersuites", config.tls.ciphersuites);
    config.tls.groups = reader.string_at(*tls, "tls", "groups", config.tls.groups);
    config.tls.allow_unsafe_tls_versions = reader.bool_at(*tls, "tls", "allow_unsafe_tls_versions",
                                                          config.tls.allow_unsafe_tls_versions);
    auto verdict = tls::validate(config.tls);
    if (!verdict) {
      // Point at the key the error is about (the validator names it), else at [tls].
      std::string message = verdict.error();
      if (message.rfind("tls: ", 0) == 0) message.erase(0, 5);
      std::string_view key = "tls";
      const toml::node* node = tls;
      for (std::string_view candidate : {"min_version", "ciphersuites", "ciphers", "groups"}) {
        if (message.find(candidate) != std::string::npos && tls->get(candidate)) {
          key = candidate;
          node = tls->get(candidate);
          break;
        }
      }
      reader.fail(node, key == "tls" ? "tls" : "tls." + std::string(key), message);
    }
    if (const toml::array* certificates = reader.array_at(*tls, "tls", "certificates")) {
      std::size_t index = 0;
      for (const toml::node& node : *certificates) {
        std::string prefix = fmt::format("tls.certificates[{}]", index++);
        if (!node.is_table()) reader.fail(&node, prefix, "must be a table");
        const toml::table& entry = *node.as_table();
        reader.only_keys(entry, prefix, {"certificate", "key", "names"});
        config.certificates.push_back(
            tls::CertificatePair{reader.path_at(entry, prefix, "certificate", base_dir, true),
                                 reader.path_at(entry, prefix, "key", base_dir, true),
                                 read_server_names(entry, prefix, reader)});
        config.certificate_lines.push_back(static_cast<long>(node.source().begin.line));
      }
      check_certificate_sets(*certificates, config.certificates, reader);
    }
  }

  // [[domains]]
  if (const toml::array* domains = reader.array_at(root, "", "domains")) {
    std::size_t index = 0;
    std::set<std::string> seen;
    for (const toml::node& node : *domains) {
      std::string prefix = fmt::format("domains[{}]", index++);
      if (!node.is_table()) reader.fail(&node, prefix, "must be a table");
      const toml::table& entry = *node.as_table();
      reader.only_keys(entry, prefix,
                       {"name", "users", "kind", "max_message_size", "delivery", "relay",
                        "relay_tls", "relay_user", "relay_password_file", "next_hop",
                        "next_hop_tls", "recipients", "recipients_file", "dkim", "dmarc"});
      Domain domain;
      domain.line = static_cast<long>(node.source().begin.line);
      domain.name = base::ascii_lowercase(reader.string_at(entry, prefix, "name", "", true));
      if (!valid_domain_name(domain.name)) {
        reader.fail(entry.get("name"), prefix + ".name",
                    "not a valid domain: '" + domain.name + "'");
      }
      if (!seen.insert(domain.name).second) {
        reader.fail(entry.get("name"), prefix + ".name", "domain listed twice: " + domain.name);
      }
      if (const toml::array* users = reader.array_at(entry, prefix, "users")) {
        config.deprecations.push_back(fmt::format(
            "{}:{}: {}.users: deprecated: a mailbox is an entry of the users file (`smtpsctl "
            "user add --no-password ADDRESS` for one without a password); these still receive",
            reader.file(), users->source().begin.line, prefix));
        for (const toml::node& user : *users) {
          if (!user.is_string()) reader.fail(&user, prefix + ".users", "must be strings");
          std::string local(user.as_string()->get());
          if (!valid_local_part(local)) {
            reader.fail(&user, prefix + ".users",
                        "not a usable mailbox name: '" + local +
                            "' (no spaces, '/', '@', quotes, leading/trailing or double dots)");
          }
          domain.users.push_back(local);
        }
      }
      read_domain_settings(entry, prefix, reader, base_dir, domain);
      if (domain.kind == DomainKind::kRelay) {
        config.relay_domains.push_back(std::move(domain));
      } else {
        config.domains.push_back(std::move(domain));
      }
    }
  }
  read_srs(root, reader, base_dir, config);

  read_milters(root, reader, config);

  // [[listeners]]
  const toml::array* listeners = reader.array_at(root, "", "listeners");
  if (!listeners || listeners->empty()) {
    reader.fail(&root, "listeners", "at least one [[listeners]] entry is required");
  }
  std::size_t index = 0;
  for (const toml::node& node : *listeners) {
    std::string prefix = fmt::format("listeners[{}]", index++);
    if (!node.is_table()) reader.fail(&node, prefix, "must be a table");
    const toml::table& entry = *node.as_table();
    reader.only_keys(entry, prefix,
                     {"role", "address", "port", "session_tickets", "require_tls", "client_ca",
                      "proxy_protocol", "proxy_from", "milters"});
    Listener listener;
    listener.milters = milter_names_at(entry, prefix, reader, config);
    std::string role = reader.string_at(entry, prefix, "role", "", true);
    if (role == "submissions") {
      listener.role = Role::kSubmissions;
      listener.port = 465;
    } else if (role == "submission") {
      listener.role = Role::kSubmission;
      listener.port = 587;
    } else if (role == "smtp") {
      listener.role = Role::kSmtp;
      listener.port = 25;
    } else if (role == "local") {
      // Trusting the peer's uid only makes sense where the kernel vouches for it.
      reader.fail(entry.get("role"), prefix + ".role",
                  "the local role listens on a unix socket only, never on a network address: "
                  "configure it in [local_submission] (socket = \"/run/smtpsd/submit.sock\")");
    } else {
      reader.fail(entry.get("role"), prefix + ".role",
                  "unknown role '" + role + "' (submissions, submission or smtp)");
    }
    // Required: a default would either expose a port the operator meant to keep private
    // or hide an MX on loopback; neither should happen silently.
    listener.address_text = reader.string_at(entry, prefix, "address", "", true);
    auto address = base::parse_ip(listener.address_text);
    if (!address) {
      reader.fail(entry.get("address"), prefix + ".address",
                  "not an IP address: '" + listener.address_text +
                      "' (use 0.0.0.0 or :: for every interface)");
    }
    listener.address = *address;
    listener.port =
        static_cast<std::uint16_t>(reader.int_at(entry, prefix, "port", listener.port, 0, 65535));
    listener.session_tickets =
        reader.bool_at(entry, prefix, "session_tickets", listener.role != Role::kSmtp);
    if (entry.get("require_tls") && listener.role != Role::kSmtp) {
      reader.fail(entry.get("require_tls"), prefix + ".require_tls",
                  "only for the smtp role (submission roles always require TLS)");
    }
    listener.require_tls = reader.bool_at(entry, prefix, "require_tls", false);
    // Client certificates serve SASL EXTERNAL, and the smtp role never offers AUTH.
    if (entry.get("client_ca") && listener.role == Role::kSmtp) {
      reader.fail(entry.get("client_ca"), prefix + ".client_ca",
                  "only for the submission roles (the smtp role never offers AUTH)");
    }
    if (entry.get("client_ca")) {
      listener.client_ca = reader.path_at(entry, prefix, "client_ca", base_dir, true);
    }
    listener.proxy_protocol = reader.bool_at(entry, prefix, "proxy_protocol", false);
    if (const toml::array* networks = reader.array_at(entry, prefix, "proxy_from")) {
      listener.proxy_from = networks_at(*networks, prefix + ".proxy_from",
                                        "\"127.0.0.1/32\", \"2001:db8::/64\"", reader);
    }
    // Whoever may send the header chooses the client address that is logged and limited:
    // trusting every address would let any client pick its own.
    if (listener.proxy_protocol && listener.proxy_from.empty()) {
      reader.fail(entry.get("proxy_protocol"), prefix + ".proxy_from",
                  "required when proxy_protocol = true: the addresses of the proxies");
    }
    if (!listener.proxy_protocol && entry.get("proxy_from")) {
      reader.fail(entry.get("proxy_from"), prefix + ".proxy_from",
                  "only with proxy_protocol = true");
    }
    listener.line = static_cast<long>(node.source().begin.line);
    config.listeners.push_back(listener);
  }
  read_acme(root, reader, base_dir, config);
  if (config.certificates.empty()) {
    reader.fail(root.get("tls"), "tls.certificates",
                "at least one certificate/key pair is required (every role uses TLS), or [acme]");
  }

  // [limits]
  if (const toml::table* limits = reader.table_at(root, "", "limits")) {
    reader.only_keys(
        *limits, "limits",
        {"max_message_size", "max_recipients", "max_command_line", "max_text_line", "max_errors",
         "normalize_bare_line_endings", "max_connections", "max_connections_per_ip",
         "max_received_headers", "min_free_space", "max_connections_per_minute_per_ip",
         "max_messages_per_user_per_hour", "ipv6_prefix", "free_space_check_interval"});
    config.free_space_check =
        reader.duration_at(*limits, "limits", "free_space_check_interval", config.free_space_check,
                           std::chrono::milliseconds(1), std::chrono::seconds(60));
    config.max_connections = static_cast<std::size_t>(
        reader.int_at(*limits, "limits", "max_connections",
                      static_cast<std::int64_t>(config.max_connections), 1, 1000000));
    config.max_connections_per_ip = static_cast<std::size_t>(
        reader.int_at(*limits, "limits", "max_connections_per_ip",
                      static_cast<std::int64_t>(config.max_connections_per_ip), 1, 1000000));
    config.max_connections_per_minute_per_ip =
        static_cast<unsigned>(reader.int_at(*limits, "limits", "max_connections_per_minute_per_ip",
                                            config.max_connections_per_minute_per_ip, 0, 1000000));
    // Moved to [sending_limits] messages_per_hour (one limiter per user); still read.
    if (const toml::node* old_rate = limits->get("max_messages_per_user_per_hour")) {
      const toml::table* sending =
          root.get("sending_limits") ? root.get("sending_limits")->as_table() : nullptr;
      if (sending && sending->get("messages_per_hour")) {
        reader.fail(old_rate, "limits.max_messages_per_user_per_hour",
                    "set here and as sending_limits.messages_per_hour: keep that one only");
      }
      config.sending_limits.messages_per_hour = static_cast<std::uint64_t>(reader.int_at(
          *limits, "limits", "max_messages_per_user_per_hour",
          static_cast<std::int64_t>(config.sending_limits.messages_per_hour), 0, 10000000));
      config.deprecations.push_back(fmt::format(
          "{}:{}: limits.max_messages_per_user_per_hour: deprecated: write [sending_limits] "
          "messages_per_hour = {}",
          reader.file(), old_rate->source().begin.line, config.sending_limits.messages_per_hour));
    }
    config.ipv6_prefix = static_cast<unsigned>(
        reader.int_at(*limits, "limits", "ipv6_prefix", config.ipv6_prefix,
                      base::kMinIpv6ClientPrefix, base::kMaxIpv6ClientPrefix));
    // Octets that must stay free on the spool's file system besides the declared SIZE;
    // below that, MAIL gets 452 4.3.1 (0: only a failed write refuses a message).
    config.min_free_space = static_cast<std::uint64_t>(
        reader.int_at(*limits, "limits", "min_free_space",
                      static_cast<std::int64_t>(config.min_free_space), 0, std::int64_t{1} << 50));
    auto& l = config.limits;
    l.max_message_size = static_cast<std::uint64_t>(
        reader.int_at(*limits, "limits", "max_message_size",
                      static_cast<std::int64_t>(l.max_message_size), 1024, std::int64_t{1} << 40));
    l.max_recipients = static_cast<std::size_t>(reader.int_at(
        *limits, "limits", "max_recipients", static_cast<std::int64_t>(l.max_recipients), 1, 1000));
    // RFC 5321 §4.5.3.1.4: at least 512 octets; §4.5.3.1.6: text lines of 1000 octets.
    l.max_command_line = static_cast<std::size_t>(
        reader.int_at(*limits, "limits", "max_command_line",
                      static_cast<std::int64_t>(l.max_command_line), 512, 65536));
    l.max_text_line = static_cast<std::size_t>(
        reader.int_at(*limits, "limits", "max_text_line",
                      static_cast<std::int64_t>(l.max_text_line), 1000, 1 << 20));
    l.max_errors = static_cast<unsigned>(
        reader.int_at(*limits, "limits", "max_errors", l.max_errors, 1, 1000));
    // RFC 5321 §6.3: a loop is detected by counting Received fields; 0 turns the check off.
    config.max_received_headers = static_cast<std::size_t>(
        reader.int_at(*limits, "limits", "max_received_headers",
                      static_cast<std::int64_t>(config.max_received_headers), 0, 1000));
    l.normalize_bare_line_endings = reader.bool_at(*limits, "limits", "normalize_bare_line_endings",
                                                   l.normalize_bare_line_endings);
  }

  // A domain's own limit is below the server's: a bigger one could never be reached.
  if (const toml::array* list = root.get("domains") ? root.get("domains")->as_array() : nullptr) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::table* entry = list->get(i)->as_table();
      const toml::node* size = entry ? entry->get("max_message_size") : nullptr;
      if (size && size->is_integer() &&
          static_cast<std::uint64_t>(size->as_integer()->get()) > config.limits.max_message_size) {
        reader.fail(size, fmt::format("domains[{}].max_message_size", i),
                    fmt::format("{} is above limits.max_message_size ({}): the server refuses "
                                "bigger messages for every domain; raise that too",
                                size->as_integer()->get(), config.limits.max_message_size));
      }
    }
  }

  // [sending_limits]: one limiter per authenticated user (auth/sending_limiter.h).
  if (const toml::table* sending = reader.table_at(root, "", "sending_limits")) {
    const std::string p = "sending_limits";
    reader.only_keys(
        *sending, p,
        {"messages_per_hour", "external_recipients_per_hour", "external_recipients_per_day"});
    auto& bounds = config.sending_limits;
    bounds.messages_per_hour = static_cast<std::uint64_t>(
        reader.int_at(*sending, p, "messages_per_hour",
                      static_cast<std::int64_t>(bounds.messages_per_hour), 0, 10000000));
    bounds.external_recipients_per_hour = static_cast<std::uint64_t>(
        reader.int_at(*sending, p, "external_recipients_per_hour",
                      static_cast<std::int64_t>(bounds.external_recipients_per_hour), 0, 1000000));
    bounds.external_recipients_per_day = static_cast<std::uint64_t>(
        reader.int_at(*sending, p, "external_recipients_per_day",
                      static_cast<std::int64_t>(bounds.external_recipients_per_day), 0, 10000000));
    // A day holds its hours: a day bound below the hour's would make the hour's unreachable.
    if (bounds.external_recipients_per_day != 0 && bounds.external_recipients_per_hour != 0 &&
        bounds.external_recipients_per_day < bounds.external_recipients_per_hour) {
      const toml::node* day = sending->get("external_recipients_per_day");
      reader.fail(
          day ? day : sending->get("external_recipients_per_hour"),
          p + ".external_recipients_per_day",
          fmt::format("{} is below external_recipients_per_hour ({}): raise it, or set "
                      "the hour's to 0",
                      bounds.external_recipients_per_day, bounds.external_recipients_per_hour));
    }
  }

  // [auth]
  config.auth.users_file = config.data_dir + "/users";
  if (const toml::table* auth = reader.table_at(root, "", "auth")) {
    reader.only_keys(*auth, "auth",
                     {"users_file", "max_failures_per_user", "max_failures_per_ip",
                      "failure_window", "exempt_networks", "received_names_user",
                      "verified_cache_seconds", "failure_delay", "watch_interval"});
    config.auth.verified_cache =
        std::chrono::seconds(reader.int_at(*auth, "auth", "verified_cache_seconds", 600, 0, 86400));
    if (auth->get("users_file")) {
      config.auth.users_file = reader.path_at(*auth, "auth", "users_file", base_dir, true);
    }
    config.auth.max_failures_per_user =
        static_cast<unsigned>(reader.int_at(*auth, "auth", "max_failures_per_user", 5, 1, 1000));
    config.auth.max_failures_per_ip =
        static_cast<unsigned>(reader.int_at(*auth, "auth", "max_failures_per_ip", 30, 1, 100000));
    config.auth.failure_window =
        reader.duration_at(*auth, "auth", "failure_window", config.auth.failure_window,
                           std::chrono::milliseconds(1), std::chrono::hours(24 * 7));
    config.auth.failure_delay =
        reader.duration_at(*auth, "auth", "failure_delay", config.auth.failure_delay,
                           std::chrono::milliseconds(0), std::chrono::seconds(60));
    config.auth.watch_interval =
        reader.duration_at(*auth, "auth", "watch_interval", config.auth.watch_interval,
                           std::chrono::milliseconds(50), std::chrono::seconds(60));
    config.auth.received_names_user = reader.bool_at(*auth, "auth", "received_names_user", false);
    if (const toml::array* networks = reader.array_at(*auth, "auth", "exempt_networks")) {
      config.auth.exempt_networks = networks_at(*networks, "auth.exempt_networks",
                                                "\"192.0.2.0/24\", \"2001:db8::/32\"", reader);
    }
  }

  read_local_submission(root, reader, base_dir, config);
  read_addressing(root, reader, base_dir, config);
  read_authenticity(root, reader, config);
  read_screening(root, reader, config);
  config.dmarc_reports =
      read_reports(root, reader, base_dir, config, "dmarc_reports", "dmarc", "dmarc@example.org");
  config.tls_reports = read_reports(root, reader, base_dir, config, "tls_reports", "tls-reports",
                                    "tlsrpt@example.org");
  read_queue(root, reader, config.queue);
  read_delivery(root, reader, base_dir, config);
  read_dns(root, reader, base_dir, config);
  read_observability(root, reader, config);

  // [timeouts], durations (config/duration.h)
  if (const toml::table* timeouts = reader.table_at(root, "", "timeouts")) {
    reader.only_keys(*timeouts, "timeouts",
                     {"command", "data", "handshake", "proxy_header", "shutdown_grace"});
    constexpr std::chrono::milliseconds kShortest{1};
    config.command_timeout = reader.duration_at(
        *timeouts, "timeouts", "command", config.command_timeout, kShortest, std::chrono::hours(1));
    config.data_timeout = reader.duration_at(*timeouts, "timeouts", "data", config.data_timeout,
                                             kShortest, std::chrono::hours(1));
    config.handshake_timeout =
        reader.duration_at(*timeouts, "timeouts", "handshake", config.handshake_timeout, kShortest,
                           std::chrono::minutes(10));
    config.proxy_header_timeout =
        reader.duration_at(*timeouts, "timeouts", "proxy_header", config.proxy_header_timeout,
                           kShortest, std::chrono::minutes(10));
    config.shutdown_grace =
        reader.duration_at(*timeouts, "timeouts", "shutdown_grace", config.shutdown_grace,
                           std::chrono::milliseconds(0), std::chrono::hours(1));
  }
  return config;
}

}  // namespace

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kSubmissions:
      return "submissions";
    case Role::kSubmission:
      return "submission";
    case Role::kSmtp:
      return "smtp";
  }
  return "smtp";
}

namespace {

const Domain* find_in(const std::vector<Domain>& domains, std::string_view domain) {
  for (const Domain& d : domains) {
    if (d.name.size() != domain.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < domain.size() && same; ++i) {
      same = base::ascii_lower(domain[i]) == d.name[i];
    }
    if (same) return &d;
  }
  return nullptr;
}

}  // namespace

const Domain* Config::find_domain(std::string_view domain) const {
  return find_in(domains, domain);
}

const Domain* Config::find_relay_domain(std::string_view domain) const {
  return find_in(relay_domains, domain);
}

std::uint64_t Config::max_message_size_for(std::string_view recipient) const {
  const std::size_t at = recipient.rfind('@');
  if (at == std::string_view::npos) return limits.max_message_size;
  const std::string_view name = recipient.substr(at + 1);
  const Domain* domain = find_domain(name);
  if (!domain) domain = find_relay_domain(name);
  if (!domain || domain->max_message_size == 0) return limits.max_message_size;
  return std::min(domain->max_message_size, limits.max_message_size);
}

std::string_view to_string(MilterDefaultAction action) {
  return action == MilterDefaultAction::kAccept ? "accept" : "tempfail";
}

std::string_view to_string(DomainKind kind) {
  return kind == DomainKind::kRelay ? "relay" : "local";
}

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

base::Expected<Config, ConfigError> parse(std::string_view text, const std::string& file_name,
                                          Reading reading) {
  std::string base_dir = std::filesystem::path(file_name).parent_path().string();
  if (base_dir.empty()) base_dir = ".";
  try {
    toml::table root = toml::parse(text, file_name);
    Reader reader(file_name, reading);
    return read(root, reader, base_dir);
  } catch (const toml::parse_error& error) {
    return base::unexpected(ConfigError{file_name, static_cast<long>(error.source().begin.line), "",
                                        std::string(error.description())});
  } catch (const Failure& failure) {
    return base::unexpected(failure.error);
  }
}

base::Expected<Config, ConfigError> load_file(const std::string& path, Reading reading) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return base::unexpected(
        ConfigError{path, 0, "", "cannot read the file: " + std::string(std::strerror(errno))});
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse(buffer.str(), path, reading);
}

std::string_view to_string(LogOutput output) {
  return output == LogOutput::kSyslog ? "syslog" : "stderr";
}

namespace {
std::string join_networks(const std::vector<base::Network>& networks) {
  std::string out;
  for (const base::Network& network : networks) {
    if (!out.empty()) out += ' ';
    out += base::to_string(network);
  }
  return out;
}
}  // namespace

std::string_view to_string(DnsListRefuseAt where) {
  return where == DnsListRefuseAt::kConnect ? "connect" : "rcpt";
}

std::string_view to_string(SpfEnforcement value) {
  switch (value) {
    case SpfEnforcement::kOff:
      return "off";
    case SpfEnforcement::kRecord:
      return "record";
    case SpfEnforcement::kDmarc:
      return "dmarc";
    case SpfEnforcement::kStrict:
      return "strict";
  }
  return "?";
}

std::string_view to_string(DmarcEnforcement value) {
  switch (value) {
    case DmarcEnforcement::kOff:
      return "off";
    case DmarcEnforcement::kMonitor:
      return "monitor";
    case DmarcEnforcement::kEnforce:
      return "enforce";
  }
  return "?";
}

std::string describe(const Config& config) {
  std::string out;
  out += fmt::format("configuration: {}\nhostname: {}\ndata_dir: {}\n", config.source_file,
                     config.hostname, config.data_dir);
  for (const Domain& d : config.domains) {
    out += fmt::format("local domain: {} ({} mailboxes)", d.name, d.users.size());
    if (d.maildir) out += ", Maildir";
    if (d.lmtp) out += ", LMTP " + base::to_string(*d.lmtp);
    if (d.max_message_size != 0) out += fmt::format(", max {} octets", d.max_message_size);
    if (d.relay) out += ", mail from it through " + base::to_string(d.relay->url);
    out += "\n";
  }
  for (const Domain& d : config.relay_domains) {
    out += fmt::format("relay domain: {} ({} recipients) → {} (TLS {}){}\n", d.name,
                       d.recipients.size(), base::to_string(d.next_hop->url),
                       tls::to_string(d.next_hop->tls),
                       d.max_message_size != 0 ? fmt::format(", max {} octets", d.max_message_size)
                                               : std::string());
  }
  {
    const DnsSettings& d = config.dns;
    std::string servers;
    for (const base::HostPort& server : d.servers)
      servers += (servers.empty() ? "" : ", ") + base::to_string(server);
    out += fmt::format(
        "DNS: {}, validation {}, {} s a lookup\n",
        d.mode == DnsSettings::Mode::kSystem    ? "the servers of /etc/resolv.conf"
        : d.mode == DnsSettings::Mode::kForward ? "forward to " + servers
                                                : std::string("recursive from the root"),
        d.validation == DnsSettings::Validation::kAuto  ? "auto (" + d.trust_anchor + ")"
        : d.validation == DnsSettings::Validation::kYes ? "yes (" + d.trust_anchor + ")"
                                                        : std::string("no"),
        d.timeout.count());
  }
  {
    const AuthenticitySettings& a = config.authenticity;
    if (a.verify) {
      out += fmt::format(
          "authenticity: port 25 mail checked (SPF {}, DKIM, DMARC {}), Authentication-Results "
          "as {}, temperror {}\n",
          to_string(a.spf), to_string(a.dmarc), a.authserv_id,
          a.defer_on_temperror ? "deferred" : "accepted");
      if (!a.trusted_arc_sealers.empty()) {
        std::string sealers;
        for (const std::string& sealer : a.trusted_arc_sealers)
          sealers += (sealers.empty() ? "" : ", ") + sealer;
        out +=
            "authenticity: DMARC fails overridden when a passing ARC chain was last sealed "
            "by " +
            sealers + "\n";
      }
    } else {
      out += "authenticity: port 25 mail not checked ([authenticity] verify = false)\n";
    }
    for (const Milter& m : config.milters) {
      std::string used;
      for (const Listener& l : config.listeners)
        if (std::find(l.milters.begin(), l.milters.end(), m.name) != l.milters.end())
          used += fmt::format("{}{} {}:{}", used.empty() ? "" : ", ", to_string(l.role),
                              l.address_text, l.port);
      if (config.local_submission.enabled &&
          std::find(config.local_submission.milters.begin(), config.local_submission.milters.end(),
                    m.name) != config.local_submission.milters.end())
        used += std::string(used.empty() ? "" : ", ") + "local submissions";
      out += fmt::format("milter: {} at {}, timeout {} ms, default {}; used by {}\n", m.name,
                         base::to_string(m.address), m.timeout.count(), to_string(m.default_action),
                         used.empty() ? std::string("no listener") : used);
    }
    for (const Domain& d : config.domains) {
      for (const DkimKeyFile& key : d.dkim)
        out += fmt::format("DKIM: {} signed with {}._domainkey.{} ({})\n", d.name, key.selector,
                           d.name, key.key_file);
    }
  }
  {
    const ScreeningSettings& sc = config.screening;
    std::string lists;
    for (const DnsListSettings& list : sc.dns_lists)
      lists += fmt::format("{}{} ({})", lists.empty() ? "" : ", ", list.zone, list.weight);
    if (!sc.dns_lists.empty()) {
      out += fmt::format(
          "screening: port 25 clients looked up in {}; listed at score {}, refused at {}\n", lists,
          sc.dns_list_threshold,
          sc.refuse_at == DnsListRefuseAt::kConnect ? "connect (554 instead of the greeting)"
                                                    : "RCPT (550 5.7.1, postmaster excepted)");
    }
    if (sc.pregreet_wait.count() > 0) {
      out += fmt::format(
          "screening: port 25 pre-greet wait {} (a client that talks first gets 554), passed "
          "clients skip it for {}\n",
          format_duration(sc.pregreet_wait), format_duration(sc.pregreet_pass_ttl));
    }
    out += fmt::format("screening: improper pipelining on port 25 {}\n",
                       sc.refuse_improper_pipelining ? "refused" : "logged");
    if (!sc.allow_networks.empty()) {
      std::string networks;
      for (const base::Network& network : sc.allow_networks)
        networks += (networks.empty() ? "" : ", ") + base::to_string(network);
      out += "screening: never screened: " + networks + "\n";
    }
  }
  if (config.srs) {
    out += fmt::format("SRS: {} ({} secrets, {} days)\n", config.srs->domain,
                       config.srs->secrets.size(), config.srs->max_age_days);
  }
  {
    const AddressingSettings& a = config.addressing;
    std::string roles;
    for (const std::string& role : a.role_accounts)
      roles += (roles.empty() ? "" : ", ") + role + "@";
    out += fmt::format(
        "addressing: mailboxes from the users file, aliases file {}, sub-addressing {}{}, role "
        "accounts {} → {}, at most {} addresses per recipient, {} aliases deep\n",
        a.aliases_file,
        a.subaddress_separator.empty() ? "off" : "\"" + a.subaddress_separator + "\"",
        a.subaddress_folders ? " (Maildir folder .detail)" : "", roles.empty() ? "none" : roles,
        a.administrator.empty() ? "no administrator (postmaster@ is its own mailbox)"
                                : a.administrator,
        a.max_alias_targets, a.max_alias_depth);
  }
  for (const Listener& l : config.listeners) {
    std::string_view tls_mode = l.role == Role::kSubmissions                   ? "implicit TLS"
                                : l.role == Role::kSubmission || l.require_tls ? "STARTTLS required"
                                                                               : "STARTTLS offered";
    out +=
        fmt::format("listener: {} on {} port {} — {}, session tickets {}{}{}\n", to_string(l.role),
                    l.address_text, l.port, tls_mode, l.session_tickets ? "on" : "off",
                    l.client_ca.empty() ? "" : ", client certificates from " + l.client_ca,
                    l.proxy_protocol ? ", PROXY protocol from " + join_networks(l.proxy_from) : "");
  }
  for (const auto& c : config.certificates) {
    out += fmt::format("certificate: {} (key {}) for {}\n", c.certificate_file, c.key_file,
                       c.names.empty() ? std::string("the default set")
                                       : fmt::format("{}", fmt::join(c.names, " ")));
  }
  out += tls::describe_policy(config.tls);
  const auto& l = config.limits;
  out += fmt::format(
      "limits: message {} octets, {} recipients, command line {}, text line {}, {} errors, "
      "bare CR/LF {}\n",
      l.max_message_size, l.max_recipients, l.max_command_line, l.max_text_line, l.max_errors,
      l.normalize_bare_line_endings ? "normalised (normalize_bare_line_endings)" : "refused");
  out += fmt::format(
      "auth: users file {}, lockout after {} failures per user and address or {} per address "
      "within {}{}\n",
      config.auth.users_file, config.auth.max_failures_per_user, config.auth.max_failures_per_ip,
      format_duration(config.auth.failure_window),
      config.auth.exempt_networks.empty()
          ? std::string()
          : ", exempt: " + join_networks(config.auth.exempt_networks));
  const DeliverySettings& d = config.delivery;
  out += !d.relay ? fmt::format("delivery: direct to MX hosts (port {}), TLS {} by default\n",
                                d.mx_port, tls::to_string(d.default_tls))
                  : fmt::format("delivery: through relay {} (TLS {}{})\n",
                                base::to_string(*d.relay), tls::to_string(d.relay_tls),
                                d.relay_user.empty() ? "" : ", AUTH as " + d.relay_user);
  for (const DestinationTls& policy : d.tls_policy) {
    out += fmt::format("delivery: TLS {} for {}\n", tls::to_string(policy.level), policy.domain);
  }
  out += fmt::format("log: {} to {}{}\n",
                     config.log.format == obs::Format::kJson ? "JSON" : "key=value",
                     to_string(config.log.output),
                     config.log.output == LogOutput::kSyslog
                         ? " (" + config.log.syslog_socket + ", facility " +
                               std::string(obs::syslog_facility_name(config.log.facility)) + ")"
                         : std::string());
  out +=
      !config.metrics.address
          ? std::string("metrics: off\n")
          : fmt::format("metrics: http://{}/metrics{}\n", base::to_string(*config.metrics.address),
                        config.metrics.allow_non_loopback ? " (non-loopback allowed)" : "");
  if (const LocalSubmissionSettings& l = config.local_submission; l.enabled) {
    out += fmt::format(
        "local submission: {} (no TLS, no AUTH: the uid of the peer), users {}, sender "
        "rewritten to USER@{} except for {}\n",
        l.socket,
        l.allow_users.empty() ? "every local user"
                              : fmt::format("{}", fmt::join(l.allow_users, ", ")),
        l.domain,
        l.may_set_sender.empty() ? "nobody" : fmt::format("{}", fmt::join(l.may_set_sender, ", ")));
  }
  out += fmt::format("local mailboxes: {}\n",
                     !d.lmtp ? "Maildir" : "LMTP " + base::to_string(*d.lmtp));
  out += fmt::format(
      "queue: lifetime {}s, {} remote and {} local delivery threads, {} per server address, "
      "{}s per attempt; Maildir mail {}\n",
      config.queue.max_lifetime.count(), config.queue.delivery_threads,
      config.queue.local_delivery_threads, config.delivery.max_per_host,
      config.delivery.attempt_timeout.count(),
      !config.queue.deliver_at_acceptance ? "queued first"
      : config.queue.reply_after_log ? "delivered right after the reply (250 after the log sync)"
                                     : "delivered at acceptance");
  out += fmt::format("timeouts: command {}, data {}, handshake {}\n",
                     format_duration(config.command_timeout), format_duration(config.data_timeout),
                     format_duration(config.handshake_timeout));
  return out;
}

}  // namespace config
