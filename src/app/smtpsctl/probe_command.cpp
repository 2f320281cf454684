// probe_command.cpp — `smtpsctl probe` (see probe_command.h for what it reports).
//
// Blocking in spirit, non-blocking underneath: each connection is a non-blocking socket
// driven with poll() against one deadline, so a silent server costs at most --timeout.
// TLS is a tls::Stream on the socket with the poll(2) waiter (tls/poll_waiter.h).
// The SMTP dialogue is a small line reader and writer on top: the probe needs greeting,
// EHLO, STARTTLS and QUIT only, and must be able to send a deliberately improper pipelined
// STARTTLS, which a correct client state machine (smtp::ClientSession) would never produce.
//
// Ciphers: for each accepted version up to TLS 1.2 the client offers every cipher of
// "ALL:@SECLEVEL=0" that applies to the version, records the one the server chose,
// removes it and tries again until the server refuses: the accepted set, with one
// connection per accepted cipher plus one instead of one per cipher OpenSSL knows.
// TLS 1.3 does the same with its five suites.
//
// Parallel, bounded: the ports, and within a port the checks that do not need each other's
// results, run at once on threads of their own, and a connection waits for a free slot
// (ConnectionBudget): at most --parallel connections are open together (a server's
// per-client limit is usually 50). A check holds one connection at a time, so the wait
// cannot deadlock. Each check writes its own fields of the port's report and the report is
// printed in a fixed order, so the results do not depend on which check finished first;
// the budget and the port's cut (ScanCut) are the only shared state, behind mutexes.
// --parallel 1 runs everything one after the other, as before.
//
// The text report prints what the server said (greeting, EHLO, certificate names, errors)
// through base::terminal_safe: a hostile server must not drive the operator's terminal.
#include "app/smtpsctl/probe_command.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/ascii.h"
#include "base/endpoint.h"
#include "base/json.h"
#include "base/network.h"
#include "base/terminal_text.h"
#include "delivery/mta_sts.h"
#include "delivery/mta_sts_policy.h"
#include "delivery/posture.h"
#include "dns/unbound_resolver.h"
#include "tls/client_hello.h"
#include "tls/poll_waiter.h"
#include "tls/spki_digest.h"
#include "tls/stream.h"

namespace app {
namespace {

using Clock = std::chrono::steady_clock;

enum class Severity { kInfo, kPass, kWarn, kFail };

const char* to_string(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return "INFO";
    case Severity::kPass:
      return "PASS";
    case Severity::kWarn:
      return "WARN";
    case Severity::kFail:
      return "FAIL";
  }
  return "?";
}

// One severity model, testssl.sh's six levels. The verdict follows the worst level: OK
// and INFO never change it, LOW and MEDIUM make it WARN (exit 1), HIGH and CRITICAL make
// it FAIL (exit 2). Each finding also says PASS/WARN/FAIL/INFO, derived from its level.
enum class Level { kOk, kInfo, kLow, kMedium, kHigh, kCritical };

const char* to_string(Level level) {
  switch (level) {
    case Level::kOk:
      return "OK";
    case Level::kInfo:
      return "INFO";
    case Level::kLow:
      return "LOW";
    case Level::kMedium:
      return "MEDIUM";
    case Level::kHigh:
      return "HIGH";
    case Level::kCritical:
      return "CRITICAL";
  }
  return "?";
}

Severity severity_of(Level level) {
  switch (level) {
    case Level::kOk:
      return Severity::kPass;
    case Level::kInfo:
      return Severity::kInfo;
    case Level::kLow:
    case Level::kMedium:
      return Severity::kWarn;
    case Level::kHigh:
    case Level::kCritical:
      return Severity::kFail;
  }
  return Severity::kFail;
}

// What a check is called in testssl.sh's JSON output, and the one-line fix for a finding
// of that check that is not OK (smtpsd's setting first, then Postfix's).
struct CheckGuide {
  std::string_view check;
  std::string_view testssl_id;
  std::string_view fix;
};
constexpr CheckGuide kGuides[] = {
    {"tls", "", "offer TLS: smtpsd listeners always do; Postfix: smtpd_tls_security_level = may"},
    {"auth_before_tls", "",
     "offer AUTH only inside TLS: smtpsd always does; Postfix: smtpd_tls_auth_only = yes"},
    {"starttls_injection", "",
     "discard what was pipelined with STARTTLS (CVE-2011-0411): update the server"},
    {"tls_SSLv2", "SSLv2",
     "disable SSL 2.0: update the TLS library; Postfix: smtpd_tls_protocols = >=TLSv1.2"},
    {"drown", "DROWN",
     "disable SSL 2.0 on every server that uses this key, or give this server its own key"},
    {"tls_SSLv3", "SSLv3",
     "refuse SSL 3.0 (POODLE): smtpsd: [tls] min_version = \"TLSv1.2\"; Postfix: "
     "smtpd_tls_protocols = >=TLSv1.2"},
    {"tls_TLSv1.3", "TLS1_3",
     "offer TLS 1.3: smtpsd does by default; Postfix: OpenSSL 1.1.1 or later"},
    {"tls_TLSv1.2", "TLS1_2", "offer TLS 1.2"},
    {"tls_TLSv1.1", "TLS1_1",
     "refuse TLS 1.1: smtpsd: [tls] min_version = \"TLSv1.2\"; Postfix: smtpd_tls_protocols = "
     ">=TLSv1.2"},
    {"tls_TLSv1", "TLS1",
     "refuse TLS 1.0: smtpsd: [tls] min_version = \"TLSv1.2\"; Postfix: smtpd_tls_protocols = "
     ">=TLSv1.2"},
    {"tls_modern", "TLS1_2", "offer TLS 1.2 and 1.3"},
    {"cipher", "",
     "offer only AEAD suites with forward secrecy: smtpsd's default [tls] ciphers; Postfix: "
     "smtpd_tls_exclude_ciphers = aNULL, eNULL, EXPORT, RC4, 3DES, DES, IDEA, SEED, MD5"},
    {"cipher_cbc", "LUCKY13", "prefer AEAD suites (GCM, ChaCha20-Poly1305) to CBC"},
    {"tls_compression", "CRIME_TLS",
     "disable TLS compression (OpenSSL 1.1.0 and later never compress)"},
    {"tls_fallback_scsv", "fallback_SCSV", "update the TLS library (OpenSSL 1.0.1j and later)"},
    {"cipher_order", "cipher_order",
     "pick the suite by the server's order (smtpsd does; Postfix: tls_preempt_cipherlist = "
     "yes), or offer only strong suites"},
    {"secure_renegotiation", "secure_renego", "update the TLS library (RFC 5746)"},
    {"named_groups", "PFS_ECDHE_curves", ""},
    {"weak_group", "PFS_ECDHE_curves",
     "offer curves of 256 bits or more: smtpsd: [tls] groups = \"X25519:P-256:P-384\"; Postfix: "
     "tls_eecdh_auto_curves = X25519 prime256v1 secp384r1"},
    {"dh_size", "DH_groups",
     "use a DH group of 2048 bits or more (RFC 7919 ffdhe2048); smtpsd offers no DHE; Postfix: "
     "smtpd_tls_dh1024_param_file"},
    {"heartbleed", "heartbleed", "update OpenSSL (1.0.1g or later), then replace the key"},
    {"ccs_injection", "CCS", "update OpenSSL (1.0.1h or later)"},
    {"robot", "ROBOT",
     "disable RSA key exchange (smtpsd never offers it; Postfix: smtpd_tls_exclude_ciphers = "
     "kRSA, or tls_high_cipherlist without kRSA suites), then update the TLS library"},
    {"client_renegotiation", "secure_client_renego",
     "refuse client-initiated renegotiation: OpenSSL 3 does by default (SSL_OP_NO_RENEGOTIATION)"},
    {"certificate_expiry", "cert_expirationStatus",
     "renew the certificate (smtpsd: [acme] renews it before it expires)"},
    {"certificate_name", "cert_subjectAltName",
     "serve a certificate whose subjectAltName names the host"},
    {"certificate_chain", "cert_chain_of_trust",
     "serve the whole chain of a CA the clients trust (leaf first, then intermediates)"},
    {"certificate_key", "cert_keySize", "use an RSA key of 2048 bits or more, or ECDSA P-256"},
    {"certificate_signature", "cert_signatureAlgorithm",
     "have the certificate reissued with SHA-256"},
    {"mx", "", ""},
    {"dane_tlsa", "",
     "publish \"3 1 1\" TLSA records of every served key in a DNSSEC-signed zone (smtpsctl dane "
     "tlsa prints them), and sign the MX and address records too"},
    {"mta_sts", "",
     "publish a policy in enforce mode naming every MX host, each serving a certificate that "
     "verifies for its name (smtpsctl mta-sts policy prints it)"},
    {"tls_rpt", "", "publish _smtp._tls.<domain> TXT \"v=TLSRPTv1; rua=mailto:...\" (RFC 8460 §3)"},
};

const CheckGuide* find_guide(std::string_view check) {
  for (const CheckGuide& guide : kGuides) {
    if (guide.check == check) return &guide;
  }
  return nullptr;
}

struct Finding {
  Level level = Level::kInfo;  // its severity (PASS, WARN...) is severity_of(level)
  std::string check;           // a stable identifier for scripts: "tls_1.0", "auth_before_tls"...
  std::string text;            // one line: what was seen and why it matters
  std::string testssl_id;      // "" when testssl.sh has no such check
  std::string fix;             // "" for OK and INFO
};

Finding make_finding(Level level, std::string check, std::string text,
                     std::string testssl_id = "") {
  Finding finding{level, std::move(check), std::move(text), "", ""};
  if (const CheckGuide* guide = find_guide(finding.check)) {
    finding.testssl_id = testssl_id.empty() ? std::string(guide->testssl_id) : testssl_id;
    if (level != Level::kOk && level != Level::kInfo) finding.fix = guide->fix;
  }
  return finding;
}

struct Reply {
  int code = 0;
  std::vector<std::string> lines;  // text after "NNN-" / "NNN "
  std::string first_line() const {
    return std::to_string(code) + (lines.empty() ? "" : " " + lines.front());
  }
};

struct VersionResult {
  std::string name;  // "TLSv1.2"
  bool accepted = false;
  std::string detail;                 // why refused
  std::vector<std::string> ciphers;   // as OpenSSL names them, else the registry's name or hex
  std::vector<std::string> registry;  // the same suites' registry names ("" when unknown)
  std::vector<std::uint16_t> codes;   // below TLS 1.3: the same suites' codes, as chosen
  // Below TLS 1.3, from the first ServerHello of this version (read by hand).
  std::optional<bool> secure_renegotiation;
  std::optional<unsigned> compression;
};

struct CertificateEntry {
  std::string subject;
  std::string issuer;
};

// One certificate the server serves, as a handshake showed it.
struct CertificateReport {
  std::vector<CertificateEntry> chain;
  std::string key_type;  // "RSA", "EC", "ED25519"
  int key_bits = 0;
  std::string signature_algorithm;
  std::optional<int> days_left;           // rounded
  std::optional<long long> seconds_left;  // exact: thresholds are compared with it
  bool expired = false;
  std::optional<bool> name_matches;
  std::optional<bool> chain_verified;
  std::string verify_detail;
  std::string key_sha256;  // of the public key (SPKI), hex: DROWN matches keys across ports
  // The chain as served, leaf first: each certificate's DER and its SubjectPublicKeyInfo's
  // (what TLSA records match, RFC 6698 §2.1.2).
  std::vector<std::string> der;
  std::vector<std::string> spki_der;
};

struct PortReport {
  std::uint16_t port = 0;
  bool answered = false;
  std::string error;
  std::string mode;  // "starttls", "implicit", "plain" (no TLS at all)
  std::string greeting;
  std::vector<std::string> extensions_before_tls;
  std::vector<std::string> extensions_after_tls;
  std::vector<std::string> auth_before_tls;
  std::vector<std::string> auth_after_tls;
  std::optional<bool> injection_vulnerable;
  std::string injection_detail;
  std::vector<VersionResult> versions;
  std::string negotiated_version;
  std::string negotiated_cipher;
  CertificateReport certificate;  // of the default handshake
  // The others it serves to clients that cannot take the default one (an RSA certificate
  // beside an ECDSA one): asked for with each signature algorithm family.
  std::vector<CertificateReport> other_certificates;
  std::optional<bool> resumed;
  // From the ServerHello of the highest version below TLS 1.3 (read by hand).
  std::optional<bool> secure_renegotiation;
  std::optional<unsigned> compression;
  std::optional<bool> fallback_scsv;  // refused a flagged fallback hello (RFC 7507)
  std::string fallback_version;       // the version that hello asked for
  std::optional<bool> server_order;   // picks by its own order, not the client's
  std::string order_version;
  // Key exchange, from hand-built hellos: the groups each offer was accepted with (none:
  // not tested, and why), and the DHE prime's size from the ServerKeyExchange.
  std::optional<std::vector<std::uint16_t>> groups_tls12;
  std::string groups_tls12_version;
  std::string groups_tls12_detail;
  // Whether each check applies: not when the server takes no ECDHE suite below TLS 1.3, or
  // no TLS 1.3 (then no finding, not even "not tested").
  bool groups_tls12_apply = true;
  bool groups_tls13_apply = true;
  std::optional<std::vector<std::uint16_t>> groups_tls13;
  std::string groups_tls13_detail;
  std::optional<unsigned> dh_bits;
  std::string dh_version;
  std::string dh_detail;
  // Vulnerabilities: true vulnerable, false not, none not tested (the detail says why).
  std::optional<bool> heartbleed;
  std::string heartbleed_detail;
  std::optional<bool> ccs_injection;
  std::string ccs_detail;
  std::optional<bool> robot;
  std::string robot_detail;
  bool robot_strong = false;               // the malformed paddings are told apart
  std::vector<std::string> robot_answers;  // the server's reaction to each query, in order
  std::optional<bool> ssl2;
  std::string ssl2_detail;
  std::string ssl2_key_sha256;  // the key of the certificate in the SSL 2.0 SERVER-HELLO
  std::optional<bool> client_renegotiation;
  std::string renegotiation_detail;
  std::vector<Finding> findings;
  // The checks that could not run because the scan was cut (connection budget, a 421,
  // refused or timed-out connections after the port had answered), and why.
  std::vector<std::string> not_run;
  std::string not_run_reason;
};

// Why the scan of a port was cut ("" while it is not): set once, by whichever check first
// sees the server refuse us, and read by every check running at the same time.
class ScanCut {
 public:
  bool empty() const {
    std::lock_guard lock(mutex_);
    return reason_.empty();
  }
  std::string reason() const {
    std::lock_guard lock(mutex_);
    return reason_;
  }
  // The first reason stays: later refusals are its consequences.
  void set(std::string reason) {
    std::lock_guard lock(mutex_);
    if (reason_.empty()) reason_ = std::move(reason);
  }
  void clear() {
    std::lock_guard lock(mutex_);
    reason_.clear();
  }

 private:
  mutable std::mutex mutex_;
  std::string reason_;
};

// What the probes of one run share: the connection budget (--max-connections, every
// connection counted) and the bound on connections open at once (--parallel). A check
// holds one connection at a time (it closes one before it opens the next), so waiting for
// a free slot cannot deadlock.
class ConnectionBudget {
 public:
  ConnectionBudget(int total, int at_once) : total_(total), at_once_(at_once) {}

  // False when the budget is spent; else waits until fewer than --parallel are open and
  // counts the new one.
  bool take() {
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] { return open_ < at_once_; });
    if (used_ >= total_) return false;
    ++used_;
    ++open_;
    return true;
  }
  // A connection taken is closed (or was never opened).
  void give_back() {
    {
      std::lock_guard lock(mutex_);
      --open_;
    }
    freed_.notify_one();
  }
  int used() const {
    std::lock_guard lock(mutex_);
    return used_;
  }
  int total() const { return total_; }

 private:
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  const int total_;
  const int at_once_;
  int used_ = 0;  // guarded by mutex_
  int open_ = 0;  // guarded by mutex_
};

