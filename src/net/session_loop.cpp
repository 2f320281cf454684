// session_loop.cpp — see session_loop.h.
#include "net/session_loop.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "auth/authenticator.h"
#include "auth/sending_limiter.h"
#include "base/clock.h"
#include "base/network.h"
#include "intake/message_intake.h"
#include "intake/pipeline.h"
#include "net/server.h"
#include "obs/log.h"
#include "obs/server_metrics.h"
#include "smtp/server_session.h"
#include "tls/client_identity.h"
#include "tls/policy.h"

namespace net {
namespace {

using asio::awaitable;

// A proxy sends its PROXY header at once, with its connect: a peer that has not within
// this is not a working proxy, and holding its connection open only helps a flood.

// Back-pressure (session_loop.h): while the session waits for commands, one read takes at
// most this much. The replies to it (at most ~20x: EHLO's to "EHLO a") are all written
// before the next read, so the unsent replies a session holds stay under ~20 KiB. One
// pipelined group of RFC 2920 (a few hundred bytes) still fits in one read; a message's
// data, which makes no replies, is read a whole buffer at a time.
constexpr std::size_t kCommandReadSize = 1024;

// A client refused as an early talker gets this long for each command (503s) before the
// connection closes: it holds a connection slot, and it has shown it does not listen.
constexpr std::chrono::milliseconds kEarlyTalkerTimeout{10'000};

// Completion for GroupCommitter: the result comes back on the connection's executor.
template <typename Token>
auto async_commit(queue::GroupCommitter& committer, queue::SpoolWriter& writer, Token&& token) {
  using Result = base::Expected<base::Ok, queue::SpoolError>;
  return asio::async_initiate<Token, void(Result)>(
      [&committer, &writer](auto handler) {
        auto work = asio::make_work_guard(handler);
        auto shared = std::make_shared<std::pair<decltype(handler), decltype(work)>>(
            std::move(handler), std::move(work));
        committer.commit_async(writer, [shared](Result result) {
          auto executor = shared->second.get_executor();
          asio::post(executor, [shared, result = std::move(result)]() mutable {
            shared->first(std::move(result));
          });
        });
      },
      token);
}

// Runs one check with its deadline: the verdict, or nothing when the deadline passed first.
// A check that answers inside run() on this thread (most do: no DNS, no milter) costs no
// timer and no hop; one that answers later, from any thread, is brought back to this
// connection's executor, and an answer that comes after the deadline is dropped.
awaitable<std::optional<intake::Verdict>> run_check(intake::Check& check, intake::Stage stage,
                                                    const intake::Context& context) {
  struct Pending {
    explicit Pending(asio::any_io_executor executor) : timer(executor) {}
    asio::steady_timer timer;
    std::optional<intake::Verdict> verdict;
    bool over = false;               // touched on the connection's thread only
    std::atomic<bool> in_run{true};  // run() has not returned yet
    std::thread::id thread = std::this_thread::get_id();
  };
  auto executor = co_await asio::this_coro::executor;
  auto pending = std::make_shared<Pending>(executor);
  check.run(stage, context, [pending, executor](intake::Verdict verdict) {
    if (pending->in_run.load() && std::this_thread::get_id() == pending->thread) {
      pending->verdict = std::move(verdict);  // at once, inside run(): no hop needed
      pending->over = true;
      return;
    }
    asio::post(executor, [pending, verdict = std::move(verdict)]() mutable {
      if (pending->over) return;
      pending->verdict = std::move(verdict);
      pending->over = true;
      pending->timer.cancel();
    });
  });
  pending->in_run = false;
  if (pending->over) co_return std::move(pending->verdict);
  pending->timer.expires_after(check.deadline_for(stage, context));
  co_await pending->timer.async_wait(use_nothrow);
  pending->over = true;
  co_return std::move(pending->verdict);
}

// One stage through the pipeline (intake::StageRun decides; this only waits).
// XXX: GCC 12 reports a false -Wmismatched-new-delete for Asio's coroutine frame when it inlines
// this free coroutine (frame allocated and freed by the same awaitable_frame_base operators).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// `states`: the message's CheckState slots (message stages only), given to each check.
awaitable<intake::Verdict> run_stage(
    const intake::Pipeline& pipeline, intake::Stage stage, const intake::Context& context,
    std::vector<std::unique_ptr<intake::CheckState>>* states = nullptr) {
  intake::StageRun run(pipeline, stage);
  while (intake::Check* check = run.next_check()) {
    intake::Context each = context;
    if (states != nullptr && run.check_index() < states->size())
      each.state = &(*states)[run.check_index()];
    if (stage == intake::Stage::kEndOfData) each.earlier = &run.verdict();
    std::optional<intake::Verdict> verdict = co_await run_check(*check, stage, each);
    if (verdict)
      run.record(std::move(*verdict));
    else
      run.record_timeout();
  }
  for (const std::string& name : run.timed_out()) {
    obs::Log("check_timeout", obs::Level::kWarning)
        .kv("session", context.session_id)
        .kv("check", name)
        .kv("stage", intake::to_string(stage));
  }
  co_return run.take_verdict();
}
#pragma GCC diagnostic pop

intake::Stage intake_stage(smtp::CheckStage stage) {
  switch (stage) {
    case smtp::CheckStage::kConnect:
      return intake::Stage::kConnect;
    case smtp::CheckStage::kHelo:
      return intake::Stage::kHelo;
    case smtp::CheckStage::kMail:
      return intake::Stage::kMail;
    case smtp::CheckStage::kRcpt:
      return intake::Stage::kRcpt;
  }
  return intake::Stage::kConnect;
}

// RFC 9266: the tls-exporter channel binding, defined for TLS 1.3 (and TLS 1.2 with the
// extended master secret); empty when unavailable, which refuses SCRAM-…-PLUS.
std::string tls_exporter(SSL* ssl) {
  if (ssl == nullptr) return {};
  if (SSL_version(ssl) != TLS1_3_VERSION && SSL_get_extms_support(ssl) != 1) return {};
  std::string value(32, '\0');
  static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
  if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(value.data()), value.size(),
                                 kLabel, sizeof kLabel - 1, nullptr, 0, 0) != 1) {
    ERR_clear_error();
    return {};
  }
  return value;
}

// What the client certificate of this connection says (for SASL EXTERNAL), as the
// authenticator takes it: it never looks at the TLS session itself.
auth::ClientCertificate client_certificate(SSL* ssl) {
  tls::ClientIdentity identity = tls::client_identity(ssl);
  return auth::ClientCertificate{
      identity.presented, identity.verified, std::move(identity.verify_error),
      auth::CertificateNames{std::move(identity.email_sans), std::move(identity.subject_cn)}};
}

const intake::Pipeline& no_checks() {
  static const intake::Pipeline kNoChecks;
  return kNoChecks;
}

// One session after admission: the action loop and the handlers of its actions. Lives in
// serve()'s coroutine frame; every member runs on the connection's I/O thread.
class SessionLoop {
 public:
  SessionLoop(SessionHost& host, std::shared_ptr<Connection> connection,
              const ListenerOptions& options, const std::string& session_id,
              const std::string& client, std::uint16_t client_port, Clock::time_point started)
      : host_(host),
        connection_(std::move(connection)),
        options_(options),
        session_id_(session_id),
        client_(client),
        client_port_(client_port),
        started_(started),
        session_(options.session),
        checks_(options.checks ? *options.checks : no_checks()),
        intake_(*host.services.spool, checks_,
                intake::SessionFacts{session_id, client, client_port, options.role,
                                     host.services.hostname, host.services.received_names_user}) {
    // The sending limits of authenticated users (auth/sending_limiter.h), asked in two
    // places of this loop and nowhere else: the message rate at MAIL (here, through the
    // session's gate; a refusal is logged here, where the session and client are known) and
    // the recipient bounds at the end of data (message_end). Only where AUTH is offered, and
    // on the local socket (its users are authenticated too: a web application's account
    // must not flood either).
    auth::SendingLimiter* limiter = host_.services.sending_limiter;
    if (limiter != nullptr && limiter->limits().messages_per_hour != 0 &&
        (!options.session.auth_mechanisms.empty() || connection_->peer_credentials)) {
      session_.set_message_gate([this, limiter](std::string_view user) {
        if (limiter->may_start_message(user, Clock::now())) return true;
        obs::Log("user_rate_limited", obs::Level::kWarning)
            .kv("session", session_id_)
            .kv("client", client_)
            .kv("user", user)
            .kv("limit", limiter->limits().messages_per_hour)
            .kv("window", "1h");
        return false;
      });
    }
    // A response the session could not decode ends the exchange there (501); the
    // authenticator still counts it against the client.
    if (!options.session.auth_mechanisms.empty()) {
      session_.set_malformed_auth_observer([this](std::string_view mechanism) {
        authenticator_.reset();
        new_authenticator()->malformed_response(mechanism, Clock::now());
      });
    }
  }

