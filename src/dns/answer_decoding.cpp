// answer_decoding.cpp — rcode and rdata of a raw result into a dns::Answer (see
// answer_decoding.h for the rules and their RFC sections).
#include "dns/answer_decoding.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cstdio>

namespace dns {
namespace {

constexpr int kNoError = 0;
constexpr int kNxDomainCode = 3;
constexpr std::size_t kMaxWireNameLength = 255;  // RFC 1035 §3.1, in wire octets

std::optional<std::string> decode_text(std::string_view data) {
  std::string text;
  std::size_t at = 0;
  while (at < data.size()) {
    auto length = static_cast<unsigned char>(data[at]);
    if (at + 1 + length > data.size()) return std::nullopt;
    text.append(data.substr(at + 1, length));
    at += 1 + length;
  }
  return text;
}

std::optional<std::string> decode_address(std::string_view data, Type type) {
  char text[INET6_ADDRSTRLEN];
  if (type == Type::kA && data.size() == 4) {
    return std::string(inet_ntop(AF_INET, data.data(), text, sizeof text));
  }
  if (type == Type::kAaaa && data.size() == 16) {
    return std::string(inet_ntop(AF_INET6, data.data(), text, sizeof text));
  }
  return std::nullopt;
}

std::optional<std::string> decode_whole_name(std::string_view data) {
  std::size_t consumed = 0;
  auto name = decode_name(data, &consumed);
  if (!name || consumed != data.size()) return std::nullopt;
  return name;
}

std::optional<MxRecord> decode_mx(std::string_view data) {
  if (data.size() < 3) return std::nullopt;
  auto preference = static_cast<std::uint16_t>((static_cast<unsigned char>(data[0]) << 8) |
                                               static_cast<unsigned char>(data[1]));
  auto exchange = decode_whole_name(data.substr(2));
  if (!exchange) return std::nullopt;
  return MxRecord{preference, std::move(*exchange)};
}

std::optional<TlsaRecord> decode_tlsa(std::string_view data) {
  if (data.size() < 3) return std::nullopt;
  return TlsaRecord{static_cast<std::uint8_t>(data[0]), static_cast<std::uint8_t>(data[1]),
                    static_cast<std::uint8_t>(data[2]), std::string(data.substr(3))};
}

// Decodes one record into the answer; false when its rdata is malformed.
bool add_record(Answer& answer, Type type, std::string_view data) {
  switch (type) {
    case Type::kTxt:
      if (auto text = decode_text(data)) {
        answer.texts.push_back(std::move(*text));
        return true;
      }
      return false;
    case Type::kA:
    case Type::kAaaa:
      if (auto address = decode_address(data, type)) {
        answer.addresses.push_back(std::move(*address));
        return true;
      }
      return false;
    case Type::kNs:
    case Type::kCname:
    case Type::kPtr:
      if (auto name = decode_whole_name(data)) {
        answer.names.push_back(std::move(*name));
        return true;
      }
      return false;
    case Type::kMx:
      if (auto mx = decode_mx(data)) {
        answer.mx.push_back(std::move(*mx));
        return true;
      }
      return false;
    case Type::kTlsa:
      if (auto tlsa = decode_tlsa(data)) {
        answer.tlsa.push_back(std::move(*tlsa));
        return true;
      }
      return false;
  }
  return false;
}

}  // namespace

std::string rcode_name(int rcode) {
  switch (rcode) {
    case 0:
      return "NOERROR";
    case 1:
      return "FORMERR";
    case 2:
      return "SERVFAIL";
    case 3:
      return "NXDOMAIN";
    case 4:
      return "NOTIMP";
    case 5:
      return "REFUSED";
  }
  return "rcode " + std::to_string(rcode);
}

std::optional<std::string> decode_name(std::string_view data, std::size_t* consumed) {
  std::string name;
  std::size_t at = 0;
  while (true) {
    if (at >= data.size() || at >= kMaxWireNameLength) return std::nullopt;
    auto length = static_cast<unsigned char>(data[at]);
    if (length == 0) {
      *consumed = at + 1;
      return name;
    }
    if (length > 63 || at + 1 + length > data.size()) return std::nullopt;  // or a pointer
    if (!name.empty()) name += '.';
    for (char ch : data.substr(at + 1, length)) {
      auto c = static_cast<unsigned char>(ch);
      if (std::isalnum(c) || c == '-' || c == '_') {
        name += static_cast<char>(std::tolower(c));
      } else if (c == '.' || c == '\\') {
        name += '\\';
        name += ch;
      } else {
        char escaped[5];
        std::snprintf(escaped, sizeof escaped, "\\%03u", c);
        name += escaped;
      }
    }
    at += 1 + length;
  }
}

Answer decode_answer(const RawResult& raw) {
  Answer answer;
  answer.ttl = raw.ttl;
  if (raw.bogus) {
    answer.status = Status::kBogus;
    // Named as such, so that a log line or `smtpsctl dkim check` says why it was not used.
    answer.detail = raw.why_bogus.empty() ? std::string("DNSSEC bogus: validation failed")
                                          : "DNSSEC bogus: " + raw.why_bogus;
    return answer;
  }
  answer.secure = raw.secure;
  if (!raw.canonical_name.empty()) {
    std::string canonical = raw.canonical_name, asked = raw.query_name;
    for (std::string* name : {&canonical, &asked}) {
      if (!name->empty() && name->back() == '.') name->pop_back();
      for (char& c : *name)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    if (canonical != asked) answer.canonical_name = std::move(canonical);
  }
  if (raw.rcode == kNxDomainCode) {
    answer.status = Status::kNxDomain;
    return answer;
  }
  if (raw.rcode != kNoError) {
    answer.status = Status::kTemporary;
    answer.secure = false;
    answer.detail = rcode_name(raw.rcode);
    return answer;
  }
  std::size_t malformed = 0;
  for (const std::string& data : raw.rdata) {
    if (!add_record(answer, raw.type, data)) ++malformed;
  }
  if (malformed > 0) {
    answer.detail = std::to_string(malformed) + " malformed " + std::string(to_string(raw.type)) +
                    " record" + (malformed == 1 ? "" : "s") + " dropped";
  }
  std::size_t kept = raw.rdata.size() - malformed;
  answer.status = kept > 0 ? Status::kOk : Status::kNoData;
  return answer;
}

}  // namespace dns
