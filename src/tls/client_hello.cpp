// client_hello.cpp — see client_hello.h.
#include "tls/client_hello.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <utility>

#include "base/network.h"

namespace tls {
namespace {

void put8(std::string& out, unsigned value) {
  out.push_back(static_cast<char>(value & 0xFF));
}
void put16(std::string& out, unsigned value) {
  put8(out, value >> 8);
  put8(out, value);
}
void put24(std::string& out, unsigned value) {
  put8(out, value >> 16);
  put16(out, value);
}

// Appends an extension: type, then its body with a 16-bit length.
void extension(std::string& out, unsigned type, const std::string& body) {
  put16(out, type);
  put16(out, static_cast<unsigned>(body.size()));
  out += body;
}

std::string list16(std::span<const std::uint16_t> values) {
  std::string body;
  put16(body, static_cast<unsigned>(values.size() * 2));
  for (std::uint16_t value : values)
    put16(body, value);
  return body;
}

unsigned byte(std::string_view bytes, std::size_t at) {
  return static_cast<unsigned char>(bytes[at]);
}
unsigned read16(std::string_view bytes, std::size_t at) {
  return byte(bytes, at) << 8 | byte(bytes, at + 1);
}

// RFC 8422 §5.1.1, RFC 7919: the curves and groups a 2010s-era server may want.
constexpr std::array<std::uint16_t, 10> kGroups = {0x001d, 0x0017, 0x0018, 0x0019, 0x001e,
                                                   0x0100, 0x0101, 0x0102, 0x0016, 0x0015};
// RFC 5246 §7.4.1.4.1 and RFC 8446 §4.2.3 code points, SHA-1 and DSA included: a server
// with only an old certificate must still be able to answer.
constexpr std::array<std::uint16_t, 16> kSignatures = {
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501,
    0x0601, 0x0807, 0x0808, 0x0201, 0x0203, 0x0202, 0x0402, 0x0303};

struct Legacy {
  std::uint16_t code;
  std::string_view name;
};
// RFC 2246 appendix A.5 and RFC 5246 appendix A.5 (export and single-DES suites no current
// TLS library keeps), and the 1024-bit export suites of the old drafts.
constexpr Legacy kLegacy[] = {
    {0x0000, "TLS_NULL_WITH_NULL_NULL"},
    {0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"},
    {0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"},
    {0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"},
    {0x0009, "TLS_RSA_WITH_DES_CBC_SHA"},
    {0x000B, "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA"},
    {0x000C, "TLS_DH_DSS_WITH_DES_CBC_SHA"},
    {0x000E, "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA"},
    {0x000F, "TLS_DH_RSA_WITH_DES_CBC_SHA"},
    {0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA"},
    {0x0012, "TLS_DHE_DSS_WITH_DES_CBC_SHA"},
    {0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"},
    {0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"},
    {0x0017, "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5"},
    {0x0019, "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA"},
    {0x001A, "TLS_DH_anon_WITH_DES_CBC_SHA"},
    {0x0062, "TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA"},
    {0x0063, "TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA"},
    {0x0064, "TLS_RSA_EXPORT1024_WITH_RC4_56_SHA"},
    {0x0065, "TLS_DHE_DSS_EXPORT1024_WITH_RC4_56_SHA"},
};

bool has(std::string_view name, std::string_view part) {
  return name.find(part) != std::string_view::npos;
}

}  // namespace

std::string client_hello(const HelloOptions& options) {
  const bool tls13 = options.version >= kTls13;
  std::string hello;
  put16(hello, tls13 ? kTls12 : options.version);  // RFC 8446 §4.1.2: legacy_version
  // A random that is not random: nothing secret is ever derived from this handshake.
  for (int i = 0; i < 32; ++i)
    put8(hello, static_cast<unsigned>(0x5a ^ i));
  put8(hello, 0);  // no session id
  put16(hello,
        static_cast<unsigned>((options.ciphers.size() + (options.fallback_scsv ? 1 : 0)) * 2));
  for (std::uint16_t cipher : options.ciphers)
    put16(hello, cipher);
  if (options.fallback_scsv) put16(hello, 0x5600);
  put8(hello, 1);  // compression methods: null only (a server that wants more: CRIME)
  put8(hello, 0);
  if (options.version > kSsl3) {
    std::string extensions;
    if (!options.server_name.empty() && !base::parse_ip(options.server_name)) {
      std::string entry;
      put8(entry, 0);  // host_name
      put16(entry, static_cast<unsigned>(options.server_name.size()));
      entry += options.server_name;
      std::string body;
      put16(body, static_cast<unsigned>(entry.size()));
      body += entry;
      extension(extensions, 0x0000, body);
    }
    if (options.groups.empty()) {
      extension(extensions, 0x000a, list16(kGroups));
    } else {
      extension(extensions, 0x000a, list16(options.groups));
    }
    extension(extensions, 0x000b, std::string("\x01\x00", 2));  // uncompressed points
    extension(extensions, 0x000d, list16(kSignatures));
    if (!tls13) extension(extensions, 0xff01, std::string(1, '\0'));  // renegotiation_info
    if (options.heartbeat) extension(extensions, 0x000f, std::string(1, '\x01'));
    if (tls13) {
      extension(extensions, 0x002b, std::string("\x02\x03\x04", 3));  // supported_versions
      extension(extensions, 0x0033, std::string("\x00\x00", 2));      // key_share: empty
    }
    put16(hello, static_cast<unsigned>(extensions.size()));
    hello += extensions;
  }
  std::string handshake;
  put8(handshake, 1);  // client_hello
  put24(handshake, static_cast<unsigned>(hello.size()));
  handshake += hello;
  std::string record;
  put8(record, 22);  // handshake
  // The record's version: TLS 1.0 for later hellos, as browsers do (RFC 5246 appendix E.1).
  put16(record, options.version > kTls10 ? kTls10 : options.version);
  put16(record, static_cast<unsigned>(handshake.size()));
  return record + handshake;
}

std::vector<std::uint16_t> cipher_codes_before_tls13() {
  std::vector<std::uint16_t> codes;
  for (unsigned code = 0x0000; code <= 0x00FE; ++code)
    codes.push_back(static_cast<std::uint16_t>(code));
  for (unsigned code = 0xC001; code <= 0xC0FF; ++code)
    codes.push_back(static_cast<std::uint16_t>(code));
  for (unsigned code = 0xCCA8; code <= 0xCCAE; ++code)
    codes.push_back(static_cast<std::uint16_t>(code));
  return codes;
}

namespace {

// RFC 8446 §4.1.3: the random of a HelloRetryRequest, SHA-256("HelloRetryRequest").
constexpr unsigned char kHelloRetryRandom[32] = {
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C};

// The body of a ServerHello handshake message into answer; false when it is malformed.
bool parse_server_hello(std::string_view hello, ServerAnswer& answer) {
  if (hello.size() < 38) return false;
  answer.version = static_cast<std::uint16_t>(read16(hello, 0));
  answer.hello_retry =
      std::equal(std::begin(kHelloRetryRandom), std::end(kHelloRetryRandom), hello.begin() + 2,
                 [](unsigned char a, char b) { return a == static_cast<unsigned char>(b); });
  std::size_t p = 2 + 32;
  const std::size_t session = byte(hello, p);
  p += 1 + session;
  if (p + 3 > hello.size()) return false;
  answer.cipher = static_cast<std::uint16_t>(read16(hello, p));
  answer.compression = static_cast<std::uint8_t>(byte(hello, p + 2));
  p += 3;
  if (p + 2 <= hello.size()) {
    std::size_t end = p + 2 + read16(hello, p);
    if (end > hello.size()) return false;
    for (p += 2; p + 4 <= end;) {
      const unsigned ext = read16(hello, p);
      const std::size_t size = read16(hello, p + 2);
      if (p + 4 + size > end) break;
      if (ext == 0xff01) answer.secure_renegotiation = true;
      if (ext == 0x000f) answer.heartbeat = true;
      if (ext == 0x002b && size >= 2)
        answer.selected_version = static_cast<std::uint16_t>(read16(hello, p + 4));
      if (ext == 0x0033 && size >= 2)
        answer.key_share_group = static_cast<std::uint16_t>(read16(hello, p + 4));
      p += 4 + size;
    }
  }
  answer.kind = ServerAnswer::Kind::kServerHello;
  return true;
}

bool plausible_record(unsigned type, unsigned major, std::size_t length) {
  return type >= 20 && type <= 24 && major == 3 && length != 0 && length <= 16384 + 2048;
}

}  // namespace

std::vector<std::uint16_t> tls13_cipher_codes() {
  return {0x1301, 0x1302, 0x1303, 0x1304, 0x1305};
}

std::span<const NamedGroup> named_groups() {
  static constexpr NamedGroup kNamed[] = {
      {0x0001, "sect163k1", 163},
      {0x0002, "sect163r1", 162},
      {0x0003, "sect163r2", 163},
      {0x0004, "sect193r1", 193},
      {0x0005, "sect193r2", 193},
      {0x0006, "sect233k1", 232},
      {0x0007, "sect233r1", 233},
      {0x0008, "sect239k1", 238},
      {0x0009, "sect283k1", 281},
      {0x000A, "sect283r1", 282},
      {0x000B, "sect409k1", 407},
      {0x000C, "sect409r1", 409},
      {0x000D, "sect571k1", 570},
      {0x000E, "sect571r1", 570},
      {0x000F, "secp160k1", 161},
      {0x0010, "secp160r1", 161},
      {0x0011, "secp160r2", 161},
      {0x0012, "secp192k1", 192},
      {0x0013, "secp192r1", 192},
      {0x0014, "secp224k1", 225},
      {0x0015, "secp224r1", 224},
      {0x0016, "secp256k1", 256},
      {0x0017, "secp256r1", 256},
      {0x0018, "secp384r1", 384},
      {0x0019, "secp521r1", 521},
      {0x001A, "brainpoolP256r1", 256},
      {0x001B, "brainpoolP384r1", 384},
      {0x001C, "brainpoolP512r1", 512},
      {0x001D, "x25519", 253},
      {0x001E, "x448", 448},
      {0x001F, "brainpoolP256r1tls13", 256},
      {0x0020, "brainpoolP384r1tls13", 384},
      {0x0021, "brainpoolP512r1tls13", 512},
      {0x0100, "ffdhe2048", 2048},
      {0x0101, "ffdhe3072", 3072},
      {0x0102, "ffdhe4096", 4096},
      {0x0103, "ffdhe6144", 6144},
      {0x0104, "ffdhe8192", 8192},
      {0x11EB, "SecP256r1MLKEM768", 256},
      {0x11EC, "X25519MLKEM768", 253},
      {0x11ED, "SecP384r1MLKEM1024", 384},
  };
  return kNamed;
}

const NamedGroup* find_named_group(std::uint16_t code) {
  for (const NamedGroup& group : named_groups()) {
    if (group.code == code) return &group;
  }
  return nullptr;
}

ServerAnswer read_answer(std::string_view bytes) {
  ServerAnswer answer;
  // Handshake bytes gathered across records, until the first message is whole.
  std::string handshake;
  std::size_t at = 0;
  while (at + 5 <= bytes.size()) {
    const unsigned type = byte(bytes, at);
    const unsigned major = byte(bytes, at + 1);
    const std::size_t length = read16(bytes, at + 3);
    if ((type != 21 && type != 22) || major != 3 || length == 0 || length > 16384 + 2048) {
      answer.kind = ServerAnswer::Kind::kMalformed;
      return answer;
    }
    if (at + 5 + length > bytes.size()) return answer;  // incomplete record
    const std::string_view body = bytes.substr(at + 5, length);
    at += 5 + length;
    if (type == 21) {
      if (!handshake.empty() || body.size() < 2) {
        answer.kind = ServerAnswer::Kind::kMalformed;
        return answer;
      }
      answer.kind = ServerAnswer::Kind::kAlert;
      answer.alert_level = static_cast<std::uint8_t>(byte(body, 0));
      answer.alert_description = static_cast<std::uint8_t>(byte(body, 1));
      return answer;
    }
    handshake.append(body);
    if (handshake.size() < 4) continue;
    const std::size_t message =
        static_cast<std::size_t>(byte(handshake, 1)) << 16 | read16(handshake, 2);
    if (byte(handshake, 0) != 2 || message < 38 || message > 65536) {
      answer.kind = ServerAnswer::Kind::kMalformed;
      return answer;
    }
    if (handshake.size() < 4 + message) continue;
    if (!parse_server_hello(std::string_view(handshake).substr(4, message), answer)) {
      answer = ServerAnswer{};
      answer.kind = ServerAnswer::Kind::kMalformed;
    }
    return answer;
  }
  if (at < bytes.size() && at + 5 > bytes.size() && bytes.size() - at >= 1) {
    // A partial header: a TLS record may still come, anything else cannot.
    const unsigned type = byte(bytes, at);
    if (type != 21 && type != 22) answer.kind = ServerAnswer::Kind::kMalformed;
  }
  return answer;
}

namespace {
// The leaf of a Certificate message's certificate_list (RFC 5246 §7.4.2): each
// ASN.1Cert<1..2^24-1>, the list's length the sum of theirs. "" for an empty list (an
// anonymous suite). False when the lengths do not add up.
bool read_leaf(std::string_view content, std::string& leaf) {
  if (content.size() < 3) return false;
  const std::size_t list = static_cast<std::size_t>(byte(content, 0)) << 16 | read16(content, 1);
  if (list != content.size() - 3) return false;
  std::size_t at = 3;
  while (at < content.size()) {
    if (content.size() - at < 3) return false;
    const std::size_t length =
        static_cast<std::size_t>(byte(content, at)) << 16 | read16(content, at + 1);
    if (length == 0 || length > content.size() - at - 3) return false;
    if (at == 3) leaf = std::string(content.substr(at + 3, length));
    at += 3 + length;
  }
  return true;
}
}  // namespace

ServerFlight read_flight(std::string_view bytes) {
  constexpr std::size_t kMaxHandshake = 256 * 1024;
  ServerFlight flight;
  auto malformed = [&flight]() {
    flight = ServerFlight{};
    flight.kind = ServerFlight::Kind::kMalformed;
    return flight;
  };
  std::string handshake;
  std::size_t read = 0;  // handshake bytes already taken as whole messages
  std::size_t at = 0;
  bool first = true;
  while (at + 5 <= bytes.size()) {
    const unsigned type = byte(bytes, at);
    const std::size_t length = read16(bytes, at + 3);
    if ((type != 21 && type != 22) || !plausible_record(type, byte(bytes, at + 1), length))
      return malformed();
    if (at + 5 + length > bytes.size()) return flight;  // incomplete record
    const std::string_view body = bytes.substr(at + 5, length);
    at += 5 + length;
    if (type == 21) {
      if (handshake.size() != read || body.size() < 2) return malformed();
      flight.kind = ServerFlight::Kind::kAlert;
      flight.hello.kind = ServerAnswer::Kind::kAlert;
      flight.hello.alert_level = static_cast<std::uint8_t>(byte(body, 0));
      flight.hello.alert_description = static_cast<std::uint8_t>(byte(body, 1));
      return flight;
    }
    if (handshake.size() + body.size() > kMaxHandshake) return malformed();
    handshake.append(body);
    while (handshake.size() - read >= 4) {
      const std::string_view rest = std::string_view(handshake).substr(read);
      const unsigned message_type = byte(rest, 0);
      const std::size_t message = static_cast<std::size_t>(byte(rest, 1)) << 16 | read16(rest, 2);
      if (first ? message_type != 2 : message_type == 2) return malformed();
      if (rest.size() < 4 + message) break;
      const std::string_view content = rest.substr(4, message);
      read += 4 + message;
      if (first) {
        first = false;
        if (!parse_server_hello(content, flight.hello)) return malformed();
        if (flight.hello.selected_version >= kTls13 || flight.hello.hello_retry) {
          // TLS 1.3: everything after the ServerHello is encrypted.
          flight.kind = ServerFlight::Kind::kDone;
          flight.consumed = at;
          return flight;
        }
        continue;
      }
      switch (message_type) {
        case 11:  // certificate (RFC 5246 §7.4.2): certificate_list<0..2^24-1>, leaf first
          if (!flight.certificate.empty() || !read_leaf(content, flight.certificate))
            return malformed();
          break;
        case 13:  // certificate_request
        case 22:  // certificate_status
          break;
        case 12:  // server_key_exchange
          if (!flight.key_exchange.empty()) return malformed();
          flight.key_exchange = std::string(content);
          break;
        case 14:                                             // server_hello_done
          if (read != handshake.size()) return malformed();  // nothing may follow it
          flight.kind = ServerFlight::Kind::kDone;
          flight.consumed = at;
          return flight;
        default:
          return malformed();
      }
    }
  }
  if (at < bytes.size()) {
    const unsigned type = byte(bytes, at);
    if (type != 21 && type != 22) return malformed();
  }
  return flight;
}

KeyExchange read_key_exchange(std::string_view body, bool elliptic) {
  KeyExchange exchange;
  if (elliptic) {
    // ECParameters: curve_type named_curve (3), then the NamedCurve (RFC 8422 §5.4).
    if (body.size() < 3 || byte(body, 0) != 3) return exchange;
    exchange.group = static_cast<std::uint16_t>(read16(body, 1));
    exchange.valid = true;
    return exchange;
  }
  // ServerDHParams: dh_p<1..2^16-1>, dh_g, dh_Ys (RFC 5246 §7.4.3).
  if (body.size() < 2) return exchange;
  const std::size_t length = read16(body, 0);
  if (length == 0 || 2 + length > body.size()) return exchange;
  std::size_t first = 2;
  while (first < 2 + length && byte(body, first) == 0)
    ++first;  // leading zero bytes do not count
  if (first == 2 + length) return exchange;
  unsigned top = byte(body, first);
  unsigned bits = 0;
  while (top != 0) {
    ++bits;
    top >>= 1;
  }
  exchange.dh_prime_bits = static_cast<unsigned>((2 + length - first - 1) * 8) + bits;
  exchange.valid = true;
  return exchange;
}

std::string heartbeat_request(std::uint16_t version, std::uint16_t payload_length) {
  std::string record;
  put8(record, 24);  // heartbeat
  put16(record, version);
  put16(record, 3);
  put8(record, 1);  // heartbeat_request
  put16(record, payload_length);
  return record;
}

std::string change_cipher_spec(std::uint16_t version) {
  std::string record;
  put8(record, 20);
  put16(record, version);
  put16(record, 1);
  put8(record, 1);
  return record;
}

std::vector<std::string> robot_blocks(std::size_t modulus_bytes, std::uint16_t version) {
  // A premaster of 48 bytes (RFC 5246 §7.4.7.1): the client_version, then 46 bytes; and a
  // padding string, all fixed and free of zero bytes (they never carry a secret: the
  // Finished that follows is garbage, nothing is ever derived from them).
  constexpr std::size_t kPremaster = 48;
  constexpr std::size_t kMisplaced = 8;  // how far too early the misplaced separator comes
  if (modulus_bytes < 3 + 8 + kPremaster + kMisplaced) return {};
  std::string premaster;
  put16(premaster, version);
  for (std::size_t i = 2; i < kPremaster; ++i)
    premaster.push_back(static_cast<char>(0x11 + i));
  auto padding = [](std::size_t length) {
    std::string pad;
    for (std::size_t i = 0; i < length; ++i)
      pad.push_back(static_cast<char>(0x01 + i % 0xFE));  // 0x01..0xFE: never zero
    return pad;
  };
  const std::size_t pad = modulus_bytes - 3 - kPremaster;
  std::vector<std::string> blocks;
  // kRobotCorrect: 0x00 0x02, padding, 0x00, premaster (RFC 8017 §7.2.1).
  blocks.push_back(std::string("\x00\x02", 2) + padding(pad) + '\0' + premaster);
  // kRobotWrongFirstBytes: 0x41 0x17 where 0x00 0x02 belongs (stays below any modulus
  // whose top byte is 0x42 or more, as every RSA key of whole bytes has).
  blocks.push_back("\x41\x17" + padding(pad) + '\0' + premaster);
  // kRobotMisplacedSeparator: the 0x00 eight bytes early (a 56-byte premaster).
  blocks.push_back(std::string("\x00\x02", 2) + padding(pad - kMisplaced) + '\0' +
                   padding(kMisplaced) + premaster);
  // kRobotNoSeparator: no 0x00 after 0x00 0x02 at all.
  blocks.push_back(std::string("\x00\x02", 2) + padding(pad) + '\x01' + premaster);
  // kRobotWrongVersion: well padded, but the premaster does not start with client_version.
  std::string wrong = premaster;
  wrong[0] = 0x02;
  wrong[1] = 0x02;
  blocks.push_back(std::string("\x00\x02", 2) + padding(pad) + '\0' + wrong);
  return blocks;
}

std::string robot_key_exchange_flight(std::uint16_t version, std::string_view encrypted) {
  // ClientKeyExchange (RFC 5246 §7.4.7.1): EncryptedPreMasterSecret, with its 16-bit length
  // from TLS 1.0 on (SSL 3.0 sends the bare block, RFC 6101 §5.6.7.1).
  std::string body;
  if (version != kSsl3) put16(body, static_cast<unsigned>(encrypted.size()));
  body.append(encrypted);
  std::string message;
  put8(message, 16);  // client_key_exchange
  put24(message, static_cast<unsigned>(body.size()));
  message += body;
  std::string out;
  put8(out, 22);
  put16(out, version);
  put16(out, static_cast<unsigned>(message.size()));
  out += message;
  out += change_cipher_spec(version);
  // The "Finished", encrypted under keys the client never computed: 48 bytes of garbage
  // (room for an AEAD nonce and tag, or an IV and CBC blocks), the same in every query.
  put8(out, 22);
  put16(out, version);
  put16(out, 48);
  out.append(48, '\x5c');
  return out;
}

NextRecord read_next_record(std::string_view bytes) {
  NextRecord next;
  std::size_t at = 0;
  while (at + 5 <= bytes.size()) {
    const unsigned type = byte(bytes, at);
    const std::size_t length = read16(bytes, at + 3);
    if (!plausible_record(type, byte(bytes, at + 1), length)) {
      next.kind = NextRecord::Kind::kMalformed;
      return next;
    }
    if (at + 5 + length > bytes.size()) return next;
    const std::string_view body = bytes.substr(at + 5, length);
    at += 5 + length;
    if (type == 22) continue;  // more of the handshake
    next.content_type = static_cast<std::uint8_t>(type);
    next.length = length;
    if (type == 24 && !body.empty() && byte(body, 0) == 2) {  // heartbeat_response
      next.kind = NextRecord::Kind::kHeartbeat;
    } else if (type == 21 && body.size() >= 2) {
      next.kind = NextRecord::Kind::kAlert;
      next.alert_level = static_cast<std::uint8_t>(byte(body, 0));
      next.alert_description = static_cast<std::uint8_t>(byte(body, 1));
    } else {
      next.kind = NextRecord::Kind::kOther;
    }
    return next;
  }
  if (at < bytes.size()) {
    const unsigned type = byte(bytes, at);
    if (type < 20 || type > 24) next.kind = NextRecord::Kind::kMalformed;
  }
  return next;
}

std::string ssl2_client_hello() {
  // The seven cipher kinds of SSL 2.0 (RC4, RC4 export, RC2, RC2 export, IDEA, DES, 3DES).
  static constexpr unsigned kCiphers[] = {0x010080, 0x020080, 0x030080, 0x040080,
                                          0x050080, 0x060040, 0x0700C0};
  std::string body;
  put8(body, 1);        // CLIENT-HELLO
  put16(body, 0x0002);  // SSL 2.0
  put16(body, static_cast<unsigned>(std::size(kCiphers) * 3));
  put16(body, 0);   // no session id
  put16(body, 16);  // challenge
  for (unsigned cipher : kCiphers)
    put24(body, cipher);
  for (int i = 0; i < 16; ++i)
    put8(body, static_cast<unsigned>(0xa5 ^ i));
  std::string record;
  put16(record, 0x8000 | static_cast<unsigned>(body.size()));  // two-byte header
  return record + body;
}

Ssl2Answer read_ssl2_answer(std::string_view bytes) {
  Ssl2Answer answer;
  if (bytes.empty()) return answer;
  if ((byte(bytes, 0) & 0x80) == 0) {  // a TLS record, an SMTP reply: not SSL 2.0
    answer.kind = Ssl2Answer::Kind::kOther;
    return answer;
  }
  if (bytes.size() < 2) return answer;
  const std::size_t length = (byte(bytes, 0) & 0x7F) << 8 | byte(bytes, 1);
  if (length < 11) {
    answer.kind = Ssl2Answer::Kind::kOther;
    return answer;
  }
  if (bytes.size() < 2 + length) return answer;
  const std::string_view body = bytes.substr(2, length);
  const std::size_t certificate = read16(body, 5);
  const std::size_t ciphers = read16(body, 7);
  const std::size_t connection_id = read16(body, 9);
  if (byte(body, 0) != 4 || read16(body, 3) != 0x0002 || ciphers % 3 != 0 ||
      11 + certificate + ciphers + connection_id > body.size()) {
    answer.kind = Ssl2Answer::Kind::kOther;
    return answer;
  }
  answer.kind = Ssl2Answer::Kind::kServerHello;
  answer.ciphers = ciphers / 3;
  answer.certificate = std::string(body.substr(11, certificate));
  return answer;
}

std::string_view legacy_suite_name(std::uint16_t code) {
  for (const Legacy& legacy : kLegacy) {
    if (legacy.code == code) return legacy.name;
  }
  return {};
}

SuiteClass classify_suite(std::string_view name) {
  SuiteClass suite;
  suite.anonymous = has(name, "_anon_") || name == "TLS_NULL_WITH_NULL_NULL";
  suite.cbc = has(name, "_CBC_");
  suite.forward_secret = name.starts_with("TLS_ECDHE_") || name.starts_with("TLS_DHE_");
  if (has(name, "_WITH_NULL_") || name == "TLS_NULL_WITH_NULL_NULL") {
    suite.broken = "NULL encryption (nothing is encrypted)";
  } else if (has(name, "EXPORT")) {
    suite.broken = "export grade (FREAK, LOGJAM: breakable keys)";
  } else if (has(name, "_RC4_")) {
    suite.broken = "RC4 (RFC 7465 forbids it)";
  } else if (has(name, "_3DES_")) {
    suite.broken = "3DES (64-bit blocks: SWEET32)";
  } else if (has(name, "_DES_") || has(name, "_DES40_")) {
    suite.broken = "single DES (56-bit keys)";
  } else if (has(name, "_IDEA_") || has(name, "_RC2_") || has(name, "_SEED_")) {
    suite.broken = "obsolete cipher (IDEA, RC2 or SEED)";
  } else if (name.ends_with("_MD5")) {
    suite.broken = "MD5 MAC";
  }
  return suite;
}

}  // namespace tls
