// milter_check.cpp — see milter_check.h.
#include "intake/milter_check.h"

#include <atomic>
#include <utility>

#include "base/duration_text.h"
#include "base/network.h"
#include "intake/message_intake.h"
#include "milter/client.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "queue/spool.h"

namespace intake {
namespace {

using Clock = milter::Clock;

// Postfix's texts for a milter's reject and tempfail without SMFIR_REPLYCODE.
const smtp::Reply kRejected{550, "5.7.1", "Command rejected"};
const smtp::Reply kTempfailed{451, "4.7.1", "Service unavailable - try again later"};

bool message_stage(Stage stage) {
  return stage == Stage::kDataStart || stage == Stage::kEndOfData;
}

// The end of data may take longer for a big message: each header field and body piece is a
// step of its own (each within the milter's `timeout`), and the whole within deadline() plus
// a second per MiB of content, at most five minutes (RFC 5321 §4.5.3.2.6 gives the client
// ten to wait for the reply to the end of data).
constexpr std::uint64_t kOctetsPerExtraSecond = 1024 * 1024;
constexpr std::chrono::milliseconds kLongestEndOfData = std::chrono::minutes(5);

// The facts a step needs, copied out of the Context (valid during run() only).
struct Facts {
  std::string session_id;
  std::string client_address;
  std::uint16_t client_port = 0;
  std::string role;
  std::string helo;
  std::string tls_version;
  std::string tls_cipher;
  std::string authenticated_user;
  std::string sender;
  std::string recipient;
  std::string queue_id;
  // kEndOfData: the client's header section, every edit of the checks so far, the content.
  std::string header_section;
  std::vector<HeaderEdit> edits;
  std::shared_ptr<const queue::ContentReader> content;
  std::uint64_t body_offset = 0;
  bool header_section_too_large = false;
};

Facts facts_of(Stage stage, const Context& context) {
  Facts facts;
  facts.session_id = std::string(context.session_id);
  facts.client_address = std::string(context.client_address);
  facts.client_port = context.client_port;
  facts.role = std::string(context.role);
  facts.helo = std::string(context.helo);
  facts.tls_version = std::string(context.tls_version);
  facts.tls_cipher = std::string(context.tls_cipher);
  facts.authenticated_user = std::string(context.authenticated_user);
  facts.sender = std::string(context.sender);
  facts.recipient = std::string(context.recipient);
  facts.queue_id = std::string(context.queue_id);
  if (stage == Stage::kEndOfData) {
    facts.header_section = std::string(context.header_section);
    for (const Verdict* verdict : {context.earlier_stages, context.earlier}) {
      if (verdict == nullptr) continue;
      facts.edits.insert(facts.edits.end(), verdict->header_edits.begin(),
                         verdict->header_edits.end());
    }
    facts.content = context.content;
    facts.body_offset = context.body_offset;
  }
  facts.header_section_too_large = context.header_section_too_large;
  return facts;
}

obs::Counter& failures_counter(const std::string& name) {
  return obs::metrics().counter("smtpsd_milter_failures_total",
                                "Milter failures (down, timed out, closed, protocol errors): the "
                                "milter's default action applied.",
                                {{"milter", name}});
}

}  // namespace

struct MilterCheck::Session {
  Session(std::shared_ptr<const MilterSettings> settings_in,
          std::shared_ptr<milter::Workers::Strand> strand_in, std::string id,
          obs::Counter& failures_in)
      : settings(std::move(settings_in)),
        strand(std::move(strand_in)),
        session_id(std::move(id)),
        failures(failures_in) {}

  std::shared_ptr<const MilterSettings> settings;
  std::shared_ptr<milter::Workers::Strand> strand;
  std::string session_id;
  obs::Counter& failures;
  // Read on the I/O thread to answer at once: the milter is out of this session.
  std::atomic<bool> failed{false};
  std::atomic<bool> accepted{false};

  // The rest on the strand only.
  std::unique_ptr<milter::Client> client;
  bool discard_session = false;  // a discard at connect or HELO: every message
  bool transaction = false;      // MAIL sent, no end of message or abort since
  bool message_done = false;     // the milter decided this message (or it was aborted)
  bool discard = false;          // a discard at MAIL or RCPT: at the end of data
  bool skip_body = false;        // SMFIR_SKIP

