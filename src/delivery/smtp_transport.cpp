// smtp_transport.cpp — see smtp_transport.h.
#include "delivery/smtp_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "queue/message_reader.h"
#include "tls/openssl_error.h"
#include "tls/poll_waiter.h"

namespace delivery {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(int error_number) {
  return std::strerror(error_number);
}

// The DNS names a certificate claims (subjectAltName, else the common name), for messages
// such as "the certificate names mx1.example.net, example.net".
std::string certificate_names(X509* certificate) {
  std::string names;
  auto add = [&names](std::string_view name) {
    if (!names.empty()) names += ", ";
    names += name;
  };
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && i < 20; ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
      if (name->type == GEN_DNS) {
        const ASN1_IA5STRING* dns = name->d.dNSName;
        add(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                             static_cast<std::size_t>(ASN1_STRING_length(dns))));
      } else if (name->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = {};
        int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
        if (::inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text) != nullptr) add(text);
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char common_name[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, common_name,
                                  sizeof common_name) > 0) {
      add(common_name);
    }
  }
  return names.empty() ? "no names" : names;
}

// "2026-11-24 07:47:03 UTC", or "" when the time cannot be read.
std::string certificate_time(const ASN1_TIME* time) {
  std::tm parts{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1) return "";
  char text[32] = {};
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return text;
}

std::string certificate_issuer(X509* certificate) {
  char text[512] = {};
  X509_NAME_oneline(X509_get_issuer_name(certificate), text, sizeof text);
  return text;
}

}  // namespace

std::string Endpoint::describe() const {
  if (unix_socket) return "unix:" + address;
  std::string text = host;
  if (host != address) text += "[" + address + "]";
  return text + ":" + std::to_string(port);
}

std::string TlsOutcome::describe() const {
  if (!encrypted) return "none";
  return version + " " + cipher +
         (dane       ? " verified by DANE (TLSA " + dane_match + ")"
          : verified ? " verified"
                     : " unverified");
}

Connection::Connection(Endpoint endpoint, const TransportOptions& options)
    : endpoint_(std::move(endpoint)), options_(options), session_(options.client) {}

Connection::~Connection() {
  stream_ = tls::Stream{};  // the session goes before its socket
  if (fd_ >= 0) ::close(fd_);
}

TransportFailure Connection::failure(const char* stage, std::string detail) {
  failed_ = true;
  return TransportFailure{stage, std::move(detail), std::nullopt};
}

TransportFailure Connection::timeout(const char* stage, std::string detail) {
  TransportFailure f = failure(stage, std::move(detail));
  f.timed_out = true;
  timed_out_ = true;
  return f;
}

Clock::time_point Connection::deadline_in(std::chrono::milliseconds timeout) const {
  const Clock::time_point now = Clock::now();
  if (options_.attempt_deadline - now < timeout) return options_.attempt_deadline;
  return now + timeout;
}

std::string Connection::waited(std::chrono::milliseconds timeout) const {
  if (Clock::now() >= options_.attempt_deadline) return "before the delivery attempt's time limit";
  return "within " + std::to_string(timeout.count() / 1000) + "s";
}

TransportFailure Connection::session_failure() {
  failed_ = true;
  const smtp::ClientFailure& f = session_.failure();
  return TransportFailure{f.stage, f.detail, f.reply};
}

base::Expected<std::unique_ptr<Connection>, TransportFailure> Connection::open(
    const Endpoint& endpoint, const TransportOptions& options) {
  TransportOptions effective = options;
  effective.client.tls_active = options.implicit_tls;
  effective.client.starttls = options.starttls && options.tls_context != nullptr;
  std::unique_ptr<Connection> connection(new Connection(endpoint, effective));
  if (auto connected = connection->connect_socket(); !connected) {
    return base::unexpected(connected.error());
  }
  if (options.implicit_tls) {
    if (auto secured = connection->handshake(); !secured) {
      return base::unexpected(secured.error());
    }
  }
  for (;;) {
    auto event = connection->pump("greeting", effective.command_timeout);
    if (!event) return base::unexpected(event.error());
    switch (*event) {
      case smtp::ClientEvent::kStartTls:
        if (auto secured = connection->handshake(); !secured) {
          return base::unexpected(secured.error());
        }
        connection->session_.tls_established();
        continue;
      case smtp::ClientEvent::kReady:
        connection->last_used_ = Clock::now();
        return connection;
      case smtp::ClientEvent::kFailed:
        return base::unexpected(connection->session_failure());
      default:
        return base::unexpected(
            connection->failure("protocol", "unexpected state while opening the session"));
    }
  }
}

