// message_reader.h — reads a stored message's content, exactly as it is to be delivered.
//
// The spool keeps a message as pieces of one file (StoredMessage::segments: the late header
// section written at commit, then the content as received after the octets it replaces);
// every deliverer (Maildir, SMTP/LMTP, the DSN that returns the original) reads through this
// reader, so none knows the file's layout. Invariants: size() is the exact number of octets
// read() returns in all; a file shorter than its segments say is an error at open(), never a
// silently short message (RFC 5321 §6.1: the message delivered is the message accepted).
// read() allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "queue/spool.h"

namespace queue {

class MessageReader {
 public:
  // Reads through message.file (else opens message.path) and checks that the file holds
  // every segment. Errors: the open(2) or
  // fstat(2) failure (transient, with errno), or a file shorter than its segments
  // (not transient: the file is corrupt and will not get better).
  static base::Expected<MessageReader, SpoolError> open(const StoredMessage& message);

  // Octets of content in all.
  std::uint64_t size() const { return size_; }
  // The next octets, up to buffer.size(), in delivery order; 0 at the end of the content.
  // An error if pread(2) fails or the file ends early (it changed since open()).
  base::Expected<std::size_t, SpoolError> read(std::span<char> buffer);

  // For a deliverer that copies file to file in the kernel (copy_file_range(2),
  // sendfile(2)): the open file and where the content lies in it, in order, with exact
  // lengths and no empty segment. The descriptor stays the reader's; read() does not move
  // its file position.
  // -1 when the message is in memory (a message finished from its writer's buffer,
  // OpenSpoolFile::bytes): the segments are then pieces of file_bytes().
  int file_descriptor() const { return file_->fd; }
  std::string_view file_bytes() const { return file_->bytes; }
  const std::vector<ContentSegment>& segments() const { return segments_; }

 private:
  MessageReader(std::shared_ptr<const OpenSpoolFile> file, std::string path,
                std::vector<ContentSegment> segments, std::uint64_t size);

  std::shared_ptr<const OpenSpoolFile> file_;
  std::string path_;
  std::vector<ContentSegment> segments_;
  std::uint64_t size_ = 0;
  std::size_t segment_ = 0;     // the segment read() is in
  std::uint64_t position_ = 0;  // octets of it already read
};

}  // namespace queue