  std::string_view name() const { return settings->name; }

  Verdict default_verdict() const {
    return settings->default_accept ? Verdict::pass() : Verdict::refuse(kTempfailed);
  }

  // A failure: logged, counted; the default action from now on.
  Verdict failure(Stage stage, const std::string& why) {
    if (!failed.exchange(true)) {
      failures.inc();
      obs::Log("milter_failed", obs::Level::kWarning)
          .kv("session", session_id)
          .kv("milter", settings->name)
          .kv("stage", to_string(stage))
          .kv("reason", why)
          .kv("action", settings->default_accept ? "accept" : "tempfail");
    }
    if (client) client.reset();
    return default_verdict();
  }

  // Opens the conversation at the first step (the connect stage, normally).
  std::optional<Verdict> ensure_connected(Stage stage, const Facts& facts,
                                          Clock::time_point limit) {
    // Once: a milter that failed is not asked again in this session (its default applies).
    if (client || failed) return std::nullopt;
    milter::ClientOptions options;
    options.endpoint = settings->endpoint;
    options.timeout = settings->timeout;
    options.macros = settings->macros;
    client = std::make_unique<milter::Client>(std::move(options));
    const bool local = facts.role == "local";
    const std::string address = local ? std::string("127.0.0.1") : facts.client_address;
    const std::string name = local ? std::string("localhost") : std::string("unknown");
    client->set_macro("j", settings->hostname);
    client->set_macro("{daemon_name}", settings->hostname);
    client->set_macro("v", "smtpsd");
    client->set_macro("_", name + " [" + address + "]");
    client->set_macro("{client_addr}", address);
    client->set_macro("{client_name}", name);
    client->set_macro("{client_port}", std::to_string(local ? 0 : facts.client_port));
    char family = 'L';
    if (base::parse_ip(address)) family = address.find(':') != std::string::npos ? '6' : '4';
    milter::Outcome outcome = client->connect(name, family, local ? 0 : facts.client_port,
                                              family == 'L' ? std::string() : address, limit);
    Verdict verdict = decide(Stage::kConnect, std::move(outcome));
    if (stage == Stage::kConnect || verdict.kind != Verdict::Kind::kPass) return verdict;
    return std::nullopt;
  }

  // A step's outcome as a verdict; moves the session's state on.
  Verdict decide(Stage stage, milter::Outcome outcome) {
    using Kind = milter::Outcome::Kind;
    if (outcome.kind != Kind::kContinue && outcome.kind != Kind::kSkip &&
        outcome.kind != Kind::kFailed) {
      obs::Log line("milter_reply");
      line.kv("session", session_id)
          .kv("milter", settings->name)
          .kv("stage", to_string(stage))
          .kv("reply", milter::to_string(outcome.kind));
      if (outcome.reply) line.kv("code", static_cast<std::int64_t>(outcome.reply->code));
    }
    switch (outcome.kind) {
      case Kind::kFailed:
        return failure(stage, outcome.failure);
      case Kind::kContinue:
        return Verdict::pass();
      case Kind::kSkip:
        skip_body = true;
        return Verdict::pass();
      case Kind::kAccept:
        if (stage == Stage::kConnect || stage == Stage::kHelo) {
          accepted = true;
          client->quit(Clock::now() + settings->timeout);
        } else {
          message_done = true;
        }
        return Verdict::pass();
      case Kind::kReject:
      case Kind::kTempfail: {
        if (stage == Stage::kMail) transaction = false;
        if (message_stage(stage)) message_done = true;
        smtp::Reply reply =
            outcome.reply.value_or(outcome.kind == Kind::kReject ? kRejected : kTempfailed);
        return Verdict::refuse(std::move(reply));
      }
      case Kind::kDiscard:
        if (stage == Stage::kConnect || stage == Stage::kHelo) {
          discard_session = true;
          return Verdict::pass();
        }
        if (!message_stage(stage)) {
          discard = true;
          return Verdict::pass();
        }
        message_done = true;
        Verdict verdict;
        verdict.kind = Verdict::Kind::kDiscard;
        return verdict;
    }
    return Verdict::pass();
  }