  awaitable<void> run() {
    bool alive = true;
    if (options_.implicit_tls) alive = co_await handshake();
    if (!alive) close_reason_ = "handshake failed";
    if (alive && connection_->peer_credentials) identify_local_peer();
    if (alive) screen_early_talker();
    if (alive) session_.start();
    while (alive) {
      // A graceful stop: a session ends (421 4.3.2) once no transaction is open, so a
      // message being sent is finished and acknowledged first; past the grace period,
      // every session ends.
      if (host_.stopping && (host_.grace_over || !session_.in_transaction()) &&
          !connection_->shutting_down.exchange(true)) {
        session_.shutdown();
      }
      switch (session_.next()) {
        case smtp::Action::kNeedInput:
          alive = co_await read_input();
          break;
        case smtp::Action::kStartTls:
          alive = co_await start_tls();
          break;
        case smtp::Action::kMessageBegin:
          co_await message_begin();
          break;
        case smtp::Action::kMessageData:
          co_await message_data();
          break;
        case smtp::Action::kMessageAbort:
          intake_.abort();
          break;
        case smtp::Action::kMessageEnd:
          co_await message_end();
          break;
        case smtp::Action::kCheck:
          alive = co_await check();
          break;
        case smtp::Action::kAuthenticate:
          co_await authenticate();
          break;
        case smtp::Action::kClose:
          co_await flush();
          alive = false;
          break;
      }
    }
    finish();
  }

