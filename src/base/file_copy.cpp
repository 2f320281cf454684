// file_copy.cpp — see file_copy.h.
#include "base/file_copy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace base {

namespace {

// The rest of the copy through a buffer; the same contract as copy_file_part.
bool copy_through_buffer(int in, off_t source, int out, off_t target, std::uint64_t length) {
  std::vector<char> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(length, 256 * 1024)));
  while (length > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(length, buffer.size()));
    ssize_t got = ::pread(in, buffer.data(), want, source);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got == 0) errno = EIO;
      return false;
    }
    for (ssize_t done = 0; done < got;) {
      ssize_t put =
          ::pwrite(out, buffer.data() + done, static_cast<std::size_t>(got - done), target + done);
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) return false;
      done += put;
    }
    source += got;
    target += got;
    length -= static_cast<std::uint64_t>(got);
  }
  return true;
}

}  // namespace

bool copy_file_part(int in, std::uint64_t in_offset, int out, std::uint64_t out_offset,
                    std::uint64_t length) {
  auto source = static_cast<off_t>(in_offset);
  auto target = static_cast<off_t>(out_offset);
  const bool large = length > kWritebackPiece;
  while (length > 0) {
    const off_t piece_start = target;
    ssize_t n = ::copy_file_range(in, &source, out, &target,
                                  static_cast<std::size_t>(std::min(length, kWritebackPiece)), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                  errno == EBADF)) {
      return copy_through_buffer(in, source, out, target, length);  // not between these files
    }
    if (n <= 0) {
      if (n == 0) errno = EIO;  // in is shorter than it was: never expected
      return false;
    }
    length -= static_cast<std::uint64_t>(n);
    if (large) ::sync_file_range(out, piece_start, n, SYNC_FILE_RANGE_WRITE);
  }
  return true;
}

}  // namespace base
