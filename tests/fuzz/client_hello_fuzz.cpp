// client_hello_fuzz.cpp — libFuzzer target for the readers of what a server sends to
// `smtpsctl probe`'s hand-built handshakes (tls/client_hello.h): the first answer
// (read_answer), the whole first flight (read_flight) with its leaf certificate (ROBOT
// encrypts to it) and its ServerKeyExchange (read_key_exchange), the record after it
// (read_next_record: heartbeat, alert), and an SSL 2.0 SERVER-HELLO (read_ssl2_answer), on
// arbitrary bytes.
//
// Invariants checked (a violation traps): no read past the input (ASan); a ServerHello,
// alert, flight or SSL 2.0 answer is still read the same with bytes after it (the answer
// does not depend on what follows); kIncomplete only when no prefix decided already; a
// flight consumes no more than it was given.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "tls/client_hello.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const tls::ServerAnswer answer = tls::read_answer(bytes);
  if (answer.kind == tls::ServerAnswer::Kind::kServerHello ||
      answer.kind == tls::ServerAnswer::Kind::kAlert) {
    const tls::ServerAnswer longer = tls::read_answer(std::string(bytes) + "trailing bytes");
    check(longer.kind == answer.kind && longer.cipher == answer.cipher &&
          longer.version == answer.version && longer.alert_description == answer.alert_description);
  }
  if (answer.kind == tls::ServerAnswer::Kind::kIncomplete && size > 0) {
    check(tls::read_answer(bytes.substr(0, size - 1)).kind == tls::ServerAnswer::Kind::kIncomplete);
  }
  const tls::ServerFlight flight = tls::read_flight(bytes);
  check(flight.consumed <= size);
  check(flight.certificate.size() <= size);
  if (flight.kind == tls::ServerFlight::Kind::kDone) {
    const tls::ServerFlight longer = tls::read_flight(std::string(bytes) + "trailing bytes");
    check(longer.kind == flight.kind && longer.consumed == flight.consumed &&
          longer.key_exchange == flight.key_exchange && longer.certificate == flight.certificate);
    const tls::NextRecord next = tls::read_next_record(bytes.substr(flight.consumed));
    check(next.length <= size);
  }
  if (flight.kind == tls::ServerFlight::Kind::kIncomplete && size > 0) {
    check(tls::read_flight(bytes.substr(0, size - 1)).kind == tls::ServerFlight::Kind::kIncomplete);
  }
  for (bool elliptic : {false, true}) {
    const tls::KeyExchange exchange = tls::read_key_exchange(bytes, elliptic);
    check(!exchange.valid || elliptic ||
          (exchange.dh_prime_bits >= 1 && exchange.dh_prime_bits <= 8 * size));
  }
  const tls::NextRecord next = tls::read_next_record(bytes);
  check(next.length <= size);
  const tls::Ssl2Answer ssl2 = tls::read_ssl2_answer(bytes);
  check(ssl2.certificate.size() <= size);
  if (ssl2.kind == tls::Ssl2Answer::Kind::kServerHello) {
    const tls::Ssl2Answer longer = tls::read_ssl2_answer(std::string(bytes) + "trailing");
    check(longer.kind == ssl2.kind && longer.ciphers == ssl2.ciphers &&
          longer.certificate == ssl2.certificate);
  }
  if (ssl2.kind == tls::Ssl2Answer::Kind::kIncomplete && size > 0) {
    check(tls::read_ssl2_answer(bytes.substr(0, size - 1)).kind ==
          tls::Ssl2Answer::Kind::kIncomplete);
  }
  return 0;
}
