// control_commands.cpp — see control_commands.h. Text from the network (user names
// typed at AUTH, addresses, remote replies, domains) goes out through base::terminal_safe:
// smtpsctl prints the answer as it is, and a byte such as LF would also forge a line.
#include "app/smtpsd/control_commands.h"

#include <sstream>
#include <vector>

#include "base/terminal_text.h"

namespace app {

namespace {

using base::terminal_safe;

std::string queue_request(const std::vector<std::string>& words, queue::Scheduler& scheduler,
                          std::int64_t now_unix) {
  const std::string& verb = words[1];
  if (verb == "list" && words.size() == 2) {
    std::string out;
    for (const queue::QueueEntryView& entry : scheduler.list()) {
      std::int64_t age = entry.received_unix > 0 ? now_unix - entry.received_unix : 0;
      out += entry.id + " " + entry.state + " " + std::to_string(age) + " " +
             std::to_string(entry.size) + " " + std::to_string(entry.attempts) + " <" +
             terminal_safe(entry.sender) + ">\n";
    }
    return out;
  }
  if (verb == "flush" && words.size() == 2) {
    return "flushed " + std::to_string(scheduler.flush()) + " deferred messages\n";
  }
  if (words.size() != 3) {
    return "error: usage: queue list | queue show ID | queue flush | queue delete|hold|release "
           "ID\n";
  }
  const std::string& id = words[2];
  if (!queue::Spool::is_valid_id(id))
    return "error: '" + terminal_safe(id) + "' is not a queue id\n";
  if (verb == "show") {
    auto entry = scheduler.show(id);
    if (!entry) return "error: no message " + id + " in the queue\n";
    std::string out = "id: " + entry->id + "\nstate: " + entry->state + "\nsender: <" +
                      terminal_safe(entry->sender) +
                      ">\nreceived: " + std::to_string(entry->received_unix) + " (" +
                      std::to_string(now_unix - entry->received_unix) +
                      "s ago)\nsize: " + std::to_string(entry->size) +
                      "\nattempts: " + std::to_string(entry->attempts) + "\n";
    if (entry->state == "deferred") {
      out += "next attempt in: " + std::to_string(entry->next_attempt_unix - now_unix) + "s\n";
    }
    for (const queue::QueueRecipientView& r : entry->recipients) {
      out += "recipient: <" + terminal_safe(r.address) + "> " + r.state +
             (r.detail.empty() ? "" : ": " + terminal_safe(r.detail)) + "\n";
    }
    return out;
  }
  queue::Scheduler::Outcome outcome;
  std::string done;
  if (verb == "delete") {
    outcome = scheduler.remove(id);
    done = "deleted";
  } else if (verb == "hold") {
    outcome = scheduler.hold(id);
    done = "held";
  } else if (verb == "release") {
    outcome = scheduler.release(id);
    done = "released";
  } else {
    return "error: unknown queue command '" + terminal_safe(verb) + "'\n";
  }
  switch (outcome) {
    case queue::Scheduler::Outcome::kDone:
      return done + " " + id + "\n";
    case queue::Scheduler::Outcome::kLater:
      return done + " " + id + " (when its current delivery attempt ends)\n";
    case queue::Scheduler::Outcome::kNotFound:
      break;
  }
  return "error: no message " + id + " in the queue\n";
}

}  // namespace

std::string handle_control_request(const std::string& request, auth::FailureLimiter& limiter,
                                   std::chrono::steady_clock::time_point now,
                                   queue::Scheduler* scheduler, delivery::TlsMemory* tls_memory,
                                   std::int64_t now_unix) {
  std::istringstream in(request);
  std::vector<std::string> words;
  for (std::string word; in >> word;)
    words.push_back(word);
  if (words.size() == 2 && words[0] == "auth" && words[1] == "lockouts") {
    std::string out;
    for (const auth::Lockout& lockout : limiter.lockouts(now)) {
      out += lockout.ip + " " + (lockout.user.empty() ? "-" : terminal_safe(lockout.user)) + " " +
             std::to_string(lockout.failures) + " " + std::to_string(lockout.remaining.count()) +
             "\n";
    }
    return out;
  }
  if (words.size() == 3 && words[0] == "auth" && words[1] == "unlock") {
    if (limiter.unlock(words[2])) return "unlocked " + terminal_safe(words[2]) + "\n";
    return "error: nothing to unlock for " + terminal_safe(words[2]) + "\n";
  }
  if (words.size() >= 2 && words[0] == "queue") {
    if (scheduler == nullptr) return "error: this server has no queue to manage\n";
    return queue_request(words, *scheduler, now_unix);
  }
  if (words.size() >= 2 && words[0] == "tls" && tls_memory != nullptr) {
    if (words[1] == "memory" && words.size() == 2) {
      std::string out;
      for (const auto& [domain, level] : tls_memory->entries())
        out += terminal_safe(domain) + " " + std::string(delivery::to_string(level)) + "\n";
      return out;
    }
    if (words[1] == "forget" && words.size() == 3) {
      if (tls_memory->forget(words[2])) return "forgot " + terminal_safe(words[2]) + "\n";
      return "error: nothing remembered for " + terminal_safe(words[2]) + "\n";
    }
  }
  return "error: unknown request (auth lockouts | auth unlock IP_OR_USER | queue list | queue "
         "show ID | queue flush | queue delete|hold|release ID | tls memory | tls forget "
         "DOMAIN)\n";
}

}  // namespace app
