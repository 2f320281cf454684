// protocol_test.cpp — milter/protocol.h: packets built byte for byte, the reader fed whole and
// byte by byte, negotiation, every reply, and SMFIR_REPLYCODE validation. Also the header
// edits a milter's modifications become (intake::edit_header_section with kInsert/kAppend),
// and milter/client.h against a scripted milter on a unix socket: the bounds on what a milter
// sends at the end of a message.
#include "milter/protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "milter/client.h"

#include "intake/message_intake.h"

namespace milter {
namespace {

using namespace std::string_literals;

std::string u32(std::uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff),
                     static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

Packet packet(char command, std::string data) {
  return Packet{command, std::move(data)};
}

TEST(MilterProtocol, EncodesTheMtaPackets) {
  EXPECT_EQ(encode('A', ""),
            "\0\0\0\x01"
            "A"s);
  EXPECT_EQ(option_negotiation(0x1ff, 0x3f), u32(13) + "O" + u32(6) + u32(0x1ff) + u32(0x3f));
  EXPECT_EQ(helo("client.example"), u32(16) + "Hclient.example\0"s);
  EXPECT_EQ(mail("a@b", {"SIZE=10"}), u32(15) + "M<a@b>\0SIZE=10\0"s);
  EXPECT_EQ(rcpt("", {}), u32(4) + "R<>\0"s);
  EXPECT_EQ(connect("unknown", '4', 2525, "192.0.2.1"), u32(22) +
                                                            "Cunknown\0"
                                                            "4\x09\xdd"
                                                            "192.0.2.1\0"s);
  EXPECT_EQ(connect("localhost", 'L', 0, ""), u32(12) + "Clocalhost\0L"s);
  // Folding goes as LF, as Sendmail and Postfix send it.
  EXPECT_EQ(header("Subject", "a\r\n b"), u32(14) + "LSubject\0a\n b\0"s);
  EXPECT_EQ(macros(MacroStage::kConnect, {{"j", "mx"}, {"{client_addr}", "1.2.3.4"}}),
            u32(29) +
                "DCj\0mx\0{client_addr}\0"
                "1.2.3.4\0"s);
  EXPECT_EQ(body("x"), u32(2) + "Bx");
}

TEST(MilterProtocol, ReadsPacketsWholeAndByteByByte) {
  const std::string stream = encode('c', "") + encode('h', "X-A\0b\0"s) + encode('a', "");
  for (std::size_t step : {stream.size(), std::size_t{1}}) {
    PacketReader reader;
    std::vector<Packet> got;
    for (std::size_t at = 0; at < stream.size(); at += step) {
      reader.feed(std::string_view(stream).substr(at, step));
      for (;;) {
        auto next = reader.next();
        ASSERT_TRUE(next);
        if (!next.value()) break;
        got.push_back(std::move(*next.value()));
      }
    }
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].command, 'c');
    EXPECT_EQ(got[1].data, "X-A\0b\0"s);
    EXPECT_EQ(got[2].command, 'a');
  }
}

TEST(MilterProtocol, RefusesZeroAndOversizedLengths) {
  PacketReader zero;
  zero.feed("\0\0\0\0"s);
  EXPECT_FALSE(zero.next());
  PacketReader huge;
  huge.feed(u32(static_cast<std::uint32_t>(kMaxPacket + 1)));
  EXPECT_FALSE(huge.next());
  // The largest packet libmilter sends without SMFIP_MDS_*: a whole body chunk.
  PacketReader largest;
  largest.feed(encode('b', std::string(kMaxBodyChunk, 'x')));
  auto packet = largest.next();
  ASSERT_TRUE(packet);
  ASSERT_TRUE(packet.value());
  EXPECT_EQ(packet.value()->data.size(), kMaxBodyChunk);
  EXPECT_LT(kMaxPacket, 128u * 1024);  // SMFIP_MDS_256K and SMFIP_MDS_1M are never offered
}

TEST(MilterProtocol, NegotiationTakesASubsetAndMacroLists) {
  std::string data = u32(6) + u32(action::kAddHeaders | action::kChangeHeaders) +
                     u32(protocol::kNoReplyHeader | protocol::kSkip) + u32(0) +
                     "j {client_addr}\0"s + u32(5) + "i\0"s;
  auto n = parse_negotiation(packet('O', data), action::kAll, protocol::kOffered);
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(n->version, 6u);
  EXPECT_EQ(n->protocol_flags, protocol::kNoReplyHeader | protocol::kSkip);
  ASSERT_TRUE(n->macros[0]);
  EXPECT_EQ(*n->macros[0], (std::vector<std::string>{"j", "{client_addr}"}));
  ASSERT_TRUE(n->macros[5]);
  EXPECT_FALSE(n->macros[1]);
}