base::Expected<base::Ok, TransportFailure> Connection::connect_socket() {
  const Clock::time_point deadline = deadline_in(options_.connect_timeout);
  if (endpoint_.unix_socket) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (endpoint_.address.size() >= sizeof address.sun_path) {
      return base::unexpected(failure("connect", "socket path too long: " + endpoint_.address));
    }
    std::memcpy(address.sun_path, endpoint_.address.c_str(), endpoint_.address.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return base::unexpected(failure("connect", "socket: " + errno_text(errno)));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 &&
        errno != EINPROGRESS && errno != EAGAIN) {
      return base::unexpected(failure(
          "connect", "cannot connect to " + endpoint_.describe() + ": " + errno_text(errno)));
    }
  } else {
    sockaddr_storage storage{};
    socklen_t length = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, endpoint_.address.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(endpoint_.port);
      length = sizeof *v4;
    } else if (::inet_pton(AF_INET6, endpoint_.address.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(endpoint_.port);
      length = sizeof *v6;
    } else {
      return base::unexpected(failure("connect", "not an IP address: " + endpoint_.address));
    }
    fd_ = ::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return base::unexpected(failure("connect", "socket: " + errno_text(errno)));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&storage), length) != 0 &&
        errno != EINPROGRESS) {
      return base::unexpected(failure(
          "connect", "cannot connect to " + endpoint_.describe() + ": " + errno_text(errno)));
    }
  }
  if (!tls::poll_until_ready(fd_, tls::Status::kWantWrite, deadline)) {
    return base::unexpected(timeout("connect", "no answer from " + endpoint_.describe() + " " +
                                                   waited(options_.connect_timeout)));
  }
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size);
  if (error != 0) {
    return base::unexpected(
        failure("connect", "cannot connect to " + endpoint_.describe() + ": " + errno_text(error)));
  }
  return base::Ok{};
}