// One TCP connection, optionally with TLS on top; every wait bounded by deadline_.
class Connection {
 public:
  // cut: where a 421 reply (the server closing the session: a rate limit, a shutdown) is
  // recorded, so that the prober stops instead of judging a server it could not see.
  // budget: given back its slot when the connection closes.
  Connection(int fd, Clock::time_point deadline, ScanCut* cut, ConnectionBudget* budget)
      : fd_(fd), deadline_(deadline), cut_(cut), budget_(budget) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    stream_ = tls::Stream{};  // the session goes before its socket
    if (fd_ >= 0) ::close(fd_);
    if (budget_ != nullptr) budget_->give_back();
  }

  SSL* ssl() const { return stream_.get(); }

  // A 421 from now on is the server refusing what the probe sent on purpose (a pipelined
  // STARTTLS: Postfix's postscreen and smtpsd's screening answer it so), not a cut.
  void expect_421() { cut_ = nullptr; }
  const std::string& buffered() const { return buffer_; }
  // The peer closed the connection (a read saw its end), as opposed to a timeout.
  bool closed() const { return closed_; }
  // The end was a TCP reset (ECONNRESET), not an orderly close.
  bool reset() const { return reset_; }

  // Waits for the socket; false on timeout (the deadline, or limit when sooner).
  bool wait(tls::Status wanted, std::optional<Clock::time_point> limit = std::nullopt) {
    return tls::poll_until_ready(fd_, wanted, until(limit));
  }

  // Writes the bytes as given, in one piece where the socket takes them: the caller decides
  // what goes together (a pipelined "STARTTLS\r\nNOOP\r\n" on purpose, to test servers).
  bool write(std::string_view data) {
    if (stream_) return tls::poll_write_all(stream_, data, deadline_).done();
    while (!data.empty()) {
      ssize_t written = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (written > 0) {
        data.remove_prefix(static_cast<std::size_t>(written));
      } else if (written < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait(tls::Status::kWantWrite)) return false;
      } else {
        return false;
      }
    }
    return true;
  }

  // Reads more bytes into the buffer; false on end of stream, error or timeout.
  bool fill(std::optional<Clock::time_point> limit = std::nullopt) {
    char chunk[4096];
    if (stream_) {
      tls::Result got = tls::poll_read(stream_, chunk, until(limit));
      if (!got.done()) return false;
      buffer_.append(chunk, got.bytes);
      return true;
    }
    for (;;) {
      ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
      if (got > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(got));
        return true;
      }
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait(tls::Status::kWantRead, limit)) return false;
        continue;
      }
      closed_ = true;
      reset_ = got < 0 && errno == ECONNRESET;
      return false;
    }
  }

  enum class Read { kParsed, kClosed, kTimeout, kTooLong };
  // Reads until parsed(buffered bytes) says they hold an answer, with at most bound bytes
  // buffered: a hostile server that streams records never grows the buffer past it.
  Read read_until(std::size_t bound, const std::function<bool(std::string_view)>& parsed,
                  std::optional<Clock::time_point> limit = std::nullopt) {
    for (;;) {
      if (parsed(buffer_)) return Read::kParsed;
      if (buffer_.size() > bound) return Read::kTooLong;
      if (!fill(limit)) return closed_ ? Read::kClosed : Read::kTimeout;
    }
  }

  // One SMTP reply, multi-line included (RFC 5321 §4.2.1).
  std::optional<Reply> read_reply(std::optional<Clock::time_point> limit = std::nullopt) {
    Reply reply;
    for (;;) {
      auto end = buffer_.find('\n');
      if (end == std::string::npos) {
        if (buffer_.size() > 65536 || !fill(limit)) return std::nullopt;
        continue;
      }
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() < 3 || !std::all_of(line.begin(), line.begin() + 3,
                                          [](unsigned char c) { return std::isdigit(c) != 0; })) {
        return std::nullopt;
      }
      reply.code = std::stoi(line.substr(0, 3));
      reply.lines.push_back(line.size() > 4 ? line.substr(4) : "");
      if (line.size() == 3 || line[3] == ' ') {
        if (reply.code == 421 && cut_ != nullptr)
          cut_->set("the server answered " + reply.first_line());
        return reply;
      }
    }
  }

  std::optional<Reply> command(std::string_view line) {
    if (!write(std::string(line) + "\r\n")) return std::nullopt;
    return read_reply();
  }

  // TLS client handshake on the socket; the error text when it fails.
  std::optional<std::string> start_tls(SSL_CTX* context, const std::string& server_name,
                                       SSL_SESSION* session) {
    auto opened = tls::Stream::open(context, fd_, tls::Stream::Side::kClient);
    if (!opened) return opened.error();
    stream_ = std::move(opened.value());
    stream_.set_server_name(server_name);  // RFC 6066 §3: no IP literal in SNI
    if (session != nullptr) SSL_set_session(stream_.get(), session);
    tls::Result result = tls::poll_handshake(stream_, deadline_);
    switch (result.status) {
      case tls::Status::kDone:
        return std::nullopt;
      case tls::Status::kClosed:
        return "connection closed during the handshake";
      default:
        return result.reason;  // "timed out", or the alert: "tlsv1 alert protocol version"
    }
  }

  // smtp: the peer speaks SMTP inside TLS (false for a TLS server that never greeted, such
  // as `openssl s_server`: no reply to wait for).
  void quit(bool smtp = true) {
    if (write("QUIT\r\n") && smtp) read_reply(Clock::now() + std::chrono::milliseconds(500));
    stream_.shutdown();
  }

  // A renegotiation the client starts (RFC 5246 §7.4.1.2) on the TLS session.
  tls::Result renegotiate() {
    if (SSL_renegotiate(stream_.get()) != 1) {
      ERR_clear_error();
      return {tls::Status::kError, 0, "the local TLS library cannot renegotiate"};
    }
    return tls::poll_handshake(stream_, deadline_);
  }

 private:
  Clock::time_point until(std::optional<Clock::time_point> limit) const {
    return limit ? std::min(*limit, deadline_) : deadline_;
  }

  int fd_;
  Clock::time_point deadline_;
  ScanCut* cut_;
  ConnectionBudget* budget_;
  tls::Stream stream_;
  std::string buffer_;
  bool closed_ = false;
  bool reset_ = false;
};

struct ContextDeleter {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
using Context = std::unique_ptr<SSL_CTX, ContextDeleter>;
struct SessionDeleter {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
using Session = std::unique_ptr<SSL_SESSION, SessionDeleter>;

const char* const kTls13Suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                    "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                                    "TLS_AES_128_CCM_8_SHA256"};

struct Version {
  int number;
  const char* name;
};
const Version kVersions[] = {{SSL3_VERSION, "SSLv3"},
                             {TLS1_VERSION, "TLSv1"},
                             {TLS1_1_VERSION, "TLSv1.1"},
                             {TLS1_2_VERSION, "TLSv1.2"},
                             {TLS1_3_VERSION, "TLSv1.3"}};

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

// How much a hand-read answer may buffer: a first flight (certificates included), and any
// other answer past what came before it.
constexpr std::size_t kFlightBound = 512 * 1024;
constexpr std::size_t kAnswerBound = 64 * 1024;

// The name of a group the probe recorded: each was offered from tls::named_groups().
std::string group_name(std::uint16_t code) {
  const tls::NamedGroup* group = tls::find_named_group(code);
  return group != nullptr ? std::string(group->name) : "";
}

class Prober {
 public:
  // budget: shared by every Prober of the run (ports probed at once).
  Prober(const ProbeOptions& options, ConnectionBudget& budget)
      : options_(options),
        budget_(budget),
        names_context_(SSL_CTX_new(TLS_client_method())),
        names_(names_context_ ? SSL_new(names_context_.get()) : nullptr, &SSL_free) {
    char name[256] = {};
    ehlo_name_ = ::gethostname(name, sizeof name - 1) == 0 && name[0] != '\0' ? name : "localhost";
    if (ehlo_name_.find('.') == std::string::npos) ehlo_name_ = "localhost";
  }

  PortReport probe(std::uint16_t port) {
    PortReport report;
    report.port = port;
    reached_ = false;
    // A 421 or a refusal cuts one port's scan; the budget stays spent for the next ports.
    if (budget_.used() < budget_.total()) cut_.clear();
    detect_mode(report);
    // A cut while the mode was being found (a 421 to the greeting or to EHLO, the budget)
    // leaves the mode unknown: "plain" from an EHLO refused with 421 is no finding.
    if (!cut_.empty()) {
      report.answered = false;
      report.error = cut_.reason();
      report.not_run = {"all checks"};
      report.not_run_reason = cut_.reason();
      return report;
    }
    if (!report.answered) return report;
    reached_ = true;
    if (report.mode == "plain") {
      add(report, Level::kCritical, "tls",
          "no TLS: no STARTTLS offered and no TLS handshake; everything crosses the network "
          "in clear");
      check_auth_before_tls(report);
      return report;
    }
    // The checks in three rounds, each waiting for the one before: the default handshake
    // (in implicit mode it tells whether TLS sessions carry SMTP, which later checks need);
    // the versions and suites and SSL 2.0; then what needs the versions (fallback, order,
    // groups, Heartbleed, CCS, renegotiation). Within a round the checks run in parallel.
    // The injection test needs nothing and waits for an answer that should not come: it
    // runs beside all three rounds on a connection of its own, one of the --parallel. A
    // check that ends after the scan was cut is dropped (a handshake that failed for want
    // of a connection says nothing about the server) and "not tested".
    std::vector<std::optional<VersionResult>> versions(std::size(kVersions));
    std::vector<Check> first, second, third;
    first.push_back({"certificate and default handshake", [&] { main_session(report); }});
    second.push_back({"tls_SSLv2", [&] { check_ssl2(report); }});
    for (std::size_t i = 0; i < std::size(kVersions); ++i) {
      second.push_back({"tls_" + std::string(kVersions[i].name),
                        [&, i] { versions[i] = try_version(report, kVersions[i]); }});
    }
    third.push_back(
        {"tls_fallback_scsv and cipher_order", [&] { check_fallback_and_order(report); }});
    third.push_back({"named_groups and dh_size", [&] { check_groups_before_tls13(report); }});
    third.push_back({"named_groups and dh_size", [&] { check_dh_size(report); }});
    third.push_back({"named_groups and dh_size", [&] { check_groups_tls13(report); }});
    third.push_back({"heartbleed", [&] { check_heartbleed(report); }});
    third.push_back({"ccs_injection", [&] { check_ccs_injection(report); }});
    third.push_back({"robot", [&] { check_robot(report); }});
    third.push_back({"client_renegotiation", [&] { check_client_renegotiation(report); }});
    std::size_t threads = static_cast<std::size_t>(options_.parallel);
    bool injection_cut = false;
    auto injection = [&] {
      if (cut_.empty()) injection_test(report);
      injection_cut = !cut_.empty();
    };
    std::jthread beside;
    if (report.mode == "starttls") {
      if (threads > 1) {
        beside = std::jthread(injection);
        --threads;
      } else {
        injection();
      }
    }
    const std::size_t findings = report.findings.size();
    run_checks(first, threads, report);
    // main_session's finding (a failed handshake) is dropped with it when it was cut.
    if (!report.not_run.empty()) report.findings.resize(findings);
    run_checks(second, threads, report);
    for (std::size_t i = 0; i < versions.size(); ++i) {
      const std::string name = "tls_" + std::string(kVersions[i].name);
      if (!versions[i] ||
          std::find(report.not_run.begin(), report.not_run.end(), name) != report.not_run.end())
        continue;
      // Of the highest version below TLS 1.3 the server takes (the versions rise).
      if (versions[i]->secure_renegotiation) {
        report.secure_renegotiation = versions[i]->secure_renegotiation;
        report.compression = versions[i]->compression;
      }
      report.versions.push_back(std::move(*versions[i]));
    }
    run_checks(third, threads, report);
    if (beside.joinable()) beside.join();
    if (injection_cut) report.not_run.insert(report.not_run.begin(), "starttls_injection");
    if (!report.not_run.empty()) {
      report.not_run_reason = cut_.reason();
      // The checks judge() already reports as "not tested: detail" get the cut as detail.
      for (std::string* detail :
           {&report.ssl2_detail, &report.groups_tls12_detail, &report.groups_tls13_detail,
            &report.dh_detail, &report.heartbleed_detail, &report.ccs_detail, &report.robot_detail,
            &report.renegotiation_detail}) {
        if (detail->empty()) *detail = report.not_run_reason;
      }
    }
    judge(report);
    for (const auto& name : report.not_run) {
      if (name == "tls_SSLv2" || name == "named_groups and dh_size" || name == "heartbleed" ||
          name == "ccs_injection" || name == "robot" || name == "client_renegotiation") {
        continue;
      }
      add(report, Level::kInfo, name, name + " not tested: " + report.not_run_reason);
    }
    return report;
  }

 private:
  struct Check {
    std::string name;  // as listed when not tested (several checks may share one)
    std::function<void()> run;
  };

  // Runs the checks on at most `threads` threads (in the order given: a thread takes the
  // next one left), or none once the scan is cut; then lists in report.not_run, in the
  // order given and once per name, those that ended after the scan was cut.
  void run_checks(const std::vector<Check>& checks, std::size_t threads, PortReport& report) {
    std::vector<char> cut(checks.size(), 0);
    std::mutex next_mutex;
    std::size_t next = 0;
    auto work = [&] {
      for (;;) {
        std::size_t i = 0;
        {
          std::lock_guard lock(next_mutex);
          if (next == checks.size()) return;
          i = next++;
        }
        if (cut_.empty()) checks[i].run();
        cut[i] = cut_.empty() ? 0 : 1;
      }
    };
    threads = std::min(checks.size(), threads);
    if (threads <= 1) {
      work();
    } else {
      std::vector<std::jthread> workers;
      for (std::size_t i = 0; i < threads; ++i)
        workers.emplace_back(work);
    }  // the workers are joined here
    for (std::size_t i = 0; i < checks.size(); ++i) {
      if (cut[i] && std::find(report.not_run.begin(), report.not_run.end(), checks[i].name) ==
                        report.not_run.end())
        report.not_run.push_back(checks[i].name);
    }
  }

  Clock::time_point deadline() const {
    return Clock::now() + std::chrono::seconds(options_.timeout_seconds);
  }

  // A finding; its testssl.sh id and fix come from kGuides.
  static void add(PortReport& report, Level level, std::string check, std::string text,
                  std::string testssl_id = "") {
    report.findings.push_back(
        make_finding(level, std::move(check), std::move(text), std::move(testssl_id)));
  }

  // Connects to each address of the host in turn until one answers. Within the budget
  // only, each attempt counted; once the port has answered, a connection that fails cuts
  // the scan (the server refuses or drops us: a rate limit, a restart).
  std::unique_ptr<Connection> connect(std::uint16_t port, std::string& error) {
    if (!cut_.empty()) {
      error = cut_.reason();
      return nullptr;
    }
    auto connection = connect_once(port, error);
    if (!connection && reached_) cut_.set("connection failed: " + error);
    return connection;
  }

  std::unique_ptr<Connection> connect_once(std::uint16_t port, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    std::string service = std::to_string(port);
    int status = ::getaddrinfo(options_.host.c_str(), service.c_str(), &hints, &found);
    if (status != 0) {
      error = std::string("cannot resolve ") + options_.host + ": " + gai_strerror(status);
      return nullptr;
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
    error = "no address";
    for (addrinfo* address = found; address != nullptr; address = address->ai_next) {
      if (!budget_.take()) {
        error = "connection budget of " + std::to_string(budget_.total()) + " exhausted";
        cut_.set(error);
        return nullptr;
      }
      int fd = ::socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        address->ai_protocol);
      if (fd < 0) {
        budget_.give_back();
        continue;
      }
      auto connection = std::make_unique<Connection>(fd, deadline(), &cut_, &budget_);
      if (::connect(fd, address->ai_addr, address->ai_addrlen) == 0) return connection;
      if (errno != EINPROGRESS) {
        error = std::strerror(errno);
        continue;
      }
      if (!connection->wait(tls::Status::kWantWrite)) {
        error = "timed out";
        continue;
      }
      int socket_error = 0;
      socklen_t length = sizeof socket_error;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &socket_error, &length);
      if (socket_error == 0) return connection;
      error = std::strerror(socket_error);
    }
    return nullptr;
  }