TEST(MilterProtocol, NegotiationRefusesWhatWasNotOffered) {
  EXPECT_FALSE(parse_negotiation(packet('O', u32(1) + u32(0) + u32(0)), action::kAll,
                                 protocol::kOffered));  // version 1
  EXPECT_FALSE(parse_negotiation(packet('O', u32(6) + u32(0x400) + u32(0)), action::kAll,
                                 protocol::kOffered));  // an unknown action
  EXPECT_FALSE(parse_negotiation(packet('O', u32(6) + u32(0) + u32(0x800)), action::kAll,
                                 protocol::kOffered));  // SMFIP_RCPT_REJ
  EXPECT_FALSE(parse_negotiation(packet('O', u32(6) + u32(0)), action::kAll, protocol::kOffered));
  EXPECT_FALSE(parse_negotiation(packet('c', ""), action::kAll, protocol::kOffered));
  EXPECT_FALSE(parse_negotiation(packet('O', u32(6) + u32(0) + u32(0) + u32(9) + "j\0"s),
                                 action::kAll, protocol::kOffered));  // stage 9
  EXPECT_FALSE(parse_negotiation(packet('O', u32(6) + u32(0) + u32(0) + u32(0) + "j"), action::kAll,
                                 protocol::kOffered));  // no NUL
}

TEST(MilterProtocol, ParsesEveryReply) {
  using Kind = Response::Kind;
  struct Case {
    char command;
    std::string data;
    Kind kind;
  };
  const Case cases[] = {
      {'c', "", Kind::kContinue},
      {'a', "", Kind::kAccept},
      {'r', "", Kind::kReject},
      {'t', "", Kind::kTempfail},
      {'d', "", Kind::kDiscard},
      {'s', "", Kind::kSkip},
      {'p', "", Kind::kProgress},
      {'4', "", Kind::kShutdown},
      {'q', "spam\0"s, Kind::kQuarantine},
      {'h', "X-A\0v\0"s, Kind::kAddHeader},
      {'+', "<x@y>\0"s, Kind::kAddRecipient},
      {'-', "<x@y>\0"s, Kind::kDeleteRecipient},
      {'2', "<x@y>\0NOTIFY=NEVER\0"s, Kind::kAddRecipient},
      {'e', "<s@y>\0"s, Kind::kChangeSender},
      {'b', "new\r\n", Kind::kReplaceBody},
  };
  for (const Case& c : cases) {
    auto r = parse_response(packet(c.command, c.data));
    ASSERT_TRUE(r) << c.command << ": " << r.error();
    EXPECT_EQ(r->kind, c.kind) << c.command;
  }
  auto insert = parse_response(packet('i', u32(2) + "X-B\0line1\n\tline2\0"s));
  ASSERT_TRUE(insert);
  EXPECT_EQ(insert->index, 2u);
  EXPECT_EQ(insert->name, "X-B");
  EXPECT_EQ(insert->text, "line1\r\n\tline2");  // Sendmail's LF made CRLF
  auto change = parse_response(packet('m', u32(1) + "Subject\0\0"s));
  ASSERT_TRUE(change);
  EXPECT_EQ(change->kind, Kind::kChangeHeader);
  EXPECT_EQ(change->text, "");
  auto address = parse_response(packet('+', "<x@y>\0"s));
  EXPECT_EQ(address->text, "x@y");
  auto sender = parse_response(packet('e', "<>\0"s));
  EXPECT_EQ(sender->text, "");
}

TEST(MilterProtocol, RefusesMalformedReplies) {
  EXPECT_FALSE(parse_response(packet('Z', "")));
  EXPECT_FALSE(parse_response(packet('h', "X-A\0"s)));           // no value
  EXPECT_FALSE(parse_response(packet('h', "X-A\0v"s)));          // no final NUL
  EXPECT_FALSE(parse_response(packet('i', "\0\0"s)));            // no index
  EXPECT_FALSE(parse_response(packet('m', u32(1) + "\0v\0"s)));  // empty name
  EXPECT_FALSE(parse_response(packet('+', "")));
  EXPECT_FALSE(parse_response(packet('e', "a\0b\0c\0"s)));
}