base::Expected<base::Ok, TransportFailure> Connection::handshake() {
  if (options_.tls_context == nullptr) {
    return base::unexpected(failure("tls", "no TLS context configured"));
  }
  auto opened = tls::Stream::open(options_.tls_context, fd_, tls::Stream::Side::kClient);
  if (!opened) return base::unexpected(failure("tls", "cannot set up TLS: " + opened.error()));
  stream_ = std::move(opened.value());
  SSL* ssl = stream_.get();
  // The peer is always checked; the caller's level decides whether a failed check matters,
  // so the handshake itself goes on (SSL_VERIFY_NONE still computes the verify result).
  SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  const bool dane = !options_.dane_tlsa.empty();
  const std::string& name = dane ? options_.dane_base : endpoint_.host;
  stream_.set_server_name(name);  // SNI for host names, never for an IP literal
  if (dane) {
    // RFC 7672 §3: the TLSA records, not the trust store, authenticate the peer; the base
    // domain is the reference name for DANE-TA(2), DANE-EE(3) needs no name (§3.1.1).
    // (The context was made DANE-capable with SSL_CTX_dane_enable.)
    ERR_clear_error();
    if (SSL_dane_enable(ssl, name.c_str()) <= 0) {
      ERR_clear_error();
      return base::unexpected(failure("tls", "cannot set up DANE for " + name));
    }
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    int added = 0;
    for (const dns::TlsaRecord& record : options_.dane_tlsa) {
      const auto* data = reinterpret_cast<const unsigned char*>(record.data.data());
      if (SSL_dane_tlsa_add(ssl, record.usage, record.selector, record.matching_type, data,
                            record.data.size()) > 0)
        ++added;
    }
    ERR_clear_error();
    if (added == 0) {
      return base::unexpected(failure("tls", "no TLSA record of " + name + " is usable"));
    }
  } else {
    stream_.expect_peer_name(name);
  }
  tls::Result shaken = tls::poll_handshake(stream_, deadline_in(options_.command_timeout));
  if (shaken.status == tls::Status::kTimeout) {
    return base::unexpected(timeout("tls", "TLS handshake with " + endpoint_.describe() +
                                               " timed out " + waited(options_.command_timeout)));
  }
  if (!shaken.done()) {
    return base::unexpected(failure(
        "tls",
        "TLS handshake with " + endpoint_.describe() + " failed: " +
            (shaken.status == tls::Status::kClosed ? std::string("the server closed the connection")
                                                   : shaken.reason)));
  }
  tls::SessionDescription description = tls::describe(ssl);
  tls_.encrypted = true;
  tls_.version = description.version;
  tls_.cipher = description.cipher;
  X509* peer = SSL_get0_peer_certificate(ssl);
  long verify = SSL_get_verify_result(ssl);
  tls_.verified = peer != nullptr && verify == X509_V_OK;
  tls_.verify_code = peer == nullptr ? X509_V_ERR_UNSPECIFIED : verify;
  if (dane && tls_.verified) {
    std::uint8_t usage = 0, selector = 0, matching_type = 0;
    if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &matching_type, nullptr, nullptr) >= 0) {
      tls_.dane = true;
      tls_.dane_match = std::to_string(usage) + " " + std::to_string(selector) + " " +
                        std::to_string(matching_type);
    } else {
      tls_.verified = false;  // verified, but not by a TLSA record: not what DANE asks
    }
  }
  if (peer != nullptr) {
    tls_.peer_names = certificate_names(peer);
    tls_.peer_not_before = certificate_time(X509_get0_notBefore(peer));
    tls_.peer_not_after = certificate_time(X509_get0_notAfter(peer));
    tls_.peer_issuer = certificate_issuer(peer);
  }
  if (!tls_.verified) {
    tls_.verify_error =
        peer == nullptr ? "no certificate" : std::string(X509_verify_cert_error_string(verify));
    if (dane) {
      tls_.verify_error += " (no TLSA record of " + name + " matches the certificate chain)";
    } else if (peer != nullptr) {
      tls_.verify_error +=
          " (expected " + name + "; the certificate names " + certificate_names(peer) + ")";
    }
  }
  if (options_.check_tls) {
    if (std::string refused = options_.check_tls(tls_); !refused.empty()) {
      return base::unexpected(failure("tls-policy", std::move(refused)));
    }
  }
  return base::Ok{};
}

bool Connection::idle_ok() const {
  if (fd_ < 0 || failed_) return false;
  pollfd p{fd_, POLLIN, 0};
  // Readable while idle means the server closed or said something unasked (421).
  return ::poll(&p, 1, 0) == 0;
}

base::Expected<base::Ok, TransportFailure> Connection::write_all(std::string_view bytes,
                                                                 const char* stage) {
  const Clock::time_point deadline = deadline_in(options_.command_timeout);
  while (!bytes.empty()) {
    if (stream_) {
      tls::Result written = tls::poll_write_all(stream_, bytes, deadline);
      if (written.status == tls::Status::kTimeout) {
        return base::unexpected(timeout(stage, "write to " + endpoint_.describe() + " timed out " +
                                                   waited(options_.command_timeout)));
      }
      if (!written.done()) {
        return base::unexpected(failure(
            stage, "TLS write to " + endpoint_.describe() + " failed: " +
                       (written.status == tls::Status::kClosed ? std::string("connection closed")
                                                               : written.reason)));
      }
      break;
    }
    ssize_t written = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (written > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(written));
      continue;
    }
    if (written < 0 && errno == EINTR) continue;
    if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!tls::poll_until_ready(fd_, tls::Status::kWantWrite, deadline)) {
        return base::unexpected(timeout(stage, "write to " + endpoint_.describe() + " timed out " +
                                                   waited(options_.command_timeout)));
      }
      continue;
    }
    return base::unexpected(
        failure(stage, "write to " + endpoint_.describe() + " failed: " + errno_text(errno)));
  }
  return base::Ok{};
}

