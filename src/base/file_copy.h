// file_copy.h — octets copied from one file to another in the kernel (copy_file_range(2)),
// or through a buffer (pread/pwrite) where the kernel cannot copy between the two files.
// The spool's commit log (records in and out of segments) and Maildir (a spooled message
// into a mailbox) copy with it.
//
// A copy over kWritebackPiece goes in pieces of that size, each handed to writeback
// (sync_file_range(SYNC_FILE_RANGE_WRITE)) as soon as it is in the page cache: the disk
// writes while the next piece is copied, so the fsync that follows waits for the last piece
// only (issue 19: 1.15-1.17× the messages/s at 10 MiB). Nothing here is durable by itself.
#pragma once

#include <cstdint>

namespace base {

inline constexpr std::uint64_t kWritebackPiece = 1 << 20;

// length octets of in from in_offset to out at out_offset; neither file position moves.
// False with errno set on failure, EIO when in ends first.
bool copy_file_part(int in, std::uint64_t in_offset, int out, std::uint64_t out_offset,
                    std::uint64_t length);

}  // namespace base