TEST(MilterProtocol, ReplyCodeMustMatchItsMeaning) {
  auto reject = parse_response(packet('y', "554 5.7.1 Spam detected\0"s));
  ASSERT_TRUE(reject);
  EXPECT_EQ(reject->kind, Response::Kind::kReject);
  EXPECT_EQ(reject->reply->code, 554);
  EXPECT_EQ(reject->reply->enhanced, "5.7.1");
  EXPECT_EQ(reject->reply->text, "Spam detected");
  auto tempfail = parse_response(packet('y', "451 Try later\0"s));
  ASSERT_TRUE(tempfail);
  EXPECT_EQ(tempfail->kind, Response::Kind::kTempfail);
  EXPECT_EQ(tempfail->reply->enhanced, "4.7.1");  // none given
  EXPECT_EQ(tempfail->reply->text, "Try later");
  auto bare = validate_reply_code("550");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->text, "Command rejected");
}

TEST(MilterProtocol, ReplyCodeRefusals) {
  for (const char* bad :
       {"250 2.0.0 ok", "354 go on", "600 x", "55 x", "550-5.7.1 more",
        "550 5.7.1 two\r\n550 5.7.1 lines", "550 5.7.1 bare\nLF", "550 4.7.1 wrong class",
        "451 5.7.1 wrong class", "abc", "", "550 5.7.1 \x01 control"}) {
    EXPECT_FALSE(validate_reply_code(bad)) << bad;
  }
  EXPECT_FALSE(validate_reply_code("550 " + std::string(600, 'x')));
  EXPECT_FALSE(parse_response(packet('y', "550 a\0b\0"s)));
}

TEST(MilterProtocol, MacroStagesByName) {
  EXPECT_EQ(macro_stage_named("eoh"), MacroStage::kEndOfHeaders);
  EXPECT_EQ(macro_stage_named("eom"), MacroStage::kEndOfMessage);
  EXPECT_FALSE(macro_stage_named("body"));
  EXPECT_EQ(macro_command(MacroStage::kEndOfMessage), 'E');
}

TEST(MilterHeaderEdits, InsertAppendChangeDelete) {
  const std::string section = "From: a@b\r\nSubject: x\r\nTo: c@d\r\n\r\n";
  using K = intake::HeaderEdit::Kind;
  std::vector<intake::HeaderEdit> edits{
      {K::kInsert, "X-First", "1", 0}, {K::kAppend, "X-Last", "z", 1},
      {K::kInsert, "X-Third", "3", 2}, {K::kChange, "subject", "y", 1},
      {K::kDelete, "To", "", 1},       {K::kInsert, "X-Far", "f", 99},
  };
  auto edited = intake::edit_header_section(section, edits);
  ASSERT_TRUE(edited) << edited.error();
  EXPECT_EQ(*edited,
            "X-First: 1\r\nFrom: a@b\r\nX-Third: 3\r\nSubject: y\r\nX-Last: z\r\nX-Far: f\r\n\r\n");
}

// A milter on a unix socket of its own for one conversation: negotiates every action and no
// protocol flags, answers "continue" to every step, and at the end of the message sends what
// `end_of_message` returns (then "accept").
class ScriptedMilter {
 public:
  explicit ScriptedMilter(std::function<std::vector<std::string>()> end_of_message)
      : end_of_message_(std::move(end_of_message)) {
    char pattern[] = "/tmp/milter-client-test-XXXXXX";
    directory_ = ::mkdtemp(pattern);
    path_ = directory_ + "/milter.sock";
    listener_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, sizeof(address.sun_path) - 1);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listener_, 1) != 0) {
      ADD_FAILURE() << "cannot listen on " << path_;
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedMilter() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    ::unlink(path_.c_str());
    ::rmdir(directory_.c_str());
  }
  base::Endpoint endpoint() const { return base::Endpoint{path_, {}}; }

 private:
  void serve() {
    const int fd = ::accept(listener_, nullptr, nullptr);
    if (fd < 0) return;
    PacketReader reader;
    char buffer[65536];
    bool open = true;
    while (open) {
      const ssize_t got = ::read(fd, buffer, sizeof(buffer));
      if (got <= 0) break;
      reader.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
      for (;;) {
        auto next = reader.next();
        if (!next || !next.value()) break;
        std::string out;
        switch (next.value()->command) {
          case command::kOptionNegotiation:
            out = encode('O', u32(6) + u32(action::kAll) + u32(0));
            break;
          case command::kMacro:
          case command::kAbort:
            break;
          case command::kQuit:
            open = false;
            break;
          case command::kEndOfMessage:
            for (const std::string& packet : end_of_message_())
              out += packet;
            out += encode('a', "");
            break;
          default:
            out = encode('c', "");
        }
        // The client may close before reading it all (a bound passed): no SIGPIPE.
        for (std::size_t at = 0; at < out.size();) {
          const ssize_t sent = ::send(fd, out.data() + at, out.size() - at, MSG_NOSIGNAL);
          if (sent <= 0) {
            open = false;
            break;
          }
          at += static_cast<std::size_t>(sent);
        }
      }
    }
    ::close(fd);
  }

  std::function<std::vector<std::string>()> end_of_message_;
  std::string directory_;
  std::string path_;
  int listener_ = -1;
  std::thread thread_;
};

