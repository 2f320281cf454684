// protocol.h — the Sendmail milter protocol, version 6, as Postfix speaks it (the MTA side),
// pure: packets built and parsed, nothing else (no sockets, clocks or threads: those are in
// milter/connection.h and milter/client.h).
//
// A packet is a 32-bit length in network order (command octet included), one command octet
// and its data; strings are NUL-terminated. The MTA opens with SMFIC_OPTNEG (version, the
// actions it allows, the protocol steps it can leave out); the milter answers with the subset
// it wants, and in version 6 it may ask for its own macro list per stage (SMFIR_SETSYMLIST
// folded into the answer). Then, per SMTP session: macros (SMFIC_MACRO) before each step,
// connect, HELO, MAIL, RCPT, DATA, each header, end of headers, body chunks (at most
// kMaxBodyChunk octets each), end of message (SMFIC_BODYEOB), abort, quit. Every step gets a
// reply unless the milter asked for none (SMFIP_NR_*); at the end of the message the milter
// first sends its modifications, then the final reply.
//
// Every parser here has a bound: a packet larger than kMaxPacket is an error (a milter's
// largest legitimate packet is a body replacement chunk of at most 64 KiB: we never offer
// SMFIP_MDS_256K or SMFIP_MDS_1M, so libmilter splits at MILTER_CHUNK_SIZE, 65535 octets),
// and everything a milter sends is checked before it becomes a verdict: a reply code must be
// 4xx with a temporary failure and 5xx with a rejection, in one line without CR or LF (else
// it is the milter's failure, and its default action applies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.h"
#include "smtp/reply.h"

