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
  int fd = ::open(message.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return base::unexpected(read_error("open", message.path, errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    int saved = errno;
    ::close(fd);
    return base::unexpected(read_error("stat", message.path, saved));
  }
  const auto file_size = static_cast<std::uint64_t>(status.st_size);
  std::vector<ContentSegment> segments;
  segments.reserve(message.segments.size());
  std::uint64_t size = 0;
  for (ContentSegment segment : message.segments) {
    if (segment.offset > file_size) {
      ::close(fd);
      return base::unexpected(too_short(message.path));
    }
    if (segment.length == ContentSegment::kToEndOfFile) segment.length = file_size - segment.offset;
    if (segment.length > file_size - segment.offset) {
      ::close(fd);
      return base::unexpected(too_short(message.path));
    }
    if (segment.length == 0) continue;
    segments.push_back(segment);
    size += segment.length;
  }
  return MessageReader(fd, message.path, std::move(segments), size);
}

MessageReader::MessageReader(int fd, std::string path, std::vector<ContentSegment> segments,
                             std::uint64_t size)
    : fd_(fd), path_(std::move(path)), segments_(std::move(segments)), size_(size) {}

MessageReader::MessageReader(MessageReader&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      segments_(std::move(other.segments_)),
      size_(other.size_),
      segment_(other.segment_),
      position_(other.position_) {}

MessageReader& MessageReader::operator=(MessageReader&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    segments_ = std::move(other.segments_);
    size_ = other.size_;
    segment_ = other.segment_;
    position_ = other.position_;
  }
  return *this;
}

MessageReader::~MessageReader() {
  if (fd_ >= 0) ::close(fd_);
}

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
    ssize_t got =
        ::pread(fd_, buffer.data() + filled, want, static_cast<off_t>(segment.offset + position_));
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