 private:
  awaitable<bool> handshake() {
    connection_->arm(options_.handshake_timeout);
    std::string reason;
    const bool done = co_await connection_->handshake(options_.tls_context.get(), reason);
    if (!done) {
      obs::Log("tls_handshake_failed", obs::Level::kWarning)
          .kv("session", session_id_)
          .kv("role", options_.role)
          .kv("client", client_)
          .kv("reason", reason);
      obs::server_metrics().tls_handshake_failed(options_.role, reason);
      co_return false;
    }
    connection_->tls = true;
#ifdef TCP_QUICKACK
    // After STARTTLS the client speaks next (EHLO), right behind its Finished message. A
    // client without TCP_NODELAY (Python's smtplib, for one) holds that EHLO back until
    // its Finished is acknowledged, and a delayed ACK costs it 40 ms: acknowledge now.
    int quick_ack = 1;
    ::setsockopt(connection_->socket.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &quick_ack,
                 sizeof quick_ack);
#endif
    tls::SessionDescription d = tls::describe(connection_->ssl.get());
    session_.tls_established(smtp::TlsInfo{d.version, d.cipher, d.sni});
    obs::server_metrics().tls_established(options_.role, d.version);
    obs::Log("tls")
        .kv("session", session_id_)
        .kv("client", client_)
        .kv("version", d.version)
        .kv("cipher", d.cipher)
        .kv("sni", d.sni)
        .kv("resumed", d.resumed);
    co_return true;
  }