  Context make_context(int version, const std::string& ciphers, const std::string& suites) {
    Context context(SSL_CTX_new(TLS_client_method()));
    if (version != 0) {
      SSL_CTX_set_min_proto_version(context.get(), version);
      SSL_CTX_set_max_proto_version(context.get(), version);
    }
    // Level 0: the probe must see what the server does, and judge it itself. Above level 0
    // OpenSSL also reports a chain with a small key as "EE certificate key too weak" instead
    // of what is wrong with its trust (self-signed, unknown CA): the key is judged on its
    // own (certificate_key), the chain by its trust alone.
    SSL_CTX_set_security_level(context.get(), 0);
    // A list OpenSSL cannot use would silently leave its defaults in place: refuse instead.
    if (!ciphers.empty() && SSL_CTX_set_cipher_list(context.get(), ciphers.c_str()) != 1) {
      ERR_clear_error();
      return nullptr;
    }
    if (!suites.empty() && SSL_CTX_set_ciphersuites(context.get(), suites.c_str()) != 1) {
      ERR_clear_error();
      return nullptr;
    }
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);
    if (!options_.cafile.empty()) {
      SSL_CTX_load_verify_locations(context.get(), options_.cafile.c_str(), nullptr);
    } else {
      SSL_CTX_set_default_verify_paths(context.get());
    }
    SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_CLIENT);
    ERR_clear_error();
    return context;
  }

  // A connection ready for a TLS ClientHello: after EHLO and STARTTLS's 220, or at once.
  std::unique_ptr<Connection> open_for_tls(const PortReport& report, std::string& error) {
    auto connection = connect(report.port, error);
    if (!connection) return nullptr;
    if (report.mode == "starttls") {
      auto greeting = connection->read_reply();
      if (!greeting || greeting->code != 220) {
        error = "no greeting";
        // After the port has greeted us, a new connection closed without a word is the
        // server refusing connections (a connection or rate limit), not an answer.
        if (!greeting && reached_ && connection->closed() && connection->buffered().empty())
          cut_.set(
              "the server closed a new connection without a greeting (a connection or "
              "rate limit)");
        return nullptr;
      }
      auto ehlo = connection->command("EHLO " + ehlo_name_);
      if (!ehlo || ehlo->code != 250) {
        error = "EHLO refused";
        return nullptr;
      }
      auto starttls = connection->command("STARTTLS");
      if (!starttls || starttls->code != 220) {
        error = "STARTTLS refused: " + (starttls ? starttls->first_line() : "no reply");
        return nullptr;
      }
    }
    return connection;
  }

  // Opens a TLS session the way the port speaks (STARTTLS after EHLO, or at once).
  std::unique_ptr<Connection> open_tls(const PortReport& report, SSL_CTX* context,
                                       SSL_SESSION* session, std::string& error) {
    auto connection = open_for_tls(report, error);
    if (!connection) return nullptr;
    if (auto failed = connection->start_tls(context, options_.name, session)) {
      error = *failed;
      // OpenSSL names an alert the server sent ("tlsv1 alert protocol version"); anything
      // else (a close, bytes that are not TLS) may be a limit.
      // (Closed first: cut_by_limit opens a connection of its own.)
      connection.reset();
      if (failed->find("alert") == std::string::npos) cut_by_limit(report);
      return nullptr;
    }
    return connection;
  }

  // Implicit TLS has no greeting to carry a refusal: a server at its connection or rate
  // limit closes a new connection at once, or writes a 421 reply in clear and closes, and
  // either looks like a handshake it refused. After a handshake that got no TLS answer, one
  // more connection with a plain TLS 1.2 hello tells them apart: a server that only refused
  // what was offered answers it in TLS (a ServerHello or an alert); one that refuses
  // connections answers it the same way again, and the scan is cut (INCONCLUSIVE) instead
  // of judged. True when the scan is cut.
  bool cut_by_limit(const PortReport& report) {
    if (!cut_.empty()) return true;
    if (report.mode != "implicit" || !reached_) return false;
    std::string error;
    auto connection = connect(report.port, error);
    if (!connection) return !cut_.empty();
    tls::HelloOptions hello;
    hello.ciphers = tls::cipher_codes_before_tls13();
    hello.server_name = options_.name;
    tls::ServerAnswer answer;
    const Connection::Read read =
        !connection->write(tls::client_hello(hello))
            ? Connection::Read::kClosed
            : connection->read_until(kAnswerBound, [&](std::string_view bytes) {
                answer = tls::read_answer(bytes);
                return answer.kind != tls::ServerAnswer::Kind::kIncomplete;
              });
    if (read == Connection::Read::kParsed && answer.kind != tls::ServerAnswer::Kind::kMalformed)
      return false;
    const std::string& bytes = connection->buffered();
    if (bytes.empty()) {
      cut_.set(read == Connection::Read::kTimeout
                   ? "the server no longer answers a TLS hello on new connections (a connection "
                     "or rate limit)"
                   : "the server closes new connections at once, without a TLS answer (a "
                     "connection or rate limit)");
      return true;
    }
    if (looks_like_reply(bytes)) {
      std::string line = bytes.substr(0, std::min(bytes.find_first_of("\r\n"), std::size_t{200}));
      cut_.set("the server answered \"" + line + "\" in clear instead of TLS");
      return true;
    }
    return false;
  }

  // "421 ..." or "421-...": an SMTP reply (RFC 5321 §4.2), where TLS records were expected.
  static bool looks_like_reply(std::string_view bytes) {
    return bytes.size() >= 4 && std::isdigit(static_cast<unsigned char>(bytes[0])) &&
           std::isdigit(static_cast<unsigned char>(bytes[1])) &&
           std::isdigit(static_cast<unsigned char>(bytes[2])) &&
           (bytes[3] == ' ' || bytes[3] == '-');
  }

  // Whether a TLS session on this port carries SMTP: STARTTLS always, implicit TLS once the
  // default handshake saw a greeting.
  static bool speaks_smtp(const PortReport& report) {
    return report.mode != "implicit" || !report.greeting.empty();
  }

  // A 220 greeting in clear means STARTTLS; silence, or port 465, means implicit TLS.
  void detect_mode(PortReport& report) {
    std::string error;
    std::string plain_refusal;
    // Both ways in closed at once, without a byte: a server refusing us (a connection or
    // rate limit, smtpsd's on an implicit TLS port), which says nothing of its TLS.
    bool plain_closed = false;
    bool implicit_closed = false;
    auto try_plain = [&]() -> bool {
      auto connection = connect(report.port, error);
      if (!connection) return false;
      report.answered = true;
      // Standard SMTP ports may greet late (a greet pause); others have two seconds.
      auto limit = report.port == 25 || report.port == 587
                       ? deadline()
                       : Clock::now() + std::chrono::seconds(std::min(options_.timeout_seconds, 2));
      auto greeting = connection->read_reply(limit);
      if (greeting && greeting->code != 220) {
        plain_refusal = "greeting " + greeting->first_line();
        return false;
      }
      if (!greeting) {
        plain_closed = connection->closed() && connection->buffered().empty();
        return false;
      }
      report.greeting = greeting->first_line();
      auto ehlo = connection->command("EHLO " + ehlo_name_);
      if (ehlo && ehlo->code == 250) {
        report.extensions_before_tls.assign(ehlo->lines.begin() + 1, ehlo->lines.end());
      }
      bool starttls = std::any_of(
          report.extensions_before_tls.begin(), report.extensions_before_tls.end(),
          [](const std::string& line) { return strcasecmp(line.c_str(), "STARTTLS") == 0; });
      report.mode = starttls ? "starttls" : "plain";
      connection->quit();
      return true;
    };
    auto try_implicit = [&]() -> bool {
      PortReport implicit = report;
      implicit.mode = "implicit";
      auto context = make_context(0, "", "");
      auto connection = open_tls(implicit, context.get(), nullptr, error);
      if (!connection) {
        // Closed, or reset when the server closed before reading the hello.
        implicit_closed = error == "connection closed during the handshake" ||
                          error.find("reset by peer") != std::string::npos;
        return false;
      }
      report.answered = true;
      report.mode = "implicit";
      return true;
    };
    bool found = report.port == 465 ? try_implicit() || try_plain() : try_plain() || try_implicit();
    if (!found && plain_closed && implicit_closed) {
      cut_.set(
          "the server accepts connections and closes them at once, without a greeting or a "
          "TLS answer (a connection or rate limit)");
    }
    if (!found) {
      report.error = !plain_refusal.empty() ? "the server refuses the connection: " + plain_refusal
                     : report.answered
                         ? "answers, but neither SMTP in clear nor TLS (" + error + ")"
                         : error;
      report.answered = false;
    }
  }

  void check_auth_before_tls(PortReport& report) {
    for (const auto& line : report.extensions_before_tls) {
      if (strncasecmp(line.c_str(), "AUTH ", 5) == 0 ||
          strncasecmp(line.c_str(), "AUTH=", 5) == 0) {
        std::istringstream words(line.substr(5));
        for (std::string word; words >> word;)
          report.auth_before_tls.push_back(word);
      }
    }
    if (!report.auth_before_tls.empty()) {
      add(report, Level::kHigh, "auth_before_tls",
          "AUTH " + join(report.auth_before_tls, " ") +
              " offered before TLS: clients may send passwords in clear");
    } else {
      add(report, Level::kOk, "auth_before_tls", "no AUTH offered before TLS");
    }
  }

  // CVE-2011-0411: "STARTTLS\r\nNOOP\r\n" in one write. A correct server discards the NOOP
  // that came in clear (RFC 3207 §4.2 and Postfix's fix); a vulnerable one answers it
  // inside TLS, as if the client had sent it there.
  void injection_test(PortReport& report) {
    std::string error;
    auto connection = connect(report.port, error);
    if (!connection) return;
    auto greeting = connection->read_reply();
    auto ehlo = greeting ? connection->command("EHLO " + ehlo_name_) : std::nullopt;
    if (!ehlo || ehlo->code != 250) return;
    connection->expect_421();
    if (!connection->write("STARTTLS\r\nNOOP\r\n")) return;
    auto reply = connection->read_reply();
    if (!reply || reply->code != 220) {
      report.injection_vulnerable = false;
      report.injection_detail = "STARTTLS followed by a command in the same packet was refused (" +
                                (reply ? reply->first_line() : "connection closed") + ")";
      return;
    }
    if (!connection->buffered().empty()) {
      report.injection_vulnerable = true;
      report.injection_detail = "the server answered the NOOP sent after STARTTLS in clear";
      return;
    }
    auto context = make_context(0, "", "");
    if (auto failed = connection->start_tls(context.get(), options_.name, nullptr)) {
      report.injection_detail = "TLS handshake failed: " + *failed;
      return;
    }
    // A vulnerable server has the NOOP in its buffer and answers it without being asked.
    auto wait = std::min(options_.timeout_seconds * 1000, 1500);
    auto answer = connection->read_reply(Clock::now() + std::chrono::milliseconds(wait));
    report.injection_vulnerable = answer.has_value();
    report.injection_detail =
        answer ? "the NOOP sent in clear before the handshake was answered inside TLS (" +
                     answer->first_line() + ")"
               : "the NOOP sent in clear with STARTTLS was discarded";
    connection->quit();
  }

  // The default handshake: certificate, extensions after TLS, session resumption.
  void main_session(PortReport& report) {
    auto context = make_context(0, "", "");
    std::string error;
    auto connection = open_tls(report, context.get(), nullptr, error);
    if (!connection) {
      add(report, Level::kHigh, "tls", "TLS handshake failed: " + error);
      return;
    }
    SSL* ssl = connection->ssl();
    report.negotiated_version = SSL_get_version(ssl);
    report.negotiated_cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
    report.certificate = describe_certificate(ssl);
    if (report.mode == "implicit") {
      auto greeting = connection->read_reply();
      if (greeting) report.greeting = greeting->first_line();
    }
    auto ehlo = connection->command("EHLO " + ehlo_name_);
    if (ehlo && ehlo->code == 250) {
      report.extensions_after_tls.assign(ehlo->lines.begin() + 1, ehlo->lines.end());
    }
    for (const auto& line : report.extensions_after_tls) {
      if (strncasecmp(line.c_str(), "AUTH ", 5) == 0) {
        std::istringstream words(line.substr(5));
        for (std::string word; words >> word;)
          report.auth_after_tls.push_back(word);
      }
    }
    // TLS 1.3 tickets arrive after the handshake: the EHLO reply has carried them in.
    Session session(SSL_get1_session(ssl));
    connection->quit(speaks_smtp(report));
    connection.reset();
    if (!session || !SSL_SESSION_is_resumable(session.get())) {
      report.resumed = false;
    } else {
      auto again = open_tls(report, context.get(), session.get(), error);
      report.resumed = again && SSL_session_reused(again->ssl()) == 1;
      if (again) again->quit(speaks_smtp(report));
    }
    // One connection at a time: a server that serves one (openssl s_server) still answers.
    find_other_certificates(report);
  }

  // Each signature algorithm family on its own: a server with an ECDSA and an RSA
  // certificate shows the RSA one only to a client that cannot verify ECDSA.
  void find_other_certificates(PortReport& report) {
    static constexpr std::pair<const char*, const char*> kFamilies[] = {
        {"ECDSA", "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:ecdsa_secp521r1_sha512"},
        {"RSA",
         "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:rsa_pkcs1_sha256:"
         "rsa_pkcs1_sha384:rsa_pkcs1_sha512:rsa_pss_pss_sha256:rsa_pss_pss_sha384"},
        {"ED25519", "ed25519"}};
    std::vector<std::string> seen = {report.certificate.key_type};
    for (const auto& [family, sigalgs] : kFamilies) {
      auto context = make_context(0, "", "");
      if (!context || SSL_CTX_set1_sigalgs_list(context.get(), sigalgs) != 1) {
        ERR_clear_error();
        continue;
      }
      std::string error;
      auto connection = open_tls(report, context.get(), nullptr, error);
      if (!connection) continue;  // the server has no certificate of that family
      CertificateReport other = describe_certificate(connection->ssl());
      connection->quit(speaks_smtp(report));
      if (other.key_type.empty() ||
          std::find(seen.begin(), seen.end(), other.key_type) != seen.end())
        continue;
      seen.push_back(other.key_type);
      report.other_certificates.push_back(std::move(other));
    }
  }

  CertificateReport describe_certificate(SSL* ssl) {
    CertificateReport report;
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
    for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
      X509* certificate = sk_X509_value(chain, i);
      report.chain.push_back({name_text(X509_get_subject_name(certificate)),
                              name_text(X509_get_issuer_name(certificate))});
      report.der.push_back(der_of(certificate, &i2d_X509));
      report.spki_der.push_back(der_of(X509_get_X509_PUBKEY(certificate), &i2d_X509_PUBKEY));
    }
    X509* leaf = SSL_get0_peer_certificate(ssl);
    if (leaf == nullptr) return report;
    if (EVP_PKEY* key = X509_get0_pubkey(leaf)) {
      const char* type = EVP_PKEY_get0_type_name(key);  // "RSA", "EC", "ED25519"...
      report.key_type = type != nullptr ? type : "unknown";
      report.key_bits = EVP_PKEY_get_bits(key);
    }
    const char* signature = OBJ_nid2ln(X509_get_signature_nid(leaf));
    report.signature_algorithm = signature != nullptr ? signature : "unknown";
    int days = 0;
    int seconds = 0;
    if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(leaf)) == 1) {
      // Rounded: a certificate issued for 5 days a minute ago "expires in 5 days".
      long long total = days * 86400LL + seconds;
      report.expired = total < 0;
      report.days_left = static_cast<int>((total + (total < 0 ? -43200 : 43200)) / 86400);
      report.seconds_left = total;
    }
    // RFC 6125 §6: DNS-ID match (wildcard only as the whole left-most label).
    const bool ip_literal = base::parse_ip(options_.name).has_value();
    report.name_matches = ip_literal
                              ? X509_check_ip_asc(leaf, options_.name.c_str(), 0) == 1
                              : X509_check_host(leaf, options_.name.c_str(), options_.name.size(),
                                                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1;
    report.key_sha256 = key_digest(leaf);
    long verified = SSL_get_verify_result(ssl);
    report.chain_verified = verified == X509_V_OK;
    report.verify_detail = X509_verify_cert_error_string(verified);
    return report;
  }

  template <typename T, typename Encode>
  static std::string der_of(T* object, Encode encode) {
    if (object == nullptr) return "";
    unsigned char* bytes = nullptr;
    const int length = encode(object, &bytes);
    if (length <= 0) {
      ERR_clear_error();
      return "";
    }
    std::string der(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(length));
    OPENSSL_free(bytes);
    return der;
  }

  // SHA-256 of the certificate's DER SubjectPublicKeyInfo, in hex ("" when it has none).
  static std::string key_digest(X509* certificate) {
    auto hex = tls::spki_sha256_hex(certificate);
    ERR_clear_error();
    return hex ? *hex : "";
  }

  static std::string name_text(X509_NAME* name) {
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    long length = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    return text;
  }

  // The names of a suite code: OpenSSL's and the registry's when OpenSSL knows it, else the
  // registry's from our table of long-dropped suites, else the code in hex.
  std::pair<std::string, std::string> suite_names(std::uint16_t code) const {
    const unsigned char bytes[2] = {static_cast<unsigned char>(code >> 8),
                                    static_cast<unsigned char>(code & 0xFF)};
    if (names_) {
      if (const SSL_CIPHER* cipher = SSL_CIPHER_find(names_.get(), bytes)) {
        const char* standard = SSL_CIPHER_standard_name(cipher);
        return {SSL_CIPHER_get_name(cipher), standard != nullptr ? standard : ""};
      }
    }
    if (std::string_view legacy = tls::legacy_suite_name(code); !legacy.empty())
      return {std::string(legacy), std::string(legacy)};
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%04X", code);
    return {hex, ""};
  }

  // TLS_FALLBACK_SCSV (RFC 7507): a hello for a version below the highest the server takes,
  // flagged as a fallback, must be refused (inappropriate_fallback), else an attacker who
  // breaks the first handshakes downgrades the client. And whether the server picks the
  // suite by its own order (the client's order reversed gets the same choice).
  void check_fallback_and_order(PortReport& report) {
    const VersionResult* below = nullptr;  // the highest version below the highest taken
    bool higher = false;
    for (auto it = report.versions.rbegin(); it != report.versions.rend(); ++it) {
      if (!it->accepted) continue;
      if (!higher) {
        higher = true;
        continue;
      }
      if (it->name != "TLSv1.3") {
        below = &*it;
        break;
      }
    }
    std::string error;
    if (below != nullptr) {
      tls::HelloOptions hello;
      hello.version = version_code(below->name);
      hello.ciphers = tls::cipher_codes_before_tls13();
      hello.server_name = options_.name;
      hello.fallback_scsv = true;
      auto answer = raw_hello(report, hello, error);
      if (answer && answer->kind == tls::ServerAnswer::Kind::kAlert &&
          answer->alert_description == 86) {
        report.fallback_scsv = true;
      } else if (answer && answer->kind == tls::ServerAnswer::Kind::kServerHello) {
        report.fallback_scsv = false;
      }
      report.fallback_version = below->name;
    }
    // The server's order: the highest version below 1.3 with two suites or more.
    for (auto it = report.versions.rbegin(); it != report.versions.rend(); ++it) {
      if (it->name == "TLSv1.3" || it->codes.size() < 2) continue;
      tls::HelloOptions hello;
      hello.version = version_code(it->name);
      hello.ciphers.assign(it->codes.rbegin(), it->codes.rend());
      hello.server_name = options_.name;
      auto answer = raw_hello(report, hello, error);
      if (answer && answer->kind == tls::ServerAnswer::Kind::kServerHello) {
        report.server_order = answer->cipher == it->codes.front();
        report.order_version = it->name;
      }
      break;
    }
  }

  // The highest version below TLS 1.3 the server takes, with its suites: where the
  // checks of the TLS 1.2-and-older handshake run (key exchange, Heartbleed, CCS).
  static const VersionResult* highest_before_tls13(const PortReport& report) {
    for (auto it = report.versions.rbegin(); it != report.versions.rend(); ++it) {
      if (it->name != "TLSv1.3" && it->accepted && !it->codes.empty()) return &*it;
    }
    return nullptr;
  }

  static std::uint16_t version_code(const std::string& name) {
    for (const Version& version : kVersions) {
      if (name == version.name) return static_cast<std::uint16_t>(version.number);
    }
    return tls::kTls12;
  }

  // A hand-built ClientHello on a fresh connection, and the server's flight read up to
  // ServerHelloDone (or its alert); the connection stays open for what follows.
  std::unique_ptr<Connection> raw_flight(const PortReport& report, const tls::HelloOptions& hello,
                                         tls::ServerFlight& flight, std::string& error) {
    auto connection = open_for_tls(report, error);
    if (!connection) return nullptr;
    if (!connection->write(tls::client_hello(hello))) {
      error = "connection closed before the ClientHello";
      return nullptr;
    }
    // A flight carries the certificate chain: a larger bound than the other answers.
    const Connection::Read read = connection->read_until(kFlightBound, [&](std::string_view bytes) {
      flight = tls::read_flight(bytes);
      return flight.kind != tls::ServerFlight::Kind::kIncomplete;
    });
    if (read == Connection::Read::kParsed) {
      if (flight.kind != tls::ServerFlight::Kind::kMalformed) return connection;
      error = "not a TLS answer";
      connection.reset();
      cut_by_limit(report);
    } else {
      const bool silent = connection->buffered().empty();
      connection.reset();
      if (silent) cut_by_limit(report);
      error = read == Connection::Read::kClosed ? "connection closed during the handshake"
              : read == Connection::Read::kTooLong
                  ? "no complete answer in the first " + std::to_string(kFlightBound) + " bytes"
                  : "no complete answer in time";
    }
    return nullptr;
  }

  // The suites of a version whose registry names start with one of the prefixes.
  static std::vector<std::uint16_t> suites_named(const VersionResult& version,
                                                 std::initializer_list<std::string_view> prefixes) {
    std::vector<std::uint16_t> codes;
    for (std::size_t i = 0; i < version.codes.size() && i < version.registry.size(); ++i) {
      for (std::string_view prefix : prefixes) {
        if (version.registry[i].starts_with(prefix)) {
          codes.push_back(version.codes[i]);
          break;
        }
      }
    }
    return codes;
  }

  // The groups of each kind of key exchange (three checks that may run at once): offer
  // every group left, record the one the server picks, leave it out, again until the server
  // refuses (one connection per group taken, plus one). Before TLS 1.3 with ECDHE suites
  // alone, the group is the ServerKeyExchange's curve; in TLS 1.3 with an empty key_share,
  // the HelloRetryRequest's. DHE: the prime's size, from one ServerKeyExchange (LOGJAM: 1024
  // bits and less).
  void check_groups_before_tls13(PortReport& report) {
    std::string error;
    const VersionResult* legacy = highest_before_tls13(report);
    if (legacy == nullptr) {
      report.groups_tls12_apply = false;
      report.groups_tls12_detail = "no version below TLS 1.3 accepted";
      return;
    }
    const std::vector<std::uint16_t> ecdhe =
        suites_named(*legacy, {"TLS_ECDHE_", "TLS_ECDH_anon_"});
    if (ecdhe.empty()) {
      report.groups_tls12_apply = false;
      report.groups_tls12_detail = "no ECDHE suite accepted";
    } else if (legacy->name == "SSLv3") {
      report.groups_tls12_version = legacy->name;
      report.groups_tls12_detail = "an SSL 3.0 hello has no supported_groups to offer them by";
    } else {
      std::vector<std::uint16_t> remaining;
      for (const tls::NamedGroup& group : tls::named_groups()) {
        if (group.code < 0x0100) remaining.push_back(group.code);  // the curves
      }
      std::vector<std::uint16_t> taken;
      bool ended = false;
      while (!remaining.empty() && !ended) {
        tls::HelloOptions hello;
        hello.version = version_code(legacy->name);
        hello.ciphers = ecdhe;
        hello.server_name = options_.name;
        hello.groups = remaining;
        tls::ServerFlight flight;
        auto connection = raw_flight(report, hello, flight, error);
        if (!connection) break;
        if (flight.kind == tls::ServerFlight::Kind::kAlert) {
          // The server takes ECDHE suites: refusing every curve at once is not an answer.
          ended = !taken.empty();
          error = "the ECDHE suites it accepted were refused with every curve offered (" +
                  alert_text(flight.hello.alert_description) + ")";
          break;
        }
        const tls::KeyExchange exchange = tls::read_key_exchange(flight.key_exchange, true);
        auto position = std::find(remaining.begin(), remaining.end(), exchange.group);
        if (!exchange.valid || position == remaining.end()) {
          error = "the server's key exchange names no group that was offered";
          break;
        }
        taken.push_back(exchange.group);
        remaining.erase(position);
        ended = remaining.empty();
      }
      report.groups_tls12_version = legacy->name;
      if (ended) {
        report.groups_tls12 = taken;
      } else {
        report.groups_tls12_detail = error;
      }
    }
  }

  void check_dh_size(PortReport& report) {
    std::string error;
    const VersionResult* legacy = highest_before_tls13(report);
    if (legacy == nullptr) return;
    const std::vector<std::uint16_t> dhe = suites_named(*legacy, {"TLS_DHE_", "TLS_DH_anon_"});
    if (dhe.empty()) {
      report.dh_detail = "no DHE suite accepted";
    } else {
      tls::HelloOptions hello;
      hello.version = version_code(legacy->name);
      hello.ciphers = dhe;
      hello.server_name = options_.name;
      tls::ServerFlight flight;
      auto connection = raw_flight(report, hello, flight, error);
      report.dh_version = legacy->name;
      const tls::KeyExchange exchange =
          tls::read_key_exchange(connection ? flight.key_exchange : "", false);
      if (connection && flight.kind == tls::ServerFlight::Kind::kDone && exchange.valid) {
        report.dh_bits = exchange.dh_prime_bits;
      } else {
        report.dh_detail = connection ? "no DH parameters in the answer" : error;
      }
    }
  }

  void check_groups_tls13(PortReport& report) {
    std::string error;
    const bool tls13 = std::any_of(
        report.versions.begin(), report.versions.end(),
        [](const VersionResult& version) { return version.name == "TLSv1.3" && version.accepted; });
    if (!tls13) {
      report.groups_tls13_apply = false;
      report.groups_tls13_detail = "TLS 1.3 not accepted";
      return;
    }
    std::vector<std::uint16_t> remaining;
    for (const tls::NamedGroup& group : tls::named_groups())
      remaining.push_back(group.code);
    std::vector<std::uint16_t> taken;
    bool ended = false;
    while (!remaining.empty() && !ended) {
      tls::HelloOptions hello;
      hello.version = tls::kTls13;
      hello.ciphers = tls::tls13_cipher_codes();
      hello.server_name = options_.name;
      hello.groups = remaining;
      auto answer = raw_hello(report, hello, error);
      if (!answer) break;
      if (answer->kind == tls::ServerAnswer::Kind::kAlert) {
        // TLS 1.3 was accepted, so some group is: a first refusal is no answer (a server
        // that does not take an empty key_share, say).
        ended = !taken.empty();
        error = "a TLS 1.3 hello asking for a HelloRetryRequest was refused (" +
                alert_text(answer->alert_description) + ")";
        break;
      }
      auto position = std::find(remaining.begin(), remaining.end(), answer->key_share_group);
      if (answer->kind != tls::ServerAnswer::Kind::kServerHello || !answer->hello_retry ||
          position == remaining.end()) {
        error = "the answer to an empty key_share was not a HelloRetryRequest for a group offered";
        break;
      }
      taken.push_back(answer->key_share_group);
      remaining.erase(position);
      ended = remaining.empty();
    }
    if (ended) {
      report.groups_tls13 = taken;
    } else {
      report.groups_tls13_detail = error;
    }
  }

  // Heartbleed (CVE-2014-0160): a HeartbeatRequest that claims 16 KiB and carries nothing,
  // after the server's first flight. A server that answers with more than a bare response
  // has sent its own memory; only the size of that answer is kept (never its bytes).
  void check_heartbleed(PortReport& report) {
    const VersionResult* legacy = highest_before_tls13(report);
    if (legacy == nullptr) {
      report.heartbleed = false;
      report.heartbleed_detail = "only TLS 1.3, which has no heartbeat";
      return;
    }
    if (legacy->name == "SSLv3") {
      report.heartbleed_detail = "below TLS 1.3 only SSL 3.0, whose hello has no extensions";
      return;
    }
    tls::HelloOptions hello;
    hello.version = version_code(legacy->name);
    hello.ciphers = legacy->codes;
    hello.server_name = options_.name;
    hello.heartbeat = true;
    tls::ServerFlight flight;
    std::string error;
    auto connection = raw_flight(report, hello, flight, error);
    if (!connection || flight.kind != tls::ServerFlight::Kind::kDone) {
      report.heartbleed_detail = connection ? "the handshake was refused" : error;
      return;
    }
    if (!flight.hello.heartbeat) {
      report.heartbleed = false;
      report.heartbleed_detail = "the server does not offer the heartbeat extension (RFC 6520)";
      return;
    }
    if (!connection->write(tls::heartbeat_request(hello.version, 0x4000))) {
      report.heartbleed_detail = "connection closed before the heartbeat";
      return;
    }
    // A patched server drops the request in silence (RFC 6520 §4): wait a little for it.
    const auto limit = Clock::now() + std::chrono::seconds(std::min(options_.timeout_seconds, 3));
    tls::NextRecord next;
    const Connection::Read read = connection->read_until(
        flight.consumed + kAnswerBound,
        [&](std::string_view bytes) {
          next = tls::read_next_record(bytes.substr(flight.consumed));
          return next.kind != tls::NextRecord::Kind::kIncomplete;
        },
        limit);
    if (read == Connection::Read::kParsed) {
      if (next.kind == tls::NextRecord::Kind::kHeartbeat) {
        report.heartbleed = next.length > 3 + 16;
        report.heartbleed_detail =
            *report.heartbleed
                ? "a heartbeat claiming 16384 bytes and carrying none was answered with " +
                      std::to_string(next.length) + " bytes of the server's memory (not shown)"
                : "the heartbeat was answered without any of the server's memory";
        return;
      }
      if (next.kind == tls::NextRecord::Kind::kAlert) {
        report.heartbleed = false;
        report.heartbleed_detail = "the overlong heartbeat was refused";
        return;
      }
      // Anything else shows nothing either way: not tested.
      if (next.kind == tls::NextRecord::Kind::kOther) {
        report.heartbleed_detail = "an unexpected answer to the heartbeat (record type " +
                                   std::to_string(next.content_type) + ")";
        return;
      }
      if (next.kind == tls::NextRecord::Kind::kMalformed) {
        report.heartbleed_detail = "an answer to the heartbeat that is not TLS";
        return;
      }
    }
    if (read == Connection::Read::kTooLong) {
      report.heartbleed_detail = "no answer to the heartbeat in " + std::to_string(kAnswerBound) +
                                 " bytes of handshake records";
      return;
    }
    report.heartbleed = false;
    report.heartbleed_detail = read == Connection::Read::kClosed
                                   ? "the overlong heartbeat was refused (connection closed)"
                                   : "the overlong heartbeat was ignored";
  }

  // CCS injection (CVE-2014-0224): two ChangeCipherSpec records right after the server's
  // first flight, before any key exchange. A correct server refuses the first
  // (unexpected_message); a vulnerable one takes it, switches to keys anyone can compute,
  // and then fails the MAC of the second (bad_record_mac, decryption_failed).
  void check_ccs_injection(PortReport& report) {
    const VersionResult* legacy = highest_before_tls13(report);
    if (legacy == nullptr) {
      report.ccs_injection = false;
      report.ccs_detail = "only TLS 1.3";
      return;
    }
    tls::HelloOptions hello;
    hello.version = version_code(legacy->name);
    hello.ciphers = legacy->codes;
    hello.server_name = options_.name;
    tls::ServerFlight flight;
    std::string error;
    auto connection = raw_flight(report, hello, flight, error);
    if (!connection || flight.kind != tls::ServerFlight::Kind::kDone) {
      report.ccs_detail = connection ? "the handshake was refused" : error;
      return;
    }
    const std::string change = tls::change_cipher_spec(hello.version);
    if (!connection->write(change + change)) {
      report.ccs_detail = "connection closed before the ChangeCipherSpec";
      return;
    }
    tls::NextRecord next;
    const Connection::Read read =
        connection->read_until(flight.consumed + kAnswerBound, [&](std::string_view bytes) {
          next = tls::read_next_record(bytes.substr(flight.consumed));
          return next.kind != tls::NextRecord::Kind::kIncomplete;
        });
    if (read == Connection::Read::kParsed) {
      if (next.kind == tls::NextRecord::Kind::kAlert) {
        const bool vulnerable = next.alert_description == 20 || next.alert_description == 21;
        report.ccs_injection = vulnerable;
        report.ccs_detail =
            vulnerable ? "an early ChangeCipherSpec was taken (the next record failed its MAC: " +
                             alert_text(next.alert_description) + ")"
                       : "an early ChangeCipherSpec was refused (" +
                             alert_text(next.alert_description) + ")";
        return;
      }
      report.ccs_detail = "an unexpected answer to an early ChangeCipherSpec";
      return;
    }
    report.ccs_detail = read == Connection::Read::kClosed
                            ? "the connection was closed without an alert"
                        : read == Connection::Read::kTooLong
                            ? "no answer to an early ChangeCipherSpec in " +
                                  std::to_string(kAnswerBound) + " bytes of handshake records"
                            : "no answer to an early ChangeCipherSpec";
  }

  // ROBOT (Return Of Bleichenbacher's Oracle Threat, 2017; CVE-2017-13099 and others):
  // with RSA key exchange the client encrypts the premaster secret to the server's RSA key
  // with PKCS#1 v1.5 padding; a server that reacts differently to blocks whose padding is
  // wrong in different ways lets an attacker decrypt a recorded session or sign with the
  // key, query by query. Tested only by comparing: five fixed ClientKeyExchange messages
  // (tls::robot_blocks: well formed, wrong first bytes, misplaced separator, no separator,
  // wrong premaster version), each on its own connection and followed by ChangeCipherSpec
  // and a garbage Finished; the reactions (alert, close, reset, silence) compared. Nothing
  // adaptive, nothing decrypted: when they differ, the same five once more, and the server
  // is vulnerable only when both rounds agree (a difference that does not repeat is noise:
  // not tested). At most ten connections, all within the budget.
  void check_robot(PortReport& report) {
    const VersionResult* legacy = nullptr;
    std::vector<std::uint16_t> suites;
    for (auto it = report.versions.rbegin(); it != report.versions.rend() && !legacy; ++it) {
      if (it->name == "TLSv1.3" || !it->accepted) continue;
      suites = suites_named(*it, {"TLS_RSA_WITH_"});
      if (!suites.empty()) legacy = &*it;
    }
    if (legacy == nullptr) {
      report.robot = false;
      report.robot_detail = "no RSA key exchange suite (TLS_RSA_WITH_*) accepted";
      return;
    }
    tls::HelloOptions hello;
    hello.version = version_code(legacy->name);
    hello.ciphers = suites;
    hello.server_name = options_.name;
    std::string certificate;  // the leaf of the first flight: every query encrypts to it
    std::vector<std::string> encrypted;
    // One query: its reaction, or nullopt (robot_detail says why) when none could be seen.
    auto query = [&](std::size_t block) -> std::optional<std::string> {
      tls::ServerFlight flight;
      std::string error;
      auto connection = raw_flight(report, hello, flight, error);
      if (!connection || flight.kind != tls::ServerFlight::Kind::kDone) {
        report.robot_detail =
            connection ? "the handshake with RSA key exchange was refused" : error;
        return std::nullopt;
      }
      if (std::find(suites.begin(), suites.end(), flight.hello.cipher) == suites.end()) {
        report.robot_detail = "the server chose a suite that was not offered";
        return std::nullopt;
      }
      if (encrypted.empty()) {
        certificate = flight.certificate;
        encrypted = robot_ciphertexts(certificate, hello.version, report.robot_detail);
        if (encrypted.empty()) return std::nullopt;
      } else if (flight.certificate != certificate) {
        report.robot_detail = "the server changed its certificate between connections";
        return std::nullopt;
      }
      if (!connection->write(
              tls::robot_key_exchange_flight(flight.hello.version, encrypted[block]))) {
        report.robot_detail = "connection closed before the ClientKeyExchange";
        return std::nullopt;
      }
      return reaction(*connection, flight.consumed);
    };
    constexpr const char* kQueries[] = {"well-formed padding", "wrong first bytes",
                                        "misplaced separator", "no separator",
                                        "wrong premaster version"};
    auto round = [&](std::vector<std::string>& answers) {
      answers.clear();
      for (std::size_t block = 0; block < std::size(kQueries); ++block) {
        auto answer = query(block);
        if (!answer) return false;
        answers.push_back(std::move(*answer));
      }
      return true;
    };
    std::vector<std::string> first;
    if (!round(first)) return;
    report.robot_answers = first;
    auto all_alike = [](const std::vector<std::string>& answers, std::size_t from, std::size_t to) {
      return std::all_of(answers.begin() + static_cast<std::ptrdiff_t>(from),
                         answers.begin() + static_cast<std::ptrdiff_t>(to),
                         [&](const std::string& answer) { return answer == answers[from]; });
    };
    if (all_alike(first, 0, first.size())) {
      report.robot = false;
      report.robot_detail = "the " + std::to_string(first.size()) +
                            " key exchanges, well and badly padded, all got the same answer (" +
                            first.front() + ")";
      return;
    }
    std::vector<std::string> second;
    if (!round(second)) return;
    if (second != first) {
      report.robot_answers = {};
      report.robot_detail =
          "the answers to the same key exchanges changed from one round to the next (no "
          "oracle that repeats)";
      return;
    }
    report.robot = true;
    report.robot_strong = !all_alike(first, tls::kRobotWrongFirstBytes, tls::kRobotNoSeparator + 1);
    std::vector<std::string> told;
    for (std::size_t block = 0; block < first.size(); ++block)
      told.push_back(std::string(kQueries[block]) + ": " + first[block]);
    report.robot_detail =
        std::string(report.robot_strong ? "wrong paddings are told apart (a strong oracle)"
                                        : "well-formed paddings stand out (a weak oracle)") +
        " in RSA key exchange (" + join(told, "; ") + ")";
  }

  // The blocks of tls::robot_blocks encrypted with the RSA key of a certificate (DER), raw
  // (RSAEP, RFC 8017 §5.1.1: the block is its own padding); none, and why, when it holds no
  // RSA key or the key cannot take them.
  static std::vector<std::string> robot_ciphertexts(const std::string& der, std::uint16_t version,
                                                    std::string& error) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(der.data());
    std::unique_ptr<X509, decltype(&X509_free)> certificate(
        d2i_X509(nullptr, &bytes, static_cast<long>(der.size())), &X509_free);
    EVP_PKEY* key = certificate ? X509_get0_pubkey(certificate.get()) : nullptr;
    ERR_clear_error();
    if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
      error = certificate ? "the certificate served with RSA key exchange holds no RSA key"
                          : "no readable certificate came with RSA key exchange";
      return {};
    }
    const int size = EVP_PKEY_get_size(key);
    const std::vector<std::string> blocks =
        tls::robot_blocks(static_cast<std::size_t>(std::max(size, 0)), version);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> context(
        EVP_PKEY_CTX_new(key, nullptr), &EVP_PKEY_CTX_free);
    std::vector<std::string> encrypted;
    if (!blocks.empty() && context && EVP_PKEY_encrypt_init(context.get()) > 0 &&
        EVP_PKEY_CTX_set_rsa_padding(context.get(), RSA_NO_PADDING) > 0) {
      for (const std::string& block : blocks) {
        std::string out(static_cast<std::size_t>(size), '\0');
        std::size_t length = out.size();
        if (EVP_PKEY_encrypt(context.get(), reinterpret_cast<unsigned char*>(out.data()), &length,
                             reinterpret_cast<const unsigned char*>(block.data()),
                             block.size()) <= 0)
          break;
        out.resize(length);
        encrypted.push_back(std::move(out));
      }
    }
    ERR_clear_error();
    if (encrypted.size() != blocks.size() || blocks.empty()) {
      error = "the server's RSA key (" + std::to_string(size * 8) +
              " bits) cannot encrypt the test blocks";
      return {};
    }
    return encrypted;
  }

  // What the server does after a key exchange: its first record (an alert, or another
  // record), then whether it closes the connection, resets it or leaves it open; or only
  // the close, the reset or the silence. Bounded in time (a silent server is an answer
  // too: some vulnerable ones time out on bad padding) and in bytes.
  std::string reaction(Connection& connection, std::size_t consumed) {
    const auto limit = Clock::now() + std::chrono::seconds(std::min(options_.timeout_seconds, 3));
    auto end = [&](Connection::Read read) -> std::string {
      if (read == Connection::Read::kClosed) return connection.reset() ? "reset" : "closed";
      if (read == Connection::Read::kTooLong) return "records without end";
      return "no answer";
    };
    tls::NextRecord next;
    const Connection::Read read = connection.read_until(
        consumed + kAnswerBound,
        [&](std::string_view bytes) {
          next = tls::read_next_record(bytes.substr(consumed));
          return next.kind != tls::NextRecord::Kind::kIncomplete;
        },
        limit);
    if (read != Connection::Read::kParsed) return end(read);
    std::string first;
    switch (next.kind) {
      case tls::NextRecord::Kind::kAlert:
        first = alert_text(next.alert_description);
        break;
      case tls::NextRecord::Kind::kMalformed:
        return "an answer that is not TLS";
      default:
        first = "a record of type " + std::to_string(next.content_type);
        break;
    }
    const Connection::Read after = connection.read_until(
        connection.buffered().size() + kAnswerBound, [](std::string_view) { return false; }, limit);
    return first + ", then " + (after == Connection::Read::kTimeout ? "left open" : end(after));
  }

  // SSL 2.0: a CLIENT-HELLO; a SERVER-HELLO back means the port speaks it (RFC 6176
  // forbids it), and DROWN (CVE-2016-0800) then reaches every server that shares the key.
  void check_ssl2(PortReport& report) {
    std::string error;
    auto connection = open_for_tls(report, error);
    if (!connection) {
      report.ssl2_detail = error;
      return;
    }
    if (!connection->write(tls::ssl2_client_hello())) {
      report.ssl2_detail = "connection closed before the CLIENT-HELLO";
      return;
    }
    tls::Ssl2Answer answer;
    const Connection::Read read = connection->read_until(kAnswerBound, [&](std::string_view bytes) {
      answer = tls::read_ssl2_answer(bytes);
      return answer.kind != tls::Ssl2Answer::Kind::kIncomplete;
    });
    if (read == Connection::Read::kParsed) {
      if (answer.kind == tls::Ssl2Answer::Kind::kServerHello) {
        report.ssl2 = true;
        report.ssl2_detail = std::to_string(answer.ciphers) + " SSL 2.0 cipher(s) listed";
        const auto* der = reinterpret_cast<const unsigned char*>(answer.certificate.data());
        if (X509* certificate =
                d2i_X509(nullptr, &der, static_cast<long>(answer.certificate.size()))) {
          report.ssl2_key_sha256 = key_digest(certificate);
          X509_free(certificate);
        }
        ERR_clear_error();
        return;
      }
      const bool reply = looks_like_reply(connection->buffered());
      connection.reset();
      if (reply && cut_by_limit(report)) return;
      report.ssl2 = false;
      report.ssl2_detail = "answered with something else than SSL 2.0";
      return;
    }
    if (read == Connection::Read::kClosed) {
      const bool silent = connection->buffered().empty();
      connection.reset();
      if (silent && cut_by_limit(report)) return;
      report.ssl2 = false;
      report.ssl2_detail = "the connection was closed";
    } else {
      report.ssl2_detail = read == Connection::Read::kTooLong
                               ? "no complete answer to an SSL 2.0 CLIENT-HELLO in " +
                                     std::to_string(kAnswerBound) + " bytes"
                               : "no answer to an SSL 2.0 CLIENT-HELLO";
    }
  }

  // Client-initiated renegotiation: each one costs the server a full handshake on demand
  // (a denial of service a single client can drive). With the local TLS library, at the
  // highest version below TLS 1.3 (TLS 1.3 has no renegotiation, RFC 8446 §4.1.2).
  void check_client_renegotiation(PortReport& report) {
    const VersionResult* legacy = highest_before_tls13(report);
    if (legacy == nullptr) {
      report.client_renegotiation = false;
      report.renegotiation_detail = "only TLS 1.3, which has no renegotiation";
      return;
    }
    const std::uint16_t version = version_code(legacy->name);
    auto context = make_context(version, "ALL:COMPLEMENTOFALL:@SECLEVEL=0", "");
    std::string error;
    auto connection = context ? open_tls(report, context.get(), nullptr, error) : nullptr;
    if (!connection) {
      report.renegotiation_detail = context ? "the local TLS library could not complete a " +
                                                  legacy->name + " handshake" +
                                                  (error.empty() ? "" : " (" + error + ")")
                                            : "the local TLS library cannot offer " + legacy->name;
      return;
    }
    if (report.mode == "implicit" && speaks_smtp(report)) connection->read_reply();  // greeting
    const tls::Result result = connection->renegotiate();
    if (result.done()) {
      report.client_renegotiation = true;
      report.renegotiation_detail = "a renegotiation started by the client completed";
      connection->quit(speaks_smtp(report));
    } else if (result.status == tls::Status::kTimeout) {
      report.renegotiation_detail = "no answer to a renegotiation";
    } else if (result.status == tls::Status::kClosed) {
      report.renegotiation_detail = "the server closed the connection";
    } else {
      report.client_renegotiation = false;
      report.renegotiation_detail =
          "refused" + (result.reason.empty() ? std::string() : " (" + result.reason + ")");
    }
  }

  // One hand-built ClientHello on a fresh connection; the server's first answer, or why none.
  std::optional<tls::ServerAnswer> raw_hello(const PortReport& report,
                                             const tls::HelloOptions& hello, std::string& error) {
    auto connection = open_for_tls(report, error);
    if (!connection) return std::nullopt;
    if (!connection->write(tls::client_hello(hello))) {
      error = "connection closed before the ClientHello";
      return std::nullopt;
    }
    tls::ServerAnswer answer;
    if (connection->read_until(kAnswerBound, [&](std::string_view bytes) {
          answer = tls::read_answer(bytes);
          return answer.kind != tls::ServerAnswer::Kind::kIncomplete;
        }) == Connection::Read::kParsed) {
      connection.reset();
      if (answer.kind == tls::ServerAnswer::Kind::kMalformed && cut_by_limit(report))
        return std::nullopt;
      return answer;
    }
    const bool silent = connection->buffered().empty();
    error = silent ? "connection closed without an answer" : "answer cut short";
    connection.reset();
    if (silent) cut_by_limit(report);
    return std::nullopt;
  }

  static std::string alert_text(unsigned description) {
    switch (description) {
      case 10:
        return "alert unexpected_message";
      case 20:
        return "alert bad_record_mac";
      case 21:
        return "alert decryption_failed";
      case 86:
        return "alert inappropriate_fallback";
      case 40:
        return "alert handshake_failure";
      case 70:
        return "alert protocol_version";
      case 71:
        return "alert insufficient_security";
      case 47:
        return "alert illegal_parameter";
      case 50:
        return "alert decode_error";
      case 51:
        return "alert decrypt_error";
      case 80:
        return "alert internal_error";
      default:
        return "alert " + std::to_string(description);
    }
  }

  // Below TLS 1.3, by hand (tls/client_hello.h): every suite code of the registry's ranges
  // is offered; the one the server picks is recorded and left out of the next offer, until
  // the server refuses. One connection per accepted suite, plus one; independent of what
  // the local OpenSSL could negotiate.
  VersionResult raw_try_version(PortReport& report, const Version& version) {
    VersionResult result;
    result.name = version.name;
    tls::HelloOptions hello;
    hello.version = static_cast<std::uint16_t>(version.number);
    hello.ciphers = tls::cipher_codes_before_tls13();
    hello.server_name = options_.name;
    std::string error;
    const std::size_t offered = hello.ciphers.size();
    for (std::size_t round = 0; round <= offered && !hello.ciphers.empty(); ++round) {
      auto answer = raw_hello(report, hello, error);
      // No answer at all to the first offer (a timeout, or a close without an alert) is not
      // yet a refusal: a loaded server may drop one connection. The same silence twice is.
      if (!answer && round == 0 && cut_.empty()) answer = raw_hello(report, hello, error);
      if (!answer) break;
      if (answer->kind == tls::ServerAnswer::Kind::kAlert) {
        error = alert_text(answer->alert_description);
        break;
      }
      if (answer->kind != tls::ServerAnswer::Kind::kServerHello) {
        error = "not a TLS answer";
        break;
      }
      if (answer->version != hello.version) {
        error = "the server answered with another version";
        break;
      }
      auto position = std::find(hello.ciphers.begin(), hello.ciphers.end(), answer->cipher);
      if (position == hello.ciphers.end()) {
        error = "the server chose a suite that was not offered";
        break;
      }
      if (result.ciphers.empty()) {
        result.secure_renegotiation = answer->secure_renegotiation;
        result.compression = answer->compression;
      }
      auto [name, registry] = suite_names(answer->cipher);
      result.ciphers.push_back(std::move(name));
      result.registry.push_back(std::move(registry));
      result.codes.push_back(answer->cipher);
      hello.ciphers.erase(position);
    }
    result.accepted = !result.ciphers.empty();
    if (!result.accepted) result.detail = error;
    return result;
  }

  VersionResult try_version(PortReport& report, const Version& version) {
    if (version.number != TLS1_3_VERSION) return raw_try_version(report, version);
    VersionResult result;
    result.name = version.name;
    std::vector<std::string> remaining(std::begin(kTls13Suites), std::end(kTls13Suites));
    std::string error;
    while (!remaining.empty()) {
      auto context = make_context(version.number, "", join(remaining, ":"));
      if (!context) break;
      auto connection = open_tls(report, context.get(), nullptr, error);
      if (!connection) break;
      std::string chosen = SSL_CIPHER_get_name(SSL_get_current_cipher(connection->ssl()));
      connection->quit(speaks_smtp(report));
      auto position = std::find(remaining.begin(), remaining.end(), chosen);
      if (position == remaining.end()) break;  // OpenSSL itself refuses that; cannot happen
      result.ciphers.push_back(chosen);
      result.registry.push_back(chosen);  // TLS 1.3 suites have the registry's names
      remaining.erase(position);
    }
    result.accepted = !result.ciphers.empty();
    if (!result.accepted) result.detail = error;
    return result;
  }

  void judge(PortReport& report) {
    if (report.mode == "implicit") {
      add(report, Level::kOk, "tls_mode", "implicit TLS (RFC 8314): nothing is sent in clear");
    } else {
      add(report, Level::kOk, "tls_mode", "STARTTLS offered (RFC 3207)");
      check_auth_before_tls(report);
      if (report.injection_vulnerable) {
        add(report, *report.injection_vulnerable ? Level::kHigh : Level::kOk, "starttls_injection",
            (*report.injection_vulnerable ? "vulnerable to STARTTLS command injection "
                                            "(CVE-2011-0411): "
                                          : "not vulnerable to STARTTLS command injection: ") +
                report.injection_detail);
      } else {
        add(report, Level::kMedium, "starttls_injection",
            "STARTTLS injection test inconclusive: " + report.injection_detail);
      }
    }
    bool modern = false;
    for (const auto& version : report.versions) {
      bool legacy = version.name == "TLSv1" || version.name == "TLSv1.1";
      std::string label = version.name == "TLSv1" ? "TLS 1.0" : "TLS " + version.name.substr(4);
      if (version.name == "SSLv3") {
        add(report, version.accepted ? Level::kHigh : Level::kOk, "tls_SSLv3",
            version.accepted ? "SSL 3.0 accepted: broken (POODLE), RFC 7568 forbids it"
                             : "SSL 3.0 refused (RFC 7568)");
      } else if (legacy) {
        add(report, version.accepted ? Level::kHigh : Level::kOk, "tls_" + version.name,
            label + (version.accepted ? " accepted: deprecated by RFC 8996, must be refused"
                                      : " refused (RFC 8996)"));
      } else if (version.accepted) {
        modern = true;
        add(report, Level::kOk, "tls_" + version.name, label + " accepted");
      } else if (version.name == "TLSv1.3") {
        add(report, Level::kLow, "tls_" + version.name,
            "TLS 1.3 refused: the current version (RFC 8446) is not offered");
      }
      std::size_t cbc = 0;
      for (std::size_t i = 0; i < version.ciphers.size(); ++i) {
        const std::string& registry = i < version.registry.size() ? version.registry[i] : "";
        judge_cipher(report, version.name, version.ciphers[i], registry);
        cbc += tls::classify_suite(registry).cbc ? 1 : 0;
      }
      if (cbc > 0) {
        // Informational, as testssl.sh has it: CBC in TLS 1.0 invites BEAST, and CBC's
        // MAC-then-encrypt is what LUCKY13 times; AEAD suites have neither.
        add(report, Level::kInfo, "cipher_cbc",
            version.name + ": " + std::to_string(cbc) +
                " CBC suite(s) accepted (BEAST, LUCKY13: prefer AEAD suites)");
      }
    }
    if (report.compression) {
      add(report, *report.compression != 0 ? Level::kHigh : Level::kOk, "tls_compression",
          *report.compression != 0 ? "TLS compression accepted: CRIME"
                                   : "no TLS compression (CRIME)");
    }
    if (!report.fallback_version.empty()) {
      if (report.fallback_scsv) {
        add(report, *report.fallback_scsv ? Level::kOk : Level::kMedium, "tls_fallback_scsv",
            *report.fallback_scsv
                ? "TLS_FALLBACK_SCSV honoured (RFC 7507): a downgraded " + report.fallback_version +
                      " handshake is refused"
                : "TLS_FALLBACK_SCSV ignored: a " + report.fallback_version +
                      " handshake flagged as a fallback was accepted (downgrade attacks)");
      } else {
        add(report, Level::kInfo, "tls_fallback_scsv",
            "TLS_FALLBACK_SCSV test inconclusive (no answer to the " + report.fallback_version +
                " hello)");
      }
    }
    std::optional<std::size_t> client_order;  // the cipher_order finding, when it follows
    if (report.server_order) {
      if (!*report.server_order) client_order = report.findings.size();
      add(report, Level::kInfo, "cipher_order",
          *report.server_order
              ? report.order_version + ": the server chooses the suite by its own order"
              : report.order_version +
                    ": the server follows the client's order (a client "
                    "that prefers weak suites gets them)");
    }
    if (report.secure_renegotiation) {
      add(report, *report.secure_renegotiation ? Level::kOk : Level::kMedium,
          "secure_renegotiation",
          *report.secure_renegotiation
              ? "secure renegotiation (RFC 5746) supported"
              : "no secure renegotiation (RFC 5746): renegotiation could be spliced");
    }
    judge_key_exchange(report);
    // Following the client's order is a weakness (LOW) only when there is something weak to
    // choose: a suite, a version or a key exchange judged LOW or worse. Among AEAD suites
    // with forward secrecy the client's choice harms nothing (testssl.sh rates any server
    // without an order of its own HIGH).
    if (client_order) {
      const bool weak_offer =
          std::any_of(report.findings.begin(), report.findings.end(), [](const Finding& finding) {
            return finding.level >= Level::kLow &&
                   (finding.check == "cipher" || finding.check == "dh_size" ||
                    finding.check == "weak_group" || finding.check == "tls_SSLv3" ||
                    finding.check == "tls_TLSv1" || finding.check == "tls_TLSv1.1");
          });
      if (weak_offer) {
        Finding& order = report.findings[*client_order];
        order = make_finding(Level::kLow, order.check,
                             order.text + "; and it accepts weak suites, versions or groups");
      }
    }
    judge_vulnerabilities(report);
    if (!modern && report.not_run.empty()) {
      add(report, Level::kHigh, "tls_modern", "neither TLS 1.2 nor TLS 1.3 is accepted");
    }
    judge_certificate(report, report.certificate, "");
    for (const CertificateReport& other : report.other_certificates)
      judge_certificate(report, other, other.key_type == "EC" ? "ECDSA" : other.key_type);
    if (report.resumed) {
      add(report, Level::kInfo, "session_resumption",
          *report.resumed ? "session resumption works (faster reconnections)"
                          : "session resumption not offered (every connection pays a full "
                            "handshake)");
    }
  }

  static std::string group_names(const std::vector<std::uint16_t>& groups) {
    std::vector<std::string> names;
    for (std::uint16_t code : groups)
      names.push_back(group_name(code));
    return names.empty() ? "none" : join(names, " ");
  }

  // Curves as testssl.sh rates them: 163 bits and less broken, up to 193 weak, 224 fair.
  // DH primes: 1024 bits and less broken (LOGJAM: precomputation within reach of a state),
  // below 2048 weak (NIST SP 800-57: 112-bit security needs 2048).
  void judge_key_exchange(PortReport& report) {
    auto judge_groups = [&report](const std::string& label,
                                  const std::optional<std::vector<std::uint16_t>>& groups,
                                  bool apply, const std::string& detail) {
      if (!groups) {
        if (apply && !detail.empty()) {
          add(report, Level::kInfo, "named_groups", label + " groups not tested: " + detail);
        }
        return;
      }
      add(report, Level::kInfo, "named_groups", label + " groups: " + group_names(*groups));
      for (std::uint16_t code : *groups) {
        const tls::NamedGroup* group = tls::find_named_group(code);
        if (group == nullptr || group->bits > 193) continue;
        // testssl.sh: MEDIUM up to 163 bits, LOW up to 193.
        add(report, group->bits <= 163 ? Level::kHigh : Level::kLow, "weak_group",
            label + " " + std::string(group->name) + " accepted: a " + std::to_string(group->bits) +
                "-bit curve is too weak");
      }
    };
    // The version is known once the groups were tried ("" when the scan was cut before).
    judge_groups(
        report.groups_tls12_version.empty() ? "ECDHE" : report.groups_tls12_version + " ECDHE",
        report.groups_tls12, report.groups_tls12_apply, report.groups_tls12_detail);
    judge_groups("TLSv1.3", report.groups_tls13, report.groups_tls13_apply,
                 report.groups_tls13_detail);
    if (report.dh_bits) {
      const unsigned bits = *report.dh_bits;
      const std::string text =
          report.dh_version + " DHE with a " + std::to_string(bits) + "-bit prime";
      if (bits <= 1024) {
        add(report, Level::kHigh, "dh_size", text + ": too weak (LOGJAM), use 2048 bits or more",
            "LOGJAM");
      } else if (bits < 2048) {
        add(report, Level::kLow, "dh_size", text + ": weak, use 2048 bits or more");
      } else {
        add(report, Level::kOk, "dh_size", text);
      }
    } else if (!report.dh_version.empty()) {
      add(report, Level::kInfo, "dh_size", "DHE prime size not tested: " + report.dh_detail);
    }
  }

  // One finding per vulnerability check: vulnerable, not, or not tested (never a PASS for
  // what could not be tested).
  void judge_vulnerabilities(PortReport& report) {
    auto verdict = [&report](const std::optional<bool>& vulnerable, const char* check,
                             const std::string& name, const std::string& detail,
                             Level when_vulnerable) {
      if (!vulnerable) {
        add(report, Level::kInfo, check, name + " not tested: " + detail);
      } else if (*vulnerable) {
        add(report, when_vulnerable, check, "vulnerable to " + name + ": " + detail);
      } else {
        add(report, Level::kOk, check, "not vulnerable to " + name + ": " + detail);
      }
    };
    if (report.ssl2 && *report.ssl2) {
      add(report, Level::kCritical, "tls_SSLv2",
          "SSL 2.0 accepted (" + report.ssl2_detail + "): broken, RFC 6176 forbids it");
      add(report, Level::kCritical, "drown",
          "vulnerable to DROWN (CVE-2016-0800): SSL 2.0 on this port exposes every server "
          "that uses the same key");
    } else if (report.ssl2) {
      add(report, Level::kOk, "tls_SSLv2", "SSL 2.0 refused (RFC 6176)");
    } else {
      add(report, Level::kInfo, "tls_SSLv2", "SSL 2.0 not tested: " + report.ssl2_detail);
    }
    verdict(report.heartbleed, "heartbleed", "Heartbleed (CVE-2014-0160)", report.heartbleed_detail,
            Level::kCritical);
    verdict(report.ccs_injection, "ccs_injection", "CCS injection (CVE-2014-0224)",
            report.ccs_detail, Level::kCritical);
    // A strong oracle (the bad paddings told apart: few queries decrypt or sign) is
    // CRITICAL; a weak one (only well-formed blocks stand out) HIGH: stricter than
    // testssl.sh's MEDIUM for it, as the fix is the same and costs nothing.
    verdict(report.robot, "robot", "ROBOT (Bleichenbacher's oracle on RSA key exchange)",
            report.robot_detail, report.robot_strong ? Level::kCritical : Level::kHigh);
    if (!report.client_renegotiation) {
      add(report, Level::kInfo, "client_renegotiation",
          "client-initiated renegotiation not tested: " + report.renegotiation_detail);
    } else {
      add(report, *report.client_renegotiation ? Level::kMedium : Level::kOk,
          "client_renegotiation",
          *report.client_renegotiation
              ? "client-initiated renegotiation accepted: one client can make the server "
                "compute handshakes at will (denial of service)"
              : "client-initiated renegotiation " + report.renegotiation_detail);
    }
  }

  // The findings about one certificate; family: "" for the default one, else "RSA",
  // "ECDSA"… (its findings say which).
  void judge_certificate(PortReport& report, const CertificateReport& c,
                         const std::string& family) {
    const std::string prefix = family.empty() ? std::string() : "(" + family + " certificate) ";
    if (c.days_left) {
      int days = *c.days_left;
      if (c.expired) {
        add(report, Level::kCritical, "certificate_expiry",
            prefix + "certificate expired " + std::to_string(-days) + " days ago");
      } else if (days < 14) {
        add(report, Level::kMedium, "certificate_expiry",
            prefix + "certificate expires in " + std::to_string(days) + " days: renew it now");
      } else if (c.seconds_left && *c.seconds_left < 30 * 86400LL) {
        // ACME clients renew 30 days or more before the end: a certificate this close has
        // missed its renewal (testssl.sh: HIGH under 30 days, MEDIUM under 60).
        add(report, Level::kLow, "certificate_expiry",
            prefix + "certificate expires in " + std::to_string(days) +
                " days (under 30): its renewal is overdue");
      } else {
        add(report, Level::kOk, "certificate_expiry",
            prefix + "certificate valid for " + std::to_string(days) + " more days");
      }
    }
    if (c.name_matches) {
      // Mail submission clients check the name (RFC 8314 §4.1); MTAs on port 25 mostly do
      // not (opportunistic TLS), so a mismatch there is a warning.
      Level mismatch = report.port == 25 ? Level::kMedium : Level::kHigh;
      add(report, *c.name_matches ? Level::kOk : mismatch, "certificate_name",
          *c.name_matches ? prefix + "certificate matches " + options_.name + " (RFC 6125)"
                          : prefix + "certificate does not match " + options_.name + " (RFC 6125)");
    }
    if (c.chain_verified) {
      std::string store = options_.cafile.empty() ? "the system trust store" : options_.cafile;
      add(report, *c.chain_verified ? Level::kOk : Level::kHigh, "certificate_chain",
          *c.chain_verified ? prefix + "certificate chain verifies against " + store
                            : prefix + "certificate chain does not verify against " + store + ": " +
                                  c.verify_detail);
    }
    if (!c.key_type.empty()) {
      // RFC 8996-era floors: RSA and DSA 2048 bits, elliptic curves 256 (Ed25519 is 253).
      bool weak = c.key_type == "RSA" || c.key_type == "RSA-PSS" || c.key_type == "DSA"
                      ? c.key_bits < 2048
                      : c.key_type == "EC" && c.key_bits < 256;
      add(report, weak ? Level::kHigh : Level::kOk, "certificate_key",
          prefix + c.key_type + " key of " + std::to_string(c.key_bits) + " bits" +
              (weak ? ": too weak" : ""));
      std::string signature = c.signature_algorithm;
      bool weak_signature = signature.find("sha1") != std::string::npos ||
                            signature.find("SHA1") != std::string::npos ||
                            signature.find("md5") != std::string::npos;
      add(report, weak_signature ? Level::kHigh : Level::kOk, "certificate_signature",
          prefix + "signature " + signature + (weak_signature ? ": broken hash" : ""));
    }
  }

  // registry: the suite's name in the IANA registry ("" when unknown to us and OpenSSL):
  // what it is judged by, whatever the local TLS library can do.
  static void judge_cipher(PortReport& report, const std::string& version,
                           const std::string& cipher, const std::string& registry) {
    if (registry.empty()) {
      add(report, Level::kMedium, "cipher",
          version + " " + cipher + " accepted: a suite unknown to this probe's TLS library");
      return;
    }
    const tls::SuiteClass suite = tls::classify_suite(registry);
    // Anonymous key exchange (aNULL): encrypted, but the server is never authenticated, so
    // anyone on the path can sit in the middle. Postfix's smtpd enables these by default
    // for opportunistic TLS; a client that verifies certificates never offers them, but a
    // server that takes them still fails (`smtpd_tls_exclude_ciphers = aNULL` fixes it).
    if (suite.anonymous && suite.broken.empty()) {
      add(report, Level::kCritical, "cipher",
          version + " " + cipher +
              " accepted: anonymous cipher (no server authentication, open to a man in the "
              "middle)",
          "cipherlist_aNULL");
      return;
    }
    if (!suite.broken.empty()) {
      // testssl.sh's classes: NULL and export CRITICAL, 64-bit and RC4 HIGH, 3DES and IDEA
      // MEDIUM (HIGH here: SWEET32 is practical against long SMTP sessions).
      const bool null_or_export =
          suite.broken.starts_with("NULL") || suite.broken.starts_with("export");
      const bool triple = suite.broken.starts_with("3DES") || suite.broken.starts_with("obsolete");
      add(report, null_or_export ? Level::kCritical : Level::kHigh, "cipher",
          version + " " + cipher + " accepted: broken cipher: " + suite.broken,
          suite.broken.starts_with("NULL")     ? "cipherlist_NULL"
          : suite.broken.starts_with("export") ? "cipherlist_EXPORT"
          : triple                             ? "cipherlist_3DES_IDEA"
                                               : "cipherlist_LOW");
      return;
    }
    if (!suite.forward_secret && !registry.starts_with("TLS_AES_") &&
        !registry.starts_with("TLS_CHACHA20_")) {
      add(report, Level::kMedium, "cipher",
          version + " " + cipher + " accepted: no forward secrecy");
    }
  }

  const ProbeOptions& options_;
  ConnectionBudget& budget_;
  Context names_context_;  // only to look up the names of cipher suite codes
  std::unique_ptr<SSL, decltype(&SSL_free)> names_;
  std::string ehlo_name_;
  bool reached_ = false;  // the port being probed has answered (set before the checks start)
  ScanCut cut_;           // why the scan of this port stopped; empty while it runs
};