Outcome end_of_message_with(std::function<std::vector<std::string>()> packets,
                            std::size_t max_new_body = kMaxNewBody) {
  ScriptedMilter milter(std::move(packets));
  ClientOptions options;
  options.endpoint = milter.endpoint();
  options.max_new_body = max_new_body;
  Client client(options);
  const Clock::time_point limit = Clock::now() + std::chrono::seconds(30);
  EXPECT_EQ(client.connect("localhost", 'L', 0, "", limit).kind, Outcome::Kind::kContinue);
  Outcome outcome = client.end_of_message(limit);
  client.quit(limit);
  return outcome;
}

std::vector<std::string> repeated(std::size_t count, const std::string& packet) {
  return std::vector<std::string>(count, packet);
}

TEST(MilterClient, AtMostAThousandHeaderEdits) {
  const std::string add = encode('h', "X-A\0b\0"s);
  Outcome outcome = end_of_message_with([&] { return repeated(kMaxHeaderEdits, add); });
  EXPECT_EQ(outcome.kind, Outcome::Kind::kAccept);
  EXPECT_EQ(outcome.modifications.size(), kMaxHeaderEdits);
  outcome = end_of_message_with([&] { return repeated(kMaxHeaderEdits + 1, add); });
  EXPECT_EQ(outcome.kind, Outcome::Kind::kFailed);
  EXPECT_EQ(outcome.failure, "more than 1000 header edits");
  EXPECT_TRUE(outcome.modifications.empty());
}

TEST(MilterClient, AtMostAThousandRecipientEdits) {
  Outcome outcome = end_of_message_with([] {
    std::vector<std::string> packets = repeated(kMaxRecipientEdits / 2, encode('+', "<a@b>\0"s));
    for (std::size_t i = 0; i <= kMaxRecipientEdits / 2; ++i)
      packets.push_back(encode('-', "<c@d>\0"s));
    return packets;
  });
  EXPECT_EQ(outcome.kind, Outcome::Kind::kFailed);
  EXPECT_EQ(outcome.failure, "more than 1000 recipient edits");
}

TEST(MilterClient, QuarantinesAndSenderChangesAreBoundedToo) {
  Outcome outcome =
      end_of_message_with([] { return repeated(kMaxOtherEdits + 1, encode('e', "<a@b>\0"s)); });
  EXPECT_EQ(outcome.kind, Outcome::Kind::kFailed);
}

TEST(MilterClient, ReplacementBodyJoinedWithCrlfAndBounded) {
  Outcome outcome = end_of_message_with([] {
    return std::vector<std::string>{encode('b', "a\r"), encode('b', "\nb\n"), encode('b', "c")};
  });
  EXPECT_EQ(outcome.kind, Outcome::Kind::kAccept);
  EXPECT_EQ(outcome.new_body, std::optional<std::string>("a\r\nb\r\nc"));
  EXPECT_TRUE(outcome.modifications.empty());
  // LF becomes CRLF: half of the bound in LFs is the bound; one more LF is past it. The
  // bound is lowered to 1 MiB here (64 MiB of LFs cost 11 s of a loaded make test).
  const std::size_t bound = 1024 * 1024;
  const std::string lines(kMaxBodyChunk - 1, '\n');
  outcome = end_of_message_with(
      [&] { return repeated(bound / 2 / lines.size(), encode('b', lines)); }, bound);
  EXPECT_EQ(outcome.kind, Outcome::Kind::kAccept);
  ASSERT_TRUE(outcome.new_body);
  const std::size_t sent = bound / 2 / lines.size() * lines.size();
  EXPECT_EQ(outcome.new_body->size(), 2 * sent);
  outcome = end_of_message_with(
      [&] {
        std::vector<std::string> packets = repeated(sent / lines.size(), encode('b', lines));
        packets.push_back(encode('b', std::string(bound / 2 - sent + 1, '\n')));
        return packets;
      },
      bound);
  EXPECT_EQ(outcome.kind, Outcome::Kind::kFailed);
  EXPECT_EQ(outcome.failure, "replacement body over 1 MiB");
  EXPECT_EQ(ClientOptions{}.max_new_body, 64u * 1024 * 1024);
}

}  // namespace
}  // namespace milter