namespace milter {

constexpr std::uint32_t kVersion = 6;
constexpr std::size_t kMaxBodyChunk = 65535;  // SMFIC_BODY: libmilter's MILTER_CHUNK_SIZE
// Without SMFIP_MDS_* (never offered) libmilter sends no packet with more than
// MILTER_CHUNK_SIZE (kMaxBodyChunk) octets of data: that, its command octet, and slack.
constexpr std::size_t kMaxPacket = kMaxBodyChunk + 64;

// MTA → milter commands.
namespace command {
constexpr char kAbort = 'A';
constexpr char kBody = 'B';
constexpr char kConnect = 'C';
constexpr char kMacro = 'D';
constexpr char kEndOfMessage = 'E';  // SMFIC_BODYEOB
constexpr char kHelo = 'H';
constexpr char kHeader = 'L';
constexpr char kMail = 'M';
constexpr char kEndOfHeaders = 'N';
constexpr char kOptionNegotiation = 'O';
constexpr char kQuit = 'Q';
constexpr char kRcpt = 'R';
constexpr char kData = 'T';
}  // namespace command

// Actions the milter may take (SMFIF_*).
namespace action {
constexpr std::uint32_t kAddHeaders = 0x01;
constexpr std::uint32_t kChangeBody = 0x02;
constexpr std::uint32_t kAddRcpt = 0x04;
constexpr std::uint32_t kDeleteRcpt = 0x08;
constexpr std::uint32_t kChangeHeaders = 0x10;
constexpr std::uint32_t kQuarantine = 0x20;
constexpr std::uint32_t kChangeFrom = 0x40;
constexpr std::uint32_t kAddRcptWithArgs = 0x80;
constexpr std::uint32_t kSetSymbolList = 0x100;
constexpr std::uint32_t kAll = 0x1ff;
}  // namespace action

// Protocol steps the milter may leave out or need no reply for (SMFIP_*).
namespace protocol {
constexpr std::uint32_t kNoConnect = 0x1;
constexpr std::uint32_t kNoHelo = 0x2;
constexpr std::uint32_t kNoMail = 0x4;
constexpr std::uint32_t kNoRcpt = 0x8;
constexpr std::uint32_t kNoBody = 0x10;
constexpr std::uint32_t kNoHeaders = 0x20;
constexpr std::uint32_t kNoEndOfHeaders = 0x40;
constexpr std::uint32_t kNoReplyHeader = 0x80;
constexpr std::uint32_t kNoUnknown = 0x100;
constexpr std::uint32_t kNoData = 0x200;
constexpr std::uint32_t kSkip = 0x400;
constexpr std::uint32_t kNoReplyConnect = 0x1000;
constexpr std::uint32_t kNoReplyHelo = 0x2000;
constexpr std::uint32_t kNoReplyMail = 0x4000;
constexpr std::uint32_t kNoReplyRcpt = 0x8000;
constexpr std::uint32_t kNoReplyData = 0x10000;
constexpr std::uint32_t kNoReplyUnknown = 0x20000;
constexpr std::uint32_t kNoReplyEndOfHeaders = 0x40000;
constexpr std::uint32_t kNoReplyBody = 0x80000;
// What we offer: every step may be left out or go without reply; not SMFIP_RCPT_REJ (we send
// accepted recipients only), SMFIP_HDR_LEADSPC (values go without the leading space) or the
// larger data sizes (body chunks stay at 64 KiB).
constexpr std::uint32_t kOffered = 0xfffff & ~0x800u;
constexpr std::uint32_t kMds256K = 0x10000000;  // SMFIP_MDS_256K
constexpr std::uint32_t kMds1M = 0x20000000;    // SMFIP_MDS_1M
// kMaxPacket holds a 64 KiB body chunk only.
static_assert((kOffered & (kMds256K | kMds1M)) == 0);
}  // namespace protocol

// The macro stages of SMFIR_SETSYMLIST (SMFIM_*) and our configuration's names for them.
enum class MacroStage : std::uint32_t {
  kConnect = 0,
  kHelo = 1,
  kMail = 2,
  kRcpt = 3,
  kData = 4,
  kEndOfMessage = 5,
  kEndOfHeaders = 6,
};
constexpr std::size_t kMacroStages = 7;
std::string_view to_string(
    MacroStage stage);  // "connect", "helo", "mail", "rcpt", "data", "eom", "eoh"
std::optional<MacroStage> macro_stage_named(std::string_view name);
// The command octet an SMFIC_MACRO packet names for the stage.
char macro_command(MacroStage stage);
// Postfix's defaults (milter_*_macros) plus the client's address and name at connect, less
// {auth_type} (smtpsd has no value for it: a macro without a value is never sent).
const std::vector<std::string>& default_macros(MacroStage stage);

struct Packet {
  char command = 0;
  std::string data;
};

// The wire form of one packet.
std::string encode(char command, std::string_view data);

// Builders of the MTA's packets.
std::string option_negotiation(std::uint32_t actions, std::uint32_t protocol_flags);
std::string macros(MacroStage stage,
                   const std::vector<std::pair<std::string, std::string>>& name_values);
// SMFIC_CONNECT: family '4', '6' (with port and address), or 'L' (local; no port or address
// follow then: Postfix's form for a client that is not on the network).
std::string connect(std::string_view hostname, char family, std::uint16_t port,
                    std::string_view address);
std::string helo(std::string_view name);
// SMFIC_MAIL / SMFIC_RCPT: the address in angle brackets, then each ESMTP parameter.
std::string mail(std::string_view reverse_path, const std::vector<std::string>& parameters);
std::string rcpt(std::string_view forward_path, const std::vector<std::string>& parameters);
// SMFIC_HEADER: name and value; the value's CRLF line breaks (folding) go as LF, as Sendmail
// and Postfix send them.
std::string header(std::string_view name, std::string_view value);
std::string body(std::string_view chunk);  // at most kMaxBodyChunk octets

// Reads packets from a byte stream, each bounded by kMaxPacket.
class PacketReader {
 public:
  // Adds received bytes.
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next complete packet, nothing when more bytes are needed, or an error (a length of
  // 0 or over kMaxPacket: the stream cannot be resynchronised).
  base::Expected<std::optional<Packet>, std::string> next();

 private:
  std::string buffer_;
  std::size_t consumed_ = 0;
};

// The milter's answer to SMFIC_OPTNEG.
struct Negotiation {
  std::uint32_t version = 0;
  std::uint32_t actions = 0;
  std::uint32_t protocol_flags = 0;
  // SMFIR_SETSYMLIST: the macros the milter wants per stage (nullopt: the configured list).
  std::optional<std::vector<std::string>> macros[kMacroStages];
};
// Fails on a packet that is not an SMFIC_OPTNEG answer, a version below 2, actions or
// protocol steps we did not offer, or a malformed macro list.
base::Expected<Negotiation, std::string> parse_negotiation(const Packet& packet,
                                                           std::uint32_t offered_actions,
                                                           std::uint32_t offered_protocol);

// One packet the milter sends after a step.
struct Response {
  enum class Kind {
    // Final replies to a step.
    kContinue,
    kAccept,
    kReject,    // SMFIR_REJECT, or SMFIR_REPLYCODE with a 5xx (reply set)
    kTempfail,  // SMFIR_TEMPFAIL, or SMFIR_REPLYCODE with a 4xx (reply set)
    kDiscard,
    kSkip,      // no more body chunks, please
    kShutdown,  // SMFIR_SHUTDOWN or SMFIR_CONN_FAIL: the milter is going away
    // Not final.
    kProgress,
    kQuarantine,  // text: the reason
    kAddHeader,
    kInsertHeader,  // index: the position (0: before the first field)
    kChangeHeader,  // index: the index-th field of that name (from 1); empty value: delete
    kAddRecipient,
    kDeleteRecipient,
    kReplaceBody,  // text: the next chunk of the new body
    kChangeSender,
  };
  Kind kind = Kind::kContinue;
  std::optional<smtp::Reply> reply;  // kReject/kTempfail from SMFIR_REPLYCODE
  std::uint32_t index = 0;
  std::string name;  // header name
  std::string
      text;  // header value (LF made CRLF), address without <>, body chunk (as sent), reason
  std::string parameters;  // ESMTP parameters of kChangeSender / kAddRecipient, as sent
  bool modification() const { return kind >= Kind::kQuarantine; }
};
// Parses one reply packet; fails on an unknown command, malformed data, or a reply code that
// does not validate (validate_reply_code).
base::Expected<Response, std::string> parse_response(const Packet& packet);

// SMFIR_REPLYCODE's text ("550 5.7.1 Go away"): three digits, 4xx or 5xx, a space, an
// optional enhanced status code of the same class (RFC 3463), text; one line, printable
// ASCII only (no CR, LF or other controls), at most 512 octets. Without an enhanced code the
// reply gets X.7.1 ("delivery not authorized, message refused").
base::Expected<smtp::Reply, std::string> validate_reply_code(std::string_view text);

// The name of a reply or command octet for log lines ("reject", "replycode", "header").
std::string_view response_name(Response::Kind kind);

}  // namespace milter
