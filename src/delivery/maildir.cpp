// maildir.cpp — Maildir delivery (see maildir.h for the protocol and the file name).
//
// Each step of D. J. Bernstein's recipe, plus the fsyncs it leaves implicit: the file is
// fsynced before it is linked into new/, and new/ is fsynced before deliver() reports
// kDelivered, because the scheduler then removes the spool file (RFC 5321 §4.5.4, §6.1).
// Content is copied segment by segment (queue::MessageReader says where it lies in the spool
// file) with base::copy_file_part (copy_file_range(2), or a buffer where the kernel cannot),
// never held whole in memory; a message finished from memory is written with writev(2). Lines keep
// the CRLF of SMTP: Dovecot reads both.
#include "delivery/maildir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

#include "base/ascii.h"
#include "base/file_copy.h"
#include "base/file_sync.h"
#include "base/file_write.h"
#include "queue/message_reader.h"

namespace delivery {
namespace {

using queue::DeliveryResult;
using queue::DeliveryStatus;

constexpr std::string_view kTransport = "maildir";

std::string errno_text(int error_number) {
  char buffer[256];
  return strerror_r(error_number, buffer, sizeof buffer);  // GNU variant: thread-safe
}

std::string system_error(std::string_view what, const std::string& path, int error_number) {
  return std::string(what) + " " + path + ": " + errno_text(error_number);
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  int release() { return std::exchange(fd_, -1); }
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes now, reporting the error of close(2) (a deferred write error on some filesystems).
  int close() {
    int result = ::close(fd_);
    fd_ = -1;
    return result == 0 || errno == EINTR ? 0 : errno;
  }

 private:
  int fd_;
};

// A name that stays one directory level below its parent: not empty, no '/', no NUL or
// other control byte, not "." / ".." nor any hidden name (leading '.'), within NAME_MAX.
bool is_safe_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '.') return false;
  return std::none_of(name.begin(), name.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '/' || c < 0x20 || c == 0x7F;
  });
}

struct MailboxName {
  std::string domain;
  std::string local;
};

// "local@domain" → the two directory names. A quoted local part (RFC 5321 §4.1.2) loses
// its quotes and quoted-pair backslashes; the result must still be a safe name.
base::Expected<MailboxName, std::string> split_address(std::string_view address) {
  std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) {
    // XXX: a bare "Postmaster" (RFC 5321 §4.1.1.3) must be resolved to a domain before.
    return base::unexpected("address '" + std::string(address) + "' has no domain");
  }
  std::string_view local = address.substr(0, at);
  std::string_view domain = address.substr(at + 1);
  MailboxName name;
  if (local.size() >= 2 && local.front() == '"' && local.back() == '"') {
    std::string_view inner = local.substr(1, local.size() - 2);
    for (std::size_t i = 0; i < inner.size(); ++i) {
      if (inner[i] == '\\') {
        if (++i == inner.size()) return base::unexpected(std::string("bad quoted local part"));
      }
      name.local += inner[i];
    }
  } else {
    name.local = std::string(local);
  }
  // XXX: the local part is used as given (RFC 5321 §2.4: it is case-sensitive); aliases and
  // case folding come with the user store.
  if (!is_safe_name(name.local)) {
    return base::unexpected("local part of '" + std::string(address) + "' cannot name a mailbox");
  }
  name.domain = base::ascii_lowercase(domain);  // RFC 5321 §2.4
  if (!is_safe_name(name.domain)) {
    return base::unexpected("domain of '" + std::string(address) + "' cannot name a mailbox");
  }
  return name;
}

// mkdir with mode 0700; when it creates the directory it fsyncs the parent, so the new
// entry is as durable as the files that will be linked under it.
base::Expected<base::Ok, std::string> make_directory(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0) {
    if (errno != EEXIST) return base::unexpected(system_error("mkdir", path, errno));
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
      return base::unexpected(system_error("stat", path, errno));
    }
    if (!S_ISDIR(status.st_mode)) return base::unexpected(system_error("mkdir", path, ENOTDIR));
    return base::Ok{};
  }
  std::size_t slash = path.rfind('/');
  std::string parent = slash == std::string::npos ? "." : path.substr(0, slash);
  if (parent.empty()) parent = "/";
  UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd.valid()) return base::unexpected(system_error("open", parent, errno));
  if (::fsync(parent_fd.get()) != 0) {
    return base::unexpected(system_error("fsync", parent, errno));
  }
  return base::Ok{};
}