// Each port by a Prober of its own, all at once when --parallel allows (the budget bounds
// the connections open together; waits such as the injection test's overlap), one after
// the other with --parallel 1. The reports in the order of the ports.
std::vector<PortReport> probe_ports(const ProbeOptions& options,
                                    const std::vector<std::uint16_t>& ports,
                                    ConnectionBudget& budget) {
  std::vector<PortReport> reports(ports.size());
  auto probe_one = [&](std::size_t i) {
    Prober prober(options, budget);
    reports[i] = prober.probe(ports[i]);
  };
  if (options.parallel <= 1 || ports.size() <= 1) {
    for (std::size_t i = 0; i < ports.size(); ++i)
      probe_one(i);
  } else {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < ports.size(); ++i)
      threads.emplace_back(probe_one, i);
  }  // the threads are joined here
  return reports;
}

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& item : items)
    out += (out.size() > 1 ? "," : "") + base::json_string(item);
  return out + "]";
}

template <typename T>
std::string json_optional(const std::optional<T>& value) {
  if (!value) return "null";
  if constexpr (std::is_same_v<T, bool>) return *value ? "true" : "false";
  return std::to_string(*value);
}

std::string certificate_json(const CertificateReport& c) {
  std::string out = "{\"chain\":[";
  bool first = true;
  for (const auto& entry : c.chain) {
    out += std::string(first ? "" : ",") + "{\"subject\":" + base::json_string(entry.subject) +
           ",\"issuer\":" + base::json_string(entry.issuer) + "}";
    first = false;
  }
  return out + "],\"key_type\":" + base::json_string(c.key_type) +
         ",\"key_bits\":" + std::to_string(c.key_bits) +
         ",\"signature_algorithm\":" + base::json_string(c.signature_algorithm) +
         ",\"days_left\":" + json_optional(c.days_left) +
         ",\"expired\":" + (c.expired ? "true" : "false") +
         ",\"name_matches\":" + json_optional(c.name_matches) +
         ",\"chain_verified\":" + json_optional(c.chain_verified) +
         ",\"verify_detail\":" + base::json_string(c.verify_detail) + "}";
}

