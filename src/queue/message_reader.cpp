// message_reader.cpp — see message_reader.h.
#include "queue/message_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace queue {
namespace {

SpoolError read_error(std::string_view what, const std::string& path, int error_number) {
  char buffer[256];
  // GNU strerror_r (g++ defines _GNU_SOURCE): returns the text, thread-safe.
  std::string text = strerror_r(error_number, buffer, sizeof buffer);
  return SpoolError{std::string(what) + " " + path + ": " + text, /*transient=*/true, error_number};
}

SpoolError too_short(const std::string& path) {
  return SpoolError{"spool file " + path + " is shorter than its layout says",
                    /*transient=*/false, EIO};
}

}  // namespace

base::Expected<MessageReader, SpoolError> MessageReader::open(const StoredMessage& message) {
  std::shared_ptr<const OpenSpoolFile> file = message.file;
  if (!file) {
    int fd = ::open(message.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return base::unexpected(read_error("open", message.path, errno));
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
      int saved = errno;
      ::close(fd);
      return base::unexpected(read_error("stat", message.path, saved));
    }
    file = std::make_shared<const OpenSpoolFile>(fd, static_cast<std::uint64_t>(status.st_size));
  }
  const std::uint64_t file_size = file->size;
  std::vector<ContentSegment> segments;
  segments.reserve(message.segments.size());
  std::uint64_t size = 0;
  for (ContentSegment segment : message.segments) {
    if (segment.offset > file_size) return base::unexpected(too_short(message.path));
    if (segment.length == ContentSegment::kToEndOfFile) segment.length = file_size - segment.offset;
    if (segment.length > file_size - segment.offset) {
      return base::unexpected(too_short(message.path));
    }
    if (segment.length == 0) continue;
    segments.push_back(segment);
    size += segment.length;
  }
  return MessageReader(std::move(file), message.path, std::move(segments), size);
}

MessageReader::MessageReader(std::shared_ptr<const OpenSpoolFile> file, std::string path,
                             std::vector<ContentSegment> segments, std::uint64_t size)
    : file_(std::move(file)), path_(std::move(path)), segments_(std::move(segments)), size_(size) {}

base::Expected<std::size_t, SpoolError> MessageReader::read(std::span<char> buffer) {
  std::size_t filled = 0;
  while (filled < buffer.size() && segment_ < segments_.size()) {
    const ContentSegment& segment = segments_[segment_];
    std::uint64_t left = segment.length - position_;
    if (left == 0) {
      ++segment_;
      position_ = 0;
      continue;
    }
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size() - filled));
    if (file_->fd < 0) {  // in memory: open() checked the segments against its size
      std::memcpy(buffer.data() + filled, file_->bytes.data() + segment.offset + position_, want);
      filled += want;
      position_ += want;
      continue;
    }
    ssize_t got = ::pread(file_->fd, buffer.data() + filled, want,
                          static_cast<off_t>(segment.offset + position_));
    if (got < 0) {
      if (errno == EINTR) continue;
      return base::unexpected(read_error("read", path_, errno));
    }
    if (got == 0) return base::unexpected(too_short(path_));
    filled += static_cast<std::size_t>(got);
    position_ += static_cast<std::uint64_t>(got);
  }
  return filled;
}

}  // namespace queue
