// reload_test.cpp — the pure half of the reload engine: app::plan_reload (what changes
// between two configuration snapshots: listeners, certificates, log output, metrics
// endpoint, users file) and app::keep_restart_only_settings (what a reload keeps from the
// running configuration, and the keys it names for the log).
#include "app/smtpsd/reload.h"

#include <gtest/gtest.h>

namespace app {
namespace {

config::Config running() {
  config::Config config;
  config.hostname = "mx.example.org";
  config.data_dir = "/var/lib/smtpsd";
  config.auth.users_file = "/var/lib/smtpsd/users";
  config.io_threads = 2;
  config.log_level = obs::Level::kInfo;
  return config;
}

TEST(KeepRestartOnlySettings, NothingChangedNothingNamed) {
  config::Config next = running();
  EXPECT_TRUE(keep_restart_only_settings(next, running()).empty());
}

TEST(KeepRestartOnlySettings, ReloadableSettingsPass) {
  config::Config next = running();
  next.log_level = obs::Level::kDebug;
  next.limits.max_message_size = 1024;
  next.max_connections = 7;
  next.command_timeout = std::chrono::seconds(60);
  next.auth.users_file = "/etc/smtpsd/users";
  next.domains.push_back(config::Domain{"example.net", {"bob"}});
  EXPECT_TRUE(keep_restart_only_settings(next, running()).empty());
  EXPECT_EQ(next.log_level, obs::Level::kDebug);
  EXPECT_EQ(next.limits.max_message_size, 1024u);
  EXPECT_EQ(next.auth.users_file, "/etc/smtpsd/users");
  EXPECT_EQ(next.domains.size(), 1u);
}

TEST(KeepRestartOnlySettings, RestartOnlyKeptAndNamed) {
  config::Config next = running();
  next.hostname = "other.example.org";
  next.io_threads = 8;
  next.queue.delivery_threads = 3;
  next.delivery.relay = base::SmtpUrl{true, "relay.example.net", 465};
  next.dns.validation = config::DnsSettings::Validation::kNo;
  next.auth.max_failures_per_ip = 3;
  next.auth.users_file = "/etc/smtpsd/users";
  next.shutdown_grace = std::chrono::seconds(5);
  auto keys = keep_restart_only_settings(next, running());
  EXPECT_EQ(keys, (std::vector<std::string>{"server.hostname", "server.io_threads", "queue",
                                            "delivery", "dns", "auth (except users_file)",
                                            "timeouts.shutdown_grace"}));
  EXPECT_EQ(next.hostname, "mx.example.org");
  EXPECT_EQ(next.io_threads, 2u);
  EXPECT_EQ(next.queue.delivery_threads, running().queue.delivery_threads);
  EXPECT_FALSE(next.delivery.relay);
  EXPECT_EQ(next.dns.validation, config::DnsSettings::Validation::kAuto);
  EXPECT_EQ(next.auth.max_failures_per_ip, running().auth.max_failures_per_ip);
  EXPECT_EQ(next.auth.users_file, "/etc/smtpsd/users");  // that one follows the reload
  EXPECT_EQ(next.shutdown_grace, running().shutdown_grace);
}

TEST(KeepRestartOnlySettings, ThePregreetPassTableIsKept) {
  config::Config next = running();
  next.screening.pregreet_pass_ttl = std::chrono::milliseconds(1000);
  next.screening.pregreet_pass_entries = 10;
  next.screening.pregreet_wait = std::chrono::milliseconds(500);  // this one is reloaded
  auto keys = keep_restart_only_settings(next, running());
  EXPECT_EQ(keys, (std::vector<std::string>{"screening.pregreet_pass_ttl",
                                            "screening.pregreet_pass_entries"}));
  EXPECT_EQ(next.screening.pregreet_pass_ttl, running().screening.pregreet_pass_ttl);
  EXPECT_EQ(next.screening.pregreet_pass_entries, running().screening.pregreet_pass_entries);
  EXPECT_EQ(next.screening.pregreet_wait, std::chrono::milliseconds(500));
}

TEST(KeepRestartOnlySettings, DefaultUsersFileStaysWithTheRunningDataDir) {
  config::Config next = running();
  next.data_dir = "/srv/smtpsd";
  next.auth.users_file = "/srv/smtpsd/users";  // the default under the new data_dir
  auto keys = keep_restart_only_settings(next, running());
  EXPECT_EQ(keys, std::vector<std::string>{"server.data_dir"});
  EXPECT_EQ(next.data_dir, "/var/lib/smtpsd");
  EXPECT_EQ(next.auth.users_file, "/var/lib/smtpsd/users");
}

config::Listener listener(config::Role role, std::string address, std::uint16_t port) {
  config::Listener l;
  l.role = role;
  l.address = base::parse_ip(address).value();
  l.address_text = std::move(address);
  l.port = port;
  return l;
}

TEST(PlanReload, TheSameConfigurationChangesNothing) {
  ReloadPlan plan = plan_reload(running(), running());
  EXPECT_TRUE(plan.restart_only_keys.empty());
  EXPECT_TRUE(plan.listeners.added.empty());
  EXPECT_TRUE(plan.listeners.removed.empty());
  EXPECT_FALSE(plan.certificates_changed);
  EXPECT_FALSE(plan.log_output_changed);
  EXPECT_FALSE(plan.metrics_moved);
  EXPECT_FALSE(plan.users_file_changed);
}

TEST(PlanReload, ListenersAddedKeptAndRemovedByAddressAndPort) {
  config::Config old = running();
  old.listeners = {listener(config::Role::kSmtp, "127.0.0.1", 25),
                   listener(config::Role::kSubmission, "127.0.0.1", 587)};
  config::Config next = running();
  next.listeners = {listener(config::Role::kSubmissions, "127.0.0.1", 465),
                    listener(config::Role::kSmtp, "127.0.0.1", 25)};
  next.listeners[1].require_tls = true;  // changed options, same listener
  ReloadPlan plan = plan_reload(old, next);
  EXPECT_EQ(plan.listeners.added, std::vector<std::size_t>{0});
  EXPECT_EQ(plan.listeners.kept, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 1}}));
  EXPECT_EQ(plan.listeners.removed, std::vector<std::size_t>{1});
}