std::string findings_json(const std::vector<Finding>& findings) {
  std::string out = "[";
  bool first = true;
  for (const auto& finding : findings) {
    out += std::string(first ? "" : ",") +
           "{\"severity\":" + base::json_string(to_string(severity_of(finding.level))) +
           ",\"level\":" + base::json_string(to_string(finding.level)) +
           ",\"check\":" + base::json_string(finding.check) +
           ",\"testssl_id\":" + base::json_string(finding.testssl_id) +
           ",\"text\":" + base::json_string(finding.text) +
           ",\"fix\":" + base::json_string(finding.fix) + "}";
    first = false;
  }
  return out + "]";
}

// One port's report as a JSON object.
void print_port_json(std::ostream& out, const PortReport& report) {
  out << "{\"port\":" << report.port << ",\"answered\":" << (report.answered ? "true" : "false")
      << ",\"error\":" << base::json_string(report.error)
      << ",\"mode\":" << base::json_string(report.mode)
      << ",\"greeting\":" << base::json_string(report.greeting)
      << ",\"extensions_before_tls\":" << json_list(report.extensions_before_tls)
      << ",\"extensions_after_tls\":" << json_list(report.extensions_after_tls)
      << ",\"auth_before_tls\":" << json_list(report.auth_before_tls)
      << ",\"auth_after_tls\":" << json_list(report.auth_after_tls)
      << ",\"starttls_injection_vulnerable\":" << json_optional(report.injection_vulnerable)
      << ",\"versions\":{";
  bool first = true;
  for (const auto& version : report.versions) {
    out << (first ? "" : ",") << base::json_string(version.name)
        << ":{\"accepted\":" << (version.accepted ? "true" : "false")
        << ",\"ciphers\":" << json_list(version.ciphers) << "}";
    first = false;
  }
  out << "},\"negotiated_version\":" << base::json_string(report.negotiated_version)
      << ",\"negotiated_cipher\":" << base::json_string(report.negotiated_cipher)
      << ",\"certificate\":" << certificate_json(report.certificate) << ",\"other_certificates\":[";
  first = true;
  for (const CertificateReport& other : report.other_certificates) {
    out << (first ? "" : ",") << certificate_json(other);
    first = false;
  }
  auto groups_json = [](const std::optional<std::vector<std::uint16_t>>& groups) {
    if (!groups) return std::string("null");
    std::vector<std::string> names;
    for (std::uint16_t code : *groups)
      names.push_back(group_name(code));
    return json_list(names);
  };
  out << "],\"session_resumed\":" << json_optional(report.resumed)
      << ",\"groups_before_tls13\":" << groups_json(report.groups_tls12)
      << ",\"groups_tls13\":" << groups_json(report.groups_tls13)
      << ",\"dh_prime_bits\":" << json_optional(report.dh_bits)
      << ",\"sslv2_accepted\":" << json_optional(report.ssl2)
      << ",\"heartbleed_vulnerable\":" << json_optional(report.heartbleed)
      << ",\"ccs_injection_vulnerable\":" << json_optional(report.ccs_injection)
      << ",\"robot_vulnerable\":" << json_optional(report.robot)
      << ",\"robot_answers\":" << json_list(report.robot_answers)
      << ",\"client_renegotiation_accepted\":" << json_optional(report.client_renegotiation)
      << ",\"not_tested\":" << json_list(report.not_run)
      << ",\"not_tested_reason\":" << base::json_string(report.not_run_reason)
      << ",\"findings\":" << findings_json(report.findings);
  out << "}";
}

