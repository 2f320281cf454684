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
// The same bytes also go to the commit log's segment reader (queue::parse_log_records, what
// Spool::open() runs on each <spool>/log/*.seg): its records lie inside the bytes, in order,
// each payload's CRC matches, and `end` is where the last one ends (a segment's header alone
// when there is none); a scan that stops before the end says why. An input that starts with
// the segment header is read as one.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "queue/spool.h"
#include "queue/spool_log.h"

using fuzz::check;

namespace {

void check_log_records(std::string_view bytes) {
  std::uint64_t end = 0;
  std::string error;
  const auto records = queue::parse_log_records(bytes, end, error);
  check(end <= bytes.size());
  check(end == bytes.size() || !error.empty());
  std::uint64_t position = bytes.starts_with(queue::SpoolLog::kSegmentHeader)
                               ? queue::SpoolLog::kSegmentHeader.size()
                               : 0;
  check(!records.empty() || end == position);
  for (const queue::LogRecord& record : records) {
    check(record.kind == 'M' || (record.kind == 'D' && record.length == 0));
    check(record.payload_offset > position);
    check(record.payload_offset <= bytes.size() &&
          record.length <= bytes.size() - record.payload_offset);
    check(queue::log_record_crc(record.kind, record.id, record.length,
                                bytes.substr(record.payload_offset, record.length)) == record.crc);
    position = record.payload_offset + record.length;
  }
  check(records.empty() || end == position);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_log_records(bytes);
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
