// local_sendmail.cpp — see local_sendmail.h. The SMTP client is delivery::Connection (the
// queue's own, with deadlines on every wait) on the unix socket, without TLS; -bs relays
// standard input and output to the socket.
#include "app/smtpsctl/local_sendmail.h"

#include <poll.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/smtpsctl/message_file.h"
#include "app/smtpsctl/sendmail_exit_codes.h"
#include "base/terminal_text.h"
#include "config/config.h"
#include "delivery/smtp_transport.h"
#include "queue/spool.h"

namespace app {
namespace {

constexpr const char* kDefaultServerConfig = "/etc/smtpsd/smtpsd.toml";
constexpr const char* kDefaultClientConfig = "/etc/smtpsctl.toml";

// An smtpsd.toml has a [server] table; a smtpsctl.toml has server = "smtps://…".
bool is_server_config(const std::string& path) {
  try {
    toml::table root = toml::parse_file(path);
    return root.get("server") != nullptr && root.get("server")->is_table();
  } catch (...) {  // unreadable or not TOML: the TLS mode reads it again and says why
    return false;
  }
}

std::string this_user() {
  if (const passwd* entry = ::getpwuid(::getuid()); entry != nullptr && entry->pw_name != nullptr)
    return entry->pw_name;
  return "uid" + std::to_string(::getuid());
}

std::string not_sent(const std::string& why) {
  return why + ": the message was NOT sent; try again when smtpsd is running";
}

// The exit code of a refused recipient or message (RFC 3463: X.1.x is about the address).
int refusal_code(const smtp::ServerReply& reply) {
  if (reply.transient()) return kExTempFail;
  return reply.enhanced.rfind("5.1.", 0) == 0 ? kExNoUser : kExUnavailable;
}

// -bs: standard input to the socket (a lone LF becomes CRLF: a person or script typing SMTP
// ends lines with LF, and the server refuses bare LF), the socket to standard output, until
// the server closes.
int relay_smtp(int socket_fd, const SendEnvironment& env) {
  env.out.flush();
  bool input_open = true;
  char previous = 0;
  char buffer[8192];
  for (;;) {
    pollfd fds[2] = {{socket_fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    const int count = ::poll(fds, input_open ? 2 : 1, -1);
    if (count < 0) {
      if (errno == EINTR) continue;
      return kExTempFail;
    }
    if (fds[0].revents != 0) {
      const ssize_t n = ::read(socket_fd, buffer, sizeof buffer);
      if (n <= 0) return 0;  // the server closed (after QUIT, or a refusal)
      if (::write(STDOUT_FILENO, buffer, static_cast<std::size_t>(n)) != n) return kExTempFail;
    }
    if (input_open && fds[1].revents != 0) {
      const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n <= 0) {
        input_open = false;
        ::shutdown(socket_fd, SHUT_WR);
        continue;
      }
      std::string out;
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[i] == '\n' && previous != '\r') out += '\r';
        out += buffer[i];
        previous = buffer[i];
      }
      if (::send(socket_fd, out.data(), out.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(out.size()))
        return kExTempFail;
    }
  }
}

int speak_smtp(const std::string& socket_path, const SendEnvironment& env) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    env.err << "sendmail: "
            << not_sent("cannot reach smtpsd at " + socket_path + " (" + std::strerror(errno) + ")")
            << "\n";
    if (fd >= 0) ::close(fd);
    return kExTempFail;
  }
  const int code = relay_smtp(fd, env);
  ::close(fd);
  return code;
}

}  // namespace

std::optional<std::string> local_server_config(const SendmailArguments& arguments,
                                               const SendEnvironment& env) {
  if (!arguments.config_file.empty()) {
    if (is_server_config(arguments.config_file)) return arguments.config_file;
    return std::nullopt;
  }
  if (env.getenv("SMTPSCTL_CONFIG").value_or("") != "") return std::nullopt;
  if (auto server = env.getenv("SMTPSD_CONFIG"); server && !server->empty()) return *server;
  std::error_code ignored;
  if (std::filesystem::exists(kDefaultClientConfig, ignored)) return std::nullopt;
  return std::string(kDefaultServerConfig);
}

std::vector<std::string> take_recipients(MessageHead& head, const std::vector<std::string>& given,
                                         bool from_headers) {
  std::vector<std::string> recipients = given;
  if (from_headers) {
    for (const char* name : {"To", "Cc", "Bcc"}) {
      for (const std::string& value : head.values(name)) {
        for (std::string& address : parse_address_list(value))
          recipients.push_back(std::move(address));
      }
    }
  }
  head.remove("Bcc");
  return recipients;
}

std::string qualify_recipient(std::string_view address, std::string_view domain) {
  if (address.find('@') != std::string_view::npos) return std::string(address);
  return std::string(address) + "@" + std::string(domain);
}