void print_json(std::ostream& out, const ProbeOptions& options,
                const std::vector<PortReport>& reports, ProbeVerdict verdict, Level worst,
                int connections) {
  out << "{\"host\":" << base::json_string(options.host)
      << ",\"name\":" << base::json_string(options.name) << ",\"ports\":[";
  bool first_port = true;
  for (const auto& report : reports) {
    out << (first_port ? "" : ",");
    print_port_json(out, report);
    first_port = false;
  }
  out << "],\"verdict\":" << base::json_string(to_string(verdict))
      << ",\"worst_level\":" << base::json_string(to_string(worst))
      << ",\"connections\":" << connections << ",\"max_connections\":" << options.max_connections
      << "}\n";
}

void print_findings_text(std::ostream& out, const std::vector<Finding>& findings) {
  out << "  findings:\n";
  for (const auto& finding : findings) {
    out << "    " << to_string(severity_of(finding.level)) << " "
        << base::terminal_safe(finding.text) << "\n";
    if (finding.level != Level::kOk && finding.level != Level::kInfo) {
      out << "         " << to_string(finding.level)
          << (finding.testssl_id.empty() ? "" : " (testssl.sh " + finding.testssl_id + ")")
          << (finding.fix.empty() ? "" : "; fix: " + finding.fix) << "\n";
    }
  }
}

