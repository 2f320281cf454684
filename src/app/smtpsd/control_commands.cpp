// control_commands.cpp — see control_commands.h. Text from the network (user names
// typed at AUTH, addresses, remote replies, domains) goes out through base::terminal_safe
// in text answers and base::append_json_string in JSON ones: smtpsctl prints the answer as
// it is, and a byte such as LF would also forge a line. The one exception is a message's
// content ("queue show ID body"), printed as stored, as postcat does.
#include "app/smtpsd/control_commands.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <span>
#include <sstream>
#include <vector>

#include "base/ascii.h"
#include "base/json.h"
#include "base/terminal_text.h"
#include "obs/log.h"
#include "queue/message_reader.h"
#include "smtp/address_grammar.h"

namespace app {

namespace {

using base::terminal_safe;

constexpr const char* kQueueUsage =
    "error: usage: queue list [SELECTION] | queue show ID [body] | queue flush [ID | "
    "SELECTION] | queue delete|hold|release|requeue ID|SELECTION (SELECTION: all, or "
    "to-domain=DOMAIN, from=ADDRESS and/or user=NAME; json on any)\n";

// The words after "queue VERB".
struct QueueArguments {
  std::string id;
  bool all = false;
  std::optional<std::string> to_domain;  // lower-case
  std::optional<std::string> from;       // "" for the null reverse-path
  std::optional<std::string> user;       // who authenticated to send it
  bool json = false;
  bool body = false;
  bool selection() const { return all || to_domain || from || user; }
};

base::Expected<QueueArguments, std::string> parse_queue_arguments(
    std::span<const std::string> words) {
  QueueArguments arguments;
  for (const std::string& word : words) {
    if (word == "json") {
      arguments.json = true;
    } else if (word == "body") {
      arguments.body = true;
    } else if (word == "all") {
      arguments.all = true;
    } else if (word.rfind("to-domain=", 0) == 0) {
      std::string domain = base::ascii_lowercase(std::string_view(word).substr(10));
      if (!domain.empty() && domain.back() == '.') domain.pop_back();
      auto valid = smtp::validate_domain(domain, /*allow_utf8=*/true);
      if (domain.empty() || !valid) {
        return base::unexpected("'" + terminal_safe(word.substr(10)) + "' is not a domain name" +
                                (valid ? "" : " (" + std::string(valid.error().reason) + ")"));
      }
      arguments.to_domain = domain;
    } else if (word.rfind("from=", 0) == 0) {
      std::string address = word.substr(5);
      if (address == "<>") {
        arguments.from = "";
        continue;
      }
      auto valid = smtp::validate_mailbox(address, /*allow_utf8=*/true);
      if (!valid) {
        return base::unexpected("'" + terminal_safe(address) + "' is not an address (" +
                                std::string(valid.error().reason) + "); use <> for bounces");
      }
      arguments.from = address;
    } else if (word.rfind("user=", 0) == 0) {
      if (word.size() == 5) return base::unexpected("user= needs a user name");
      arguments.user = word.substr(5);
    } else if (queue::Spool::is_valid_id(word) && arguments.id.empty()) {
      arguments.id = word;
    } else if (word.find('=') != std::string::npos || !arguments.id.empty()) {
      return base::unexpected("unknown option '" + terminal_safe(word) + "'");
    } else {
      return base::unexpected("'" + terminal_safe(word) + "' is not a queue id");
    }
  }
  if (!arguments.id.empty() && arguments.selection()) {
    return base::unexpected(
        "give a queue id or a selection (--all, --to-domain, --from, --user), not both");
  }
  if (arguments.all && (arguments.to_domain || arguments.from || arguments.user)) {
    return base::unexpected(
        "--all selects every message: give it alone, or narrow the "
        "selection with --to-domain/--from/--user instead");
  }
  return arguments;
}

bool matches(const queue::QueueEntryView& entry, const QueueArguments& arguments) {
  if (arguments.from && !base::equals_ignoring_case(entry.sender, *arguments.from)) return false;
  if (arguments.user && !base::equals_ignoring_case(entry.user, *arguments.user)) return false;
  if (arguments.to_domain) {
    bool any = std::any_of(
        entry.recipients.begin(), entry.recipients.end(), [&](const queue::QueueRecipientView& r) {
          return r.state == "pending" && base::address_domain(r.address) == *arguments.to_domain;
        });
    if (!any) return false;
  }
  return true;
}

// The messages a caller may see that the arguments select (every one for a bare list).
std::vector<queue::QueueEntryView> selected(const queue::Scheduler& scheduler,
                                            const QueueArguments& arguments,
                                            const ControlCaller& caller,
                                            const ControlContext& context) {
  std::vector<queue::QueueEntryView> out;
  for (queue::QueueEntryView& entry : scheduler.list(/*with_recipients=*/true)) {
    if (!matches(entry, arguments)) continue;
    if (!caller.all_messages && !is_own_message(entry, caller, context.is_local_address)) continue;
    out.push_back(std::move(entry));
  }
  return out;
}

void append_json_field(std::string& out, std::string_view name, std::string_view value) {
  base::append_json_string(out, name);
  out += ':';
  base::append_json_string(out, value);
}

void append_json_number(std::string& out, std::string_view name, std::int64_t value) {
  base::append_json_string(out, name);
  out += ':' + std::to_string(value);
}

void append_json_time(std::string& out, std::string_view name, std::int64_t unix_time) {
  base::append_json_string(out, name);
  out += ':';
  out += unix_time > 0 ? std::to_string(unix_time) : "null";
}

// One message as a JSON object; every_recipient: also the delivered and failed ones.
void append_json_entry(std::string& out, const queue::QueueEntryView& entry, std::int64_t now_unix,
                       bool every_recipient) {
  out += '{';
  append_json_field(out, "id", entry.id);
  out += ',';
  append_json_field(out, "state", entry.state);
  out += ",\"held\":";
  out += entry.state == "held" ? "true" : "false";
  out += ',';
  append_json_field(out, "sender", entry.sender);
  out += ',';
  append_json_field(out, "user", entry.user);
  out += ',';
  append_json_number(out, "size", static_cast<std::int64_t>(entry.size));
  out += ',';
  append_json_time(out, "received_unix", entry.received_unix);
  out += ',';
  append_json_number(out, "age_seconds",
                     entry.received_unix > 0 ? now_unix - entry.received_unix : 0);
  out += ',';
  append_json_number(out, "attempts", static_cast<std::int64_t>(entry.attempts));
  out += ',';
  append_json_time(out, "next_attempt_unix", entry.next_attempt_unix);
  out += ",\"requiretls\":";
  out += entry.require_tls ? "true" : "false";
  out += ",\"tls_optional\":";
  out += entry.tls_optional ? "true" : "false";
  out += ",\"recipients\":[";
  bool first = true;
  for (const queue::QueueRecipientView& r : entry.recipients) {
    if (!every_recipient && r.state != "pending") continue;
    if (!first) out += ',';
    first = false;
    out += '{';
    append_json_field(out, "address", r.address);
    out += ',';
    append_json_field(out, "state", r.state);
    out += ',';
    append_json_field(out, "last_error", r.state == "pending" ? r.detail : "");
    out += ',';
    append_json_field(out, "detail", r.detail);
    out += ',';
    append_json_time(out, "next_attempt_unix", r.next_attempt_unix);
    out += '}';
  }
  out += "]}";
}

// "    <bob@example.net> next attempt in 3588s: 451 4.3.0 try later"
std::string recipient_line(const queue::QueueRecipientView& r, std::int64_t now_unix) {
  std::string out = "    <" + terminal_safe(r.address) + ">";
  if (r.next_attempt_unix > 0) {
    out += " next attempt in " +
           std::to_string(std::max<std::int64_t>(0, r.next_attempt_unix - now_unix)) + "s";
  }
  out += r.detail.empty() ? std::string(" (not tried yet)") : ": " + terminal_safe(r.detail);
  return out + "\n";
}

std::string list_answer(const std::vector<queue::QueueEntryView>& entries,
                        const QueueArguments& arguments, std::int64_t now_unix) {
  std::string out;
  if (arguments.json) {
    out = "{\"messages\":[";
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out += ',';
      append_json_entry(out, entries[i], now_unix, /*every_recipient=*/false);
    }
    return out + "]}\n";
  }
  for (const queue::QueueEntryView& entry : entries) {
    std::int64_t age = entry.received_unix > 0 ? now_unix - entry.received_unix : 0;
    out += entry.id + " " + entry.state + " " + std::to_string(age) + " " +
           std::to_string(entry.size) + " " + std::to_string(entry.attempts) + " <" +
           terminal_safe(entry.sender) + ">\n";
    for (const queue::QueueRecipientView& r : entry.recipients) {
      if (r.state == "pending") out += recipient_line(r, now_unix);
    }
  }
  return out;
}

// The content of queue/<id> exactly as it will be delivered.
// XXX: held whole in memory for the one answer; it is bounded by the message size limit,
// and the command is the administrator's, rare, on the control socket's own thread.
base::Expected<std::string, std::string> message_content(queue::Spool& spool,
                                                         const std::string& id) {
  auto message = spool.load(id);
  if (!message) return base::unexpected(message.error().message);
  auto reader = queue::MessageReader::open(*message);
  if (!reader) return base::unexpected(reader.error().message);
  std::string content(static_cast<std::size_t>(reader->size()), '\0');
  std::size_t filled = 0;
  while (filled < content.size()) {
    auto got = reader->read(std::span<char>(content).subspan(filled));
    if (!got) return base::unexpected(got.error().message);
    if (*got == 0) break;
    filled += *got;
  }
  content.resize(filled);
  // Delivered meanwhile, its file may already hold the next message (Spool::remove).
  if (!spool.still_queued(*message)) {
    return base::unexpected("message " + id + " left the queue while it was read");
  }
  return content;
}

std::string show_answer(const queue::QueueEntryView& entry, const QueueArguments& arguments,
                        const ControlContext& context) {
  std::optional<std::string> content;
  if (arguments.body) {
    if (context.spool == nullptr) return "error: this server cannot read its spool here\n";
    auto read = message_content(*context.spool, entry.id);
    if (!read) return "error: cannot read " + entry.id + ": " + terminal_safe(read.error()) + "\n";
    content = std::move(read.value());
  }
  const std::int64_t now_unix = context.now_unix;
  if (arguments.json) {
    std::string out;
    append_json_entry(out, entry, now_unix, /*every_recipient=*/true);
    if (content) {
      out.pop_back();  // the closing brace
      out += ',';
      append_json_field(out, "body", *content);
      out += '}';
    }
    return out + "\n";
  }
  std::string out = "id: " + entry.id + "\nstate: " + entry.state + "\nsender: <" +
                    terminal_safe(entry.sender) +
                    ">\nreceived: " + std::to_string(entry.received_unix) + " (" +
                    std::to_string(now_unix - entry.received_unix) +
                    "s ago)\nsize: " + std::to_string(entry.size) +
                    "\nattempts: " + std::to_string(entry.attempts) + "\n";
  if (!entry.user.empty()) out += "user: " + terminal_safe(entry.user) + "\n";
  if (entry.state == "deferred") {
    out += "next attempt in: " + std::to_string(entry.next_attempt_unix - now_unix) + "s\n";
  }
  // RFC 8689: REQUIRETLS on MAIL, or the sender's "TLS-Required: No" (shown only when set).
  if (entry.require_tls) out += "requiretls: yes\n";
  if (entry.tls_optional) out += "tls_optional: yes\n";
  for (const queue::QueueRecipientView& r : entry.recipients) {
    out += "recipient: <" + terminal_safe(r.address) + "> " + r.state +
           (r.detail.empty() ? "" : ": " + terminal_safe(r.detail)) + "\n";
  }
  if (content) {
    // As postcat prints a queue file: the envelope above, then the message as stored.
    out = "*** ENVELOPE ***\n" + out + "*** MESSAGE CONTENTS " + entry.id + " ***\n" + *content;
    if (!content->empty() && content->back() != '\n') out += '\n';
    out += "*** END OF MESSAGE ***\n";
  }
  return out;
}

// delete / hold / release / requeue / flush of the ids given, and the answer. lift_hold,
// when given, runs once the messages are acted on (a user's held mail is released before
// the user's sending hold is lifted: a message the user sends meanwhile is held still, and
// is released by the next such command); its true is said in the answer.
std::string act_on(const std::string& verb, const std::vector<std::string>& ids, bool by_id,
                   const QueueArguments& arguments, queue::Scheduler& scheduler,
                   const std::function<bool()>& lift_hold = {}) {
  const std::string done = verb == "delete"    ? "deleted"
                           : verb == "hold"    ? "held"
                           : verb == "release" ? "released"
                           : verb == "flush"   ? "flushed"
                                               : "requeued";
  struct Result {
    std::string id;
    bool later = false;
  };
  std::vector<Result> results;
  for (const std::string& id : ids) {
    queue::Scheduler::Outcome outcome = queue::Scheduler::Outcome::kNotFound;
    if (verb == "delete") {
      outcome = scheduler.remove(id);
    } else if (verb == "hold") {
      outcome = scheduler.hold(id);
    } else if (verb == "release") {
      outcome = scheduler.release(id);
    } else {
      // flush / requeue: only deferred messages are tried again now; the others are
      // already on their way, or held.
      if (!scheduler.retry_now(id)) {
        if (by_id && !scheduler.show(id)) return "error: no message " + id + " in the queue\n";
        continue;
      }
      outcome = queue::Scheduler::Outcome::kDone;
    }
    if (outcome == queue::Scheduler::Outcome::kNotFound) {
      if (by_id) return "error: no message " + id + " in the queue\n";
      continue;  // gone since it was listed: delivered meanwhile
    }
    results.push_back(Result{id, outcome == queue::Scheduler::Outcome::kLater});
  }
  const bool hold_lifted = lift_hold && lift_hold();
  const std::string lifted_line =
      hold_lifted
          ? "lifted the sending hold of " + terminal_safe(arguments.user.value_or("")) + "\n"
          : "";
  if (arguments.json) {
    std::string out = "{";
    append_json_field(out, "action", done);
    out += ",\"count\":" + std::to_string(results.size()) + ",\"messages\":[";
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (i > 0) out += ',';
      out += '{';
      append_json_field(out, "id", results[i].id);
      out += ",\"when_attempt_ends\":";
      out += results[i].later ? "true" : "false";
      out += '}';
    }
    out += ']';
    if (hold_lifted) out += ",\"sending_hold_lifted\":true";
    return out + "}\n";
  }
  if (verb == "flush" || verb == "requeue") {
    // The words the first smtpsctl printed ("flushed 2 deferred messages").
    std::string out = done + " " + std::to_string(results.size()) + " deferred messages";
    if (verb == "requeue") out += " (next hops forgotten)";
    out += "\n";
    for (const Result& result : results)
      out += "  " + result.id + "\n";
    return out;
  }
  if (results.empty()) return "no message selected\n" + lifted_line;
  std::string out;
  for (const Result& result : results) {
    out += done + " " + result.id +
           (result.later ? " (when its current delivery attempt ends)" : "") + "\n";
  }
  return out + lifted_line;
}

