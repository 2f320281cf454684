// config_reload.cpp — see config_reload.h.
#include "app/config_reload.h"

namespace app {
namespace {

template <typename T>
void keep(T& next, const T& running, const char* key, std::vector<std::string>& changed) {
  if (next == running) return;
  changed.emplace_back(key);
  next = running;
}

}  // namespace

std::vector<std::string> keep_restart_only_settings(config::Config& next,
                                                    const config::Config& running) {
  std::vector<std::string> changed;
  keep(next.hostname, running.hostname, "server.hostname", changed);
  // The default users file lives in data_dir: it stays where the running data_dir is.
  if (next.data_dir != running.data_dir && next.auth.users_file == next.data_dir + "/users" &&
      running.auth.users_file == running.data_dir + "/users") {
    next.auth.users_file = running.auth.users_file;
  }
  keep(next.data_dir, running.data_dir, "server.data_dir", changed);
  keep(next.io_threads, running.io_threads, "server.io_threads", changed);
  keep(next.control_socket, running.control_socket, "server.control_socket", changed);
  // The account is switched once, at start; after it there is no root left to switch again.
  keep(next.user, running.user, "server.user", changed);
  keep(next.group, running.group, "server.group", changed);
  keep(next.run_as_root, running.run_as_root, "server.run_as_root", changed);
  keep(next.queue, running.queue, "queue", changed);
  keep(next.delivery, running.delivery, "delivery", changed);
  // [auth]: only the users file follows a reload; the limiter and the cache keep their state.
  config::AuthSettings auth = next.auth;
  auth.users_file = running.auth.users_file;
  if (!(auth == running.auth)) {
    changed.emplace_back("auth (except users_file)");
    const std::string users_file = next.auth.users_file;
    next.auth = running.auth;
    next.auth.users_file = users_file;
  }
  keep(next.shutdown_grace, running.shutdown_grace, "timeouts.shutdown_grace", changed);
  // The rate tables are sized and filled by the running server: they keep their counts.
  keep(next.max_connections_per_minute_per_ip, running.max_connections_per_minute_per_ip,
       "limits.max_connections_per_minute_per_ip", changed);
  keep(next.max_messages_per_user_per_hour, running.max_messages_per_user_per_hour,
       "limits.max_messages_per_user_per_hour", changed);
  return changed;
}

}  // namespace app