// One port's report, its "port N: ..." line first.
void print_port_text(std::ostream& out, const PortReport& report) {
  // The greeting, EHLO lines, certificate names, errors and findings are the probed
  // server's words: nothing in them may drive the terminal.
  auto safe = [](std::string_view text) { return base::terminal_safe(text); };
  out << "\nport " << report.port << ": ";
  if (!report.answered) {
    out << (report.not_run.empty() ? "no answer (" : "incomplete (") << safe(report.error) << ")\n";
    return;
  }
  out << (report.mode == "implicit"   ? "implicit TLS"
          : report.mode == "starttls" ? "STARTTLS"
                                      : "no TLS")
      << "\n";
  if (!report.greeting.empty()) out << "  greeting: " << safe(report.greeting) << "\n";
  if (report.mode != "implicit") {
    out << "  EHLO before TLS: " << safe(join(report.extensions_before_tls, ", ")) << "\n";
  }
  if (!report.extensions_after_tls.empty()) {
    out << "  EHLO after TLS: " << safe(join(report.extensions_after_tls, ", ")) << "\n";
  }
  for (const auto& version : report.versions) {
    out << "  " << version.name << ": "
        << (version.accepted
                ? "accepted: " + join(version.ciphers, " ")
                : "refused" + (version.detail.empty() ? "" : " (" + safe(version.detail) + ")"))
        << "\n";
  }
  if (!report.negotiated_version.empty()) {
    out << "  default handshake: " << report.negotiated_version << " " << report.negotiated_cipher
        << "\n";
  }
  auto print_certificate = [&](const CertificateReport& c, const std::string& label) {
    for (std::size_t i = 0; i < c.chain.size(); ++i) {
      out << "  " << label << i << ": subject " << safe(c.chain[i].subject) << "\n"
          << std::string(label.size() + 4, ' ') << "   issuer " << safe(c.chain[i].issuer) << "\n";
    }
    if (!c.key_type.empty()) {
      out << "  key " << c.key_type << " " << c.key_bits << " bits, signature "
          << c.signature_algorithm;
      if (c.days_left) out << ", expires in " << *c.days_left << " days";
      out << "\n";
    }
  };
  print_certificate(report.certificate, "certificate ");
  for (const CertificateReport& other : report.other_certificates)
    print_certificate(other, "also serves " + (other.key_type == "EC" ? "ECDSA" : other.key_type) +
                                 ", certificate ");
  if (report.resumed) out << "  session resumed: " << (*report.resumed ? "yes" : "no") << "\n";
  print_findings_text(out, report.findings);
}

void print_text(std::ostream& out, const ProbeOptions& options,
                const std::vector<PortReport>& reports, ProbeVerdict verdict, Level worst,
                int connections) {
  auto safe = [](std::string_view text) { return base::terminal_safe(text); };
  out << "smtpsctl probe " << safe(options.host) << " (certificate name " << safe(options.name)
      << ")\n";
  for (const auto& report : reports)
    print_port_text(out, report);
  out << "\nconnections: " << connections << " (at most " << options.max_connections << ")\n";
  for (const auto& report : reports) {
    if (report.not_run.empty()) continue;
    out << "port " << report.port << " incomplete: " << safe(report.not_run_reason)
        << "; not tested: " << join(report.not_run, ", ") << "\n";
  }
  out << "verdict: " << to_string(verdict) << " (worst: " << to_string(worst) << ")\n";
}

// ---- Domain mode (--domain) ----

// One MX host of the domain: where it was probed and what it served.
struct MxSection {
  delivery::MxTarget target;
  std::string address;  // the address probed ("" when none answered or there was none)
  std::vector<PortReport> reports;
};

// What a TLSA record's data is compared with (RFC 6698 §2.1.3): the bytes, their SHA2-256
// or their SHA2-512; "" for another matching type.
std::string tlsa_digest(std::string_view bytes, std::uint8_t matching_type) {
  if (matching_type == 0) return std::string(bytes);
  const EVP_MD* md = matching_type == 1   ? EVP_sha256()
                     : matching_type == 2 ? EVP_sha512()
                                          : nullptr;
  if (md == nullptr || bytes.empty()) return "";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, md, nullptr) != 1) {
    ERR_clear_error();
    return "";
  }
  return std::string(reinterpret_cast<const char*>(digest), length);
}

// Whether a usable record (DANE-EE or DANE-TA) matches the served chain: DANE-EE the leaf,
// DANE-TA any certificate of the chain (RFC 7671 §5).
bool tlsa_matches(const dns::TlsaRecord& record, const CertificateReport& certificate) {
  const std::vector<std::string>& items =
      record.selector == 0 ? certificate.der : certificate.spki_der;
  const std::size_t count =
      record.usage == 3 ? std::min<std::size_t>(1, items.size()) : items.size();
  for (std::size_t i = 0; i < count; ++i) {
    const std::string digest = tlsa_digest(items[i], record.matching_type);
    if (!digest.empty() && digest == record.data) return true;
  }
  return false;
}

// The TLSA records of one MX host's port against what it served; the finding goes into the
// port's report.
void judge_tlsa(dns::Resolver& resolver, const delivery::Posture& posture, const MxSection& mx,
                PortReport& report, std::chrono::milliseconds deadline) {
  const std::string name = "_" + std::to_string(report.port) + "._tcp." + mx.target.host;
  dns::AnswerPtr answer = resolver.lookup_and_wait(name, dns::Type::kTlsa, deadline);
  auto add = [&](Level level, const std::string& text) {
    report.findings.push_back(make_finding(level, "dane_tlsa", text));
  };
  if (answer->status == dns::Status::kBogus) {
    add(Level::kHigh, "TLSA " + name + ": DNSSEC validation failed (bogus: " + answer->detail +
                          "): senders using DANE do not deliver to this host");
    return;
  }
  if (answer->status == dns::Status::kTemporary) {
    add(Level::kInfo, "TLSA " + name + ": not tested: the lookup failed: " + answer->detail);
    report.not_run.push_back("dane_tlsa");
    if (report.not_run_reason.empty()) report.not_run_reason = "TLSA lookup failed";
    return;
  }
  if (answer->tlsa.empty()) {
    add(Level::kInfo, "TLSA " + name + ": none (no DANE for this host)");
    return;
  }
  std::vector<std::string> published;
  for (const dns::TlsaRecord& record : answer->tlsa)
    published.push_back(delivery::parameters_of(record));
  const std::string records = "TLSA " + name + " (" + join(published, ", ") + ")";
  if (!resolver.validates()) {
    add(Level::kInfo, records +
                          ": DNSSEC status not tested: the resolver does not validate "
                          "(give --trust-anchor)");
    return;
  }
  if (!answer->secure) {
    add(Level::kMedium, records + ": not DNSSEC-signed, so DANE cannot be used (RFC 7672 §2.2)");
    return;
  }
  if (!posture.mx.secure || !mx.target.secure) {
    add(Level::kMedium,
        records + ": DNSSEC-secure, but the " +
            std::string(!posture.mx.secure ? "MX answer" : "host's address answer") +
            " is not: DANE does not apply (RFC 7672 §2.2.1)");
    return;
  }
  std::vector<dns::TlsaRecord> usable;
  for (const dns::TlsaRecord& record : answer->tlsa) {
    if (delivery::usable_tlsa(record)) usable.push_back(record);
  }
  if (usable.empty()) {
    add(Level::kMedium, records +
                            ": DNSSEC-secure but none is usable (RFC 7672 §3.1.3): senders "
                            "require TLS without authenticating the host");
    return;
  }
  std::vector<const CertificateReport*> served;
  if (!report.certificate.der.empty()) served.push_back(&report.certificate);
  for (const CertificateReport& other : report.other_certificates) {
    if (!other.der.empty()) served.push_back(&other);
  }
  if (served.empty()) {
    add(Level::kInfo, records +
                          ": DNSSEC-secure; not tested against the certificate: none was "
                          "served to the probe");
    return;
  }
  std::vector<std::string> unmatched;
  for (const CertificateReport* certificate : served) {
    const bool matched = std::any_of(usable.begin(), usable.end(), [&](const auto& record) {
      return tlsa_matches(record, *certificate);
    });
    if (!matched)
      unmatched.push_back(certificate->key_type + " certificate" +
                          (certificate->chain.empty() ? "" : " " + certificate->chain[0].subject));
  }
  if (!unmatched.empty()) {
    add(Level::kHigh, records + ": DNSSEC-secure, but no record matches the " +
                          join(unmatched, " and the ") +
                          ": senders using DANE do not deliver to this host");
    return;
  }
  add(Level::kOk, records + ": DNSSEC-secure, and they match every certificate served");
}

// The domain's own records: MX, MTA-STS (policy against the MX names and certificates),
// TLS-RPT.
std::vector<Finding> judge_domain_records(const dns::Resolver& resolver,
                                          const delivery::Posture& posture,
                                          const std::vector<MxSection>& sections) {
  std::vector<Finding> findings;
  std::vector<std::string> hosts;
  for (const MxSection& section : sections)
    hosts.push_back(std::to_string(section.target.preference) + " " + section.target.host);
  const std::string dnssec = !resolver.validates() ? "DNSSEC not validated"
                             : posture.mx.secure   ? "DNSSEC-secure"
                                                   : "not DNSSEC-signed";
  findings.push_back(make_finding(
      Level::kInfo, "mx", "MX " + posture.domain + ": " + join(hosts, ", ") + " (" + dnssec + ")"));

  const delivery::PolicyLookup& sts = posture.sts;
  if (!sts.has_policy()) {
    if (sts.failure != delivery::StsFailure::kNone) {
      findings.push_back(make_finding(Level::kMedium, "mta_sts",
                                      "MTA-STS: the _mta-sts." + posture.domain +
                                          " record is published but the policy is not: " +
                                          std::string(delivery::to_string(sts.failure)) + ": " +
                                          sts.detail));
    } else {
      findings.push_back(
          make_finding(Level::kInfo, "mta_sts", "MTA-STS: no policy (" + sts.detail + ")"));
    }
  } else {
    const std::string summary =
        "MTA-STS: mode " + std::string(delivery::to_string(sts.policy.mode)) + ", mx " +
        join(sts.policy.mx, " ") + ", max_age " + std::to_string(sts.policy.max_age);
    const bool enforce = sts.policy.mode == delivery::StsMode::kEnforce;
    std::vector<std::string> unnamed, unverified;
    for (const MxSection& section : sections) {
      if (!delivery::matches(sts.policy, section.target.host)) {
        unnamed.push_back(section.target.host);
        continue;
      }
      for (const PortReport& report : section.reports) {
        const CertificateReport& c = report.certificate;
        if (c.chain_verified.has_value() && c.name_matches.has_value() &&
            (!*c.chain_verified || !*c.name_matches))
          unverified.push_back(
              section.target.host + " port " + std::to_string(report.port) +
              (!*c.chain_verified ? " (" + c.verify_detail + ")" : " (name mismatch)"));
      }
    }
    if (sts.policy.mode == delivery::StsMode::kNone) {
      findings.push_back(
          make_finding(Level::kLow, "mta_sts", summary + ": mode none withdraws the policy"));
    } else if (!unnamed.empty() || !unverified.empty()) {
      std::string problem;
      if (!unnamed.empty())
        problem += "the policy does not name the MX host(s) " + join(unnamed, " ");
      if (!unverified.empty())
        problem += std::string(problem.empty() ? "" : "; ") +
                   "the certificate does not verify for " + join(unverified, ", ");
      findings.push_back(make_finding(enforce ? Level::kHigh : Level::kMedium, "mta_sts",
                                      summary + ": " + problem +
                                          (enforce ? ": enforcing senders do not deliver there"
                                                   : " (testing mode: reported)")));
    } else {
      findings.push_back(make_finding(
          enforce ? Level::kOk : Level::kLow, "mta_sts",
          summary + ": names every MX host" +
              (enforce ? ", whose certificates verify" : "; testing mode does not protect mail")));
    }
  }

  const std::string tlsrpt_name = "_smtp._tls." + posture.domain;
  const delivery::TlsrptRecord& tlsrpt = posture.tlsrpt;
  switch (tlsrpt.status) {
    case delivery::TlsrptRecord::Status::kFound:
      findings.push_back(
          make_finding(Level::kOk, "tls_rpt",
                       "TLS-RPT " + tlsrpt_name + ": reports to " + join(tlsrpt.rua, " ")));
      break;
    case delivery::TlsrptRecord::Status::kNone:
      findings.push_back(make_finding(Level::kLow, "tls_rpt",
                                      "TLS-RPT " + tlsrpt_name + ": none (" + tlsrpt.detail +
                                          "): senders cannot report TLS failures"));
      break;
    case delivery::TlsrptRecord::Status::kInvalid:
      findings.push_back(make_finding(Level::kLow, "tls_rpt",
                                      "TLS-RPT " + tlsrpt_name + ": malformed: " + tlsrpt.detail));
      break;
    case delivery::TlsrptRecord::Status::kUnknown:
      findings.push_back(make_finding(Level::kInfo, "tls_rpt",
                                      "TLS-RPT " + tlsrpt_name + ": not tested: " + tlsrpt.detail));
      break;
  }
  return findings;
}

// A decimal number in [low, high] from a command-line value; else "WHAT from LOW to HIGH".
base::Expected<long, std::string> bounded_number(const std::string& text, long low, long high,
                                                 const std::string& what) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || errno == ERANGE || value < low || value > high)
    return base::unexpected(what + " from " + std::to_string(low) + " to " + std::to_string(high));
  return value;
}