  // A local submission: the user the kernel's credentials name is the session's for life, or
  // the listener's policy refuses the connection with its reply instead of the greeting.
  void identify_local_peer() {
    const PeerCredentials& peer = *connection_->peer_credentials;
    if (!options_.identify_local) {
      session_.refuse_at_start(smtp::Reply{554, "5.7.1", "Local submission is not configured"});
      return;
    }
    auto user = options_.identify_local(peer);
    if (!user) {
      obs::Log("local_refused", obs::Level::kWarning)
          .kv("session", session_id_)
          .kv("uid", peer.uid)
          .kv("pid", static_cast<std::int64_t>(peer.pid))
          .kv("reason", user.error().text);
      session_.refuse_at_start(user.error());
      close_reason_ = "local user refused";
      return;
    }
    local_user_ = user.value();
    session_.set_local_user(local_user_);
    intake_.set_local_user(local_user_, peer.uid);
  }

  // The early-talker screen of this listener (docs/architecture.md "Screening"), unless the
  // client is exempt; a client that waited out the pre-greet wait lately skips the wait.
  void screen_early_talker() {
    if (options_.pregreet_wait.count() == 0 && !options_.refuse_improper_pipelining) return;
    if (connection_->peer_credentials || options_.implicit_tls) return;
    if (auto ip = base::parse_ip(client_)) {
      for (const base::Network& network : options_.screening_exempt) {
        if (network.contains(*ip)) return;
      }
    }
    smtp::EarlyTalkerScreen screen;
    screen.refuse_improper_pipelining = options_.refuse_improper_pipelining;
    if (options_.pregreet_wait.count() > 0) {
      if (host_.pregreet_passes.passed_recently(client_, Clock::now()))
        obs::server_metrics().pregreet("skipped");
      else
        screen.pregreet = true;
    }
    session_.screen_early_talkers(screen);
  }

  // The greeting's last line is held back: wait for the pre-greet wait to pass or for the
  // client to send something, whichever comes first. Waiting for readability takes no byte:
  // what came early is read next, as usual, and the session refuses it.
  awaitable<void> pregreet_wait() {
    connection_->arm(options_.command_timeout);
    asio::steady_timer timer(co_await asio::this_coro::executor, options_.pregreet_wait);
    // Both handlers run on this connection's thread; `over` keeps a timer that fired just as
    // the client spoke from cancelling the read that follows.
    auto over = std::make_shared<bool>(false);
    timer.async_wait([connection = connection_, over](std::error_code error) {
      if (error || *over) return;  // cancelled: the client spoke first
      std::error_code ignored;
      connection->socket.cancel(ignored);
    });
    auto [error] = co_await connection_->socket.async_wait(Socket::wait_read, use_nothrow);
    *over = true;
    timer.cancel();
    if (!error || host_.stopping || connection_->timed_out)
      co_return;  // readable (bytes or the end): read them next
    obs::server_metrics().pregreet("passed");
    host_.pregreet_passes.remember(client_, Clock::now());
    session_.pregreet_passed();
  }

  // Writes the session's pending replies; false when the connection broke.
  awaitable<bool> flush() {
    std::string_view out = session_.pending_output();
    if (out.empty()) co_return true;
    obs::server_metrics().replies_sent(out);
    command_clock_running_ = false;
    connection_->arm(options_.command_timeout);
    std::error_code error = co_await connection_->write_all(out);
    if (error) {
      close_reason_ = "write failed: " + error.message();
      co_return false;
    }
    session_.consume_output(out.size());
    co_return true;
  }