  // The end of data: the message as it stands after the checks before this one (our
  // Authentication-Results on top, the fields they removed gone), the body read back from the
  // spool in pieces, then the end of message.
  Verdict message(Facts& facts, Clock::time_point limit) {
    milter::Client& c = *client;
    // Edits that cannot be made fail the message at apply() anyway: the milter then sees the
    // section as received.
    std::string section = facts.header_section;
    if (auto edited = edit_header_section(facts.header_section, facts.edits))
      section = std::move(edited.value());
    std::vector<std::string> on_top;  // the fields added on top, which the milter sees first
    for (const HeaderEdit& edit : facts.edits)
      if (edit.kind == HeaderEdit::Kind::kAdd) on_top.push_back(edit.name);
    std::size_t position = 0;
    while (position < section.size()) {
      std::size_t end = section.find("\r\n", position);
      if (end == position) break;  // the empty line
      while (end != std::string::npos && end + 2 < section.size() &&
             (section[end + 2] == ' ' || section[end + 2] == '\t'))
        end = section.find("\r\n", end + 2);
      if (end == std::string::npos) end = section.size();  // content that ends inside a field
      std::string_view field(section.data() + position, end - position);
      position = end + 2;
      const std::size_t colon = field.find(':');
      std::string_view name = field.substr(0, colon);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
        name.remove_suffix(1);
      std::string_view value =
          colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1);
      if (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      milter::Outcome outcome = c.header(name, value, limit);
      if (outcome.kind != milter::Outcome::Kind::kContinue) {
        Verdict verdict = decide(Stage::kEndOfData, std::move(outcome));
        if (failed || message_done) return verdict;
      }
    }
    if (Verdict verdict = decide(Stage::kEndOfData, c.end_of_headers(limit));
        failed || message_done) {
      return verdict;
    }
    std::string piece;
    for (std::uint64_t at = facts.body_offset; !skip_body && at < facts.content->size();
         at += piece.size()) {
      if (auto read = facts.content->read(at, milter::kMaxBodyChunk, piece); !read) {
        // Our disk, not the milter: this message gets the default action, the session's
        // next one the milter again.
        c.abort(limit);
        message_done = true;
        obs::Log("milter_skipped", obs::Level::kWarning)
            .kv("session", session_id)
            .kv("milter", settings->name)
            .kv("reason", read.error())
            .kv("action", settings->default_accept ? "accept" : "tempfail");
        return default_verdict();
      }
      if (piece.empty()) break;
      Verdict verdict = decide(Stage::kEndOfData, c.body(piece, limit));
      if (failed || message_done) return verdict;
    }
    return end_of_data(c.end_of_message(limit), on_top);
  }