int run_local_sendmail(const SendmailArguments& arguments, const std::string& server_config,
                       const SendEnvironment& env) {
  std::error_code ignored;
  if (server_config == kDefaultServerConfig &&
      !std::filesystem::exists(kDefaultServerConfig, ignored)) {
    env.err << "sendmail: no configuration: neither " << kDefaultClientConfig
            << " (sendmail over TLS to a server) nor " << kDefaultServerConfig
            << " (the local smtpsd) exists; give --config FILE, or set SMTPSCTL_CONFIG or "
               "SMTPSD_CONFIG (the message was NOT sent)\n";
    return kExConfig;
  }
  auto loaded = config::load_file(server_config, config::Reading::kClient);
  if (!loaded) {
    env.err << "sendmail: cannot use the server's configuration: " << loaded.error().to_string()
            << " (the message was NOT sent)\n";
    return kExConfig;
  }
  const config::LocalSubmissionSettings& local = loaded.value().local_submission;
  if (!local.enabled) {
    env.err << "sendmail: " << server_config
            << " has no [local_submission]: this server takes no mail from local programs "
               "(the message was NOT sent)\n";
    return kExConfig;
  }
  if (arguments.speak_smtp) return speak_smtp(local.socket, env);

  const std::string user = this_user();
  std::string sender = arguments.sender.empty() ? user + "@" + local.domain : arguments.sender;
  if (sender == "<>") sender.clear();
  LineReader reader(env.in, arguments.dot_ends);
  auto read = read_head(reader);
  if (!read) {
    env.err << "sendmail: " << read.error() << "\n";
    return kExDataErr;
  }
  MessageHead head = std::move(read.value());
  std::vector<std::string> recipients;
  for (const std::string& address :
       take_recipients(head, arguments.recipients, arguments.extract_recipients)) {
    recipients.push_back(qualify_recipient(address, local.domain));
  }
  if (recipients.empty()) {
    env.err << "sendmail: no recipients (give them as arguments, or -t to read To, Cc and Bcc)\n";
    return kExUsage;
  }
  // The server decides the envelope sender (local_submission.may_set_sender); a From header
  // added here follows the same rule, so that it names the sender the server will use.
  const auto& trusted = local.may_set_sender;
  const bool may_set = std::find(trusted.begin(), trusted.end(), user) != trusted.end();
  const std::string own = user + "@" + local.domain;
  complete_head(head, may_set && !sender.empty() ? sender : own, arguments.full_name,
                format_date_now(), new_message_id(local.domain));

  auto file = MessageFile::write(head, reader);
  if (!file) {
    if (!file.error().bad_input) {
      env.err << "sendmail: " << file.error().message << "\n";
      return kExTempFail;
    }
    env.err << "sendmail: " << file.error().message << " (the message was NOT sent)\n";
    return kExDataErr;
  }

  delivery::TransportOptions options;
  options.client.helo_name = "localhost";
  options.client.require_tls = false;
  options.client.starttls = false;
  options.starttls = false;
  options.connect_timeout = std::chrono::seconds(30);
  options.command_timeout = std::chrono::seconds(120);
  delivery::Endpoint endpoint{"localhost", local.socket, 0, true};
  auto opened = delivery::Connection::open(endpoint, options);
  if (!opened) {
    const delivery::TransportFailure& failure = opened.error();
    if (failure.stage == "greeting" && failure.reply && !failure.reply->transient()) {
      env.err << "sendmail: smtpsd refused local user " << user << ": "
              << base::terminal_safe(failure.reply->summary()) << " (the message was NOT sent)\n";
      return kExNoPerm;
    }
    const std::string why = failure.reply ? failure.reply->summary() : failure.detail;
    env.err << "sendmail: "
            << not_sent("cannot submit to smtpsd at " + local.socket + " (" +
                        base::terminal_safe(why) + ")")
            << "\n";
    return kExTempFail;
  }
  std::unique_ptr<delivery::Connection> connection = std::move(opened.value());
  const queue::StoredMessage message = file.value()->envelope("localhost", sender, recipients);
  auto sent = connection->send(message, all_recipients(message));
  connection->quit();
  if (!sent) {
    const delivery::TransportFailure& failure = sent.error();
    const std::string why = failure.reply ? failure.reply->summary() : failure.detail;
    env.err << "sendmail: the server did not take the message (" << failure.stage << ": "
            << base::terminal_safe(why) << "); the message was NOT sent\n";
    return failure.reply && !failure.reply->transient() ? kExUnavailable : kExTempFail;
  }
  int code = 0;
  std::size_t accepted = 0;
  std::string final_reply;
  for (const smtp::RecipientResult& result : sent.value()) {
    if (result.reply.positive()) {
      ++accepted;
      final_reply = result.reply.summary();
      continue;
    }
    env.err << "sendmail: recipient <" << base::terminal_safe(recipients[result.index])
            << "> refused: " << base::terminal_safe(result.reply.summary()) << "\n";
    const int this_code = refusal_code(result.reply);
    if (code == 0 || this_code == kExNoUser) code = this_code;
  }
  if (code != 0) {
    env.err << "sendmail: "
            << (accepted == 0 ? std::string("the message was NOT sent")
                              : "sent to the " + std::to_string(accepted) + " other recipient(s)")
            << "\n";
    return code;
  }
  if (arguments.verbose) env.out << base::terminal_safe(final_reply) << "\n";
  return 0;
}

}  // namespace app