  // RFC 5321 §4.5.3.2: the command timeout runs from the moment the server waits for a
  // command until the whole line is in; bytes that trickle in (a slow-loris client, one
  // byte every few seconds) do not restart it. It restarts after each reply, and the
  // data-block timeout restarts with each read, as §4.5.3.2.5 says.
  // Back-pressure: the replies so far are written first, and the write waits for a client
  // that does not read them, so nothing more is read from it meanwhile.
  awaitable<bool> read_input() {
    const bool written = co_await flush();
    if (!written) co_return false;
    if (session_.pregreet_pending()) {
      co_await pregreet_wait();
      if (!session_.pregreet_pending()) co_return true;  // passed: the final line goes out next
    }
    const bool data_block = session_.waiting() == smtp::Waiting::kDataBlock;
    // A refused early talker is answered 503 until QUIT (RFC 5321 §3.1), for a short while.
    const auto command_timeout = session_.early_talker().empty()
                                     ? options_.command_timeout
                                     : std::min(options_.command_timeout, kEarlyTalkerTimeout);
    if (data_block) {
      connection_->arm(options_.data_timeout);
      command_clock_running_ = false;
    } else if (!command_clock_running_) {
      connection_->arm(command_timeout);
      command_clock_running_ = true;
    }
    std::error_code error;
    connection_->idle_read = !session_.in_transaction();
    std::size_t n = co_await connection_->read_some(
        error, data_block ? connection_->read_buffer.size() : kCommandReadSize);
    connection_->idle_read = false;
    if (n > 0) session_.receive(std::string_view(connection_->read_buffer.data(), n));
    if (error) {
      if (connection_->timed_out) {
        close_reason_ = "timeout";
        session_.timeout();
      } else if (host_.stopping) {
        close_reason_ = "shutdown";
        connection_->shutting_down = true;
        session_.shutdown();
      } else {
        close_reason_ = error == asio::error::eof ? "client closed" : error.message();
        session_.receive_eof();
      }
    }
    co_return true;
  }

  awaitable<bool> start_tls() {
    const bool written = co_await flush();
    if (!written) co_return false;
    // RFC 3207 §4.2 / CVE-2011-0411: the session dropped whatever it had buffered; bytes
    // still in flight are read by the handshake as TLS records, so plaintext pipelined
    // after STARTTLS can never become a command.
    command_clock_running_ = false;
    const bool secured = co_await handshake();
    if (!secured) {
      close_reason_ = "handshake failed";
      co_return false;
    }
    co_return true;
  }

  // A stage's verdict for the message being received: a reply ends it (the session sends
  // the reply at the end of the data), anything else is kept for the end of data.
  void take_message_verdict(intake::Verdict verdict) {
    if (verdict.kind == intake::Verdict::Kind::kReply) {
      intake_.abort();
      session_.message_failed(verdict.reply);
      return;
    }
    if (verdict.kind != intake::Verdict::Kind::kPass) message_verdict_.kind = verdict.kind;
    intake::merge_edits(message_verdict_, std::move(verdict));
  }

  awaitable<void> message_begin() {
    message_verdict_ = intake::Verdict::pass();
    const smtp::TlsInfo& info = session_.tls_info();
    const bool tls = session_.tls_active();
    intake::MessageStart start{&session_.envelope(),
                               session_.with_protocol(),
                               tls ? std::string_view(info.version) : std::string_view(),
                               tls ? std::string_view(info.cipher) : std::string_view(),
                               session_.authenticated_user(),
                               base::unix_now()};
    if (auto refusal = intake_.begin(start)) {
      session_.message_failed(*refusal);
      co_return;
    }
    if (checks_.wants(intake::Stage::kDataStart)) {
      intake::Context context = intake_.context();
      context.tls_version = start.tls_version;
      take_message_verdict(
          co_await run_stage(checks_, intake::Stage::kDataStart, context, intake_.check_states()));
    }
  }

  awaitable<void> message_data() {
    if (!intake_.open()) co_return;
    if (auto failure = intake_.append(session_.message_data())) {
      session_.message_failed(*failure);
      co_return;
    }
    co_await content_events();
  }

  // The header and body stages of the content appended or ended last.
  awaitable<void> content_events() {
    for (const intake::ContentEvent& event : intake_.events()) {
      intake::Context context = intake_.context();
      context.header_name = event.name;
      context.header_value = event.value;
      context.body_chunk = event.chunk;
      take_message_verdict(
          co_await run_stage(checks_, event.stage, context, intake_.check_states()));
      if (!intake_.open()) break;
    }
    intake_.clear_events();
  }

