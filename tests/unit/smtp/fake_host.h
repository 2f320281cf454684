// fake_host.h — a test host for smtp::ServerSession: drives next() as src/net will, keeps
// everything the session said and every message it handed over. Shared by the session
// and dialog tests.
#pragma once

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/server_session.h"

namespace smtp::testing {

// What the session handed over at one kAuthenticate.
struct AuthRequest {
  std::string mechanism;
  bool starting = false;
  bool has_response = false;
  std::string response;
};

// A scripted answer to kAuthenticate.
struct AuthAnswer {
  enum class Kind { kChallenge, kSuccess, kFailure };
  Kind kind = Kind::kChallenge;
  std::string text;  // challenge octets, or the user name
  Reply reply;       // for kFailure

  static AuthAnswer challenge(std::string raw) { return {Kind::kChallenge, std::move(raw), {}}; }
  static AuthAnswer success(std::string user) { return {Kind::kSuccess, std::move(user), {}}; }
  static AuthAnswer failure(Reply reply) { return {Kind::kFailure, {}, std::move(reply)}; }
};

struct FakeHost {
  explicit FakeHost(const SessionConfig& config) : session(config) {}

  ServerSession session;
  std::string output;                 // every byte the session sent
  std::vector<std::string> messages;  // committed bodies
  std::vector<Envelope> envelopes;    // their envelopes
  std::string current;                // body being received
  int begins = 0;
  int aborts = 0;
  int starttls = 0;
  bool closed = false;
  bool establish_tls = true;         // answer kStartTls with a completed handshake
  std::optional<Reply> fail_begin;   // spool open fails
  std::optional<Reply> fail_data;    // spool append fails
  std::optional<Reply> fail_commit;  // durable commit fails
  int next_id = 1;
  std::size_t largest_piece = 0;  // longest message_data() span seen
  // AUTH: each kAuthenticate is recorded; a scripted answer is used if one is queued,
  // otherwise run() returns with auth_waiting set until answer() is called.
  std::vector<AuthRequest> auth_requests;
  std::deque<AuthAnswer> auth_answers;
  bool auth_waiting = false;
  std::string_view last_auth_response;  // the session's own buffer, to check the wipe
  // Checks: each kCheck is recorded as "<stage> <argument>"; a scripted refusal is used when
  // one is queued for the argument, else the check passes. With hold_checks the host stops
  // at each kCheck (check_waiting) until pass_check()/refuse_check().
  std::vector<std::string> checks;
  std::vector<std::pair<std::string, Reply>> check_refusals;  // argument → reply
  bool hold_checks = false;
  bool check_waiting = false;

  // Gives the session the host's answer and runs on.
  void answer(const AuthAnswer& answer) {
    auth_waiting = false;
    switch (answer.kind) {
      case AuthAnswer::Kind::kChallenge:
        session.auth_challenge(answer.text);
        break;
      case AuthAnswer::Kind::kSuccess:
        session.auth_succeeded(answer.text);
        break;
      case AuthAnswer::Kind::kFailure:
        session.auth_failed(answer.reply);
        break;
    }
  }

  void flush() {
    output.append(session.pending_output());
    session.consume_output(session.pending_output().size());
  }

  // Runs the host loop until the session needs input or closes.
  void run() {
    for (int guard = 0; guard < 1000000; ++guard) {
      flush();
      Action action = session.next();
      switch (action) {
        case Action::kNeedInput:
          flush();
          return;
        case Action::kStartTls:
          ++starttls;
          flush();
          if (!establish_tls) {
            closed = true;
            return;
          }
          session.tls_established(TlsInfo{"TLSv1.3", "TLS_AES_128_GCM_SHA256", ""});
          break;
        case Action::kMessageBegin:
          ++begins;
          current.clear();
          if (fail_begin) session.message_failed(*fail_begin);
          break;
        case Action::kMessageData:
          current.append(session.message_data());
          if (session.message_data().size() > largest_piece) {
            largest_piece = session.message_data().size();
          }
          if (fail_data) session.message_failed(*fail_data);
          break;
        case Action::kMessageEnd:
          if (fail_commit) {
            session.message_failed(*fail_commit);
          } else {
            messages.push_back(current);
            envelopes.push_back(session.envelope());
            session.message_committed("Q" + std::to_string(next_id++));
          }
          break;
        case Action::kMessageAbort:
          ++aborts;
          current.clear();
          break;
        case Action::kAuthenticate:
          if (!auth_waiting) {
            auth_waiting = true;
            auth_requests.push_back(
                AuthRequest{std::string(session.auth_mechanism()), session.auth_starting(),
                            session.auth_has_response(), std::string(session.auth_response())});
            last_auth_response = session.auth_response();
          }
          if (auth_answers.empty()) {
            flush();
            return;
          }
          answer(auth_answers.front());
          auth_answers.pop_front();
          break;
        case Action::kCheck: {
          if (!check_waiting) {
            check_waiting = true;
            checks.push_back(to_string(session.check_stage()) + " " +
                             std::string(session.check_argument()));
          }
          if (hold_checks) {
            flush();
            return;
          }
          check_waiting = false;
          auto refusal = std::find_if(
              check_refusals.begin(), check_refusals.end(),
              [&](const auto& entry) { return entry.first == session.check_argument(); });
          if (refusal != check_refusals.end())
            session.check_refused(refusal->second);
          else
            session.check_passed();
          break;
        }
        case Action::kClose:
          flush();
          closed = true;
          return;
      }
    }
    closed = true;  // a loop that never asks for input is a bug the test will see
    output.append("LOOP\r\n");
  }

  static std::string to_string(CheckStage stage) {
    switch (stage) {
      case CheckStage::kConnect:
        return "connect";
      case CheckStage::kHelo:
        return "helo";
      case CheckStage::kMail:
        return "mail";
      case CheckStage::kRcpt:
        return "rcpt";
    }
    return "?";
  }

  // Answers a kCheck the host held (hold_checks), then runs.
  void pass_check() {
    check_waiting = false;
    session.check_passed();
    run();
  }
  void refuse_check(const Reply& reply) {
    check_waiting = false;
    session.check_refused(reply);
    run();
  }

  void start() {
    session.start();
    run();
  }

  // Answers a kAuthenticate the session is waiting on, then runs.
  void answer_and_run(const AuthAnswer& reply) {
    answer(reply);
    run();
  }

  // Sends bytes whole, or one byte per receive() when bytewise.
  void send(std::string_view bytes, bool bytewise = false) {
    if (closed) return;
    if (!bytewise) {
      session.receive(bytes);
      run();
      return;
    }
    for (char c : bytes) {
      if (closed) return;
      session.receive(std::string_view(&c, 1));
      run();
    }
  }

  void eof() {
    if (closed) return;
    session.receive_eof();
    run();
  }

  // The output as lines without CRLF.
  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    std::size_t start = 0;
    while (true) {
      std::size_t end = output.find("\r\n", start);
      if (end == std::string::npos) break;
      result.push_back(output.substr(start, end - start));
      start = end + 2;
    }
    return result;
  }

  // The last line of every reply ("250 2.0.0 Ok"), in order.
  std::vector<std::string> replies() const {
    std::vector<std::string> result;
    for (const std::string& line : lines()) {
      if (line.size() < 4 || line[3] != '-') result.push_back(line);
    }
    return result;
  }

  // The three-digit code of every reply, in order.
  std::vector<int> codes() const {
    std::vector<int> result;
    for (const std::string& line : replies())
      result.push_back(std::stoi(line.substr(0, 3)));
    return result;
  }
};

}  // namespace smtp::testing
