// main.cpp (smtpsd) — the server's command line: serve, check, init, dev.
//
//   smtpsd --version               the version and the commit it was built from
//   smtpsd serve [--config FILE]   run the server
//   smtpsd check [--config FILE]   validate and print the effective policy (exit 2 on error)
//     (no --config: $SMTPSD_CONFIG, else /etc/smtpsd/smtpsd.toml; app/common/config_path.h)
//   smtpsd init --domain D --hostname H [--dir DIR] [--data-dir PATH] [--run-dir PATH]
//               [--user NAME]
//                                  production setup and DNS records (see app/init_command.h)
//   smtpsd dev [--dir DIR] [--port-offset N] [--dns IP:PORT] [--init-only]   development setup
//                                  (see app/dev_mode.h)
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>

#include "app/common/config_path.h"
#include "app/smtpsd/check_command.h"
#include "app/smtpsd/daemon.h"
#include "app/smtpsd/dev_mode.h"
#include "app/smtpsd/init_command.h"
#include "config/config.h"

namespace {

// Configuration errors name file, line and key and exit 2 (README "Configuration").
int with_config(const std::string& given, int (*action)(const config::Config&)) {
  auto path =
      app::existing_config_path(app::choose_config_path(given, std::getenv("SMTPSD_CONFIG")));
  if (!path) {
    std::fprintf(stderr, "smtpsd: %s\n", path.error().c_str());
    return 2;
  }
  auto loaded = config::load_file(path.value());
  if (!loaded) {
    std::fprintf(stderr, "smtpsd: %s\n", loaded.error().to_string().c_str());
    return 2;
  }
  return action(loaded.value());
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // SIGHUP reloads once the server runs (net::Server catches it); until then, and for the
  // other commands, it must not end the process.
  std::signal(SIGHUP, SIG_IGN);
  CLI::App cli{"smtpsd — a secure-by-default SMTP server"};
  cli.set_version_flag("-V,--version", "smtpsd " SMTPSD_VERSION);
  cli.require_subcommand(1);

  std::string serve_config;
  auto* serve = cli.add_subcommand("serve", "Run the server");
  serve->add_option(
      "-c,--config", serve_config,
      "Configuration file (TOML; default $SMTPSD_CONFIG, else /etc/smtpsd/smtpsd.toml)");

  std::string check_config;
  auto* check = cli.add_subcommand("check", "Validate a configuration and print its policy");
  check->add_option(
      "-c,--config", check_config,
      "Configuration file (TOML; default $SMTPSD_CONFIG, else /etc/smtpsd/smtpsd.toml)");

  app::InitOptions init_options;
  auto* init = cli.add_subcommand(
      "init", "Write a production configuration for a domain and print its DNS records");
  init->add_option("--domain", init_options.domain, "The mail domain (example.org)")->required();
  init->add_option("--hostname", init_options.hostname,
                   "This server's host name, its MX (mx.example.org)")
      ->required();
  init->add_option("--dir", init_options.dir, "Where the configuration goes")
      ->capture_default_str();
  init->add_option("--data-dir", init_options.data_dir, "The server's data directory")
      ->capture_default_str();
  init->add_option("--run-dir", init_options.run_dir,
                   "Where the local submission socket goes (open to every local user)")
      ->capture_default_str();
  init->add_option("--user", init_options.user, "The account the server runs as")
      ->capture_default_str();

  std::string dev_dir = "var/dev";
  int port_offset = 0;
  auto* dev = cli.add_subcommand("dev", "Development server: self-signed CA, demo user, Maildir");
  dev->add_option("--dir", dev_dir, "Directory for everything the dev server needs")
      ->capture_default_str();
  dev->add_option("--port-offset", port_offset, "Add N to the ports 2465, 2587 and 2525")
      ->capture_default_str();
  std::string dev_dns;
  dev->add_option("--dns", dev_dns,
                  "Ask this DNS server (IP[:PORT], e.g. a local dnsmasq), without DNSSEC "
                  "validation, instead of the configuration's [dns]");
  bool init_only = false;
  dev->add_flag("--init-only", init_only, "Create the files, print where they are, and exit");

  CLI11_PARSE(cli, argc, argv);

  if (*serve) {
    return with_config(serve_config, [](const config::Config& c) {
      app::Daemon daemon(c);
      return daemon.run();
    });
  }
  if (*check) return with_config(check_config, app::check);
  if (*init) return app::run_init(init_options, std::cout, std::cerr, std::time(nullptr));
  auto setup = app::prepare_dev(dev_dir, port_offset);
  if (!setup) {
    std::fprintf(stderr, "smtpsd dev: %s\n", setup.error().c_str());
    return 1;
  }
  const bool offset_given = dev->count("--port-offset") > 0;
  if (init_only && !(offset_given && setup.value().kept_config)) {
    std::printf("%s\n", setup.value().config_file.c_str());
    return 0;
  }
  auto loaded = config::load_file(setup.value().config_file);
  if (!loaded) {
    std::fprintf(stderr, "smtpsd dev: %s\n", loaded.error().to_string().c_str());
    return 2;
  }
  // An existing configuration is never rewritten (it may hold the developer's edits): when
  // its ports are not the ones asked for, say that they win.
  if (offset_given) {
    std::string note = app::dev_port_note(setup.value(), loaded.value());
    if (!note.empty()) std::fprintf(stderr, "smtpsd dev: note: %s\n", note.c_str());
  }
  if (init_only) {
    std::printf("%s\n", setup.value().config_file.c_str());
    return 0;
  }
  // The development server runs as whoever starts it (its files are theirs); a production
  // configuration started as root names an account in server.user instead.
  if (loaded.value().user.empty()) loaded.value().run_as_root = true;
  if (!dev_dns.empty()) {
    if (auto used = app::use_dev_dns(dev_dns, loaded.value()); !used) {
      std::fprintf(stderr, "smtpsd dev: %s\n", used.error().c_str());
      return 2;
    }
  }
  const config::Config& config = loaded.value();
  return app::serve(config, [&setup, &config](const std::vector<app::BoundListener>& listening) {
    std::string instructions = app::dev_instructions(setup.value(), config, listening);
    std::fputs(instructions.c_str(), stdout);
    std::fflush(stdout);
  });
}