  awaitable<void> message_end() {
    if (!intake_.open()) {
      session_.message_failed(intake::MessageIntake::not_stored());
      co_return;
    }
    intake_.end_of_content();  // a message without a body: its end of headers is now
    co_await content_events();
    if (!intake_.open()) co_return;
    if (checks_.wants(intake::Stage::kEndOfData)) {
      intake::Context context = intake_.context();
      context.earlier_stages = &message_verdict_;
      take_message_verdict(
          co_await run_stage(checks_, intake::Stage::kEndOfData, context, intake_.check_states()));
      if (!intake_.open()) co_return;
    }
    if (message_verdict_.kind == intake::Verdict::Kind::kDiscard) {
      // The client is told the message was taken; nothing is stored.
      obs::Log("discarded").kv("session", session_id_).kv("id", intake_.queue_id());
      std::string id = intake_.queue_id();
      intake_.abort();
      session_.message_committed(id);
      co_return;
    }
    apply_sending_limits();
    // A hold is committed like any message: apply() marks it held in the spool.
    if (auto refusal = intake_.apply(message_verdict_)) {
      session_.message_failed(*refusal);
      co_return;
    }
    auto result =
        co_await async_commit(*host_.services.committer, *intake_.writer(), asio::use_awaitable);
    auto committed = intake_.committed(result);
    if (!committed) {
      session_.message_failed(committed.error());
      co_return;
    }
    ++messages_;
    obs::server_metrics().message_accepted(session_.envelope().recipients.size(),
                                           Clock::now() - started_);
    if (connection_->peer_credentials) {
      obs::Log("local_submission")
          .kv("session", session_id_)
          .kv("id", *committed)
          .kv("uid", connection_->peer_credentials->uid)
          .kv("user", local_user_)
          .kv("from", session_.envelope().reverse_path)
          .kv("recipients", static_cast<std::uint64_t>(session_.envelope().recipients.size()));
    }
    session_.message_committed(*committed);
    if (host_.services.on_committed && !intake_.delivered_at_acceptance() &&
        !intake_.taken_by_committer()) {
      host_.services.on_committed(*committed);
    }
  }

  // The sending limits' second question (the first is the message gate, at MAIL): a message
  // of an authenticated user about to be stored counts, with its recipients that are not of
  // this server; past a recipient bound it is held, and so is the user's later mail.
  void apply_sending_limits() {
    auth::SendingLimiter* limiter = host_.services.sending_limiter;
    const std::string& user = session_.authenticated_user();
    if (limiter == nullptr || user.empty()) return;
    std::vector<std::string> external;
    for (const smtp::Recipient& recipient : session_.envelope().recipients) {
      if (recipient.expansion_record) continue;  // not a destination (smtp/envelope.h)
      if (host_.services.is_local_address && host_.services.is_local_address(recipient.address))
        continue;
      external.push_back(recipient.address);
    }
    auth::MessageDecision decision =
        limiter->admit_message(user, external, Clock::now(), base::unix_now());
    if (decision.crossed) {
      const auth::Containment& crossed = *decision.crossed;
      obs::Log("user_held", obs::Level::kWarning)
          .kv("session", session_id_)
          .kv("client", client_)
          .kv("user", user)
          .kv("id", intake_.queue_id())
          .kv("count", crossed.count)
          .kv("bound", crossed.bound)
          .kv("window", auth::to_string(crossed.window));
      obs::server_metrics().user_held(auth::to_string(crossed.window));
    }
    if (decision.hold) message_verdict_.kind = intake::Verdict::Kind::kHold;
  }

  awaitable<bool> check() {
    const bool written = co_await flush();  // the replies before the checked command go first
    if (!written) co_return false;
    const smtp::TlsInfo& info = session_.tls_info();
    intake::Context context;
    context.session_id = session_id_;
    context.client_address = client_;
    context.client_port = client_port_;
    context.role = options_.role;
    context.tls_version = session_.tls_active() ? std::string_view(info.version) : "";
    context.tls_cipher = session_.tls_active() ? std::string_view(info.cipher) : "";
    context.authenticated_user = session_.authenticated_user();
    context.envelope = &session_.envelope();
    context.helo = session_.envelope().helo;
    const smtp::CheckStage stage = session_.check_stage();
    if (stage == smtp::CheckStage::kHelo) context.helo = session_.check_argument();
    if (stage == smtp::CheckStage::kMail) context.sender = session_.check_argument();
    if (stage == smtp::CheckStage::kRcpt) context.recipient = session_.check_argument();
    intake::Verdict verdict = co_await run_stage(checks_, intake_stage(stage), context);
    if (verdict.kind == intake::Verdict::Kind::kReply)
      session_.check_refused(verdict.reply);
    else
      session_.check_passed();
    co_return true;
  }

