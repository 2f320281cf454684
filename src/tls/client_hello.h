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
inline constexpr std::uint16_t kTls13 = 0x0304;

struct HelloOptions {
  // client_version (and the record's, up to TLS 1.0). kTls13: client_version TLS 1.2 with
  // supported_versions {TLS 1.3} and an EMPTY key_share (RFC 8446 §4.2.8: "MAY be empty if
  // the client is requesting a HelloRetryRequest"): a server that takes one of the groups
  // offered names it in a HelloRetryRequest, so no key is ever computed.
  std::uint16_t version = kTls12;
  std::vector<std::uint16_t> ciphers;  // cipher_suites, in this order
  std::string server_name;             // SNI (RFC 6066 §3); empty or an IP literal: none
  bool fallback_scsv = false;          // TLS_FALLBACK_SCSV (0x5600, RFC 7507) after the suites
  std::vector<std::uint16_t> groups;   // supported_groups; empty: a broad default list
  bool heartbeat = false;              // heartbeat (RFC 6520), peer_allowed_to_send
};

// One handshake record carrying the ClientHello. Extensions (not for SSL 3.0): SNI,
// supported_groups, ec_point_formats, signature_algorithms, renegotiation_info (empty);
// heartbeat when asked; supported_versions and key_share for TLS 1.3.
std::string client_hello(const HelloOptions& options);

// The five TLS 1.3 suites (RFC 8446 §B.4, 0x1301-0x1305).
std::vector<std::uint16_t> tls13_cipher_codes();

// A named group (RFC 8422 §5.1.1, RFC 7919, RFC 8446 §4.2.7): its registry name and the
// size that judges it (curve order bits, 253 for x25519; the prime's bits for ffdhe).
struct NamedGroup {
  std::uint16_t code;
  std::string_view name;
  unsigned bits;
};
// Every group the probe offers one by one: the binary and prime curves of RFC 4492, the
// brainpool curves, x25519/x448, the ffdhe groups and the ML-KEM hybrids.
std::span<const NamedGroup> named_groups();
const NamedGroup* find_named_group(std::uint16_t code);

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
  bool heartbeat = false;              // the heartbeat extension (RFC 6520) came back
  bool hello_retry = false;            // a HelloRetryRequest (RFC 8446 §4.1.4)
  std::uint16_t selected_version = 0;  // supported_versions (TLS 1.3), 0 when absent
  std::uint16_t key_share_group = 0;   // key_share's group (TLS 1.3), 0 when absent
};

ServerAnswer read_answer(std::string_view bytes);

// The server's whole first flight before TLS 1.3: ServerHello, then Certificate,
// ServerKeyExchange, CertificateRequest, CertificateStatus in any number of records, up to
// ServerHelloDone (RFC 5246 §7.3). For a TLS 1.3 ServerHello it ends with the hello (what
// follows is encrypted). At most 256 KiB of handshake messages.
struct ServerFlight {
  enum class Kind { kIncomplete, kDone, kAlert, kMalformed };
  Kind kind = Kind::kIncomplete;
  ServerAnswer hello;        // the ServerHello (kDone) or the alert (kAlert)
  std::string key_exchange;  // the ServerKeyExchange's body, "" when none came
  std::string certificate;   // the leaf's DER from the Certificate message, "" when none came
  std::size_t consumed = 0;  // kDone: the bytes up to the end of the record of HelloDone
};
ServerFlight read_flight(std::string_view bytes);

// What a ServerKeyExchange says about the key exchange (RFC 5246 §7.4.3, RFC 8422 §5.4):
// for DHE (and DH_anon) the prime's size in bits, for ECDHE the named curve. The signature
// after the parameters is not read.
struct KeyExchange {
  bool valid = false;
  unsigned dh_prime_bits = 0;  // DHE
  std::uint16_t group = 0;     // ECDHE: named_curve (0 for explicit curves: not valid)
};
KeyExchange read_key_exchange(std::string_view body, bool elliptic);

// A HeartbeatRequest record (RFC 6520 §4) that claims payload_length bytes and carries
// none: a server that answers with more than the 3 bytes of header and 16 of padding has
// copied its own memory (Heartbleed, CVE-2014-0160).
std::string heartbeat_request(std::uint16_t version, std::uint16_t payload_length);
// A ChangeCipherSpec record (RFC 5246 §7.1).
std::string change_cipher_spec(std::uint16_t version);

// ROBOT (Return Of Bleichenbacher's Oracle Threat, CVE-2017-13099 and others): the
// PKCS#1 v1.5 blocks (RFC 8017 §7.2.1) a client encrypts with the server's RSA key, raw
// (no padding added by the library), one per query, in this order: well formed, then wrong
// first bytes, a misplaced 0x00 separator, no separator, a premaster whose first bytes are
// not client_version. A server that answers them differently is an oracle. Each block is
// modulus_bytes long; none (empty) when the modulus is too small to hold them.
inline constexpr std::size_t kRobotCorrect = 0;
inline constexpr std::size_t kRobotWrongFirstBytes = 1;
inline constexpr std::size_t kRobotMisplacedSeparator = 2;
inline constexpr std::size_t kRobotNoSeparator = 3;
inline constexpr std::size_t kRobotWrongVersion = 4;
std::vector<std::string> robot_blocks(std::size_t modulus_bytes, std::uint16_t version);
// What follows the server's flight in one query: ClientKeyExchange carrying the encrypted
// block, ChangeCipherSpec, and a Finished that cannot verify (the same garbage each time).
std::string robot_key_exchange_flight(std::uint16_t version, std::string_view encrypted);

// The first record after a flight that is not a handshake record: a heartbeat response
// (its length only: its bytes are never kept), an alert, or anything else (a heartbeat
// record that is not a response, heartbeat_response being type 2, included).
struct NextRecord {
  enum class Kind { kIncomplete, kHeartbeat, kAlert, kOther, kMalformed };
  Kind kind = Kind::kIncomplete;
  std::size_t length = 0;  // kHeartbeat, kOther: the record's length
  std::uint8_t content_type = 0;
  std::uint8_t alert_level = 0;
  std::uint8_t alert_description = 0;
};
NextRecord read_next_record(std::string_view bytes);

// SSL 2.0 (draft-hickman-netscape-ssl-00): a CLIENT-HELLO offering the seven SSL 2.0
// ciphers, and the reader of a SERVER-HELLO. A server that answers with one speaks SSL 2.0
// (DROWN, CVE-2016-0800), even when it lists no cipher.
std::string ssl2_client_hello();
struct Ssl2Answer {
  enum class Kind { kIncomplete, kServerHello, kOther };
  Kind kind = Kind::kIncomplete;
  std::size_t ciphers = 0;  // cipher specs listed
  std::string certificate;  // DER, as sent
};
Ssl2Answer read_ssl2_answer(std::string_view bytes);

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
