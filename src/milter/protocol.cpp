// protocol.cpp — see protocol.h.
#include "milter/protocol.h"

#include <array>

namespace milter {
namespace {

void append_u32(std::string& out, std::uint32_t value) {
  out += static_cast<char>((value >> 24) & 0xff);
  out += static_cast<char>((value >> 16) & 0xff);
  out += static_cast<char>((value >> 8) & 0xff);
  out += static_cast<char>(value & 0xff);
}

std::uint32_t read_u32(std::string_view data) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(data[0])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(data[1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(data[2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(data[3]));
}

void append_string(std::string& out, std::string_view text) {
  out.append(text);
  out += '\0';
}

// Splits NUL-terminated strings; fails when the data does not end with a NUL.
base::Expected<std::vector<std::string_view>, std::string> strings_of(std::string_view data) {
  std::vector<std::string_view> out;
  if (data.empty()) return out;
  if (data.back() != '\0') return base::unexpected(std::string("string without its NUL"));
  std::size_t at = 0;
  while (at < data.size()) {
    std::size_t end = data.find('\0', at);
    out.push_back(data.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// LF alone (Sendmail's line ends inside a header value or body) becomes CRLF; CRLF stays.
std::string with_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

std::string without_angle_brackets(std::string_view address) {
  while (!address.empty() && (address.front() == ' ' || address.front() == '\t'))
    address.remove_prefix(1);
  while (!address.empty() && (address.back() == ' ' || address.back() == '\t'))
    address.remove_suffix(1);
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>')
    address = address.substr(1, address.size() - 2);
  return std::string(address);
}

bool printable(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  return true;
}

}  // namespace

std::string_view to_string(MacroStage stage) {
  switch (stage) {
    case MacroStage::kConnect:
      return "connect";
    case MacroStage::kHelo:
      return "helo";
    case MacroStage::kMail:
      return "mail";
    case MacroStage::kRcpt:
      return "rcpt";
    case MacroStage::kData:
      return "data";
    case MacroStage::kEndOfMessage:
      return "eom";
    case MacroStage::kEndOfHeaders:
      return "eoh";
  }
  return "unknown";
}

std::optional<MacroStage> macro_stage_named(std::string_view name) {
  for (std::uint32_t i = 0; i < kMacroStages; ++i) {
    const auto stage = static_cast<MacroStage>(i);
    if (to_string(stage) == name) return stage;
  }
  return std::nullopt;
}

char macro_command(MacroStage stage) {
  switch (stage) {
    case MacroStage::kConnect:
      return command::kConnect;
    case MacroStage::kHelo:
      return command::kHelo;
    case MacroStage::kMail:
      return command::kMail;
    case MacroStage::kRcpt:
      return command::kRcpt;
    case MacroStage::kData:
      return command::kData;
    case MacroStage::kEndOfMessage:
      return command::kEndOfMessage;
    case MacroStage::kEndOfHeaders:
      return command::kEndOfHeaders;
  }
  return command::kConnect;
}

const std::vector<std::string>& default_macros(MacroStage stage) {
  static const std::array<std::vector<std::string>, kMacroStages> kDefaults{{
      {"j", "{daemon_name}", "v", "_", "{client_addr}", "{client_name}", "{client_port}"},
      {"{tls_version}", "{cipher}"},
      {"i", "{auth_authen}", "{mail_addr}"},
      {"i", "{rcpt_addr}"},
      {"i"},
      {"i"},
      {"i"},
  }};
  return kDefaults[static_cast<std::size_t>(stage)];
}

std::string encode(char command, std::string_view data) {
  std::string out;
  out.reserve(5 + data.size());
  append_u32(out, static_cast<std::uint32_t>(data.size() + 1));
  out += command;
  out.append(data);
  return out;
}

std::string option_negotiation(std::uint32_t actions, std::uint32_t protocol_flags) {
  std::string data;
  append_u32(data, kVersion);
  append_u32(data, actions);
  append_u32(data, protocol_flags);
  return encode(command::kOptionNegotiation, data);
}

std::string macros(MacroStage stage,
                   const std::vector<std::pair<std::string, std::string>>& name_values) {
  std::string data(1, macro_command(stage));
  for (const auto& [name, value] : name_values) {
    append_string(data, name);
    append_string(data, value);
  }
  return encode(command::kMacro, data);
}

std::string connect(std::string_view hostname, char family, std::uint16_t port,
                    std::string_view address) {
  std::string data;
  append_string(data, hostname);
  data += family;
  if (family == '4' || family == '6') {
    data += static_cast<char>((port >> 8) & 0xff);
    data += static_cast<char>(port & 0xff);
    append_string(data, address);
  }
  return encode(command::kConnect, data);
}

std::string helo(std::string_view name) {
  std::string data;
  append_string(data, name);
  return encode(command::kHelo, data);
}

namespace {
std::string address_command(char command, std::string_view address,
                            const std::vector<std::string>& parameters) {
  std::string data;
  data += '<';
  data.append(address);
  data += '>';
  data += '\0';
  for (const std::string& parameter : parameters)
    append_string(data, parameter);
  return encode(command, data);
}
}  // namespace

std::string mail(std::string_view reverse_path, const std::vector<std::string>& parameters) {
  return address_command(command::kMail, reverse_path, parameters);
}

std::string rcpt(std::string_view forward_path, const std::vector<std::string>& parameters) {
  return address_command(command::kRcpt, forward_path, parameters);
}

std::string header(std::string_view name, std::string_view value) {
  std::string data;
  append_string(data, name);
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n') continue;
    if (value[i] == '\0') continue;
    data += value[i];
  }
  data += '\0';
  return encode(command::kHeader, data);
}

std::string body(std::string_view chunk) {
  return encode(command::kBody, chunk);
}

base::Expected<std::optional<Packet>, std::string> PacketReader::next() {
  const std::size_t available = buffer_.size() - consumed_;
  if (available < 4) return std::optional<Packet>();
  const std::uint32_t length = read_u32(std::string_view(buffer_).substr(consumed_, 4));
  if (length == 0) return base::unexpected(std::string("packet of length 0"));
  if (length > kMaxPacket) {
    return base::unexpected("packet of " + std::to_string(length) + " octets (the limit is " +
                            std::to_string(kMaxPacket) + ")");
  }
  if (available < 4 + static_cast<std::size_t>(length)) return std::optional<Packet>();
  Packet packet;
  packet.command = buffer_[consumed_ + 4];
  packet.data.assign(buffer_, consumed_ + 5, length - 1);
  consumed_ += 4 + length;
  // Keep the buffer small: drop what was read once it is most of it.
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > 64 * 1024) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return std::optional<Packet>(std::move(packet));
}

base::Expected<Negotiation, std::string> parse_negotiation(const Packet& packet,
                                                           std::uint32_t offered_actions,
                                                           std::uint32_t offered_protocol) {
  if (packet.command != command::kOptionNegotiation) {
    return base::unexpected(
        "option negotiation answered with '" +
        std::string(1, printable(std::string_view(&packet.command, 1)) ? packet.command : '?') +
        "'");
  }
  std::string_view data = packet.data;
  if (data.size() < 12) return base::unexpected(std::string("option negotiation too short"));
  Negotiation negotiation;
  negotiation.version = read_u32(data.substr(0, 4));
  negotiation.actions = read_u32(data.substr(4, 4));
  negotiation.protocol_flags = read_u32(data.substr(8, 4));
  if (negotiation.version < 2 || negotiation.version > kVersion) {
    return base::unexpected("unsupported milter protocol version " +
                            std::to_string(negotiation.version));
  }
  if ((negotiation.actions & ~offered_actions) != 0) {
    return base::unexpected("the milter asks for actions we do not offer (0x" +
                            [](std::uint32_t v) {
                              static constexpr char kHex[] = "0123456789abcdef";
                              std::string out;
                              for (int shift = 28; shift >= 0; shift -= 4)
                                out += kHex[(v >> shift) & 0xf];
                              return out;
                            }(negotiation.actions & ~offered_actions) +
                            ")");
  }
  if ((negotiation.protocol_flags & ~offered_protocol) != 0) {
    return base::unexpected(std::string("the milter asks for protocol steps we do not offer"));
  }
  data.remove_prefix(12);
  while (!data.empty()) {
    if (data.size() < 5) return base::unexpected(std::string("truncated macro list"));
    const std::uint32_t stage = read_u32(data.substr(0, 4));
    data.remove_prefix(4);
    const std::size_t end = data.find('\0');
    if (end == std::string_view::npos)
      return base::unexpected(std::string("macro list without its NUL"));
    if (stage >= kMacroStages)
      return base::unexpected(std::string("macro list of an unknown stage"));
    std::vector<std::string> names;
    std::string_view list = data.substr(0, end);
    data.remove_prefix(end + 1);
    while (!list.empty()) {
      const std::size_t space = list.find(' ');
      std::string_view name = list.substr(0, space);
      if (!name.empty()) {
        if (!printable(name) || name.size() > 64)
          return base::unexpected(std::string("malformed macro name"));
        names.emplace_back(name);
      }
      if (space == std::string_view::npos) break;
      list.remove_prefix(space + 1);
    }
    negotiation.macros[stage] = std::move(names);
  }
  return negotiation;
}

base::Expected<smtp::Reply, std::string> validate_reply_code(std::string_view text) {
  if (text.size() > 512) return base::unexpected(std::string("reply code text over 512 octets"));
  if (!printable(text)) {
    return base::unexpected(std::string("reply code text with CR, LF or other control characters"));
  }
  if (text.size() < 3 || text[0] < '4' || text[0] > '5' || text[1] < '0' || text[1] > '9' ||
      text[2] < '0' || text[2] > '9') {
    return base::unexpected(std::string("reply code not 4xx or 5xx"));
  }
  smtp::Reply reply;
  reply.code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
  std::string_view rest = text.substr(3);
  if (!rest.empty()) {
    if (rest.front() != ' ') return base::unexpected(std::string("reply code without a space"));
    rest.remove_prefix(1);
  }
  // An enhanced status code: class.subject.detail (RFC 3463 §2), the class that of the reply.
  std::size_t end = rest.find(' ');
  std::string_view first = rest.substr(0, end);
  auto is_number = [](std::string_view part, std::size_t max) {
    if (part.empty() || part.size() > max) return false;
    for (char c : part)
      if (c < '0' || c > '9') return false;
    return true;
  };
  const std::size_t dot1 = first.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : first.find('.', dot1 + 1);
  if (dot2 != std::string_view::npos && is_number(first.substr(0, dot1), 1) &&
      is_number(first.substr(dot1 + 1, dot2 - dot1 - 1), 3) &&
      is_number(first.substr(dot2 + 1), 3)) {
    if (first[0] != text[0]) {
      return base::unexpected(std::string("enhanced status code of another class than the reply"));
    }
    reply.enhanced = std::string(first);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  } else {
    reply.enhanced = reply.code >= 500 ? "5.7.1" : "4.7.1";
  }
  reply.text = std::string(rest);
  if (reply.text.empty()) reply.text = reply.code >= 500 ? "Command rejected" : "Try again later";
  return reply;
}

base::Expected<Response, std::string> parse_response(const Packet& packet) {
  using Kind = Response::Kind;
  Response response;
  std::string_view data = packet.data;
  auto no_data = [&](Kind kind) -> base::Expected<Response, std::string> {
    response.kind = kind;
    return response;
  };
  switch (packet.command) {
    case 'c':
      return no_data(Kind::kContinue);
    case 'a':
      return no_data(Kind::kAccept);
    case 'r':
      return no_data(Kind::kReject);
    case 't':
      return no_data(Kind::kTempfail);
    case 'd':
      return no_data(Kind::kDiscard);
    case 's':
      return no_data(Kind::kSkip);
    case 'p':
      return no_data(Kind::kProgress);
    case '4':
    case 'f':
      return no_data(Kind::kShutdown);
    case 'y': {
      std::string_view text = data;
      if (!text.empty() && text.back() == '\0') text.remove_suffix(1);
      if (text.find('\0') != std::string_view::npos)
        return base::unexpected(std::string("reply code text with a NUL"));
      auto reply = validate_reply_code(text);
      if (!reply) return base::unexpected(reply.error());
      response.kind = reply->code >= 500 ? Kind::kReject : Kind::kTempfail;
      response.reply = std::move(reply.value());
      return response;
    }
    case 'b':
      response.kind = Kind::kReplaceBody;
      response.text = std::string(data);  // as sent: a CR may end one chunk, its LF the next
      return response;
    case 'q':
    case 'h':
    case 'i':
    case 'm':
    case '+':
    case '-':
    case '2':
    case 'e':
      break;
    default: {
      const unsigned char c = static_cast<unsigned char>(packet.command);
      return base::unexpected(
          "unknown reply '" +
          (c >= 0x21 && c <= 0x7e ? std::string(1, packet.command) : "\\x" + std::to_string(c)) +
          "'");
    }
  }
  // The replies with NUL-terminated strings, some after a 32-bit index.
  if (packet.command == 'i' || packet.command == 'm') {
    if (data.size() < 4) return base::unexpected(std::string("header change without its index"));
    response.index = read_u32(data.substr(0, 4));
    data.remove_prefix(4);
  }
  auto strings = strings_of(data);
  if (!strings) return base::unexpected(strings.error());
  const std::vector<std::string_view>& parts = strings.value();
  auto need = [&](std::size_t low, std::size_t high) {
    return parts.size() >= low && parts.size() <= high;
  };
  switch (packet.command) {
    case 'q':
      if (!need(1, 1)) return base::unexpected(std::string("malformed quarantine reply"));
      response.kind = Kind::kQuarantine;
      response.text = std::string(parts[0]);
      return response;
    case 'h':
    case 'i':
    case 'm':
      if (!need(2, 2) || parts[0].empty())
        return base::unexpected(std::string("malformed header modification"));
      response.kind = packet.command == 'h'   ? Kind::kAddHeader
                      : packet.command == 'i' ? Kind::kInsertHeader
                                              : Kind::kChangeHeader;
      response.name = std::string(parts[0]);
      response.text = with_crlf(parts[1]);
      return response;
    case '+':
    case '-':
      if (!need(1, 1)) return base::unexpected(std::string("malformed recipient modification"));
      response.kind = packet.command == '+' ? Kind::kAddRecipient : Kind::kDeleteRecipient;
      response.text = without_angle_brackets(parts[0]);
      return response;
    case '2':
    case 'e':
      if (!need(1, 2)) return base::unexpected(std::string("malformed address modification"));
      response.kind = packet.command == '2' ? Kind::kAddRecipient : Kind::kChangeSender;
      response.text = without_angle_brackets(parts[0]);
      if (parts.size() == 2) response.parameters = std::string(parts[1]);
      return response;
    default:
      break;
  }
  return base::unexpected(std::string("unknown reply"));
}

std::string_view response_name(Response::Kind kind) {
  using Kind = Response::Kind;
  switch (kind) {
    case Kind::kContinue:
      return "continue";
    case Kind::kAccept:
      return "accept";
    case Kind::kReject:
      return "reject";
    case Kind::kTempfail:
      return "tempfail";
    case Kind::kDiscard:
      return "discard";
    case Kind::kSkip:
      return "skip";
    case Kind::kShutdown:
      return "shutdown";
    case Kind::kProgress:
      return "progress";
    case Kind::kQuarantine:
      return "quarantine";
    case Kind::kAddHeader:
      return "add_header";
    case Kind::kInsertHeader:
      return "insert_header";
    case Kind::kChangeHeader:
      return "change_header";
    case Kind::kAddRecipient:
      return "add_recipient";
    case Kind::kDeleteRecipient:
      return "delete_recipient";
    case Kind::kReplaceBody:
      return "replace_body";
    case Kind::kChangeSender:
      return "change_sender";
  }
  return "unknown";
}

}  // namespace milter