  // One kAuthenticate step. The policy (lockouts, cache, reply codes, log lines) is the
  // authenticator's; here only the hop to the worker pool for argon2id and back, and the
  // limiter's wait before a failure reply.
  std::unique_ptr<auth::Authenticator> new_authenticator() {
    const ServerServices& services = host_.services;
    return std::make_unique<auth::Authenticator>(
        auth::AuthServices{services.users, services.limiter, services.verified_cache,
                           &host_.verifications},
        auth::AuthConnection{client_, session_id_, tls_exporter(connection_->ssl.get()),
                             client_certificate(connection_->ssl.get())});
  }

  awaitable<void> authenticate() {
    std::optional<auth::Outcome> outcome;
    if (session_.auth_starting() || !authenticator_) {
      authenticator_ = new_authenticator();
      // Without auth_starting() (cannot happen) the new authenticator refuses the step.
      if (session_.auth_starting()) {
        outcome = authenticator_->start(session_.auth_mechanism(), Clock::now());
      }
    }
    if (!outcome) {
      outcome = authenticator_->step(session_.auth_response(), session_.auth_has_response(),
                                     Clock::now());
    }
    while (outcome->kind == auth::Outcome::Kind::kVerifyPassword) {
      // argon2id off the I/O thread: hop to the pool, verify, hop back.
      auto home = co_await asio::this_coro::executor;
      co_await asio::post(host_.auth_pool, asio::use_awaitable);
      const bool ok = auth::verify_password(outcome->check.user, outcome->check.password);
      co_await asio::post(home, asio::use_awaitable);
      outcome = authenticator_->password_verified(ok, Clock::now());
    }
    switch (outcome->kind) {
      case auth::Outcome::Kind::kChallenge:
        session_.auth_challenge(outcome->challenge);
        co_return;
      case auth::Outcome::Kind::kSucceeded:
        authenticator_.reset();
        session_.auth_succeeded(outcome->user);
        co_return;
      case auth::Outcome::Kind::kFailed:
      case auth::Outcome::Kind::kVerifyPassword:  // handled above
        authenticator_.reset();
        if (outcome->delay.count() > 0) {
          asio::steady_timer pause(co_await asio::this_coro::executor, outcome->delay);
          co_await pause.async_wait(use_nothrow);
        }
        session_.auth_failed(outcome->reply);
        co_return;
    }
  }

  // The end: close_notify, close (before the log line: the client sees the end at once).
  void finish() {
    intake_.abort();
    if (std::string_view reason = session_.early_talker(); !reason.empty()) {
      close_reason_ = "early talker";
      obs::Log("early_talker", obs::Level::kWarning)
          .kv("session", session_id_)
          .kv("client", client_)
          .kv("reason", reason)
          .kv("improper_pipelining", session_.improper_pipelining_count());
      obs::server_metrics().early_talker(reason);
    } else if (session_.improper_pipelining_count() > 0 && options_.role == "smtp") {
      obs::Log("improper_pipelining")
          .kv("session", session_id_)
          .kv("client", client_)
          .kv("count", session_.improper_pipelining_count());
    }
    checks_.session_closed(session_id_);
    if (session_.closed_as_http()) {
      close_reason_ = "http request (cross-protocol)";
      obs::Log("http_refused", obs::Level::kWarning)
          .kv("session", session_id_)
          .kv("client", client_);
    }
    if (!connection_->timed_out) connection_->send_close_notify();
    connection_->finished = true;
    connection_->timer.cancel();
    connection_->close();
    auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
    const smtp::TlsInfo& info = session_.tls_info();
    obs::Log("session_end")
        .kv("session", session_id_)
        .kv("role", options_.role)
        .kv("client", client_)
        .kv("tls", connection_->tls ? info.version : std::string("none"))
        .kv("cipher", connection_->tls ? info.cipher : std::string("none"))
        .kv("sni", info.sni)
        .kv("messages", messages_)
        .kv("duration_ms", static_cast<std::int64_t>(elapsed))
        .kv("reason", close_reason_);
  }

