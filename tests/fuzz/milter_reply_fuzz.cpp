// milter_reply_fuzz.cpp — libFuzzer target for what a milter sends us (milter/protocol.h):
// the packet reader over any byte stream, fed in two parts, then every packet through the
// reply parser and the option negotiation parser.
//
// Invariants checked (a violation traps):
// - nothing crashes, whatever the bytes; a packet never exceeds kMaxPacket;
// - a reply code that parses is 4xx (tempfail) or 5xx (reject), one line of printable ASCII,
//   with an enhanced code of its own class;
// - a negotiation that parses asks only for what was offered.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "milter/protocol.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = size == 0 ? 0 : data[0] % (size + 1);
  milter::PacketReader reader;
  reader.feed(input.substr(0, split));
  bool fed_rest = false;
  for (;;) {
    auto next = reader.next();
    if (!next) break;
    if (!next.value()) {
      if (fed_rest) break;
      reader.feed(input.substr(split));
      fed_rest = true;
      continue;
    }
    const milter::Packet& packet = *next.value();
    check(packet.data.size() < milter::kMaxPacket);
    auto response = milter::parse_response(packet);
    if (response && response->reply) {
      const smtp::Reply& reply = *response->reply;
      check(reply.code >= 400 && reply.code <= 599);
      check((reply.code >= 500) == (response->kind == milter::Response::Kind::kReject));
      check(!reply.enhanced.empty() && reply.enhanced[0] == '0' + reply.code / 100);
      for (char c : reply.text)
        check(c >= 0x20 && c <= 0x7e);
    }
    auto negotiation =
        milter::parse_negotiation(packet, milter::action::kAll, milter::protocol::kOffered);
    if (negotiation) {
      check((negotiation->actions & ~milter::action::kAll) == 0);
      check((negotiation->protocol_flags & ~milter::protocol::kOffered) == 0);
    }
  }
  return 0;
}
