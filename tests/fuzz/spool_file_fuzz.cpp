// spool_file_fuzz.cpp — libFuzzer target for the spool file loader (queue::parse_spool_file,
// what Spool::load() runs on the start of queue/<id>), on arbitrary bytes taken as a whole
// file: version 1, version 2 (with its layout line and late header section) and version 3
// (with a late envelope at the end).
//
// Invariants checked (a violation traps):
// - a file that parses has recipients, and its segments lie inside the file, after the
//   envelope header, non-empty, summing to content_size;
// - the segments never depend on octets after the blank line except through the file size:
//   parsing the header alone with the same size gives the same result;
// - a refused file always says why.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "queue/spool.h"

using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The id the fuzzer's files name themselves with (the seeds use it).
  constexpr std::string_view kId = "0123456789ABCDEF0001abcd";
  auto parsed = queue::parse_spool_file(kId, bytes, bytes.size());
  if (!parsed) {
    check(!parsed.error().empty());
    return 0;
  }
  const queue::StoredMessage& message = *parsed;
  check(!message.envelope.recipients.empty());
  check(message.id == kId);
  const std::size_t header_end = bytes.find("\n\n");
  check(header_end != std::string_view::npos);
  std::uint64_t total = 0;
  for (const queue::ContentSegment& segment : message.segments) {
    check(segment.length > 0);
    check(segment.offset >= header_end + 2);
    check(segment.offset <= bytes.size() && segment.length <= bytes.size() - segment.offset);
    total += segment.length;
  }
  check(total == message.content_size);
  check(message.segments.size() <= 2);

  auto header_only = queue::parse_spool_file(kId, bytes.substr(0, header_end + 2), bytes.size());
  if (bytes.starts_with("smtpsd-spool 3\n")) {
    // Version 3 keeps its late envelope at the end: the header alone cannot give it.
    check(!header_only.has_value());
    return 0;
  }
  check(header_only.has_value());
  check(header_only->segments == message.segments);
  check(header_only->envelope.recipients.size() == message.envelope.recipients.size());
  return 0;
}