  SessionHost& host_;
  std::shared_ptr<Connection> connection_;
  const ListenerOptions& options_;
  const std::string& session_id_;
  const std::string& client_;
  const std::uint16_t client_port_;
  const Clock::time_point started_;  // accepted
  smtp::ServerSession session_;
  const intake::Pipeline& checks_;
  intake::MessageIntake intake_;
  intake::Verdict message_verdict_;  // what the checks said of the message so far
  std::unique_ptr<auth::Authenticator> authenticator_;  // the AUTH exchange in progress
  unsigned messages_ = 0;
  std::string local_user_;  // a local submission's user (SO_PEERCRED)
  std::string close_reason_ = "quit";
  bool command_clock_running_ = false;
};

// Runs when serve() ends, normally or by an exception: the connection leaves the tables.
struct ConnectionRelease {
  SessionHost& host;
  std::shared_ptr<Connection> connection;
  std::string client;              // the key in the per-client count …
  bool counted_for_client = true;  // … if the connection was counted there
  ~ConnectionRelease() {
    connection->finished = true;
    connection->timer.cancel();
    connection->close();
    host.admission.release(connection, client, counted_for_client);
    if (host.on_released) host.on_released();
  }
};

}  // namespace

awaitable<void> serve(SessionHost& host, std::shared_ptr<Connection> connection,
                      std::shared_ptr<const ListenerOptions> listener_options,
                      std::string session_id, std::string client) {
  const ListenerOptions& options = *listener_options;  // this connection's, for its life
  const bool local = connection->peer_credentials.has_value();
  ConnectionRelease release{host, connection, client, !options.proxy_protocol && !local};
  std::uint16_t client_port = connection->client_port;
  const Clock::time_point started = Clock::now();
  obs::ConnectionScope open_connection(options.role);  // metrics: accepted, open

  connection->limit_send_buffer();
  connection->arm(options.proxy_protocol ? options.proxy_header_timeout
                                         : options.handshake_timeout);
  asio::co_spawn(connection->socket.get_executor(), watchdog(connection), asio::detached);

  // Behind a proxy the header names the client: from here on it is the address that is
  // logged, limited (connections, rate, AUTH failures) and written in Received.
  std::string proxy;
  if (options.proxy_protocol) {
    proxy = client;
    auto header = co_await read_proxy_header(*connection);
    if (!header) {
      const bool probe = header.error().nothing_received;
      obs::Log("proxy_header_failed", probe ? obs::Level::kDebug : obs::Level::kWarning)
          .kv("session", session_id)
          .kv("role", options.role)
          .kv("proxy", proxy)
          .kv("reason", header.error().reason);
      co_return;
    }
    if (!header->use_socket_address) {
      // In the form endpoint_address() gives a socket's peer: an IPv4-mapped IPv6 source
      // (a v2 header of a dual-stack proxy) is the IPv4 client, logged and limited as such.
      auto source = base::parse_ip(header->source_address);
      client = source ? base::format_ip(*source) : header->source_address;
      client_port = header->source_port;
    }
    release.client = client;
    if (auto refusal = host.admission.admit_client(client)) {
      host.admission.refuse(*connection, options, session_id, client, *refusal);
      co_return;
    }
    release.counted_for_client = true;
  }
  {
    obs::Log connect("connect");
    connect.kv("session", session_id)
        .kv("role", options.role)
        .kv("client", client)
        .kv("client_port", client_port);
    if (!proxy.empty()) connect.kv("proxy", proxy);
    if (local) connect.kv("uid", connection->peer_credentials->uid);
  }

  connection->arm(options.handshake_timeout);
  SessionLoop loop(host, connection, options, session_id, client, client_port, started);
  co_await loop.run();
}

}  // namespace net
