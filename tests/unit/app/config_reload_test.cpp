// config_reload_test.cpp — app::keep_restart_only_settings: what a reload keeps from the
// running configuration, and the keys it names for the log.
#include "app/config_reload.h"

#include <gtest/gtest.h>

namespace app {
namespace {

config::Config running() {
  config::Config config;
  config.hostname = "mx.example.org";
  config.data_dir = "/var/lib/smtpsd";
  config.auth.users_file = "/var/lib/smtpsd/users";
  config.io_threads = 2;
  config.log_level = "info";
  return config;
}

TEST(KeepRestartOnlySettings, NothingChangedNothingNamed) {
  config::Config next = running();
  EXPECT_TRUE(keep_restart_only_settings(next, running()).empty());
}

TEST(KeepRestartOnlySettings, ReloadableSettingsPass) {
  config::Config next = running();
  next.log_level = "debug";
  next.limits.max_message_size = 1024;
  next.max_connections = 7;
  next.command_timeout = std::chrono::seconds(60);
  next.auth.users_file = "/etc/smtpsd/users";
  next.domains.push_back(config::Domain{"example.net", {"bob"}});
  EXPECT_TRUE(keep_restart_only_settings(next, running()).empty());
  EXPECT_EQ(next.log_level, "debug");
  EXPECT_EQ(next.limits.max_message_size, 1024u);
  EXPECT_EQ(next.auth.users_file, "/etc/smtpsd/users");
  EXPECT_EQ(next.domains.size(), 1u);
}

TEST(KeepRestartOnlySettings, RestartOnlyKeptAndNamed) {
  config::Config next = running();
  next.hostname = "other.example.org";
  next.io_threads = 8;
  next.queue.delivery_threads = 3;
  next.delivery.relay = "smtps://relay.example.net";
  next.auth.max_failures_per_ip = 3;
  next.auth.users_file = "/etc/smtpsd/users";
  next.shutdown_grace = std::chrono::seconds(5);
  auto keys = keep_restart_only_settings(next, running());
  EXPECT_EQ(keys,
            (std::vector<std::string>{"server.hostname", "server.io_threads", "queue", "delivery",
                                      "auth (except users_file)", "timeouts.shutdown_grace"}));
  EXPECT_EQ(next.hostname, "mx.example.org");
  EXPECT_EQ(next.io_threads, 2u);
  EXPECT_EQ(next.queue.delivery_threads, running().queue.delivery_threads);
  EXPECT_TRUE(next.delivery.relay.empty());
  EXPECT_EQ(next.auth.max_failures_per_ip, running().auth.max_failures_per_ip);
  EXPECT_EQ(next.auth.users_file, "/etc/smtpsd/users");  // that one follows the reload
  EXPECT_EQ(next.shutdown_grace, running().shutdown_grace);
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

}  // namespace
}  // namespace app
