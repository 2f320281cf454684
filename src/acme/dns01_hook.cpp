// dns01_hook.cpp — see dns01_hook.h.
#include "acme/dns01_hook.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "acme/jws.h"
#include "base/ascii.h"
#include "obs/log.h"

extern char** environ;

namespace acme {
namespace {

constexpr std::size_t kMaxOutput = 2048;

}  // namespace

std::string dns01_txt_value(const std::string& key_authorization) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(key_authorization.data(), key_authorization.size(), digest, &size, EVP_sha256(),
             nullptr);
  return base64url(std::string_view(reinterpret_cast<const char*>(digest), size));
}

base::Expected<HookResult, std::string> run_hook(const std::vector<std::string>& argv,
                                                 std::chrono::milliseconds timeout) {
  if (argv.empty()) return base::unexpected(std::string("no command"));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return base::unexpected(std::string(strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  // The child starts with default signal handling (smtpsd ignores SIGPIPE) and no blocked
  // signals.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t defaults, none;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, argv[0].c_str(), &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(pipe_fds[1]);
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    return base::unexpected("cannot run " + argv[0] + ": " + strerror(spawned));
  }
  HookResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[512];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd waiting{pipe_fds[0], POLLIN, 0};
    const int ready = ::poll(&waiting, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t got = ::read(pipe_fds[0], buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // every writer closed: the hook (and what it started) is done
    if (result.output.size() < kMaxOutput)
      result.output.append(buffer, std::min<std::size_t>(static_cast<std::size_t>(got),
                                                         kMaxOutput - result.output.size()));
  }
  ::close(pipe_fds[0]);
  if (result.timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!result.timed_out && WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
  return result;
}

Dns01HookPublisher::Dns01HookPublisher(std::vector<std::string> hook,
                                       std::chrono::milliseconds hook_timeout,
                                       std::shared_ptr<dns::Resolver> resolver,
                                       std::chrono::milliseconds propagation_timeout,
                                       const std::atomic<bool>* cancel)
    : hook_(std::move(hook)),
      hook_timeout_(hook_timeout),
      resolver_(std::move(resolver)),
      propagation_timeout_(propagation_timeout),
      cancel_(cancel) {}

base::Expected<base::Ok, std::string> Dns01HookPublisher::run(const std::string& verb,
                                                              const std::string& record,
                                                              const std::string& value) {
  std::vector<std::string> argv = hook_;
  argv.insert(argv.end(), {verb, record, value});
  auto result = run_hook(argv, hook_timeout_);
  if (!result) return base::unexpected("dns_hook " + verb + ": " + result.error());
  std::string output = result->output;
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r'))
    output.pop_back();
  if (result->timed_out)
    return base::unexpected("dns_hook " + verb + " ran longer than " +
                            std::to_string(hook_timeout_.count()) + " ms and was killed" +
                            (output.empty() ? "" : ": " + output));
  if (result->exit_status != 0)
    return base::unexpected("dns_hook " + verb + " exited with status " +
                            std::to_string(result->exit_status) +
                            (output.empty() ? "" : ": " + output));
  return base::Ok{};
}

base::Expected<base::Ok, std::string> Dns01HookPublisher::publish(
    const std::string& name, const std::string& key_authorization) {
  const std::string record = "_acme-challenge." + base::ascii_lowercase(name);
  const std::string value = dns01_txt_value(key_authorization);
  {
    std::lock_guard lock(mutex_);
    values_[name] = value;
  }
  auto added = run(std::string("add"), record, value);
  if (!added) return added;
  obs::Log("acme_dns_record_added").kv("record", record).kv("value", value);
  // Tell the CA only once the record can be seen (§8.4: the CA looks it up at once).
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + propagation_timeout_;
  std::chrono::milliseconds pause(50);  // our own resolver: asking often costs little
  std::string last = "no answer yet";
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    dns::AnswerPtr answer = resolver_->lookup_and_wait(
        record, dns::Type::kTxt,
        std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(10'000)));
    if (answer && answer->status == dns::Status::kOk &&
        std::find(answer->texts.begin(), answer->texts.end(), value) != answer->texts.end()) {
      obs::Log("acme_dns_record_visible")
          .kv("record", record)
          .kv("after_ms",
              static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - started)
                                            .count()));
      return base::Ok{};
    }
    if (answer) last = answer->status == dns::Status::kOk ? "other values" : answer->detail;
    if (cancel_ != nullptr && cancel_->load()) return base::unexpected(std::string("stopping"));
    if (std::chrono::steady_clock::now() + pause > deadline)
      return base::unexpected("the TXT record " + record +
                              " was not visible through the "
                              "resolver within " +
                              std::to_string(propagation_timeout_.count()) + " ms (" +
                              (last.empty() ? "no such record" : last) + ")");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(1000));
  }
}

void Dns01HookPublisher::withdraw(const std::string& name) {
  std::string value;
  {
    std::lock_guard lock(mutex_);
    auto found = values_.find(name);
    if (found == values_.end()) return;
    value = found->second;
    values_.erase(found);
  }
  const std::string record = "_acme-challenge." + base::ascii_lowercase(name);
  if (auto removed = run("remove", record, value); !removed) {
    obs::Log("acme_dns_record_left", obs::Level::kWarning)
        .kv("record", record)
        .kv("error", removed.error());
  }
}

}  // namespace acme