// mail_root (with its parents), <domain>, <local>, then tmp/ new/ cur/.
base::Expected<base::Ok, std::string> make_mailbox(const std::string& mail_root,
                                                   const MailboxName& name) {
  for (std::size_t slash = mail_root.find('/', 1);; slash = mail_root.find('/', slash + 1)) {
    std::string prefix = mail_root.substr(0, slash);
    if (auto made = make_directory(prefix); !made) return made;
    if (slash == std::string::npos) break;
  }
  std::string domain = mail_root + "/" + name.domain;
  std::string mailbox = domain + "/" + name.local;
  for (const std::string& path :
       {domain, mailbox, mailbox + "/tmp", mailbox + "/new", mailbox + "/cur"}) {
    if (auto made = make_directory(path); !made) return made;
  }
  return base::Ok{};
}

// The Maildir++ folder <mailbox>/.<folder> of an existing mailbox: the directory, an empty
// "maildirfolder" file (how Dovecot and Courier tell a folder from a mailbox), then tmp/ new/
// cur/ last, so that a folder with those has its marker. Modes as the mailbox's own.
base::Expected<base::Ok, std::string> make_folder(const std::string& folder_path) {
  if (auto made = make_directory(folder_path); !made) return made;
  const std::string marker = folder_path + "/maildirfolder";
  UniqueFd marker_fd(::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!marker_fd.valid()) return base::unexpected(system_error("create", marker, errno));
  if (int error = marker_fd.close()) return base::unexpected(system_error("close", marker, error));
  for (const std::string& path :
       {folder_path + "/tmp", folder_path + "/new", folder_path + "/cur"}) {
    if (auto made = make_directory(path); !made) return made;
  }
  return base::Ok{};
}

std::string escape_hostname(std::string_view hostname) {
  std::string out;
  for (char c : hostname) {
    if (c == '/') {
      out += "\\057";
    } else if (c == ':') {
      out += "\\072";
    } else if (c == ',') {
      out += "\\054";  // keeps Dovecot's ",S=" field unambiguous
    } else {
      out += c;
    }
  }
  return out.empty() ? "localhost" : out;
}

// new/<name> exists, or cur/<name> followed by ':' (the info "2,<flags>") or ',' (a field a
// mail reader added, such as Dovecot's ",W=").
base::Expected<bool, std::string> already_delivered(int new_fd, const std::string& cur_path,
                                                    const std::string& name, bool scan_cur) {
  struct stat status {};
  if (::fstatat(new_fd, name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0) return true;
  if (errno != ENOENT) return base::unexpected(system_error("stat", "new/" + name, errno));
  // Only a message recovered after a crash can have been delivered and then moved to cur/
  // by a mail reader; in the normal path skip the O(mailbox) scan.
  if (!scan_cur) return false;
  DIR* cur = ::opendir(cur_path.c_str());
  if (cur == nullptr) return base::unexpected(system_error("opendir", cur_path, errno));
  bool found = false;
  while (const dirent* entry = ::readdir(cur)) {
    std::string_view entry_name = entry->d_name;
    if (entry_name.size() >= name.size() && entry_name.substr(0, name.size()) == name &&
        (entry_name.size() == name.size() || entry_name[name.size()] == ':' ||
         entry_name[name.size()] == ',')) {
      found = true;
      break;
    }
  }
  ::closedir(cur);
  return found;
}

int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return 0;
}

// pieces, in order, with as few writev(2) calls as the kernel allows (one, for a file
// system's usual write); pieces is consumed. 0 or the errno.
int write_pieces(int fd, std::span<iovec> pieces) {
  while (!pieces.empty()) {
    ssize_t written = ::writev(fd, pieces.data(), static_cast<int>(pieces.size()));
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    auto left = static_cast<std::size_t>(written);
    while (!pieces.empty() && left >= pieces.front().iov_len) {
      left -= pieces.front().iov_len;
      pieces = pieces.subspan(1);
    }
    if (!pieces.empty()) {
      pieces.front().iov_base = static_cast<char*>(pieces.front().iov_base) + left;
      pieces.front().iov_len -= left;
    }
  }
  return 0;
}

