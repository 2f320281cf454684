// file_sync.h — what decides whether one syncfs(2) may stand for many fsync(2)s (issue 19).
//
// A batch of new files (the Maildir copies of one commit batch) is made durable either by an
// fsync of each file or by one syncfs of their file system. Each fsync waits for a cache
// flush of the disk; syncfs pays one for the whole batch, but it writes every file of that
// file system that holds unwritten data, ours or not. So it pays only while little data is
// waiting: unwritten_bytes() is the system's unwritten page cache (Dirty + Writeback of
// /proc/meminfo, every file system counted), read at most every kUnwrittenSampleEvery.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace base {

inline constexpr std::chrono::milliseconds kUnwrittenSampleEvery{100};
inline constexpr std::chrono::seconds kJournalRecheckEvery{1};

// Octets of file data the kernel has yet to write (Dirty + Writeback), as last sampled
// (thread-safe); UINT64_MAX when /proc/meminfo cannot be read.
std::uint64_t unwritten_bytes();

// How syncfs(fd) may stand for an fsync of each file of fd's file system. Never before Linux
// 5.8 (syncfs returned 0 after a failed writeback), nor where it may skip the disk flush that
// fsync sends (FUSE, CIFS, ...): kNever when it cannot be told.
//   kAlone: its own commit makes everything durable: XFS and ext3/4 with a journal (a log
//     commit), Btrfs (a transaction), F2FS (a checkpoint);
//   kThenFlush: ext2/3/4 without a journal. There syncfs flushes the disk cache (ext4_sync_fs)
//     BEFORE it waits for the inode and directory blocks it has just written (the final
//     sync_blockdev of sync_filesystem): they may still sit in the disk's volatile cache
//     when it returns (the ext2 driver sends no flush in syncfs at all). An fdatasync of one
//     of the files afterwards sends the flush that covers them (both send one on every fsync
//     without a journal).
// Whether an ext file system has a journal is remembered on each thread for the last one
// asked about (its device and statfs f_fsid), for at most kJournalRecheckEvery: a journal
// comes or goes only with an unmount, and a clone of the file system may share its UUID.
enum class SyncfsUse { kNever, kAlone, kThenFlush };
SyncfsUse syncfs_use(int fd);

// Whether every sync on the file system of fd is a journal commit: XFS, or ext3/4 with a
// jbd2 journal (/proc/fs/jbd2/<device>-*). There a sync costs about the same whatever it
// covers, and concurrent syncs share commits, so more committer threads pay (issue 19: 4
// threads gave 1.29× the messages/s of 2 on a journaled ext4, the same CPU per message; on
// ext4 without a journal 1.05× for 1.10× the CPU). False when it cannot be told.
bool syncs_are_journal_commits(int fd);

// Whether a kernel release as uname(2) gives it ("6.1.0-13-amd64") is want_major.want_minor
// or later; false for one that does not start "<digits>.<digits>" (at most 4 digits each).
bool release_at_least(std::string_view release, unsigned want_major, unsigned want_minor);

// The same as unwritten_bytes() from the text of /proc/meminfo ("Dirty:  1234 kB" lines);
// UINT64_MAX when a field is missing or malformed, or the sum would not fit.
std::uint64_t parse_unwritten_bytes(const char* meminfo, std::size_t length);

}  // namespace base