  // The end of message's reply with the modifications as edits. `on_top`: the names of the
  // fields the milter saw above the client's (ours), which the edits' indexes do not count.
  Verdict end_of_data(milter::Outcome outcome, const std::vector<std::string>& on_top) {
    std::vector<milter::Response> modifications = std::move(outcome.modifications);
    std::optional<std::string> new_body = std::move(outcome.new_body);
    Verdict verdict = decide(Stage::kEndOfData, std::move(outcome));
    if (verdict.kind != Verdict::Kind::kPass) return verdict;
    if (failed) return verdict;  // the default action, without edits
    verdict.new_body = std::move(new_body);
    for (milter::Response& m : modifications) {
      using R = milter::Response::Kind;
      switch (m.kind) {
        case R::kQuarantine:
          obs::Log("milter_quarantine")
              .kv("session", session_id)
              .kv("milter", settings->name)
              .kv("reason", m.text);
          verdict.kind = Verdict::Kind::kHold;
          break;
        case R::kAddHeader:
          verdict.header_edits.push_back(HeaderEdit{HeaderEdit::Kind::kAppend, m.name, m.text, 1});
          break;
        case R::kInsertHeader: {
          const auto tops = static_cast<unsigned>(on_top.size());
          verdict.header_edits.push_back(HeaderEdit{HeaderEdit::Kind::kInsert, m.name, m.text,
                                                    m.index > tops ? m.index - tops : 0});
          break;
        }
        case R::kChangeHeader: {
          unsigned index = m.index == 0 ? 1u : m.index;
          const auto ours = static_cast<unsigned>(std::count_if(
              on_top.begin(), on_top.end(),
              [&](const std::string& name) { return base::equals_ignoring_case(name, m.name); }));
          if (index <= ours) {  // a field of ours (our Authentication-Results): kept
            obs::Log("milter_edit_ignored", obs::Level::kWarning)
                .kv("session", session_id)
                .kv("milter", settings->name)
                .kv("field", m.name)
                .kv("reason", "the field is ours");
            break;
          }
          verdict.header_edits.push_back(
              HeaderEdit{m.text.empty() ? HeaderEdit::Kind::kDelete : HeaderEdit::Kind::kChange,
                         m.name, m.text, index - ours});
          break;
        }
        case R::kChangeSender:
          verdict.new_sender = m.text;
          break;
        case R::kAddRecipient:
          verdict.add_recipients.push_back(m.text);
          break;
        case R::kDeleteRecipient:
          verdict.delete_recipients.push_back(m.text);
          break;
        default:
          break;
      }
    }
    if (discard && verdict.kind == Verdict::Kind::kPass) {
      Verdict dropped;
      dropped.kind = Verdict::Kind::kDiscard;
      return dropped;
    }
    return verdict;
  }
};

namespace {

// The message's CheckState: when it goes away before the end of data was sent (the message
// was refused, RSET, the client left), the milter hears SMFIC_ABORT.
class MilterMessage final : public CheckState {
 public:
  explicit MilterMessage(std::shared_ptr<MilterCheck::Session> session)
      : session_(std::move(session)) {}
  ~MilterMessage() override {
    if (ended_) return;
    session_->strand->post([session = session_] {
      if (session->client && session->transaction)
        session->client->abort(Clock::now() + session->settings->timeout);
      session->transaction = false;
      session->message_done = true;
    });
  }
  void end() { ended_ = true; }

 private:
  std::shared_ptr<MilterCheck::Session> session_;
  bool ended_ = false;
};

}  // namespace

MilterCheck::MilterCheck(MilterSettings settings, std::shared_ptr<milter::Workers> workers)
    : settings_(std::make_shared<const MilterSettings>(std::move(settings))),
      name_("milter:" + settings_->name),
      workers_(std::move(workers)),
      failures_(failures_counter(settings_->name)) {}

MilterCheck::~MilterCheck() = default;

StageMask MilterCheck::stages() const {
  return mask(Stage::kConnect) | mask(Stage::kHelo) | mask(Stage::kMail) | mask(Stage::kRcpt) |
         mask(Stage::kDataStart) | mask(Stage::kEndOfData);
}

std::string MilterCheck::summary() const {
  return base::to_string(settings_->endpoint) + ", timeout " +
         base::duration_text(settings_->timeout) + ", default " +
         (settings_->default_accept ? "accept" : "tempfail");
}

std::chrono::milliseconds MilterCheck::deadline() const {
  return settings_->timeout * 4 + std::chrono::seconds(1);
}

std::chrono::milliseconds MilterCheck::deadline_for(Stage stage, const Context& context) const {
  if (stage != Stage::kEndOfData || !context.content) return deadline();
  const std::chrono::milliseconds more(context.content->size() * 1000 / kOctetsPerExtraSecond);
  return std::min(deadline() + more, std::max(deadline(), kLongestEndOfData));
}

Verdict MilterCheck::timeout_verdict(Stage) const {
  return settings_->default_accept ? Verdict::pass() : Verdict::refuse(kTempfailed);
}

std::shared_ptr<MilterCheck::Session> MilterCheck::session_for(const Context& context) {
  std::lock_guard lock(mutex_);
  auto found = sessions_.find(std::string(context.session_id));
  if (found != sessions_.end()) return found->second;
  auto session = std::make_shared<Session>(settings_, workers_->strand(),
                                           std::string(context.session_id), failures_);
  sessions_.emplace(session->session_id, session);
  return session;
}

void MilterCheck::session_closed(std::string_view session_id) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mutex_);
    auto found = sessions_.find(std::string(session_id));
    if (found == sessions_.end()) return;
    session = std::move(found->second);
    sessions_.erase(found);
  }
  session->strand->post([session] {
    if (session->client) session->client->quit(Clock::now() + session->settings->timeout);
    session->client.reset();
  });
}