int run_domain_probe(const ProbeOptions& options, std::ostream& out, std::ostream& err) {
  auto fail = [&](const std::string& message, int code) {
    err << "smtpsctl probe: " << base::terminal_safe(message) << "\n";
    return code;
  };
  dns::Options dns_options;
  dns_options.timeout = std::chrono::seconds(options.timeout_seconds);
  for (const std::string& server : options.dns_servers) {
    base::HostPortForm form;
    form.default_port = 53;
    form.numeric_host = true;
    dns_options.servers.push_back(base::parse_host_port(server, form).value());
  }
  if (!dns_options.servers.empty()) dns_options.mode = dns::Options::Mode::kForward;
  if (!options.trust_anchor.empty()) {
    dns_options.trust_anchor = options.trust_anchor;
    dns_options.validation = dns::Options::Validation::kOn;
  }
  auto created = dns::create_resolver(dns_options);
  if (!created) return fail("DNS: " + created.error(), 3);
  std::shared_ptr<dns::Resolver> resolver = std::move(created.value());
  const std::chrono::milliseconds deadline = std::chrono::seconds(options.timeout_seconds);

  // MTA-STS fetched as delivery fetches it, into a cache of our own, removed at the end.
  std::string pattern = (std::filesystem::temp_directory_path() / "smtpsctl-probe.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return fail(pattern + ": " + std::strerror(errno), 3);
  const std::filesystem::path temporary = pattern;
  delivery::MtaStsOptions sts_options;
  sts_options.cache_directory = (temporary / "cache").string();
  sts_options.ca_file = options.cafile;
  sts_options.https_port = options.mta_sts_port;
  sts_options.fetch_timeout = deadline;
  auto sts = delivery::MtaSts::create(resolver, sts_options);
  if (!sts) {
    std::filesystem::remove_all(temporary);
    return fail(sts.error(), 3);
  }
  delivery::MxResolver mx_resolver(resolver, deadline);
  delivery::PostureOptions posture_options;
  posture_options.port = options.ports.front();
  posture_options.deadline = deadline;
  posture_options.dane = false;  // judge_tlsa asks for each port itself
  const delivery::Posture posture = delivery::look_up_posture(
      *resolver, mx_resolver, sts.value().get(), options.domain, posture_options);
  sts.value().reset();
  std::filesystem::remove_all(temporary);

  switch (posture.mx.status) {
    case delivery::MxStatus::kTemporary:
      resolver->stop();
      return fail(options.domain + ": nothing probed: " + posture.mx.detail, 4);
    case delivery::MxStatus::kNullMx:
      resolver->stop();
      return fail(options.domain + " publishes a null MX (RFC 7505): it accepts no mail", 3);
    case delivery::MxStatus::kNoDomain:
      resolver->stop();
      return fail(options.domain + ": no MX host to probe: " + posture.mx.detail, 3);
    case delivery::MxStatus::kOk:
      break;
  }
  if (posture.mx.targets.size() == 1 && posture.mx.targets.front().implicit) {
    resolver->stop();
    return fail(options.domain +
                    " has no MX record (mail would go to its own address, RFC 5321 §5.1): "
                    "publish one",
                3);
  }

  std::vector<MxSection> sections;
  int connections = 0;
  bool incomplete = false;
  for (const delivery::MxTarget& target : posture.mx.targets) {
    MxSection section;
    section.target = target;
    ProbeOptions host_options = options;
    host_options.name = target.host;
    for (const std::string& address : target.addresses) {
      host_options.host = address;
      ConnectionBudget budget(options.max_connections, options.parallel);
      std::vector<PortReport> reports = probe_ports(host_options, options.ports, budget);
      bool answered = false;
      for (const PortReport& report : reports)
        answered = answered || report.answered || !report.not_run.empty();
      connections += budget.used();
      section.reports = std::move(reports);
      if (answered) {
        section.address = address;
        break;
      }
    }
    if (section.reports.empty()) {
      // No address: nothing could be probed.
      PortReport report;
      report.port = options.ports.front();
      report.error = target.host + " has no address (A/AAAA)";
      section.reports.push_back(std::move(report));
    }
    for (PortReport& report : section.reports) {
      if (!report.answered && report.not_run.empty()) {
        // An MX host that cannot be probed leaves the domain's scan incomplete.
        report.not_run = {"all checks"};
        report.not_run_reason = target.host + ": " + report.error;
      }
      if (report.answered || !report.certificate.der.empty())
        judge_tlsa(*resolver, posture, section, report, deadline);
      incomplete = incomplete || !report.not_run.empty();
    }
    sections.push_back(std::move(section));
  }
  const std::vector<Finding> records = judge_domain_records(*resolver, posture, sections);
  const std::string dns_description = resolver->describe();
  resolver->stop();

  Level worst = Level::kOk;
  for (const MxSection& section : sections) {
    for (const PortReport& report : section.reports) {
      for (const Finding& finding : report.findings)
        worst = std::max(worst, finding.level);
    }
  }
  for (const Finding& finding : records)
    worst = std::max(worst, finding.level);
  const ProbeVerdict verdict =
      probe_verdict(worst >= Level::kHigh, worst >= Level::kLow, incomplete);

  if (options.json) {
    out << "{\"domain\":" << base::json_string(options.domain)
        << ",\"dns\":" << base::json_string(dns_description) << ",\"mx\":[";
    bool first = true;
    for (const MxSection& section : sections) {
      out << (first ? "" : ",") << "{\"host\":" << base::json_string(section.target.host)
          << ",\"preference\":" << section.target.preference
          << ",\"address\":" << base::json_string(section.address) << ",\"ports\":[";
      bool first_port = true;
      for (const PortReport& report : section.reports) {
        out << (first_port ? "" : ",");
        print_port_json(out, report);
        first_port = false;
      }
      out << "]}";
      first = false;
    }
    out << "],\"records\":" << findings_json(records)
        << ",\"verdict\":" << base::json_string(to_string(verdict))
        << ",\"worst_level\":" << base::json_string(to_string(worst))
        << ",\"connections\":" << connections << "}\n";
    return probe_exit_code(verdict);
  }
  auto safe = [](std::string_view text) { return base::terminal_safe(text); };
  out << "smtpsctl probe --domain " << options.domain << " (DNS: " << safe(dns_description)
      << ")\n";
  for (const MxSection& section : sections) {
    out << "\nMX host " << section.target.host << " (preference " << section.target.preference
        << (section.address.empty() ? "" : ", address " + section.address) << ")\n";
    for (const PortReport& report : section.reports)
      print_port_text(out, report);
  }
  out << "\ndomain " << options.domain << " records:\n";
  print_findings_text(out, records);
  out << "\nconnections: " << connections << " (at most " << options.max_connections
      << " per MX host)\n";
  for (const MxSection& section : sections) {
    for (const PortReport& report : section.reports) {
      if (report.not_run.empty()) continue;
      out << section.target.host << " port " << report.port
          << " incomplete: " << safe(report.not_run_reason)
          << "; not tested: " << join(report.not_run, ", ") << "\n";
    }
  }
  out << "verdict: " << to_string(verdict) << " (worst: " << to_string(worst) << ")\n";
  return probe_exit_code(verdict);
}

}  // namespace

ProbeVerdict probe_verdict(bool high_or_critical, bool low_or_medium, bool incomplete) {
  if (high_or_critical) return ProbeVerdict::kFail;  // a known weakness is a fact
  if (incomplete) return ProbeVerdict::kInconclusive;
  return low_or_medium ? ProbeVerdict::kWarn : ProbeVerdict::kPass;
}

int probe_exit_code(ProbeVerdict verdict) {
  switch (verdict) {
    case ProbeVerdict::kPass:
      return 0;
    case ProbeVerdict::kWarn:
      return 1;
    case ProbeVerdict::kFail:
      return 2;
    case ProbeVerdict::kInconclusive:
      return 4;
  }
  return 4;
}

const char* to_string(ProbeVerdict verdict) {
  switch (verdict) {
    case ProbeVerdict::kPass:
      return "PASS";
    case ProbeVerdict::kWarn:
      return "WARN";
    case ProbeVerdict::kFail:
      return "FAIL";
    case ProbeVerdict::kInconclusive:
      return "INCONCLUSIVE";
  }
  return "INCONCLUSIVE";
}

base::Expected<ProbeOptions, std::string> parse_probe_arguments(
    const std::vector<std::string>& args) {
  ProbeOptions options;
  std::string target;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](const char* option) -> base::Expected<std::string, std::string> {
      if (i + 1 >= args.size()) return base::unexpected(std::string(option) + " needs a value");
      return args[++i];
    };
    if (arg == "-h" || arg == "--help") {
      options.help = true;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--cafile" || arg == "--name" || arg == "--timeout" || arg == "--port" ||
               arg == "--max-connections" || arg == "--domain" || arg == "--dns-server" ||
               arg == "--trust-anchor" || arg == "--mta-sts-port" || arg == "--parallel") {
      auto given = value(arg.c_str());
      if (!given) return base::unexpected(given.error());
      if (arg == "--domain") {
        std::string domain = base::ascii_lowercase(given.value());
        if (!domain.empty() && domain.back() == '.') domain.pop_back();
        if (base::parse_ip(domain) || domain.find('.') == std::string::npos ||
            delivery::normalized_host(domain) != domain)
          return base::unexpected("--domain: \"" + base::terminal_safe(given.value()) +
                                  "\" is not a domain name");
        options.domain = domain;
      }
      if (arg == "--dns-server") {
        base::HostPortForm form;
        form.default_port = 53;
        form.numeric_host = true;
        auto server = base::parse_host_port(given.value(), form);
        if (!server)
          return base::unexpected("--dns-server: " + given.value() + ": " + server.error());
        options.dns_servers.push_back(given.value());
      }
      if (arg == "--trust-anchor") options.trust_anchor = given.value();
      if (arg == "--mta-sts-port") {
        auto port = bounded_number(given.value(), 1, 65535, "--mta-sts-port: a port number");
        if (!port) return base::unexpected(port.error());
        options.mta_sts_port = static_cast<std::uint16_t>(port.value());
      }
      if (arg == "--cafile") options.cafile = given.value();
      if (arg == "--name") options.name = given.value();
      if (arg == "--port") {
        auto port = bounded_number(given.value(), 1, 65535, "--port: a port number");
        if (!port) return base::unexpected(port.error());
        options.ports.push_back(static_cast<std::uint16_t>(port.value()));
      }
      if (arg == "--timeout") {
        auto seconds = bounded_number(given.value(), 1, 600, "--timeout: a number of seconds");
        if (!seconds) return base::unexpected(seconds.error());
        options.timeout_seconds = static_cast<int>(seconds.value());
      }
      if (arg == "--parallel") {
        auto count = bounded_number(given.value(), 1, 64, "--parallel: a number of connections");
        if (!count) return base::unexpected(count.error());
        options.parallel = static_cast<int>(count.value());
      }
      if (arg == "--max-connections") {
        auto count = bounded_number(given.value(), 1, 100000, "--max-connections: a number");
        if (!count) return base::unexpected(count.error());
        options.max_connections = static_cast<int>(count.value());
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return base::unexpected("unknown option " + arg);
    } else if (target.empty()) {
      target = arg;
    } else {
      return base::unexpected("one HOST[:PORT] only (got " + target + " and " + arg + ")");
    }
  }
  if (options.help) return options;
  if (!options.domain.empty()) {
    if (!target.empty())
      return base::unexpected("--domain " + options.domain + " or HOST " + target + ", not both");
    if (options.ports.empty()) options.ports.push_back(25);
    std::vector<std::uint16_t> unique;
    for (std::uint16_t port : options.ports) {
      if (std::find(unique.begin(), unique.end(), port) == unique.end()) unique.push_back(port);
    }
    options.ports = unique;
    return options;
  }
  if (!options.dns_servers.empty() || !options.trust_anchor.empty() || options.mta_sts_port != 443)
    return base::unexpected(
        std::string("--dns-server, --trust-anchor and --mta-sts-port go with --domain"));
  if (target.empty()) return base::unexpected(std::string("give HOST[:PORT] or --domain DOMAIN"));
  // Port 0 stands for "not given" (then 25, 465 and 587 are probed).
  base::HostPortForm form;
  form.default_port = 0;
  form.bare_ipv6 = true;
  auto address = base::parse_host_port(target, form);
  if (!address) return base::unexpected(target + ": " + address.error());
  options.host = address->host;
  if (address->port != 0) options.ports.insert(options.ports.begin(), address->port);
  std::vector<std::uint16_t> unique;
  for (std::uint16_t port : options.ports) {
    if (std::find(unique.begin(), unique.end(), port) == unique.end()) unique.push_back(port);
  }
  options.ports = unique;
  if (options.name.empty()) options.name = options.host;
  return options;
}

int run_probe_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = parse_probe_arguments(args);
  if (!parsed) {
    err << "smtpsctl probe: " << parsed.error() << "\n"
        << "usage: smtpsctl probe HOST[:PORT] [--port PORT]... [--name NAME] [--cafile FILE]\n"
           "                      [--timeout SECONDS] [--max-connections N] [--parallel N] "
           "[--json]\n"
           "       smtpsctl probe --domain DOMAIN [--port PORT]... [--dns-server IP[:PORT]]...\n"
           "                      [--trust-anchor FILE] [--mta-sts-port PORT] [--cafile FILE]\n"
           "                      [--timeout SECONDS] [--max-connections N] [--parallel N] "
           "[--json]\n";
    return 3;
  }
  const ProbeOptions& options = parsed.value();
  if (options.help) {
    out << "usage: smtpsctl probe HOST[:PORT] [--port PORT]... [--name NAME] [--cafile FILE]\n"
           "                      [--timeout SECONDS] [--max-connections N] [--parallel N] "
           "[--json]\n"
           "       smtpsctl probe --domain DOMAIN [--port PORT]... [--dns-server IP[:PORT]]...\n"
           "                      [--trust-anchor FILE] [--mta-sts-port PORT] [--cafile FILE]\n"
           "                      [--timeout SECONDS] [--max-connections N] [--parallel N] "
           "[--json]\n"
           "  Reports a mail server's TLS: versions, ciphers, groups, certificates, STARTTLS,\n"
           "  AUTH, and known vulnerabilities (Heartbleed, CCS injection, DROWN...).\n"
           "  Without PORT: 25, 465 and 587; --port adds a port (repeatable: DROWN is judged\n"
           "  across the ports of one run). --max-connections: the connection budget (default\n"
           "  "
        << kDefaultMaxConnections
        << "); checks beyond it are not tested. --parallel: at most N connections\n"
           "  open at once (default "
        << kDefaultParallel
        << "; 1: one after the other).\n"
           "  Exit: 0 pass, 1 warn, 2 fail, 3 usage or no answer, 4 inconclusive (checks\n"
           "  could not run: connection budget, 421 replies, refused or failed connections).\n"
           "  --domain: probes each MX host of DOMAIN (port 25, or each --port) and checks\n"
           "  its TLSA records (with their DNSSEC status), MTA-STS policy and TLS-RPT record.\n"
           "  --dns-server: the DNS server to ask (repeatable; default /etc/resolv.conf's);\n"
           "  --trust-anchor: validate DNSSEC with this key file; --mta-sts-port: the HTTPS\n"
           "  port of mta-sts.DOMAIN (443); --cafile also verifies the policy server.\n"
           "  No MX host (none, or a null MX) exits 3; an MX host not probed exits 4.\n";
    return 0;
  }
  if (!options.domain.empty()) return run_domain_probe(options, out, err);
  std::vector<std::uint16_t> ports =
      !options.ports.empty() ? options.ports : std::vector<std::uint16_t>{25, 465, 587};
  ConnectionBudget budget(options.max_connections, options.parallel);
  std::vector<PortReport> reports = probe_ports(options, ports, budget);
  bool any_answered = false;
  bool incomplete = false;
  for (const PortReport& report : reports) {
    any_answered = any_answered || report.answered;
    incomplete = incomplete || !report.not_run.empty();
  }
  if (!any_answered && !incomplete) {
    for (const auto& report : reports) {
      err << "smtpsctl probe: " << options.host << " port " << report.port
          << " does not answer: " << base::terminal_safe(report.error) << "\n";
    }
    return 3;
  }
  // DROWN (CVE-2016-0800) reaches every server whose key an SSL 2.0 server also uses: of
  // the ports probed in this run, those serving the key of another port's SSL 2.0
  // certificate.
  for (const auto& ssl2 : reports) {
    if (ssl2.ssl2_key_sha256.empty()) continue;
    for (auto& report : reports) {
      if (report.port == ssl2.port) continue;
      bool shared = report.certificate.key_sha256 == ssl2.ssl2_key_sha256;
      for (const auto& other : report.other_certificates)
        shared = shared || other.key_sha256 == ssl2.ssl2_key_sha256;
      if (shared) {
        report.findings.push_back(make_finding(Level::kHigh, "drown",
                                               "vulnerable to DROWN (CVE-2016-0800): port " +
                                                   std::to_string(ssl2.port) +
                                                   " speaks SSL 2.0 with this port's key"));
      }
    }
  }
  Level worst = Level::kOk;
  for (const auto& report : reports) {
    for (const auto& finding : report.findings)
      worst = std::max(worst, finding.level);
  }
  const ProbeVerdict verdict =
      probe_verdict(worst >= Level::kHigh, worst >= Level::kLow, incomplete);
  if (options.json) {
    print_json(out, options, reports, verdict, worst, budget.used());
  } else {
    print_text(out, options, reports, verdict, worst, budget.used());
  }
  return probe_exit_code(verdict);
}

}  // namespace app
