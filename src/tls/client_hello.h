// client_hello.h — a TLS ClientHello built by hand and the server's first answer read by
// hand (RFC 5246 §7.4.1, RFC 6101 §5.6 for SSL 3.0), for `smtpsctl probe`: what a server
// accepts must be found whatever the local TLS library can still negotiate (Debian's
// OpenSSL 3 cannot offer NULL, EXPORT, RC4 or single-DES suites, so a server that takes only
// those looked like one that refuses TLS 1.2). The handshake never goes past the
// ServerHello: nothing is encrypted, no key is exchanged.
//
// Invariants: pure; client_hello() gives one TLS record (at most 16 KiB); read_answer()
// never reads past the bytes given, never trusts a length field, and says kIncomplete while
// the first handshake message or alert is not whole.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tls {

inline constexpr std::uint16_t kSsl3 = 0x0300;
inline constexpr std::uint16_t kTls10 = 0x0301;
inline constexpr std::uint16_t kTls11 = 0x0302;
inline constexpr std::uint16_t kTls12 = 0x0303;

struct HelloOptions {
  std::uint16_t version = kTls12;      // client_version (and the record's, up to TLS 1.0)
  std::vector<std::uint16_t> ciphers;  // cipher_suites, in this order
  std::string server_name;             // SNI (RFC 6066 §3); empty or an IP literal: none
  bool fallback_scsv = false;          // TLS_FALLBACK_SCSV (0x5600, RFC 7507) after the suites
};

// One handshake record carrying the ClientHello. Extensions (not for SSL 3.0): SNI,
// supported_groups, ec_point_formats, signature_algorithms, renegotiation_info (empty).
std::string client_hello(const HelloOptions& options);

// Every cipher suite code the probe offers before TLS 1.3: the registry's ranges that hold
// suites (0x0000-0x00FF, 0xC001-0xC0FF, 0xCCA8-0xCCAE, 0x1300 excluded), the SCSVs left
// out (0x00FF, 0x5600): a server cannot choose those.
std::vector<std::uint16_t> cipher_codes_before_tls13();

struct ServerAnswer {
  enum class Kind {
    kIncomplete,   // more bytes are needed
    kServerHello,  // version, cipher, compression, secure_renegotiation are set
    kAlert,        // alert_level, alert_description are set
    kMalformed,    // not TLS (an SMTP reply, an SSL 2.0 answer, a broken record)
  };
  Kind kind = Kind::kIncomplete;
  std::uint16_t version = 0;  // server_version
  std::uint16_t cipher = 0;
  std::uint8_t compression = 0;       // 0: none (anything else: CRIME)
  bool secure_renegotiation = false;  // renegotiation_info in the ServerHello (RFC 5746)
  std::uint8_t alert_level = 0;
  std::uint8_t alert_description = 0;  // 40 handshake_failure, 70 protocol_version…
};

ServerAnswer read_answer(std::string_view bytes);

// The registry name of the suites TLS libraries dropped long ago (export grade, single
// DES, TLS_NULL_WITH_NULL_NULL): "TLS_RSA_EXPORT_WITH_RC4_40_MD5"; "" for any other code
// (ask the TLS library for those: SSL_CIPHER_find).
std::string_view legacy_suite_name(std::uint16_t code);

// What is wrong with a suite, from its registry name ("" when nothing is): "NULL
// encryption", "export grade", "RC4", "single DES", "3DES (SWEET32)", "anonymous (no server
// authentication)", "IDEA", "SEED", "RC2", "MD5 MAC"; and whether it is CBC or forward
// secret.
struct SuiteClass {
  std::string broken;  // "" when not broken
  bool anonymous = false;
  bool cbc = false;
  bool forward_secret = false;
};
SuiteClass classify_suite(std::string_view registry_name);

}  // namespace tls
