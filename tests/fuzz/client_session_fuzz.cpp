// client_session_fuzz.cpp — libFuzzer target: arbitrary bytes as the server's side of a
// whole smtp::ClientSession, cut into pieces of varying size, with a host that answers
// every event: completes (or fails) STARTTLS handshakes, sends up to three messages with
// content made from the seed (dots, bare CR and LF at random places), then QUIT.
//
// Input layout: byte 0 chooses the configuration and the envelope, byte 1 seeds the piece
// sizes and the content; the rest is what the server sends.
// Invariants checked (a violation traps):
// - the output stream never holds a bare CR or LF (outside CRLF pairs), and outside the
//   content every write is whole command lines;
// - the content written decodes (DotUnstuffer) to exactly the content given, with bare
//   line endings as CRLF, and ends with the one end-of-data indicator;
// - kMessageDone: one result per recipient, in order, each with a reply code 200..599;
// - AUTH is never written without TLS;
// - next() makes progress: the host feeds at least one octet per kNeedInput and the number
//   of events is bounded by the input; after server_closed() kNeedInput never comes back;
// - after kFailed or kClosed every next() returns the same and nothing more is output.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/client_session.h"
#include "smtp/dot_stuffing.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

struct Host {
  Host(smtp::ClientSession& client, std::string_view server_bytes, std::uint32_t seed,
       std::uint8_t config_flags)
      : session(client), input(server_bytes), rng(seed), flags(config_flags) {}

  smtp::ClientSession& session;
  std::string_view input;
  std::uint32_t rng;
  std::uint8_t flags;
  bool eof_sent = false;
  bool pending_cr = false;  // the stream's last octet was a CR
  int messages = 0;
  smtp::Envelope envelope;
  std::vector<std::size_t> indices;

  std::uint32_t random() {
    rng = rng * 1103515245u + 12345u;
    return rng >> 16;
  }

  // Bare CR / LF check over the whole stream.
  void take_stream(std::string_view bytes) {
    for (char c : bytes) {
      if (pending_cr) check(c == '\n');
      if (c == '\n') check(pending_cr);
      pending_cr = c == '\r';
    }
  }

  // Commands: whole lines, no NUL, never an AUTH before TLS.
  void flush_commands() {
    std::string& out = session.output();
    take_stream(out);
    check(out.empty() || out.ends_with("\r\n"));
    check(out.find('\0') == std::string::npos);
    if (!session.tls_active()) check(out.find("AUTH ") == std::string::npos);
    out.clear();
  }

  void send_content() {
    std::string content;
    const std::size_t size = random() % 64;
    static constexpr char kAlphabet[] = {'.', '\r', '\n', 'a', '.', '\r', '\n', ' '};
    for (std::size_t i = 0; i < size; ++i)
      content.push_back(kAlphabet[random() % sizeof kAlphabet]);
    std::size_t pos = 0;
    while (pos < content.size()) {
      const std::size_t piece = 1 + random() % 8;
      session.content(std::string_view(content).substr(pos, piece));
      pos += piece;
    }
    session.end_content();

    std::string& out = session.output();
    take_stream(out);
    check(out.ends_with("\r\n"));
    // What the server would read back.
    smtp::DotUnstuffer decoder;
    std::string body;
    const std::size_t used = decoder.decode(out, body, out.size() + 8);
    check(decoder.finished());
    check(used == out.size());
    check(!decoder.saw_bare_line_ending());
    // The content with every bare CR or LF as CRLF, and a final CRLF when it had none.
    std::string expected;
    for (std::size_t i = 0; i < content.size(); ++i) {
      if (content[i] == '\r') {
        expected.append("\r\n");
        if (i + 1 < content.size() && content[i + 1] == '\n') ++i;
      } else if (content[i] == '\n') {
        expected.append("\r\n");
      } else {
        expected.push_back(content[i]);
      }
    }
    if (!expected.empty() && !expected.ends_with("\r\n")) expected.append("\r\n");
    check(body == expected);
    out.clear();
  }

  void run() {
    const std::size_t max_steps = input.size() * 4 + 100;
    for (std::size_t steps = 0; steps < max_steps; ++steps) {
      flush_commands();
      const smtp::ClientEvent event = session.next();
      switch (event) {
        case smtp::ClientEvent::kNeedInput: {
          check(!eof_sent);
          if (input.empty()) {
            session.server_closed();
            eof_sent = true;
            break;
          }
          const std::size_t piece = 1 + random() % 32;
          const std::size_t size = piece < input.size() ? piece : input.size();
          session.receive(input.substr(0, size));
          input.remove_prefix(size);
          break;
        }
        case smtp::ClientEvent::kStartTls:
          if (flags & 0x20) return;  // the handshake fails: the host closes
          session.tls_established();
          check(session.tls_active());
          break;
        case smtp::ClientEvent::kReady:
          if (messages < 3) {
            ++messages;
            const std::uint64_t size = random() % 2 == 0 ? 100 : 5000;
            session.send_message(envelope, indices, size);
          } else {
            session.quit();
          }
          break;
        case smtp::ClientEvent::kSendContent:
          flush_commands();  // e.g. the DATA that next() sent before reading its 354
          send_content();
          break;
        case smtp::ClientEvent::kMessageDone: {
          const auto& results = session.results();
          check(results.size() == indices.size());
          for (std::size_t i = 0; i < results.size(); ++i) {
            check(results[i].index == indices[i]);
            check(results[i].reply.code >= 200 && results[i].reply.code <= 599);
          }
          break;
        }
        case smtp::ClientEvent::kClosed:
        case smtp::ClientEvent::kFailed:
          flush_commands();
          check(session.next() == event);
          session.receive("250 more\r\n");
          session.quit();
          check(session.next() == event);
          check(session.output().empty());
          if (event == smtp::ClientEvent::kFailed) check(!session.failure().stage.empty());
          return;
      }
    }
    check(false);  // no progress
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  const std::uint8_t seed = data[1];

  smtp::ClientConfig config;
  config.helo_name = "client.fuzz.example";
  config.protocol = (flags & 1) ? smtp::ClientProtocol::kLmtp : smtp::ClientProtocol::kSmtp;
  config.tls_active = (flags & 2) != 0;
  if (flags & 4) {
    config.auth_user = "user@fuzz.example";
    config.auth_password = "pencil";
  }
  config.starttls = (flags & 8) == 0;
  config.require_tls = (flags & 0x10) != 0;
  if (flags & 0x40) {
    config.max_reply_line = 40;
    config.max_reply_lines = 4;
  }

  smtp::ClientSession session(config);
  Host host(session, std::string_view(reinterpret_cast<const char*>(data + 2), size - 2),
            seed * 2654435761u + 1, flags);
  host.envelope.reverse_path = "sender@fuzz.example";
  host.envelope.recipients = {
      {"a@fuzz.example", "SUCCESS,FAILURE", "rfc822;A+x=@fuzz.example"},
      {"b@fuzz.example", "", ""},
      {"c@fuzz.example", "NEVER", ""},
  };
  if (flags & 0x80) {
    host.envelope.smtputf8 = (seed & 1) != 0;
    host.envelope.body = smtp::BodyType::k8BitMime;
    host.envelope.dsn_return = smtp::DsnReturn::kHeaders;
    host.envelope.envelope_id = "id 1";
    host.envelope.recipients.push_back({"evil@x\r\nRSET", "", ""});
    host.indices = {3, 0, 2, 1, 9};
  } else {
    host.indices = {0, 1, 2};
  }
  host.run();
  return 0;
}