base::Expected<smtp::ClientEvent, TransportFailure> Connection::pump(
    const char* stage, std::chrono::milliseconds timeout) {
  std::array<char, 16 * 1024> buffer;
  // One deadline for the whole exchange: a server that trickles a byte at a time cannot
  // hold a delivery thread longer than this.
  const Clock::time_point deadline = deadline_in(timeout);
  for (;;) {
    smtp::ClientEvent event = session_.next();
    if (std::string& out = session_.output(); !out.empty()) {
      auto written = write_all(out, stage);
      out.clear();
      if (!written) return base::unexpected(written.error());
    }
    if (event != smtp::ClientEvent::kNeedInput) return event;
    for (;;) {
      if (stream_) {
        tls::Result got = tls::poll_read(stream_, buffer, deadline);
        if (got.status == tls::Status::kTimeout) {
          return base::unexpected(this->timeout(
              stage, "no reply from " + endpoint_.describe() + " " + waited(timeout)));
        }
        if (got.done()) {
          session_.receive(std::string_view(buffer.data(), got.bytes));
        } else {
          session_.server_closed();  // an unclean close is still the end of the stream
        }
        break;
      }
      ssize_t got = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (got > 0) {
        session_.receive(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
        break;
      }
      if (got == 0) {
        session_.server_closed();
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!tls::poll_until_ready(fd_, tls::Status::kWantRead, deadline)) {
          return base::unexpected(this->timeout(
              stage, "no reply from " + endpoint_.describe() + " " + waited(timeout)));
        }
        continue;
      }
      session_.server_closed();
      break;
    }
  }
}

base::Expected<std::vector<smtp::RecipientResult>, TransportFailure> Connection::send(
    const queue::StoredMessage& message, std::span<const std::size_t> recipients) {
  if (!usable()) return base::unexpected(failure("mail", "connection is not usable"));
  auto content = queue::MessageReader::open(message);
  if (!content) {
    return base::unexpected(
        TransportFailure{"content", "cannot read the message: " + content.error().message, {}});
  }

  partial_.clear();
  session_.send_message(message.envelope, recipients, content->size());
  std::array<char, 64 * 1024> chunk;
  bool data_ended = false;
  for (;;) {
    auto event = pump(data_ended ? "content" : "mail",
                      data_ended ? std::max(options_.command_timeout, options_.data_end_timeout)
                                 : options_.command_timeout);
    if (!event) partial_ = session_.results();
    if (!event) return base::unexpected(event.error());
    switch (*event) {
      case smtp::ClientEvent::kSendContent: {
        for (;;) {
          auto got = content->read(chunk);
          if (!got) {
            // The spool file could not be read: abandon the connection rather than end the
            // data, so that the server never accepts a truncated message.
            failed_ = true;
            return base::unexpected(TransportFailure{"content", got.error().message, {}});
          }
          if (*got == 0) break;
          session_.content(std::string_view(chunk.data(), *got));
          std::string& out = session_.output();
          auto written = write_all(out, "content");
          out.clear();
          if (!written) return base::unexpected(written.error());
        }
        session_.end_content();
        data_ended = true;
        continue;
      }
      case smtp::ClientEvent::kMessageDone: {
        std::vector<smtp::RecipientResult> results = session_.results();
        ++messages_sent_;
        last_used_ = Clock::now();
        session_.next();  // back to kReady
        return results;
      }
      case smtp::ClientEvent::kFailed:
        partial_ = session_.results();
        return base::unexpected(session_failure());
      default:
        return base::unexpected(failure("protocol", "unexpected state during a transaction"));
    }
  }
}

void Connection::quit() {
  if (fd_ < 0) return;
  if (!failed_) {
    options_.command_timeout = std::chrono::seconds(2);
    session_.quit();
    (void)pump("quit", std::chrono::seconds(2));
  }
  stream_.shutdown();  // one close_notify, without waiting for the peer's
  stream_ = tls::Stream{};
  ::close(fd_);
  fd_ = -1;
}

}  // namespace delivery