TEST(PlanReload, ListenersOnPortZeroAreMatchedByRoleAndOrder) {
  config::Config old = running();
  old.listeners = {listener(config::Role::kSmtp, "127.0.0.1", 0),
                   listener(config::Role::kSubmission, "127.0.0.1", 0)};
  config::Config next = running();
  next.listeners = {listener(config::Role::kSubmission, "127.0.0.1", 0),
                    listener(config::Role::kSubmission, "127.0.0.1", 0)};
  ReloadPlan plan = plan_reload(old, next);
  EXPECT_EQ(plan.listeners.kept, (std::vector<std::pair<std::size_t, std::size_t>>{{1, 0}}));
  EXPECT_EQ(plan.listeners.added, std::vector<std::size_t>{1});
  EXPECT_EQ(plan.listeners.removed, std::vector<std::size_t>{0});
}

TEST(PlanReload, CertificateEntriesChanged) {
  config::Config old = running();
  old.certificates = {tls::CertificatePair{"/etc/tls/a.pem", "/etc/tls/a.key"}};
  config::Config renamed = old;
  renamed.certificates[0].names = {"mail.example.org"};
  EXPECT_TRUE(plan_reload(old, renamed).certificates_changed);
  config::Config other = old;
  other.certificates[0].key_file = "/etc/tls/b.key";
  EXPECT_TRUE(plan_reload(old, other).certificates_changed);
  EXPECT_FALSE(plan_reload(old, old).certificates_changed);
}

TEST(PlanReload, LogOutputChanged) {
  config::Config next = running();
  next.log.format = obs::Format::kJson;
  EXPECT_TRUE(plan_reload(running(), next).log_output_changed);
  next = running();
  next.log_level = obs::Level::kDebug;  // the level alone needs no new output
  EXPECT_FALSE(plan_reload(running(), next).log_output_changed);
}

TEST(PlanReload, MetricsEndpointMovedAddedOrRemoved) {
  config::Config with = running();
  with.metrics.address = base::HostPort{"127.0.0.1", 9464};
  EXPECT_TRUE(plan_reload(running(), with).metrics_moved);  // added
  EXPECT_TRUE(plan_reload(with, running()).metrics_moved);  // removed
  config::Config moved = with;
  moved.metrics.address->port = 9465;
  EXPECT_TRUE(plan_reload(with, moved).metrics_moved);
  config::Config same_endpoint = with;
  same_endpoint.metrics.allow_non_loopback = true;
  EXPECT_FALSE(plan_reload(with, same_endpoint).metrics_moved);
}

TEST(PlanReload, UsersFileChanged) {
  config::Config next = running();
  next.auth.users_file = "/etc/smtpsd/users";
  ReloadPlan plan = plan_reload(running(), next);
  EXPECT_TRUE(plan.users_file_changed);
  EXPECT_TRUE(plan.restart_only_keys.empty());
  EXPECT_EQ(plan.next.auth.users_file, "/etc/smtpsd/users");
}

TEST(PlanReload, RestartOnlyKeysAreNamedAndKeepTheirRunningValues) {
  config::Config next = running();
  next.io_threads = 8;
  next.sending_limits.messages_per_hour = 5;
  next.max_connections = 7;  // reloadable
  ReloadPlan plan = plan_reload(running(), next);
  EXPECT_EQ(plan.restart_only_keys,
            (std::vector<std::string>{"server.io_threads", "sending_limits"}));
  EXPECT_EQ(plan.next.io_threads, 2u);
  EXPECT_EQ(plan.next.sending_limits.messages_per_hour, running().sending_limits.messages_per_hour);
  EXPECT_EQ(plan.next.max_connections, 7u);
}

}  // namespace
}  // namespace app