// Whether the header section of the message holds "Delivered-To: <address>" (compared
// case-insensitively, blanks and a folded line allowed). Reads at most 256 KiB of header.
base::Expected<bool, queue::SpoolError> carries_delivered_to(queue::MessageReader& reader,
                                                             std::string_view address) {
  constexpr std::size_t kMaxHeader = 256 * 1024;
  std::string header;
  char buffer[8192];
  while (header.size() < kMaxHeader) {
    auto got = reader.read(std::span<char>(buffer, sizeof buffer));
    if (!got) return base::unexpected(got.error());
    if (*got == 0) break;
    header.append(buffer, *got);
    if (header.starts_with("\r\n") || header.find("\r\n\r\n") != std::string::npos) break;
  }
  std::size_t end = header.starts_with("\r\n") ? 0 : header.find("\r\n\r\n");
  if (end != std::string::npos) header.resize(end + 2);
  constexpr std::string_view kField = "delivered-to:";
  std::size_t position = 0;
  while (position < header.size()) {
    std::size_t line_end = header.find("\r\n", position);
    if (line_end == std::string::npos) line_end = header.size();
    std::string_view line(header.data() + position, line_end - position);
    position = line_end + 2;
    if (line.size() < kField.size() ||
        !base::equals_ignoring_case(line.substr(0, kField.size()), kField)) {
      continue;
    }
    std::string value(line.substr(kField.size()));
    // A folded value continues on lines that start with a blank (RFC 5322 §2.2.3).
    while (position < header.size() && (header[position] == ' ' || header[position] == '\t')) {
      std::size_t next = header.find("\r\n", position);
      if (next == std::string::npos) next = header.size();
      value.append(header, position, next - position);
      position = next + 2;
    }
    std::string_view trimmed = value;
    while (!trimmed.empty() &&
           (trimmed.front() == ' ' || trimmed.front() == '\t' || trimmed.front() == '<')) {
      trimmed.remove_prefix(1);
    }
    while (!trimmed.empty() &&
           (trimmed.back() == ' ' || trimmed.back() == '\t' || trimmed.back() == '>')) {
      trimmed.remove_suffix(1);
    }
    if (base::equals_ignoring_case(trimmed, address)) return true;
  }
  return false;
}

DeliveryResult transient(std::string detail) {
  return DeliveryResult{DeliveryStatus::kTransient, std::move(detail), std::string(kTransport)};
}

DeliveryResult permanent(std::string detail) {
  return DeliveryResult{DeliveryStatus::kPermanent, std::move(detail), std::string(kTransport)};
}

thread_local MaildirBatch* open_batch = nullptr;

}  // namespace

MaildirBatch::MaildirBatch(std::uint64_t unwritten_max) : unwritten_max_(unwritten_max) {
  open_batch = this;
}

MaildirBatch::~MaildirBatch() {
  for (Open& open : open_) {
    if (open.file_fd >= 0) {
      ::close(open.file_fd);
      if (!completed_) ::unlinkat(open.tmp_dir_fd, open.name.c_str(), 0);
    }
  }
  for (Box& box : boxes_) {
    if (box.tmp_dir_fd >= 0) ::close(box.tmp_dir_fd);
    if (box.new_dir_fd >= 0) ::close(box.new_dir_fd);
  }
  if (open_batch == this) open_batch = nullptr;
}

MaildirBatch* MaildirBatch::current() {
  return open_batch;
}

std::pair<int, int> MaildirBatch::directories(std::string_view box) const {
  for (const Box& known : boxes_) {
    if (known.path == box) return {known.tmp_dir_fd, known.new_dir_fd};
  }
  return {-1, -1};
}

void MaildirBatch::stage(Copy copy, int file_fd, std::string_view box, int tmp_dir_fd,
                         int new_dir_fd, std::string name) {
  if (tmp_dir_fd >= 0) boxes_.push_back(Box{std::string(box), tmp_dir_fd, new_dir_fd});
  const auto [tmp_fd, new_fd] = directories(box);
  copies_.push_back(std::move(copy));
  open_.push_back(Open{file_fd, tmp_fd, new_fd, std::move(name)});
}

// How one syncfs of the first file's file system may make every file durable (kNever: it may
// not): more than one file, all on that file system, one where syncfs may stand for fsyncs
// (base::syncfs_use), and little unwritten data in the system.
base::SyncfsUse MaildirBatch::sync_together_pays() const {
  if (open_.size() < 2 || boxes_.empty()) return base::SyncfsUse::kNever;
  // A file is on the file system of the directory it was made in: one fstat a mailbox, not
  // one a file.
  struct stat first {};
  if (::fstat(boxes_.front().tmp_dir_fd, &first) != 0) return base::SyncfsUse::kNever;
  for (std::size_t i = 1; i < boxes_.size(); ++i) {
    struct stat status {};
    if (::fstat(boxes_[i].tmp_dir_fd, &status) != 0 || status.st_dev != first.st_dev)
      return base::SyncfsUse::kNever;
  }
  if (base::unwritten_bytes() >= unwritten_max_) return base::SyncfsUse::kNever;
  return base::syncfs_use(open_[0].file_fd);
}

