// client_hello_fuzz.cpp — libFuzzer target for the reader of a server's first TLS answer
// (tls/client_hello.h, read_answer), on arbitrary bytes: what a hostile server may send to
// `smtpsctl probe`.
//
// Invariants checked (a violation traps): no read past the input (ASan); a ServerHello or
// alert is still read the same with bytes after it (the answer does not depend on what
// follows); kIncomplete only when no prefix decided already.
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
  return 0;
}
