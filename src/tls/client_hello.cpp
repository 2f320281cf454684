// client_hello.cpp — see client_hello.h.
#include "tls/client_hello.h"

#include <array>
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
  std::string hello;
  put16(hello, options.version);
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
    extension(extensions, 0x000a, list16(kGroups));
    extension(extensions, 0x000b, std::string("\x01\x00", 2));  // uncompressed points
    extension(extensions, 0x000d, list16(kSignatures));
    extension(extensions, 0xff01, std::string(1, '\0'));  // renegotiation_info, empty
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
    const std::string_view hello = std::string_view(handshake).substr(4, message);
    answer.version = static_cast<std::uint16_t>(read16(hello, 0));
    std::size_t p = 2 + 32;
    const std::size_t session = byte(hello, p);
    p += 1 + session;
    if (p + 3 > hello.size()) {
      answer.kind = ServerAnswer::Kind::kMalformed;
      return answer;
    }
    answer.cipher = static_cast<std::uint16_t>(read16(hello, p));
    answer.compression = static_cast<std::uint8_t>(byte(hello, p + 2));
    p += 3;
    if (p + 2 <= hello.size()) {
      std::size_t end = p + 2 + read16(hello, p);
      if (end > hello.size()) {
        answer.kind = ServerAnswer::Kind::kMalformed;
        return answer;
      }
      for (p += 2; p + 4 <= end;) {
        const unsigned ext = read16(hello, p);
        const std::size_t size = read16(hello, p + 2);
        if (p + 4 + size > end) break;
        if (ext == 0xff01) answer.secure_renegotiation = true;
        p += 4 + size;
      }
    }
    answer.kind = ServerAnswer::Kind::kServerHello;
    return answer;
  }
  if (at < bytes.size() && at + 5 > bytes.size() && bytes.size() - at >= 1) {
    // A partial header: a TLS record may still come, anything else cannot.
    const unsigned type = byte(bytes, at);
    if (type != 21 && type != 22) answer.kind = ServerAnswer::Kind::kMalformed;
  }
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