std::string queue_request(const std::vector<std::string>& words, const ControlContext& context,
                          const ControlCaller& caller) {
  queue::Scheduler& scheduler = *context.scheduler;
  const std::string& verb = words[1];
  auto parsed = parse_queue_arguments(std::span(words).subspan(2));
  if (!parsed) return "error: " + parsed.error() + "\n";
  const QueueArguments& arguments = parsed.value();
  if (caller.read_only && verb != "list") {
    return "error: permission denied: this socket only lists your own messages (root or the "
           "server's user can " +
           terminal_safe(verb) + " messages)\n";
  }
  if (arguments.body && verb != "show") return "error: body goes with queue show ID only\n";
  if (verb == "list") {
    if (!arguments.id.empty()) return "error: queue list takes no id (use queue show ID)\n";
    return list_answer(selected(scheduler, arguments, caller, context), arguments,
                       context.now_unix);
  }
  if (verb == "show") {
    if (arguments.id.empty() || arguments.selection()) return kQueueUsage;
    auto entry = scheduler.show(arguments.id);
    if (!entry) return "error: no message " + arguments.id + " in the queue\n";
    return show_answer(*entry, arguments, context);
  }
  const bool known = verb == "delete" || verb == "hold" || verb == "release" || verb == "flush" ||
                     verb == "requeue";
  if (!known) return "error: unknown queue command '" + terminal_safe(verb) + "'\n";
  std::vector<std::string> ids;
  const bool by_id = !arguments.id.empty();
  if (by_id) {
    ids.push_back(arguments.id);
  } else if (arguments.selection() || verb == "flush") {  // a bare flush: every message
    for (const queue::QueueEntryView& entry : selected(scheduler, arguments, caller, context))
      ids.push_back(entry.id);
  } else {
    return "error: queue " + verb + " needs a queue id, --all, --to-domain, --from or --user\n";
  }
  if (verb == "requeue" && context.forget_next_hops) context.forget_next_hops();
  std::function<bool()> lift_hold;
  if (verb == "release" && arguments.user && context.sending_limiter != nullptr) {
    lift_hold = [&] {
      if (!context.sending_limiter->lift(*arguments.user)) return false;
      obs::Log("user_released", obs::Level::kWarning).kv("user", *arguments.user);
      return true;
    };
  }
  return act_on(verb, ids, by_id, arguments, scheduler, lift_hold);
}

}  // namespace