void MilterCheck::run(Stage stage, const Context& context, Done done) {
  std::shared_ptr<Session> session = session_for(context);
  if (session->failed || session->accepted) {
    done(session->failed && !session->accepted ? session->default_verdict() : Verdict::pass());
    return;
  }
  // The step's own end, a little inside the host's deadline so that its verdict comes first.
  const Clock::time_point limit =
      Clock::now() + deadline_for(stage, context) - std::chrono::milliseconds(200);
  MilterMessage* message = nullptr;
  if (context.state != nullptr) {
    if (stage == Stage::kDataStart || !*context.state)
      *context.state = std::make_unique<MilterMessage>(session);
    message = static_cast<MilterMessage*>(context.state->get());
  }
  if (stage == Stage::kEndOfData && message != nullptr) message->end();
  Facts facts = facts_of(stage, context);
  session->strand->post(
      [session, stage, facts = std::move(facts), limit, done = std::move(done)]() mutable {
        Session& s = *session;
        if (auto opened = s.ensure_connected(stage, facts, limit)) {
          done(std::move(*opened));
          return;
        }
        if (s.failed) {
          done(s.default_verdict());
          return;
        }
        if (s.accepted) {
          done(Verdict::pass());
          return;
        }
        milter::Client& client = *s.client;
        switch (stage) {
          case Stage::kConnect:
            done(Verdict::pass());  // ensure_connected ran the step
            return;
          case Stage::kHelo:
            client.set_macro("{tls_version}", facts.tls_version);
            client.set_macro("{cipher}", facts.tls_cipher);
            if (facts.tls_version.empty()) {
              client.clear_macro("{tls_version}");
              client.clear_macro("{cipher}");
            }
            done(s.decide(stage, client.helo(facts.helo, limit)));
            return;
          case Stage::kMail:
            if (s.transaction) client.abort(limit);
            s.transaction = true;
            s.message_done = false;
            s.discard = s.discard_session;
            s.skip_body = false;
            client.clear_macro("i");
            client.set_macro("{mail_addr}", facts.sender);
            if (facts.authenticated_user.empty()) {
              client.clear_macro("{auth_authen}");
            } else {
              client.set_macro("{auth_authen}", facts.authenticated_user);
            }
            done(s.decide(stage, client.mail(facts.sender, limit)));
            return;
          case Stage::kRcpt:
            if (s.message_done) {
              done(Verdict::pass());
              return;
            }
            client.set_macro("{rcpt_addr}", facts.recipient);
            done(s.decide(stage, client.rcpt(facts.recipient, limit)));
            return;
          case Stage::kDataStart:
            if (s.message_done) {
              done(Verdict::pass());
              return;
            }
            client.set_macro("i", facts.queue_id);
            done(s.decide(stage, client.data(limit)));
            return;
          case Stage::kEndOfData: {
            if (s.message_done) {
              s.transaction = false;
              Verdict verdict;
              if (s.discard) verdict.kind = Verdict::Kind::kDiscard;
              done(std::move(verdict));
              return;
            }
            if (facts.header_section_too_large || !facts.content) {
              // This message only (the milter has not failed): it hears SMFIC_ABORT, the
              // message gets the default action, the session's next message the milter again.
              if (s.transaction) client.abort(limit);
              s.transaction = false;
              s.message_done = true;
              obs::Log("milter_skipped", obs::Level::kWarning)
                  .kv("session", s.session_id)
                  .kv("milter", s.settings->name)
                  .kv("reason", facts.header_section_too_large
                                    ? "header section over 1 MiB: not given to the milter"
                                    : "the stored message could not be read back")
                  .kv("action", s.settings->default_accept ? "accept" : "tempfail");
              done(s.default_verdict());
              return;
            }
            Verdict verdict = s.message(facts, limit);
            // A discard asked at MAIL or RCPT stands when the milter accepted before the end.
            if (s.discard && verdict.kind == Verdict::Kind::kPass)
              verdict.kind = Verdict::Kind::kDiscard;
            s.transaction = false;
            s.message_done = true;
            done(std::move(verdict));
            return;
          }
          default:
            break;
        }
        done(Verdict::pass());
      });
}

}  // namespace intake
