// maildir.h — local delivery into Maildir mailboxes (<mail_root>/<domain>/<localpart>/).
//
// Protocol of D. J. Bernstein's Maildir spec (https://cr.yp.to/proto/maildir.html): write
// tmp/<name>, fsync (or, for a MaildirBatch, one syncfs for its copies), link into
// new/<name>, then fsync new/ so that the entry is durable
// before the spool file is removed (RFC 5321 §4.5.4, §6.1: accepted mail MUST NOT be lost).
// Invariants: deliver() is idempotent — <name> is deterministic per (message id, recipient
// index), and a message already in new/<name> or cur/<name>:2,<flags> is not written
// again, so a retry after a crash never delivers twice. Only complete, durable files ever
// appear in new/. A recipient never reaches outside <mail_root>: unsafe local parts and
// domains are refused. A message with a folder (a check chose it, queue::StoredMessage::folder)
// goes into the Maildir++ folder <mailbox>/.<folder>/ (Courier's and Dovecot's layout: created
// with tmp/ new/ cur/ and an empty "maildirfolder" file), else into the mailbox (INBOX).
// File name: "<received_unix>.Q<id>R<index>.<hostname>,S=<size>" — the Maildir grammar
// (no '/' or ':'; in the hostname '/' is \057 and ':' is \072, ',' is \054) with Dovecot's
// ",S=<file size>" field (https://doc.dovecot.org/admin_manual/mailbox_formats/maildir/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/expected.h"
#include "base/file_sync.h"
#include "queue/scheduler.h"
#include "queue/spool.h"

namespace delivery {

// Copies of several deliveries made durable together (delivery at acceptance: the messages of
// one commit batch). While a batch is open on a thread, Maildir::deliver on that thread stops
// after writing tmp/<name> (its writeback left to complete()) and reports kDelivered;
// complete() then makes every file durable, renames each into new/ and fsyncs each new/ once:
// two rounds of syncs for the whole batch instead of two per copy (up to kMaxCopies copies).
// The files are made durable by one syncfs(2) when there are several, all on one file system
// whose syncfs may stand for fsyncs (base::syncfs_use: Linux 5.8+, ext4, XFS, Btrfs, F2FS; on
// ext2/3/4 without a journal followed by an fdatasync of one file, for the disk flush it
// owes), and the system holds less than kSyncfsUnwrittenMax octets of unwritten data
// (base/file_sync.h), else (or when syncfs fails) by an fsync of each; a failed fdatasync is
// the first copy's failure (it reported that file's write error). A delivery
// is done only once complete() says so; one that failed there is not in new/. Copies never
// completed (the batch destroyed first) are removed from tmp/.
class MaildirBatch {
 public:
  // Copies staged at most (3 descriptors each): later ones are delivered on their own.
  static constexpr std::size_t kMaxCopies = 64;
  // Unwritten data (base::unwritten_bytes) above which the files get an fsync each: syncfs
  // would write all of it before returning. 64 MiB: a quarter second at 256 MB/s.
  static constexpr std::uint64_t kSyncfsUnwrittenMax = 64ULL << 20;

  // At most one per thread. unwritten_max: syncfs only while base::unwritten_bytes() is
  // below it (0: never; tests).
  explicit MaildirBatch(std::uint64_t unwritten_max = kSyncfsUnwrittenMax);
  ~MaildirBatch();
  MaildirBatch(const MaildirBatch&) = delete;
  MaildirBatch& operator=(const MaildirBatch&) = delete;

  struct Copy {
    std::string message_id;
    std::size_t recipient_index = 0;
    std::string path;   // new/<name>, where complete() puts it
    std::string error;  // set by complete() when the copy did not get there durably
  };
  // The copies staged so far, in order; after complete(), each with its outcome.
  const std::vector<Copy>& copies() const { return copies_; }
  void complete();
  // After complete(): whether one syncfs (and on ext4 without a journal one flush) made the
  // files durable, not an fsync each.
  bool synced_together() const { return synced_together_; }

  // For Maildir::deliver: the batch open on this thread, or null.
  static MaildirBatch* current();
  // The tmp/ and new/ descriptors of box (a mailbox or folder directory) when an earlier
  // copy of this batch opened them (the batch holds them; one open each per batch, not per
  // copy), else {-1, -1}.
  std::pair<int, int> directories(std::string_view box) const;
  // Takes the open tmp file of one staged copy, and the two directories of its box when
  // directories() had none (else pass -1, -1).
  void stage(Copy copy, int file_fd, std::string_view box, int tmp_dir_fd, int new_dir_fd,
             std::string name);

 private:
  base::SyncfsUse sync_together_pays() const;
  struct Open {
    int file_fd;
    int tmp_dir_fd;  // borrowed from boxes_
    int new_dir_fd;  // borrowed from boxes_
    std::string name;
  };
  struct Box {
    std::string path;
    int tmp_dir_fd;
    int new_dir_fd;
  };
  std::vector<Copy> copies_;
  std::vector<Open> open_;  // parallel to copies_; file_fd -1 once closed
  std::vector<Box> boxes_;  // the directories the copies go to, each once
  std::uint64_t unwritten_max_;
  bool completed_ = false;
  bool synced_together_ = false;
};

class Maildir {
 public:
  // mail_root is <data>/mail; mailboxes are <mail_root>/<domain>/<localpart>/{tmp,new,cur}
  // (created on first delivery, mode 0700).
  Maildir(std::string mail_root, std::string hostname);

  // Copies the content of message (read through queue::MessageReader), after a
  // "Return-Path: <reverse-path>" line (RFC 5321 §4.4) and "Delivered-To: <mailbox>" (as
  // Postfix writes it: the final mailbox address), into the recipient's Maildir, or its
  // folder message.folder. A message whose header section already has Delivered-To: with
  // this mailbox has looped: kPermanent 5.4.6, nothing written.
  // kPermanent for an address that cannot name a mailbox or a corrupt spool file;
  // kTransient with the strerror text for a disk error (the tmp file is then removed).
  queue::DeliveryResult deliver(const queue::StoredMessage& message, std::size_t recipient_index);

  // <mail_root>/<lower-cased domain>/<local part>, or "" when the address is refused
  // (local part empty, with '/', NUL or a control byte, or starting with '.').
  static std::string mailbox_path(const std::string& mail_root, const std::string& address);
  // Creates the mailbox of address (tmp/, new/, cur/) if missing; used by `smtpsd dev`.
  base::Expected<base::Ok, std::string> ensure_mailbox(const std::string& address);
  // The deterministic file name of one delivery (no ":2," info part).
  static std::string file_name(std::int64_t received_unix, const std::string& id,
                               std::size_t recipient_index, const std::string& hostname,
                               std::uint64_t size);

 private:
  std::string mail_root_;
  std::string hostname_;
};

}  // namespace delivery