bool is_own_message(const queue::QueueEntryView& entry, const ControlCaller& caller,
                    const std::function<bool(std::string_view address)>& is_local_address) {
  if (caller.user.empty() || !is_local_address) return false;
  std::size_t at = entry.sender.rfind('@');
  if (at == std::string::npos) return false;
  return base::equals_ignoring_case(std::string_view(entry.sender).substr(0, at), caller.user) &&
         is_local_address(entry.sender);
}

std::string handle_control_request(const std::string& request, const ControlContext& context,
                                   const ControlCaller& caller) {
  std::istringstream in(request);
  std::vector<std::string> words;
  for (std::string word; in >> word;)
    words.push_back(word);
  if (caller.read_only && !(words.size() >= 2 && words[0] == "queue")) {
    return "error: permission denied: this socket only lists your own queued messages\n";
  }
  if (words.size() == 2 && words[0] == "auth" && words[1] == "lockouts" && context.limiter) {
    std::string out;
    for (const auth::Lockout& lockout : context.limiter->lockouts(context.now)) {
      out += lockout.ip + " " + (lockout.user.empty() ? "-" : terminal_safe(lockout.user)) + " " +
             std::to_string(lockout.failures) + " " + std::to_string(lockout.remaining.count()) +
             "\n";
    }
    return out;
  }
  if (words.size() == 2 && words[0] == "auth" && words[1] == "held") {
    if (context.sending_limiter == nullptr) return "";
    std::string out;
    for (const auth::Containment& held : context.sending_limiter->containments()) {
      out += terminal_safe(held.user) + " " + std::to_string(held.count) + " " +
             std::to_string(held.bound) + " " + std::string(auth::to_string(held.window)) + " " +
             std::to_string(held.since_unix) + "\n";
    }
    return out;
  }
  if (words.size() == 3 && words[0] == "auth" && words[1] == "unlock" && context.limiter) {
    // The failure lockouts of an address or user, and a user's hold by the sending limits:
    // the administrator who unlocks a user trusts it again. The mail held meanwhile stays
    // held (it may be what a thief sent): queue release --user or queue delete --user.
    const bool unlocked = context.limiter->unlock(words[2]);
    const bool lifted =
        context.sending_limiter != nullptr && context.sending_limiter->lift(words[2]);
    if (!unlocked && !lifted)
      return "error: nothing to unlock for " + terminal_safe(words[2]) + "\n";
    std::string out = "unlocked " + terminal_safe(words[2]) + "\n";
    if (lifted) {
      obs::Log("user_released", obs::Level::kWarning).kv("user", words[2]);
      out += "lifted the sending hold of " + terminal_safe(words[2]) +
             "; the mail held meanwhile stays held: smtpsctl queue release --user " +
             terminal_safe(words[2]) + " (or queue delete --user)\n";
    }
    return out;
  }
  if (words.size() >= 2 && words.size() <= 4 && words[0] == "cert") {
    if (!context.certificates)
      return "error: ACME is off: certificates come from [[tls.certificates]] (README \"ACME\")\n";
    std::vector<std::string> rest(words.begin() + 1, words.end());
    return context.certificates(rest);
  }
  if (words.size() >= 2 && words[0] == "queue") {
    if (context.scheduler == nullptr) return "error: this server has no queue to manage\n";
    return queue_request(words, context, caller);
  }
  if (words.size() == 1 && words[0] == "queue") return kQueueUsage;
  if (words.size() == 3 && words[0] == "tls" && words[1] == "policy" &&
      context.describe_tls_policy && !caller.read_only) {
    std::string domain = base::ascii_lowercase(words[2]);
    if (!domain.empty() && domain.back() == '.') domain.pop_back();
    if (domain.empty() || !smtp::validate_domain(domain, /*allow_utf8=*/false)) {
      return "error: '" + terminal_safe(words[2]) + "' is not a domain name\n";
    }
    // Line by line: names from DNS are printed, never interpreted by the terminal.
    std::string out;
    const std::string policy = context.describe_tls_policy(domain);
    std::string_view text = policy;
    while (!text.empty()) {
      const std::size_t end = text.find('\n');
      out += terminal_safe(text.substr(0, end)) + "\n";
      text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    }
    return out;
  }
  delivery::TlsMemory* tls_memory = context.tls_memory;
  if (words.size() >= 2 && words[0] == "tls" && tls_memory != nullptr) {
    if (words[1] == "memory" && words.size() == 2) {
      std::string out;
      for (const auto& [domain, level] : tls_memory->entries())
        out += terminal_safe(domain) + " " + std::string(delivery::to_string(level)) + "\n";
      return out;
    }
    if (words[1] == "exceptions" && words.size() == 2) {
      std::string out;
      for (const auto& [domain, until] : tls_memory->exceptions()) {
        const std::int64_t left = until - context.now_unix;
        out += terminal_safe(domain) + " " +
               (left > 0 ? std::to_string(left) + "s left" : std::string("ended")) + "\n";
      }
      return out;
    }
    if (words[1] == "except" && words.size() == 4) {
      std::string domain = base::ascii_lowercase(words[2]);
      if (!domain.empty() && domain.back() == '.') domain.pop_back();
      if (domain.empty() || !smtp::validate_domain(domain, /*allow_utf8=*/false))
        return "error: '" + terminal_safe(words[2]) + "' is not a domain name\n";
      std::int64_t seconds = -1;
      auto [end, problem] =
          std::from_chars(words[3].data(), words[3].data() + words[3].size(), seconds);
      // An exception always ends: 30 days at most.
      if (problem != std::errc() || end != words[3].data() + words[3].size() || seconds < 0 ||
          seconds > 30 * 86400)
        return "error: the exception lasts 0 to 720 hours\n";
      if (seconds == 0) {
        if (!tls_memory->except(domain, 0))
          return "error: no exception for " + terminal_safe(domain) + "\n";
        obs::Log("tls_exception_ended").kv("domain", domain);
        return "exception for " + terminal_safe(domain) + " ended\n";
      }
      tls_memory->except(domain, context.now_unix + seconds);
      obs::Log("tls_exception_set", obs::Level::kWarning)
          .kv("domain", domain)
          .kv("until", context.now_unix + seconds);
      return "mail to " + terminal_safe(domain) +
             " goes with opportunistic TLS (no DANE, MTA-STS, table or memory) for " +
             std::to_string(seconds) + "s\n";
    }
    if (words[1] == "forget" && words.size() == 3) {
      if (tls_memory->forget(words[2])) return "forgot " + terminal_safe(words[2]) + "\n";
      return "error: nothing remembered for " + terminal_safe(words[2]) + "\n";
    }
  }
  return "error: unknown request (auth lockouts | auth held | auth unlock IP_OR_USER | queue list "
         "| queue "
         "show ID | queue flush | queue delete|hold|release|requeue ID | tls memory | tls "
         "forget DOMAIN | tls policy DOMAIN | tls except DOMAIN SECONDS | tls exceptions)\n";
}

std::string handle_control_request(const std::string& request, auth::FailureLimiter& limiter,
                                   std::chrono::steady_clock::time_point now,
                                   queue::Scheduler* scheduler, delivery::TlsMemory* tls_memory,
                                   std::int64_t now_unix) {
  ControlContext context;
  context.limiter = &limiter;
  context.now = now;
  context.scheduler = scheduler;
  context.tls_memory = tls_memory;
  context.now_unix = now_unix;
  return handle_control_request(request, context);
}

}  // namespace app