void MaildirBatch::complete() {
  open_batch = nullptr;  // no more staging: what comes later delivers on its own
  completed_ = true;
  // 1. every file's data and inode: one syncfs for them all, through the file staged first, so
  //    that a write error since it was opened is reported (Linux 5.8: syncfs returns the
  //    writeback errors of the file system since the descriptor was opened), and where the
  //    file system has no journal, an fdatasync of that file: the flush that covers the
  //    inode and directory blocks syncfs waited for after its own (base/file_sync.h). When
  //    either fails, or syncfs does not pay, an fsync each (which also tells which failed).
  //    A failed fdatasync is the first file's failure: it has reported that file's write
  //    error, which a second sync of the same file would no longer see. Writeback starts
  //    here, not as each copy is written: syncfs writes all the files in one plugged pass
  //    (8 % less server CPU a message at 100 x 8 than a sync_file_range a copy, which sent
  //    each file to the disk as its own request); before fsyncs of several files, one
  //    sync_file_range each first puts all of them in flight, so that each fsync does not
  //    wait for its own file's writes alone;
  const base::SyncfsUse use = sync_together_pays();
  synced_together_ = use != base::SyncfsUse::kNever && ::syncfs(open_[0].file_fd) == 0;
  if (!synced_together_ && open_.size() > 1) {
    for (const Open& open : open_)
      ::sync_file_range(open.file_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  int flush_error = 0;
  if (synced_together_ && use == base::SyncfsUse::kThenFlush &&
      ::fdatasync(open_[0].file_fd) != 0) {
    flush_error = errno;
    synced_together_ = false;
  }
  for (std::size_t i = 0; i < open_.size(); ++i) {
    Open& open = open_[i];
    const char* call = "fdatasync";
    int error = i == 0 ? flush_error : 0;
    if (error == 0 && !synced_together_ && ::fsync(open.file_fd) != 0) {
      call = "fsync";
      error = errno;
    }
    if (::close(open.file_fd) != 0 && error == 0 && errno != EINTR) {
      call = "close";
      error = errno;
    }
    open.file_fd = -1;
    if (error != 0) {
      const std::string& path = copies_[i].path;
      copies_[i].error =
          system_error(call, path.substr(0, path.rfind("/new/")) + "/tmp/" + open.name, error);
      ::unlinkat(open.tmp_dir_fd, open.name.c_str(), 0);
    }
  }
  // 2. each into new/, never over a file there (Maildir::deliver);
  for (std::size_t i = 0; i < open_.size(); ++i) {
    Open& open = open_[i];
    if (!copies_[i].error.empty()) continue;
    if (base::rename_no_replace(open.tmp_dir_fd, open.name.c_str(), open.new_dir_fd,
                                open.name.c_str()) != 0) {
      copies_[i].error = system_error("rename", copies_[i].path, errno);
      ::unlinkat(open.tmp_dir_fd, open.name.c_str(), 0);
    }
  }
  // 3. each new/ once. A failed sync takes its copies out again: the queue then delivers
  //    them afresh (a copy left in new/ would count as delivered without its sync).
  auto directory_of = [this](std::size_t i) {
    const std::string_view path = copies_[i].path;
    return path.substr(0, path.rfind('/'));
  };
  for (std::size_t i = 0; i < open_.size(); ++i) {
    if (!copies_[i].error.empty()) continue;
    const std::string_view directory = directory_of(i);
    bool synced_before = false;  // by an earlier copy into the same new/
    for (std::size_t k = 0; k < i && !synced_before; ++k)
      synced_before = copies_[k].error.empty() && directory_of(k) == directory;
    if (synced_before) continue;
    if (::fsync(open_[i].new_dir_fd) == 0) continue;
    const std::string failure = system_error("fsync", std::string(directory), errno);
    for (std::size_t j = i; j < open_.size(); ++j) {
      if (!copies_[j].error.empty() || directory_of(j) != directory) continue;
      ::unlinkat(open_[j].new_dir_fd, open_[j].name.c_str(), 0);
      copies_[j].error = failure;
    }
  }
}

Maildir::Maildir(std::string mail_root, std::string hostname)
    : mail_root_(std::move(mail_root)), hostname_(std::move(hostname)) {
  while (mail_root_.size() > 1 && mail_root_.back() == '/')
    mail_root_.pop_back();
}

std::string Maildir::mailbox_path(const std::string& mail_root, const std::string& address) {
  auto name = split_address(address);
  if (!name) return std::string();
  return mail_root + "/" + name->domain + "/" + name->local;
}

base::Expected<base::Ok, std::string> Maildir::ensure_mailbox(const std::string& address) {
  auto name = split_address(address);
  if (!name) return base::unexpected(name.error());
  return make_mailbox(mail_root_, *name);
}

std::string Maildir::file_name(std::int64_t received_unix, const std::string& id,
                               std::size_t recipient_index, const std::string& hostname,
                               std::uint64_t size) {
  return std::to_string(received_unix) + ".Q" + id + "R" + std::to_string(recipient_index) + "." +
         escape_hostname(hostname) + ",S=" + std::to_string(size);
}

DeliveryResult Maildir::deliver(const queue::StoredMessage& message, std::size_t recipient_index) {
  const auto& recipients = message.envelope.recipients;
  if (recipient_index >= recipients.size()) {
    return permanent("message " + message.id + " has no recipient #" +
                     std::to_string(recipient_index));
  }
  auto name = split_address(recipients[recipient_index].address);
  if (!name) return permanent(name.error());
  if (!message.folder.empty() && !queue::Spool::is_valid_folder(message.folder)) {
    return permanent("folder '" + message.folder + "' cannot name a Maildir folder");
  }
  if (!queue::Spool::is_valid_id(message.id)) {
    return permanent("queue id '" + message.id + "' cannot be part of a file name");
  }
  const std::string& reverse_path = message.envelope.reverse_path;
  if (reverse_path.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    return permanent("reverse-path contains a line break");
  }
  // RFC 5321 §4.4: the final delivery inserts the return-path line at the beginning; then,
  // as Postfix does, "Delivered-To: <mailbox>", the final address, which also catches loops:
  // a message that already carries ours came back (an alias or a forward elsewhere).
  const std::string mailbox_address = name->local + "@" + name->domain;
  const std::string return_path =
      "Return-Path: <" + reverse_path + ">\r\nDelivered-To: " + mailbox_address + "\r\n";

  auto source = queue::MessageReader::open(message);
  if (!source) {
    const queue::SpoolError& error = source.error();
    return error.transient ? transient(error.message) : permanent(error.message);
  }
  auto looped = carries_delivered_to(*source, mailbox_address);
  if (!looped)
    return looped.error().transient ? transient(looped.error().message)
                                    : permanent(looped.error().message);
  if (*looped) {
    return DeliveryResult{DeliveryStatus::kPermanent,
                          "mail loop: the message already has Delivered-To: " + mailbox_address,
                          std::string(kTransport), "5.4.6"};
  }
  const std::uint64_t content_size = source->size();
  const std::string file = file_name(message.received_unix, message.id, recipient_index, hostname_,
                                     return_path.size() + content_size);

  const std::string mailbox = mail_root_ + "/" + name->domain + "/" + name->local;
  // Maildir++: the folder "Junk" is the directory ".Junk" of the mailbox (INBOX without one).
  std::string box = message.folder.empty() ? mailbox : mailbox + "/." + message.folder;
  if (message.folder_if_exists && box != mailbox) {
    // A +detail folder is used when its owner made it (Dovecot's default too); a sender
    // cannot create one directory per address variant.
    struct stat folder_status {};
    if (::stat(box.c_str(), &folder_status) != 0 || !S_ISDIR(folder_status.st_mode)) box = mailbox;
  }
  const std::string tmp_path = box + "/tmp";
  const std::string new_path = box + "/new";
  const std::string cur_path = box + "/cur";
  // The usual case: the mailbox exists (a batch may have its directories open already).
  // Otherwise create it (first delivery), then retry.
  MaildirBatch* batch = MaildirBatch::current();
  if (batch != nullptr && batch->copies().size() >= MaildirBatch::kMaxCopies) batch = nullptr;
  UniqueFd tmp_dir;
  UniqueFd new_dir;
  auto [tmp_fd, new_fd] = batch != nullptr ? batch->directories(box) : std::pair<int, int>{-1, -1};
  for (int pass = 0; pass < 2 && tmp_fd < 0; ++pass) {
    tmp_dir = UniqueFd(::open(tmp_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    new_dir = UniqueFd(::open(new_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat cur_status {};
    if (tmp_dir.valid() && new_dir.valid() && ::stat(cur_path.c_str(), &cur_status) == 0) {
      tmp_fd = tmp_dir.get();
      new_fd = new_dir.get();
      break;
    }
    if (pass == 1 || errno != ENOENT) {
      return transient(system_error("open", box + "/{tmp,new,cur}", errno));
    }
    if (auto made = make_mailbox(mail_root_, *name); !made) return transient(made.error());
    if (box != mailbox) {
      if (auto made = make_folder(box); !made) return transient(made.error());
    }
  }

  // The name is the same for every attempt of this copy, so an earlier attempt's copy is found
  // by it. A message at its first delivery has no earlier copy (its id is new): that look,
  // a lookup that misses in new/, is spared on the path of every message delivered at
  // acceptance.
  if (!message.never_delivered) {
    auto delivered = already_delivered(new_fd, cur_path, file, message.recovered);
    if (!delivered) return transient(delivered.error());
    if (*delivered) {
      return DeliveryResult{DeliveryStatus::kDelivered, box + ": already delivered as " + file,
                            std::string(kTransport)};
    }
  }

  // A tmp/<file> left by a crash is truncated and written again (same name: same content).
  const std::string tmp_file = tmp_path + "/" + file;
  UniqueFd target(
      ::openat(tmp_fd, file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!target.valid()) return transient(system_error("create", tmp_file, errno));
  auto fail = [&](std::string_view what, int error_number) {
    ::unlinkat(tmp_fd, file.c_str(), 0);
    return transient(system_error(what, tmp_file, error_number));
  };
  if (source->file_descriptor() < 0) {
    // A message in memory (finished from its writer's buffer, delivery at acceptance): the
    // return path and the content's pieces with writev(2), one call for the usual few.
    const std::string_view bytes = source->file_bytes();
    std::array<iovec, 8> pieces{};
    pieces[0] = iovec{const_cast<char*>(return_path.data()), return_path.size()};
    std::size_t count = 1;
    for (const queue::ContentSegment& segment : source->segments()) {
      if (count == pieces.size()) {
        if (int error = write_pieces(target.get(), pieces)) return fail("write", error);
        count = 0;
      }
      pieces[count++] = iovec{const_cast<char*>(bytes.data() + segment.offset),
                              static_cast<std::size_t>(segment.length)};
    }
    if (int error = write_pieces(target.get(), std::span<iovec>(pieces.data(), count))) {
      return fail("write", error);
    }
  } else {
    if (int error = write_all(target.get(), return_path)) return fail("write", error);
    std::uint64_t written = return_path.size();
    for (const queue::ContentSegment& segment : source->segments()) {
      if (!base::copy_file_part(source->file_descriptor(), segment.offset, target.get(), written,
                                segment.length)) {
        return fail("write", errno);
      }
      written += segment.length;
    }
  }
  if (batch != nullptr) {
    // Durable later, with the batch's other copies (MaildirBatch::complete).
    const std::string final_path = new_path + "/" + file;
    batch->stage(MaildirBatch::Copy{message.id, recipient_index, final_path, {}}, target.release(),
                 box, tmp_dir.release(), new_dir.release(), file);
    return DeliveryResult{DeliveryStatus::kDelivered, final_path, std::string(kTransport)};
  }
  if (::fsync(target.get()) != 0) return fail("fsync", errno);
  if (int error = target.close()) return fail("close", error);

  // The Maildir spec moves tmp/ → new/ with link(2) so as never to replace a file; rename
  // without replacing does the same in one step (no unlink of tmp/ afterwards). The name is
  // the same for every attempt of a copy and was checked absent above, unless the message is
  // at its first delivery: then only an id used twice (a clock stepped back across a restart,
  // and the counter and random part alike) could find it taken, and the file there stays.
  if (base::rename_no_replace(tmp_fd, file.c_str(), new_fd, file.c_str()) != 0) {
    return fail("rename", errno);
  }
  if (::fsync(new_fd) != 0) return transient(system_error("fsync", new_path, errno));
  return DeliveryResult{DeliveryStatus::kDelivered, new_path + "/" + file, std::string(kTransport)};
}

}  // namespace delivery
