// dev_mode.h — `smtpsd dev`: a ready development setup in one directory (the interface
// other tools and tests rely on; keep it stable):
//   DIR/tls/ca.pem            local CA (trust this in clients)
//   DIR/tls/server-*.pem/key  ECDSA and RSA certificates for localhost, 127.0.0.1, ::1
//   DIR/smtpsd.toml           configuration (kept if it exists: its ports then win over
//                             --port-offset, and dev_port_note says so)
//   DIR/demo.password         random password of demo@localhost, mode 0600
//   DIR/mail/localhost/demo/  Maildir of demo@localhost
// Ports on 127.0.0.1: submissions 2465+N, submission 2587+N, smtp 2525+N.
// `--dns HOST:PORT` points the one resolver at that server (forward mode, no DNSSEC
// validation) for this run, whatever the file's [dns] says: a local dnsmasq for test zones.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "app/smtpsd/reload.h"
#include "base/expected.h"
#include "config/config.h"

namespace app {

struct DevSetup {
  std::string dir;
  std::string config_file;
  int port_offset = 0;
  bool kept_config = false;  // config_file existed and was left as it was
};

// Creates what is missing in dir; returns where the configuration is.
base::Expected<DevSetup, std::string> prepare_dev(const std::string& dir, int port_offset);

// The demo user's random password (URL-safe base64 of 144 random bits), never starting with
// '-' so that it can follow an option on a command line.
std::string dev_password();

// When a kept configuration has other ports than --port-offset asks for: a note that says
// the file wins and how to change that; "" otherwise.
std::string dev_port_note(const DevSetup& setup, const config::Config& config);

// `smtpsd dev --dns SERVER`: [dns] of config set to forward to server ("127.0.0.1:5353",
// port 53 when left out) without validation; an error text when server is not IP[:PORT].
base::Expected<base::Ok, std::string> use_dev_dns(std::string_view server, config::Config& config);

// The "how to send a test mail" text printed once the server is ready, with the listeners as
// they were bound (the ports in service, whatever the offset said); config (loaded from
// setup.config_file) names the checks the server runs.
std::string dev_instructions(const DevSetup& setup, const config::Config& config,
                             const std::vector<BoundListener>& listening);

}  // namespace app
