// spool.cpp — the durable spool: tmp/<id> while receiving, queue/<id> once committed.
//
// Invariants: a file reaches queue/ only through publish() after its data was fsynced and
// its descriptor closed without error; commit() reports success only after queue/ itself
// was fsynced (RFC 5321 §4.5.4 / §6.1: no mail may be lost once 250 is sent). Any failed
// write, fsync or close removes the file and fails the commit, like Postfix's
// global/mail_stream.c (not OpenSMTPD's queue_fs.c, not chasquid's safeio).
//
// File format, version 2 (written), or 3 when a check changed the envelope or chose a Maildir
// folder — version 1 is
// still read, so that messages queued by an older smtpsd deliver after an upgrade. A header
// of '\n'-terminated lines, a blank line, the content as appended (CRLF as received,
// Received header first), then the late header section, then (version 3 only) the late
// envelope:
//
//   smtpsd-spool 2|3                    always the first line; another version is refused
//   layout <content> <replaced> <late>  always the second line (versions 2, 3): three
//                                       decimals of exactly 20 digits, zero-padded
//   id <id>                             must equal the file name
//   received <unix seconds>
//   helo <field>
//   esmtp 0|1
//   from <field>                        reverse-path; the null path <> is "-" (empty)
//   body unspecified|7bit|8bitmime|binarymime
//   smtputf8 0|1
//   size <decimal>|-                    SIZE= (RFC 1870), "-" when absent
//   ret unspecified|full|headers        RET= (RFC 3461 §4.3)
//   envid <field>                       ENVID= (RFC 3461 §4.4), decoded
//   authenticated 1                     only when the session had authenticated (optional)
//   user <field>                        who had authenticated (optional; absent in older
//                                       files): Envelope::authenticated_user
//   requiretls 1                        only when MAIL had REQUIRETLS (RFC 8689 §2; optional)
//   recipients <count>
//   rcpt <address> <notify> <orcpt>     <count> lines, in RCPT order (RFC 3461 §4.1, §4.2);
//        [expanded]                     a fourth field "expanded" marks the record of an alias
//                                       expanded with NOTIFY=SUCCESS (smtp::Recipient)
//   <empty line>
//   <content octets>                    what append() wrote (after truncate_content)
//   <late octets>                       the header section of replace_header_section()
//   from <field>                        version 3 only, to the end of the file: the envelope
//   recipients <count>                  of replace_envelope(), in the header's encoding; it
//   rcpt <address> <notify> <orcpt>     takes the place of the header's from and rcpt lines
//   folder <field>                      version 3 only: the Maildir++ folder of set_folder()
//   tls_optional 1                      version 3 only: set_tls_optional() ("TLS-Required:
//                                       No", RFC 8689 §3)
//   notice <id> <field>...              version 3 only, last: set_notice(), a DSN about the
//                                       message <id>, and the lines of that message's state it
//                                       stands for, one field each; each of the four parts may
//                                       be absent, not all of them
//
// The layout line is written as zeros by begin() and overwritten in place, with the same
// length, by flush_and_sync() before its fsync (and with it the version line, "2" becoming
// "3" when there is a late envelope: same length again); then the file ends exactly after
// the late section, or for version 3 the late envelope runs from there to the end of the
// file (at most 4 MiB, at least one recipient). The message as delivered is the late section, then
// the content from octet <replaced> on: nothing received is ever moved. <replaced> is at most
// <content>. Version 1 has no layout line: the content runs from the blank line to the end
// of the file.
//
// A <field> is percent-encoded: every byte that is '%', a space, a control character, DEL
// or not ASCII (UTF-8 of RFC 6531) is written as %XX, so a field never contains a space or
// a newline; an empty field is "-" and a field that is exactly "-" is "%2D". Every key
// appears exactly once (rcpt exactly <count> times); an unknown key, a missing key, a bad
// escape, a layout that does not match the file's size or a header over 4 MiB makes load()
// refuse the file as corrupt (begin() refuses to write one).
#include "queue/spool.h"

#include "base/file_write.h"
#include "obs/log.h"
#include "queue/spool_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <utility>

namespace queue {
namespace {

constexpr std::size_t kWriteBufferSize = 64 * 1024;
// spare/ (Spool::remove): how many files it keeps, and the largest it keeps (its blocks are
// held until begin() reuses it).
constexpr std::size_t kMaxSpares = 32;
constexpr std::uint64_t kSpareMaxSize = 64 * 1024;
constexpr std::size_t kMaxHeaderSize = 4 * 1024 * 1024;
constexpr std::string_view kVersion1Line = "smtpsd-spool 1";
constexpr std::string_view kVersionLine = "smtpsd-spool 2";
// Written over kVersionLine when the writer has a late envelope (same length).
constexpr std::string_view kVersion3Line = "smtpsd-spool 3";
constexpr std::string_view kLayoutKey = "layout ";
constexpr std::size_t kLayoutDigits = 20;  // UINT64_MAX has 20 decimal digits
// A notice's state lines (SpoolWriter::set_notice): how many, and how long each.
constexpr std::size_t kMaxNoticeLines = 1000;
constexpr std::size_t kMaxNoticeLine = 1000;
// A notice id: the original's, this separator, then kNoticeSuffixLength fresh characters.
constexpr char kNoticeSeparator = 'N';
constexpr std::size_t kNoticeSuffixLength = 8;
constexpr std::size_t kMaxIdLength = 64;
// flush_and_sync() writes the version and layout lines over begin()'s, in place.
static_assert(kVersion3Line.size() == kVersionLine.size());
// Those two lines: the start of every spool file, rewritten last.
constexpr std::size_t kStartSize =
    kVersionLine.size() + 1 + kLayoutKey.size() + 3 * (kLayoutDigits + 1);

struct Layout {
  std::uint64_t content = 0;   // octets of content after the blank line
  std::uint64_t replaced = 0;  // leading octets of it that the late section replaces
  std::uint64_t late = 0;      // octets of the late section, after the content
  bool late_envelope = false;  // version 3: a late envelope follows (not in the layout line)
};

// "layout <20 digits> <20 digits> <20 digits>\n": always the same length (70 octets).
std::string format_layout(const Layout& layout) {
  std::string line(kLayoutKey);
  for (std::uint64_t value : {layout.content, layout.replaced, layout.late}) {
    char digits[kLayoutDigits];
    for (std::size_t i = kLayoutDigits; i-- > 0;) {
      digits[i] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
    line.append(digits, kLayoutDigits);
    line += ' ';
  }
  line.back() = '\n';
  return line;
}

std::string errno_text(int error_number) {
  char buffer[256];
  // GNU strerror_r (g++ defines _GNU_SOURCE): returns the text, thread-safe.
  return strerror_r(error_number, buffer, sizeof buffer);
}

SpoolError system_error(std::string_view what, const std::string& path, int error_number) {
  return SpoolError{std::string(what) + " " + path + ": " + errno_text(error_number),
                    /*transient=*/true, error_number};
}

base::Unexpected<SpoolError> fail_with(std::string_view what, const std::string& path,
                                       int error_number) {
  return base::unexpected(system_error(what, path, error_number));
}

base::Expected<base::Ok, SpoolError> write_all(int fd, const char* data, std::size_t size,
                                               const std::string& path) {
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return fail_with("write", path, errno);
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
  return base::Ok{};
}

// mkdir -p with mode 0700; fsyncs the parent of every directory it creates so that the
// new entry survives a crash.
base::Expected<base::Ok, SpoolError> make_directories(const std::string& path) {
  std::size_t position = 0;
  while (position != std::string::npos) {
    position = path.find('/', position + 1);
    std::string prefix = path.substr(0, position);
    if (prefix.empty()) continue;
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      std::size_t slash = prefix.rfind('/');
      std::string parent = slash == std::string::npos ? "." : prefix.substr(0, slash);
      if (parent.empty()) parent = "/";
      int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (parent_fd < 0) return fail_with("open", parent, errno);
      int result = ::fsync(parent_fd);
      int saved = errno;
      ::close(parent_fd);
      if (result != 0) return fail_with("fsync", parent, saved);
    } else if (errno != EEXIST) {
      return fail_with("mkdir", prefix, errno);
    }
  }
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) return fail_with("stat", path, errno);
  if (!S_ISDIR(status.st_mode)) return fail_with("open", path, ENOTDIR);
  return base::Ok{};
}

std::vector<std::string> read_directory(const std::string& path) {
  std::vector<std::string> names;
  DIR* directory = ::opendir(path.c_str());
  if (directory == nullptr) return names;
  while (const dirent* entry = ::readdir(directory)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  ::closedir(directory);
  return names;
}

// A state file (Spool::append_state) whose last line has no '\n' — torn by a power cut, or
// ending in the zeros of a page that never got its data — is truncated after its last '\n',
// so that the next line appended starts a line of its own instead of joining the torn one
// (which would lose it: read_state() would see "faifailed 0"). Not synced: if the truncation
// is lost, the next start cuts again; Spool::sync_state() makes it durable with the lines
// after it.
base::Expected<base::Ok, SpoolError> cut_torn_line(int state_dir_fd, const std::string& name,
                                                   const std::string& state_dir) {
  const std::string path = state_dir + "/" + name;
  int fd = ::openat(state_dir_fd, name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? base::Expected<base::Ok, SpoolError>(base::Ok{})
                           : fail_with("open", path, errno);
  // From the end backwards, a block at a time: a whole last line (the usual case) costs one
  // read of its last block, and nothing is kept in memory.
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    int saved = errno;
    ::close(fd);
    return fail_with("stat", path, saved);
  }
  std::array<char, 4096> block;
  off_t end = status.st_size;
  off_t keep = 0;  // after the last '\n', or 0 when there is none
  bool whole = end == 0;
  while (end > 0 && !whole) {
    const off_t from =
        end > static_cast<off_t>(block.size()) ? end - static_cast<off_t>(block.size()) : 0;
    const ssize_t got = ::pread(fd, block.data(), static_cast<std::size_t>(end - from), from);
    if (got < 0 && errno == EINTR) continue;
    if (got != end - from) {
      int saved = got < 0 ? errno : EIO;
      ::close(fd);
      return fail_with("read", path, saved);
    }
    if (end == status.st_size && block[static_cast<std::size_t>(got) - 1] == '\n') {
      whole = true;
      break;
    }
    const char* newline =
        static_cast<const char*>(::memrchr(block.data(), '\n', static_cast<std::size_t>(got)));
    if (newline != nullptr) {
      keep = from + (newline - block.data()) + 1;
      break;
    }
    end = from;
  }
  base::Expected<base::Ok, SpoolError> result = base::Ok{};
  if (!whole && ::ftruncate(fd, keep) != 0) result = fail_with("ftruncate", path, errno);
  ::close(fd);
  return result;
}

// --- the header's field encoding -------------------------------------------------------

bool must_escape(unsigned char c) {
  return c <= 0x20 || c >= 0x7F || c == '%';
}

void append_field(std::string& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  if (value.empty()) {
    out += '-';
    return;
  }
  if (value == "-") {
    out += "%2D";
    return;
  }
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (must_escape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> decode_field(std::string_view field) {
  if (field == "-") return std::string();
  if (field.empty()) return std::nullopt;
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    auto c = static_cast<unsigned char>(field[i]);
    if (c == '%') {
      if (i + 2 >= field.size()) return std::nullopt;
      int high = hex_value(field[i + 1]);
      int low = hex_value(field[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else if (must_escape(c)) {
      return std::nullopt;  // a raw byte that the writer would have escaped
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

template <typename Integer>
std::optional<Integer> parse_integer(std::string_view text) {
  Integer value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return value;
}

std::string_view to_string(smtp::BodyType body) {
  switch (body) {
    case smtp::BodyType::kUnspecified:
      return "unspecified";
    case smtp::BodyType::k7Bit:
      return "7bit";
    case smtp::BodyType::k8BitMime:
      return "8bitmime";
    case smtp::BodyType::kBinaryMime:
      return "binarymime";
  }
  return "unspecified";
}

std::optional<smtp::BodyType> parse_body(std::string_view name) {
  for (auto body : {smtp::BodyType::kUnspecified, smtp::BodyType::k7Bit, smtp::BodyType::k8BitMime,
                    smtp::BodyType::kBinaryMime}) {
    if (to_string(body) == name) return body;
  }
  return std::nullopt;
}

std::string_view to_string(smtp::DsnReturn ret) {
  switch (ret) {
    case smtp::DsnReturn::kUnspecified:
      return "unspecified";
    case smtp::DsnReturn::kFull:
      return "full";
    case smtp::DsnReturn::kHeaders:
      return "headers";
  }
  return "unspecified";
}

std::optional<smtp::DsnReturn> parse_return(std::string_view name) {
  for (auto ret :
       {smtp::DsnReturn::kUnspecified, smtp::DsnReturn::kFull, smtp::DsnReturn::kHeaders}) {
    if (to_string(ret) == name) return ret;
  }
  return std::nullopt;
}

std::optional<bool> parse_flag(std::string_view text) {
  if (text == "0") return false;
  if (text == "1") return true;
  return std::nullopt;
}

// "\nrcpt ADDRESS NOTIFY ORCPT" for each recipient, as both envelope sections write them.
void append_recipients(std::string& out, const std::vector<smtp::Recipient>& recipients) {
  for (const smtp::Recipient& recipient : recipients) {
    out += "\nrcpt ";
    append_field(out, recipient.address);
    out += ' ';
    append_field(out, recipient.notify);
    out += ' ';
    append_field(out, recipient.original_recipient);
    // A fourth field only for the record of an expansion (smtp::Recipient::expansion_record).
    if (recipient.expansion_record) out += " expanded";
  }
}

std::string format_header(const std::string& id, const smtp::Envelope& envelope,
                          std::int64_t received_unix) {
  std::string out;
  out.reserve(256 + envelope.recipients.size() * 64);
  out += kVersionLine;
  out += '\n';
  out += format_layout(Layout{});  // zeros: flush_and_sync() writes the real one in place
  out += "id ";
  out += id;
  out += "\nreceived ";
  out += std::to_string(received_unix);
  out += "\nhelo ";
  append_field(out, envelope.helo);
  out += "\nesmtp ";
  out += envelope.esmtp ? '1' : '0';
  out += "\nfrom ";
  append_field(out, envelope.reverse_path);
  out += "\nbody ";
  out += to_string(envelope.body);
  out += "\nsmtputf8 ";
  out += envelope.smtputf8 ? '1' : '0';
  out += "\nsize ";
  out += envelope.declared_size ? std::to_string(*envelope.declared_size) : "-";
  out += "\nret ";
  out += to_string(envelope.dsn_return);
  out += "\nenvid ";
  append_field(out, envelope.envelope_id);
  if (envelope.authenticated) out += "\nauthenticated 1";
  if (!envelope.authenticated_user.empty()) {
    out += "\nuser ";
    append_field(out, envelope.authenticated_user);
  }
  if (envelope.require_tls) out += "\nrequiretls 1";
  out += "\nrecipients ";
  out += std::to_string(envelope.recipients.size());
  append_recipients(out, envelope.recipients);
  out += "\n\n";
  return out;
}

// The late envelope of a version 3 file (replace_envelope()).
std::string format_late_envelope(std::string_view reverse_path,
                                 const std::vector<smtp::Recipient>& recipients) {
  std::string out = "from ";
  append_field(out, reverse_path);
  out += "\nrecipients ";
  out += std::to_string(recipients.size());
  append_recipients(out, recipients);
  out += '\n';
  return out;
}

std::vector<std::string_view> split_spaces(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t space = text.find(' ', start);
    parts.push_back(text.substr(start, space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  return parts;
}

// "<20 digits> <20 digits> <20 digits>", the value of a layout line.
std::optional<Layout> parse_layout(std::string_view value) {
  if (value.size() != 3 * kLayoutDigits + 2) return std::nullopt;
  std::array<std::uint64_t, 3> numbers{};
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    std::string_view digits = value.substr(i * (kLayoutDigits + 1), kLayoutDigits);
    if (i > 0 && value[i * (kLayoutDigits + 1) - 1] != ' ') return std::nullopt;
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    auto number = parse_integer<std::uint64_t>(digits);  // refuses a value over UINT64_MAX
    if (!number) return std::nullopt;
    numbers[i] = *number;
  }
  return Layout{numbers[0], numbers[1], numbers[2]};
}

// Parses the header (without the blank line) into message, and the layout line of a
// version 2 file into layout (left empty for version 1). Returns an error text.
std::optional<std::string> parse_header(std::string_view header, StoredMessage& message,
                                        std::optional<Layout>& layout) {
  enum Key {
    kId,
    kReceived,
    kHelo,
    kEsmtp,
    kFrom,
    kBody,
    kSmtpUtf8,
    kSize,
    kRet,
    kEnvid,
    kRecipients,
    kKeyCount
  };
  static constexpr std::array<std::string_view, kKeyCount> kKeys = {
      "id",       "received", "helo", "esmtp", "from",      "body",
      "smtputf8", "size",     "ret",  "envid", "recipients"};
  std::array<bool, kKeyCount> seen{};
  std::optional<std::size_t> expected_recipients;
  smtp::Envelope& envelope = message.envelope;

  std::size_t line_number = 0;
  std::size_t start = 0;
  while (start < header.size()) {
    std::size_t end = header.find('\n', start);
    if (end == std::string_view::npos) end = header.size();
    std::string_view line = header.substr(start, end - start);
    start = end + 1;
    ++line_number;
    auto error = [&](std::string_view what) {
      return "line " + std::to_string(line_number) + ": " + std::string(what);
    };
    if (line_number == 1) {
      if (line == kVersionLine || line == kVersion3Line) {
        layout = Layout{};  // the next line must say where the content lies
        layout->late_envelope = line == kVersion3Line;
      } else if (line != kVersion1Line) {
        return error("not a version 1, 2 or 3 spool file");
      }
      continue;
    }
    if (line_number == 2 && layout) {
      if (!line.starts_with(kLayoutKey)) return error("no layout line");
      const bool late_envelope = layout->late_envelope;
      layout = parse_layout(line.substr(kLayoutKey.size()));
      if (!layout) return error("bad value for 'layout'");
      layout->late_envelope = late_envelope;
      continue;
    }
    std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return error("no value");
    std::string_view key = line.substr(0, space);
    std::string_view value = line.substr(space + 1);

    if (key == "rcpt") {
      if (!expected_recipients) return error("rcpt before recipients");
      std::vector<std::string_view> parts = split_spaces(value);
      const bool record = parts.size() == 4 && parts[3] == "expanded";
      if (parts.size() != 3 && !record) return error("rcpt needs three fields");
      auto address = decode_field(parts[0]);
      auto notify = decode_field(parts[1]);
      auto original = decode_field(parts[2]);
      if (!address || !notify || !original) return error("bad escape in rcpt");
      if (address->empty()) return error("empty recipient address");
      envelope.recipients.push_back(smtp::Recipient{*address, *notify, *original, record});
      if (envelope.recipients.size() > *expected_recipients) return error("too many rcpt");
      continue;
    }
    if (key == "authenticated") {  // optional: absent for an unauthenticated session
      if (value != "1" || envelope.authenticated) return error("bad value for 'authenticated'");
      envelope.authenticated = true;
      continue;
    }
    if (key == "user") {  // optional: absent without a user (and in older files)
      auto user = decode_field(value);
      if (!user || user->empty() || !envelope.authenticated_user.empty())
        return error("bad value for 'user'");
      envelope.authenticated_user = std::move(*user);
      continue;
    }
    if (key == "requiretls") {  // optional: absent without REQUIRETLS (and in older files)
      if (value != "1" || envelope.require_tls) return error("bad value for 'requiretls'");
      envelope.require_tls = true;
      continue;
    }
    auto found = std::find(kKeys.begin(), kKeys.end(), key);
    if (found == kKeys.end()) return error("unknown key '" + std::string(key) + "'");
    auto index = static_cast<std::size_t>(found - kKeys.begin());
    if (seen[index]) return error("duplicate key '" + std::string(key) + "'");
    seen[index] = true;

    bool ok = true;
    switch (static_cast<Key>(index)) {
      case kId:
        ok = value == message.id;
        if (!ok) return error("id does not match the file name");
        break;
      case kReceived: {
        auto received = parse_integer<std::int64_t>(value);
        ok = received.has_value();
        if (ok) message.received_unix = *received;
        break;
      }
      case kHelo: {
        auto helo = decode_field(value);
        ok = helo.has_value();
        if (ok) envelope.helo = std::move(*helo);
        break;
      }
      case kEsmtp: {
        auto flag = parse_flag(value);
        ok = flag.has_value();
        if (ok) envelope.esmtp = *flag;
        break;
      }
      case kFrom: {
        auto from = decode_field(value);
        ok = from.has_value();
        if (ok) envelope.reverse_path = std::move(*from);
        break;
      }
      case kBody: {
        auto body = parse_body(value);
        ok = body.has_value();
        if (ok) envelope.body = *body;
        break;
      }
      case kSmtpUtf8: {
        auto flag = parse_flag(value);
        ok = flag.has_value();
        if (ok) envelope.smtputf8 = *flag;
        break;
      }
      case kSize:
        if (value == "-") {
          envelope.declared_size.reset();
        } else {
          envelope.declared_size = parse_integer<std::uint64_t>(value);
          ok = envelope.declared_size.has_value();
        }
        break;
      case kRet: {
        auto ret = parse_return(value);
        ok = ret.has_value();
        if (ok) envelope.dsn_return = *ret;
        break;
      }
      case kEnvid: {
        auto envid = decode_field(value);
        ok = envid.has_value();
        if (ok) envelope.envelope_id = std::move(*envid);
        break;
      }
      case kRecipients:
        expected_recipients = parse_integer<std::size_t>(value);
        ok = expected_recipients.has_value();
        break;
      case kKeyCount:
        break;
    }
    if (!ok) return error("bad value for '" + std::string(key) + "'");
  }
  if (line_number == 0) return std::string("empty header");
  for (std::size_t i = 0; i < kKeyCount; ++i) {
    if (!seen[i]) return "missing key '" + std::string(kKeys[i]) + "'";
  }
  if (envelope.recipients.size() != *expected_recipients) {
    return std::string("recipient count does not match");
  }
  if (envelope.recipients.empty()) return std::string("no recipients");
  return std::nullopt;
}

// A line of a message's state that a notice may stand for (SpoolWriter::set_notice).
bool is_notice_state_line(std::string_view line) {
  return !line.empty() && line.size() <= kMaxNoticeLine &&
         std::all_of(line.begin(), line.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
}

// "notice <id> <field>..." (without the key): the value of a notice line.
std::optional<std::string> parse_notice(std::string_view value, StoredMessage& message) {
  std::vector<std::string_view> parts = split_spaces(value);
  if (parts.size() < 2 || parts.size() > kMaxNoticeLines + 1 || !Spool::is_valid_id(parts[0])) {
    return std::string("late envelope: bad value for 'notice'");
  }
  std::vector<std::string> lines;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    auto line = decode_field(parts[i]);
    if (!line || !is_notice_state_line(*line)) {
      return std::string("late envelope: bad state line in 'notice'");
    }
    lines.push_back(std::move(*line));
  }
  message.notice_of = std::string(parts[0]);
  message.notice_state = std::move(lines);
  return std::nullopt;
}

// Parses the late envelope of a version 3 file into message: "from", "recipients" and its
// rcpt lines, then "folder", then "tls_optional", then "notice", each part optional but not
// all of them, each line ending in '\n'. Returns an error text.
std::optional<std::string> parse_late_envelope(std::string_view block, StoredMessage& message) {
  if (block.size() > kMaxHeaderSize) return std::string("late envelope over 4 MiB");
  if (!block.ends_with('\n')) return std::string("late envelope: unterminated line");
  std::optional<std::string> from;
  std::optional<std::size_t> expected;
  std::vector<smtp::Recipient> recipients;
  std::optional<std::string> folder;
  bool tls_optional = false;
  bool notice = false;
  std::size_t start = 0;
  while (start < block.size()) {
    std::size_t end = block.find('\n', start);
    std::string_view line = block.substr(start, end - start);
    start = end + 1;
    std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return std::string("late envelope: no value");
    std::string_view key = line.substr(0, space);
    std::string_view value = line.substr(space + 1);
    if (notice) {
      return "late envelope: unexpected key '" + std::string(key) + "' after 'notice'";
    } else if (key == "notice" && (!from || expected)) {
      if (auto error = parse_notice(value, message)) return error;
      notice = true;
    } else if (tls_optional) {
      return "late envelope: unexpected key '" + std::string(key) + "' after 'tls_optional'";
    } else if (key == "tls_optional" && (!from || expected)) {
      if (value != "1") return std::string("late envelope: bad value for 'tls_optional'");
      tls_optional = true;
    } else if (folder) {
      return "late envelope: unexpected key '" + std::string(key) + "' after 'folder'";
    } else if (key == "folder" && (!from || expected)) {
      folder = decode_field(value);
      if (!folder || !Spool::is_valid_folder(*folder)) {
        return std::string("late envelope: bad value for 'folder'");
      }
    } else if (key == "from" && !from && !expected) {
      from = decode_field(value);
      if (!from) return std::string("late envelope: bad value for 'from'");
    } else if (key == "recipients" && from && !expected) {
      expected = parse_integer<std::size_t>(value);
      if (!expected) return std::string("late envelope: bad value for 'recipients'");
    } else if (key == "rcpt" && expected) {
      std::vector<std::string_view> parts = split_spaces(value);
      const bool record = parts.size() == 4 && parts[3] == "expanded";
      if (parts.size() != 3 && !record) {
        return std::string("late envelope: rcpt needs three fields");
      }
      auto address = decode_field(parts[0]);
      auto notify = decode_field(parts[1]);
      auto original = decode_field(parts[2]);
      if (!address || !notify || !original) return std::string("late envelope: bad escape in rcpt");
      if (address->empty()) return std::string("late envelope: empty recipient address");
      if (recipients.size() == *expected) return std::string("late envelope: too many rcpt");
      recipients.push_back(smtp::Recipient{*address, *notify, *original, record});
    } else {
      return "late envelope: unexpected key '" + std::string(key) + "'";
    }
  }
  if (folder) message.folder = std::move(*folder);
  message.tls_optional = tls_optional;
  if (!from && (folder || tls_optional || notice)) return std::nullopt;
  if (!expected) return std::string("late envelope: missing key 'recipients'");
  if (recipients.size() != *expected) {
    return std::string("late envelope: recipient count does not match");
  }
  if (recipients.empty()) return std::string("late envelope: no recipients");
  message.envelope.reverse_path = std::move(*from);
  message.envelope.recipients = std::move(recipients);
  return std::nullopt;
}

SpoolError corrupt(const std::string& path, std::string_view why) {
  return SpoolError{"corrupt spool file " + path + ": " + std::string(why),
                    /*transient=*/false, 0};
}

// --- the writer --------------------------------------------------------------------------

// Whether text is lines that each end in CRLF, with no other CR or LF and no NUL.
bool is_crlf_lines(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\0' || c == '\n') return false;  // a '\n' not preceded by '\r' (see below)
    if (c == '\r') {
      if (i + 1 >= text.size() || text[i + 1] != '\n') return false;
      ++i;  // the LF of this CRLF
    }
  }
  return text.empty() || text.ends_with("\r\n");
}

SpoolError misuse(std::string text) {
  return SpoolError{std::move(text), /*transient=*/false, EINVAL};
}

// A spool file read through fd (taken: closed on failure, else held by the message's file).
base::Expected<StoredMessage, SpoolError> read_spool_file(const std::string& id, int fd,
                                                          const std::string& path);
// The same from the file's bytes, which the message then holds (no file).
base::Expected<StoredMessage, SpoolError> read_spool_memory(const std::string& id,
                                                            std::string_view bytes,
                                                            const std::string& path);

class FileSpoolWriter final : public SpoolWriter {
 public:
  FileSpoolWriter(Spool& spool, std::string id, int tmp_dir_fd, int queue_dir_fd, int state_dir_fd)
      : spool_(spool),
        id_(std::move(id)),
        tmp_path_(spool.tmp_path(id_)),
        tmp_dir_fd_(tmp_dir_fd),
        queue_dir_fd_(queue_dir_fd),
        state_dir_fd_(state_dir_fd) {
    buffer_.reserve(kWriteBufferSize);
  }
  ~FileSpoolWriter() override {
    abort();
    // Only when there is something to give: a writer holding nothing may outlive its spool
    // (tests do), and touches nothing of it here.
    if (memory_taken_ != 0) spool_.give_memory(memory_taken_);
  }

  const std::string& id() const override { return id_; }
  Spool& spool() const override { return spool_; }

  // The envelope header (begin_with_id), before any content.
  base::Expected<base::Ok, SpoolError> write_header(std::string_view header) {
    if (auto written = write_bytes(header); !written) return written;
    header_size_ = header.size();
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> append(std::string_view bytes) override {
    if (state_ != State::kOpen) return not_open("append");
    if (auto written = write_bytes(bytes); !written) return written;
    content_size_ += bytes.size();
    return base::Ok{};
  }

  std::uint64_t content_size() const override { return content_size_; }

  base::Expected<std::shared_ptr<const ContentReader>, SpoolError> content_reader() override {
    if (state_ != State::kOpen) return not_open("content_reader");
    // Flushed, the buffer has made the file (it always holds the envelope header at first).
    if (auto flushed = flush_buffer(); !flushed) return base::unexpected(flushed.error());
    // A descriptor of its own, for reading (the writer's is the writer's: its position).
    int fd = ::openat(tmp_dir_fd_, id_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(system_error("open", tmp_path_, errno));
    return std::make_shared<const ContentReader>(fd, header_size_, content_size_, tmp_path_);
  }

  base::Expected<base::Ok, SpoolError> replace_header_section(
      std::uint64_t original_length, std::string_view new_section) override {
    if (state_ != State::kOpen) return not_open("replace_header_section");
    if (new_section.size() > kMaxHeaderSectionSize) {
      return base::unexpected(misuse("new header section of " + std::to_string(new_section.size()) +
                                     " octets (limit " + std::to_string(kMaxHeaderSectionSize) +
                                     ")"));
    }
    if (!is_crlf_lines(new_section)) {
      return base::unexpected(
          misuse("new header section is not lines ending in CRLF (bare CR or LF, or NUL)"));
    }
    if (original_length > content_size_) {
      return base::unexpected(
          misuse("header section to replace (" + std::to_string(original_length) +
                 " octets) is longer than the content (" + std::to_string(content_size_) + ")"));
    }
    replaced_length_ = original_length;
    late_section_.assign(new_section);
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> truncate_content(std::uint64_t keep) override {
    if (state_ != State::kOpen) return not_open("truncate_content");
    if (keep > content_size_) {
      return base::unexpected(misuse("cannot keep " + std::to_string(keep) + " octets of " +
                                     std::to_string(content_size_) + " octets of content"));
    }
    if (keep < replaced_length_) {
      return base::unexpected(misuse("cannot keep " + std::to_string(keep) +
                                     " octets: the header section to replace has " +
                                     std::to_string(replaced_length_)));
    }
    const std::uint64_t end = header_size_ + keep;
    if (end >= written_size_) {
      buffer_.resize(static_cast<std::size_t>(end - written_size_));  // all still in memory
    } else {
      buffer_.clear();
      tail_crc_valid_ = false;  // what was cut off is in it: the log reads the file back
      if (::ftruncate(fd_, static_cast<off_t>(end)) != 0) {
        return fail(system_error("ftruncate", tmp_path_, errno));
      }
      // The descriptor's position stays where it was: the next write goes to the new end.
      if (::lseek(fd_, static_cast<off_t>(end), SEEK_SET) < 0) {
        return fail(system_error("lseek", tmp_path_, errno));
      }
      written_size_ = end;
    }
    content_size_ = keep;
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> replace_envelope(
      std::string_view reverse_path, const std::vector<smtp::Recipient>& recipients) override {
    if (state_ != State::kOpen) return not_open("replace_envelope");
    if (recipients.empty()) return base::unexpected(misuse("new envelope has no recipients"));
    for (const smtp::Recipient& recipient : recipients) {
      if (recipient.address.empty()) {
        return base::unexpected(misuse("new envelope has an empty recipient address"));
      }
    }
    std::string block = format_late_envelope(reverse_path, recipients);
    if (block.size() > kMaxHeaderSize) {
      return base::unexpected(misuse("new envelope of " + std::to_string(block.size()) +
                                     " octets encoded (limit " + std::to_string(kMaxHeaderSize) +
                                     ")"));
    }
    late_envelope_ = std::move(block);
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> set_folder(std::string_view folder) override {
    if (state_ != State::kOpen) return not_open("set_folder");
    if (!folder.empty() && !Spool::is_valid_folder(folder)) {
      return base::unexpected(misuse("invalid Maildir folder name"));
    }
    late_folder_.clear();
    if (!folder.empty()) {
      late_folder_ = "folder ";
      append_field(late_folder_, folder);
      late_folder_ += '\n';
    }
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> set_tls_optional(bool optional) override {
    if (state_ != State::kOpen) return not_open("set_tls_optional");
    late_tls_optional_ = optional ? "tls_optional 1\n" : "";
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> set_notice(
      std::string_view original_id, const std::vector<std::string>& state_lines) override {
    if (state_ != State::kOpen) return not_open("set_notice");
    if (!Spool::is_valid_id(original_id)) {
      return base::unexpected(misuse("notice about an invalid queue id"));
    }
    if (state_lines.empty() || state_lines.size() > kMaxNoticeLines ||
        !std::all_of(state_lines.begin(), state_lines.end(),
                     [](const std::string& line) { return is_notice_state_line(line); })) {
      return base::unexpected(misuse("a notice stands for 1 to " + std::to_string(kMaxNoticeLines) +
                                     " state lines of 1 to " + std::to_string(kMaxNoticeLine) +
                                     " printable octets"));
    }
    late_notice_ = "notice ";
    late_notice_ += original_id;
    for (const std::string& line : state_lines) {
      late_notice_ += ' ';
      append_field(late_notice_, line);
    }
    late_notice_ += '\n';
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> mark_held() override {
    if (state_ != State::kOpen) return not_open("mark_held");
    held_ = true;
    return base::Ok{};
  }

  bool held() const override { return held_; }

  base::Expected<StoredMessage, SpoolError> finish() override {
    if (state_ != State::kOpen) return not_open("finish");
    if (held_) {
      return base::unexpected(
          SpoolError{"finish on the held message " + id_ + ": a hold goes through the queue",
                     /*transient=*/false, EINVAL});
    }
    if (auto completed = complete(); !completed) return base::unexpected(completed.error());
    state_ = State::kFinished;
    auto message = [this]() -> base::Expected<StoredMessage, SpoolError> {
      // No file: the message is read from a copy of the buffer, which flush_to_log() still
      // logs and writes out if it comes to that.
      if (whole_in_buffer_) return read_spool_memory(id_, buffer_, tmp_path_);
      int reader_fd = ::dup(fd_);
      if (reader_fd < 0) return base::unexpected(system_error("dup", tmp_path_, errno));
      return read_spool_file(id_, reader_fd, tmp_path_);
    }();
    if (!message) return fail(message.error());
    message->never_delivered = true;
    return message;
  }

  void mark_delivered() override {
    if (state_ != State::kFinished) return;
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      spool_.discard_delivered(id_, written_size_);
    }
    state_ = State::kCommitted;
    delivered_ = true;
  }
  bool delivered() const override { return delivered_; }

  base::Expected<base::Ok, SpoolError> log_without_file() override {
    if (state_ != State::kFinished || !whole_in_buffer_ || fd_ >= 0) {
      return base::unexpected(
          SpoolError{"log_without_file on " + id_ + ": only for a message finished from memory",
                     /*transient=*/false, EINVAL});
    }
    auto logged = spool_.log().append_message(id_, buffer_);
    if (!logged) return fail(logged.error());
    ticket_ = *logged;
    logged_ = true;
    without_file_ = true;
    std::string().swap(buffer_);
    if (memory_taken_ != 0) {
      spool_.give_memory(memory_taken_);
      memory_taken_ = 0;
    }
    state_ = State::kSynced;
    return base::Ok{};
  }

  void mark_taken() override {
    if (state_ == State::kPublished || (state_ == State::kSynced && without_file_)) {
      state_ = State::kCommitted;
      taken_ = true;
    }
  }
  bool taken() const override { return taken_; }

  base::Expected<base::Ok, SpoolError> flush_to_log() override {
    if (state_ == State::kOpen) {
      if (auto completed = complete(); !completed) return completed;
    } else if (state_ != State::kFinished) {
      return not_open("flush_to_log");
    }
    // 3. the whole file to the commit log: from the buffer when it holds all of it (a small
    //    message: no read back), else read back from the file once it is complete.
    if (whole_in_buffer_) {
      auto logged = spool_.log().append_message(id_, buffer_);
      if (!logged) return fail(logged.error());
      ticket_ = *logged;
      if (auto flushed = flush_buffer(); !flushed) return flushed;
    } else {
      auto logged = spool_.log().append_message(id_, {}, fd_, written_size_, file_crc_);
      if (!logged) return fail(logged.error());
      ticket_ = *logged;
    }
    logged_ = true;
    // A failed close can report a deferred write error (NFS): it fails the message too.
    int result = ::close(fd_);
    int saved = errno;
    fd_ = -1;
    if (result != 0 && saved != EINTR) return fail(system_error("close", tmp_path_, saved));
    std::string().swap(buffer_);  // the session may stay open for long: give the memory back
    std::string().swap(late_section_);
    std::string().swap(late_envelope_);
    std::string().swap(late_folder_);
    std::string().swap(late_tls_optional_);
    std::string().swap(late_notice_);
    state_ = State::kSynced;
    // 4. a hold, durable before the message can reach queue/: a crash before publish()
    //    leaves a state file without its message, which Spool::open() removes.
    if (held_) {
      if (auto marked = write_hold(); !marked) return fail(marked.error());
    }
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> publish() override {
    if (state_ != State::kSynced || without_file_) return not_open("publish");
    // tmp/<id> → queue/<id>, never over a file there: a duplicate id must never replace an
    // acknowledged message (one process owns the spool, so the check-then-rename of a file
    // system without RENAME_NOREPLACE holds too).
    if (base::rename_no_replace(tmp_dir_fd_, id_.c_str(), queue_dir_fd_, id_.c_str()) != 0) {
      return fail(system_error("rename", tmp_path_, errno));
    }
    state_ = State::kPublished;
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> sync_log() override {
    if (state_ != State::kSynced) return not_open("sync_log");
    if (auto synced = spool_.log().sync(ticket_); !synced) {
      abort();
      return synced;
    }
    return base::Ok{};
  }

  void mark_committed() override {
    if (state_ == State::kPublished) state_ = State::kCommitted;
  }

  base::Expected<base::Ok, SpoolError> commit() override {
    base::Expected<base::Ok, SpoolError> synced = flush_to_log();
    if (synced) synced = sync_log();
    // A commit of its own (a notice, a report), with no committer to close the segment once
    // idle: closed now, failed or not, unless commits since still wait for their sync.
    spool_.close_idle_log();
    if (!synced) return synced;
    if (auto published = publish(); !published) return published;
    mark_committed();
    return base::Ok{};
  }

  void abort() override {
    switch (state_) {
      case State::kOpen:
      case State::kFinished:
        if (fd_ >= 0) {  // else no file was made (make_file)
          ::close(fd_);
          fd_ = -1;
          ::unlinkat(tmp_dir_fd_, id_.c_str(), 0);
        }
        break;
      case State::kSynced:
        if (!without_file_) ::unlinkat(tmp_dir_fd_, id_.c_str(), 0);
        if (held_) ::unlinkat(state_dir_fd_, id_.c_str(), 0);
        break;
      case State::kPublished:
        ::unlinkat(queue_dir_fd_, id_.c_str(), 0);
        if (held_) ::unlinkat(state_dir_fd_, id_.c_str(), 0);
        break;
      case State::kCommitted:
      case State::kFailed:
      case State::kAborted:
        return;
    }
    // XXX: the D record is not synced, so after a power cut the message may come back from
    // the log; it would then be delivered although the client got 4xx (a duplicate, never
    // a loss).
    if (logged_) spool_.log().append_done(id_);
    state_ = State::kAborted;
  }

 private:
  // kFinished: finish() made the file complete in tmp/ (not logged): mark_delivered() or
  // flush_to_log() follows.
  enum class State { kOpen, kFinished, kSynced, kPublished, kCommitted, kFailed, kAborted };

  // Steps 1 and 2 of flush_to_log() (finish() too): the file complete in tmp/.
  base::Expected<base::Ok, SpoolError> complete() {
    // The order is what makes a late section durable, and a file in queue/ consistent:
    // 1. the late section after the content (through the buffer, like the content), then
    //    the late envelope (version 3);
    if (auto written = write_bytes(late_section_); !written) return written;
    if (auto written = write_bytes(late_envelope_); !written) return written;
    if (auto written = write_bytes(late_folder_); !written) return written;
    if (auto written = write_bytes(late_tls_optional_); !written) return written;
    if (auto written = write_bytes(late_notice_); !written) return written;
    // 2. the layout that points at it, over the zeros begin() wrote (same length), and the
    //    version line with a late envelope: patched in the buffer when the file's start is
    //    still there (one write for a small message), else with pwrite(2) once the buffer
    //    is out.
    const bool version3 = !late_envelope_.empty() || !late_folder_.empty() ||
                          !late_tls_optional_.empty() || !late_notice_.empty();
    std::string start(version3 ? kVersion3Line : kVersionLine);
    start += '\n';
    start += format_layout(Layout{content_size_, replaced_length_, late_section_.size()});
    whole_in_buffer_ = written_size_ == 0;
    if (whole_in_buffer_) {
      buffer_.replace(0, start.size(), start);
      return base::Ok{};
    }
    if (auto flushed = flush_buffer(); !flushed) return flushed;
    if (auto written = pwrite_all(start, 0); !written) return written;
    if (tail_crc_valid_ && start.size() == kStartSize) {
      file_crc_ = crc32_concat(crc32_update(0, start), tail_crc_, written_size_ - kStartSize);
    }
    return base::Ok{};
  }

  // tmp/<id>, made when the first octets must go to disk (Spool::create_tmp): a message
  // that fits the buffer and is delivered at acceptance never has a file.
  base::Expected<base::Ok, SpoolError> make_file() {
    if (fd_ >= 0) return base::Ok{};
    fd_ = spool_.create_tmp(id_);
    // fail() leaves the name alone (fd_ < 0): with EEXIST it is another's.
    if (fd_ < 0) return fail(system_error("create", tmp_path_, errno));
    return base::Ok{};
  }

  // Buffered write at the end of the file; pieces as large as the buffer go straight out.
  // Before the file exists the buffer may grow past kWriteBufferSize, as the spool's memory
  // budget allows (grow_in_memory), so that the whole message stays in memory.
  base::Expected<base::Ok, SpoolError> write_bytes(std::string_view bytes) {
    if (bytes.size() <= kWriteBufferSize + memory_taken_ - buffer_.size() ||
        grow_in_memory(buffer_.size() + bytes.size())) {
      buffer_.append(bytes);
      return base::Ok{};
    }
    if (auto flushed = flush_buffer(); !flushed) return flushed;
    if (bytes.size() >= kWriteBufferSize) {
      // Large pieces go straight to the file; the buffer would only add a copy.
      if (auto made = make_file(); !made) return made;
      if (auto written = write_all(fd_, bytes.data(), bytes.size(), tmp_path_); !written) {
        return fail(written.error());
      }
      crc_written(bytes);
      written_size_ += bytes.size();
      return base::Ok{};
    }
    buffer_.append(bytes);
    return base::Ok{};
  }

  base::Expected<base::Ok, SpoolError> flush_buffer() {
    if (buffer_.empty()) return base::Ok{};
    if (auto made = make_file(); !made) return made;
    if (auto written = write_all(fd_, buffer_.data(), buffer_.size(), tmp_path_); !written) {
      return fail(written.error());
    }
    crc_written(buffer_);
    written_size_ += buffer_.size();
    buffer_.clear();
    if (memory_taken_ != 0) {
      // The file has the message now: the memory past the 64 KiB goes back to the budget.
      std::string().swap(buffer_);
      buffer_.reserve(kWriteBufferSize);
      spool_.give_memory(memory_taken_);
      memory_taken_ = 0;
    }
    return base::Ok{};
  }

  // Takes from the spool's budget what a buffer of `needed` octets (more than
  // kWriteBufferSize) holds past kWriteBufferSize, rounded up to a multiple of it, as long as
  // no file exists and the message stays under Spool::kMemoryMessageMax. False: the buffer
  // goes to the file.
  bool grow_in_memory(std::uint64_t needed) {
    if (fd_ >= 0 || needed > Spool::kMemoryMessageMax) return false;
    const std::uint64_t want = (needed - 1) / kWriteBufferSize * kWriteBufferSize;
    if (want <= memory_taken_) return true;
    if (!spool_.take_memory(want - memory_taken_)) return false;
    memory_taken_ = want;
    return true;
  }

  // The CRC of the file's octets after the start lines, continued over bytes written at
  // written_size_: the log's record of a large message needs no read back.
  void crc_written(std::string_view bytes) {
    if (written_size_ >= kStartSize) {
      tail_crc_ = crc32_update(tail_crc_, bytes);
    } else if (written_size_ + bytes.size() > kStartSize) {
      tail_crc_ = crc32_update(tail_crc_, bytes.substr(kStartSize - written_size_));
    }
  }

  base::Expected<base::Ok, SpoolError> pwrite_all(std::string_view bytes, std::uint64_t offset) {
    while (!bytes.empty()) {
      ssize_t written = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
      if (written < 0) {
        if (errno == EINTR) continue;
        return fail(system_error("write", tmp_path_, errno));
      }
      bytes.remove_prefix(static_cast<std::size_t>(written));
      offset += static_cast<std::uint64_t>(written);
    }
    return base::Ok{};
  }

  // state/<id> with the line "held" (what Scheduler::hold() appends), fsynced with its
  // directory entry.
  base::Expected<base::Ok, SpoolError> write_hold() {
    const std::string path = spool_.directory() + "/state/" + id_;
    int fd = ::openat(state_dir_fd_, id_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fail_with("open", path, errno);
    constexpr std::string_view kHeld = "held\n";
    auto written = write_all(fd, kHeld.data(), kHeld.size(), path);
    if (written && ::fsync(fd) != 0) written = fail_with("fsync", path, errno);
    ::close(fd);
    if (!written) {
      ::unlinkat(state_dir_fd_, id_.c_str(), 0);
      return written;
    }
    if (::fsync(state_dir_fd_) != 0) {
      int saved = errno;
      ::unlinkat(state_dir_fd_, id_.c_str(), 0);
      return fail_with("fsync", spool_.directory() + "/state", saved);
    }
    return base::Ok{};
  }

  // Records the first error, removes the file; every later call returns the same error.
  base::Unexpected<SpoolError> fail(SpoolError error) {
    abort();
    state_ = State::kFailed;
    error_ = std::move(error);
    return base::unexpected(error_);
  }

  base::Unexpected<SpoolError> not_open(std::string_view operation) const {
    if (state_ == State::kFailed) return base::unexpected(error_);
    return base::unexpected(SpoolError{std::string(operation) + " on spool file " + tmp_path_ +
                                           " in the wrong state (already committed or aborted)",
                                       /*transient=*/true, 0});
  }

  Spool& spool_;
  std::string id_;
  std::string tmp_path_;
  int fd_ = -1;                     // tmp/<id> once make_file() made it
  std::uint64_t memory_taken_ = 0;  // of the spool's budget: the buffer past kWriteBufferSize
  int tmp_dir_fd_;
  int queue_dir_fd_;
  int state_dir_fd_;
  std::string buffer_;              // the octets of the file from written_size_ on
  std::uint64_t written_size_ = 0;  // octets written to fd_: its size and position
  std::uint64_t header_size_ = 0;   // the envelope header: content starts after it
  std::uint64_t content_size_ = 0;
  std::uint64_t replaced_length_ = 0;  // of replace_header_section()
  std::string late_section_;           // its new_section, written by flush_and_sync()
  std::string late_envelope_;          // of replace_envelope(): the file is then version 3
  std::string late_folder_;            // "folder <field>\n" of set_folder(): version 3 too
  std::string late_tls_optional_;      // "tls_optional 1\n" of set_tls_optional(): version 3
  std::string late_notice_;            // "notice <id> <field>...\n" of set_notice(): version 3
  bool held_ = false;                  // mark_held(): state/<id> says "held" before publish()
  bool logged_ = false;                // flush_to_log() appended the message to the log
  bool delivered_ = false;             // mark_delivered(): every recipient had it at acceptance
  bool without_file_ = false;          // log_without_file(): in the log only, no tmp/<id>
  bool taken_ = false;                 // mark_taken(): the committer delivers it after the reply
  bool whole_in_buffer_ = false;       // complete(): the whole file is in buffer_
  std::optional<std::uint32_t> file_crc_;  // complete(): the file's CRC-32, when known
  std::uint64_t ticket_ = 0;               // of that append (SpoolLog::sync)
  std::uint32_t tail_crc_ = 0;             // CRC-32 of the file from kStartSize to written_size_
  bool tail_crc_valid_ = true;             // false once truncate_content() cut the file
  State state_ = State::kOpen;
  SpoolError error_;
};

}  // namespace

ContentReader::~ContentReader() {
  ::close(fd_);
}

base::Expected<base::Ok, std::string> ContentReader::read(std::uint64_t position,
                                                          std::size_t length,
                                                          std::string& out) const {
  out.clear();
  if (position >= size_) return base::Ok{};
  length = static_cast<std::size_t>(std::min<std::uint64_t>(length, size_ - position));
  out.resize(length);
  std::size_t got = 0;
  while (got < length) {
    ssize_t n =
        ::pread(fd_, out.data() + got, length - got, static_cast<off_t>(offset_ + position + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      out.clear();
      return base::unexpected("read " + path_ + ": " + std::strerror(saved));
    }
    if (n == 0) break;  // truncated since: what is there
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return base::Ok{};
}

Spool::Spool(std::string dir) : dir_(std::move(dir)) {}

Spool::~Spool() {
  log_.reset();  // while the flock is still held
  if (tmp_dir_fd_ >= 0) ::close(tmp_dir_fd_);
  if (queue_dir_fd_ >= 0) ::close(queue_dir_fd_);
  if (state_dir_fd_ >= 0) ::close(state_dir_fd_);
  if (spare_dir_fd_ >= 0) ::close(spare_dir_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

bool Spool::is_valid_folder(std::string_view folder) {
  if (folder.empty() || folder.size() > 200 || folder.front() == '.') return false;
  if (folder.find("..") != std::string_view::npos) return false;
  return std::all_of(folder.begin(), folder.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7E && c != '/' && c != '\\'; });
}

bool Spool::is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  });
}

base::Expected<std::unique_ptr<Spool>, SpoolError> Spool::open(const std::string& dir,
                                                               std::uint64_t segment_size,
                                                               std::chrono::seconds compact_after) {
  std::string root = dir;
  while (root.size() > 1 && root.back() == '/')
    root.pop_back();
  if (auto made = make_directories(root + "/tmp"); !made) return base::unexpected(made.error());
  if (auto made = make_directories(root + "/queue"); !made) {
    return base::unexpected(made.error());
  }
  if (auto made = make_directories(root + "/state"); !made) {
    return base::unexpected(made.error());
  }
  if (auto made = make_directories(root + "/spare"); !made) {
    return base::unexpected(made.error());
  }
  std::unique_ptr<Spool> spool(new Spool(root));

  spool->lock_fd_ = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (spool->lock_fd_ < 0) return fail_with("open", root, errno);
  if (::flock(spool->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return base::unexpected(SpoolError{"spool " + root + " is in use by another process",
                                         /*transient=*/false, EWOULDBLOCK});
    }
    return fail_with("flock", root, errno);
  }
  std::string tmp = root + "/tmp";
  std::string queue = root + "/queue";
  // Opened by root before the privilege drop in a tree the account owns: no link followed.
  spool->tmp_dir_fd_ = ::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (spool->tmp_dir_fd_ < 0) return fail_with("open", tmp, errno);
  spool->queue_dir_fd_ = ::open(queue.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (spool->queue_dir_fd_ < 0) return fail_with("open", queue, errno);
  std::string state = root + "/state";
  spool->state_dir_fd_ = ::open(state.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (spool->state_dir_fd_ < 0) return fail_with("open", state, errno);
  std::string spare = root + "/spare";
  spool->spare_dir_fd_ = ::open(spare.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (spool->spare_dir_fd_ < 0) return fail_with("open", spare, errno);
  // Whatever is in tmp/ was never acknowledged (commit() logs and syncs it before it
  // reports success, and publish() takes it out of tmp/); spare/ holds old files only.
  for (const std::string& name : read_directory(tmp)) {
    if (::unlinkat(spool->tmp_dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT) {
      return fail_with("unlink", tmp + "/" + name, errno);
    }
  }
  for (const std::string& name : read_directory(spare)) {
    if (::unlinkat(spool->spare_dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT) {
      return fail_with("unlink", spare + "/" + name, errno);
    }
  }
  if (auto recovered = spool->recover(segment_size, compact_after); !recovered) {
    return base::unexpected(recovered.error());
  }

  // A state file whose message is gone was left by a crash inside remove(); one whose last
  // line is torn is cut back to its last whole line.
  for (const std::string& name : read_directory(state)) {
    struct stat info {};
    if (::fstatat(spool->queue_dir_fd_, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 &&
        errno == ENOENT) {
      ::unlinkat(spool->state_dir_fd_, name.c_str(), 0);
    } else if (auto cut = cut_torn_line(spool->state_dir_fd_, name, state); !cut) {
      return base::unexpected(cut.error());
    }
  }

  if (::getrandom(&spool->nonce_, sizeof spool->nonce_, 0) != sizeof spool->nonce_) {
    // Without randomness, the pid and the clock still separate processes.
    spool->nonce_ =
        (static_cast<std::uint64_t>(::getpid()) << 32) ^
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return spool;
}

base::Expected<base::Ok, SpoolError> Spool::recover(std::uint64_t segment_size,
                                                    std::chrono::seconds compact_after) {
  std::vector<SpoolLog::Live> live;
  std::set<std::string> removed;
  bool created = false;
  const std::string queue = dir_ + "/queue";
  const std::string log_dir = dir_ + "/log";
  struct stat log_status {};
  std::vector<std::string> legacy;
  if (::lstat(log_dir.c_str(), &log_status) != 0 && errno == ENOENT) {
    legacy = read_directory(queue);
    std::erase_if(legacy, [](const std::string& id) { return !is_valid_id(id); });
  }
  if (!legacy.empty()) {
    // An older smtpsd's spool: its queue/ files were fsynced one by one; they enter a new
    // log, built under log.new/ and renamed into place once synced, so that a crash during
    // the import leaves no log that lacks them (log.new/ is built again at the next start).
    const std::string staging = dir_ + "/log.new";
    std::error_code ignored;
    std::filesystem::remove_all(staging, ignored);
    auto log = SpoolLog::open(staging, queue_dir_fd_, segment_size, live, removed, created);
    if (!log) return base::unexpected(log.error());
    std::uint64_t imported = 0;
    for (const std::string& id : legacy) {
      int fd = ::openat(queue_dir_fd_, id.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return fail_with("open", queue + "/" + id, errno);
      struct stat status {};
      auto logged =
          ::fstat(fd, &status) == 0
              ? (*log)->append_message(id, {}, fd, static_cast<std::uint64_t>(status.st_size))
              : fail_with("stat", queue + "/" + id, errno);
      ::close(fd);
      if (!logged) return base::unexpected(logged.error());
      ++imported;
    }
    if (auto synced = (*log)->sync((*log)->last_ticket()); !synced) return synced;
    log->reset();
    if (::rename(staging.c_str(), log_dir.c_str()) != 0) return fail_with("rename", staging, errno);
    if (::fsync(lock_fd_) != 0) return fail_with("fsync", dir_, errno);
    obs::Log("spool_log_imported").kv("messages", imported);
  }
  auto log =
      SpoolLog::open(log_dir, queue_dir_fd_, segment_size, live, removed, created, compact_after);
  if (!log) return base::unexpected(log.error());
  log_ = std::move(*log);
  std::vector<std::string> files = read_directory(queue);
  std::uint64_t restored = 0;
  for (const SpoolLog::Live& message : live) {
    int fd = ::openat(queue_dir_fd_, message.id.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    const bool matches = fd >= 0 && SpoolLog::file_matches(message, fd);
    if (fd >= 0) ::close(fd);
    if (matches) continue;
    // Missing, short or different (a power cut before its data reached the disk): written
    // again from the log, fsynced, renamed over it.
    const std::string path = tmp_path(message.id);
    // tmp/ was emptied above: a name there now is a race; never follow or reuse it.
    int out = ::openat(tmp_dir_fd_, message.id.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) return fail_with("create", path, errno);
    auto copied = SpoolLog::copy_image(message, out);
    if (copied && ::fsync(out) != 0) copied = fail_with("fsync", path, errno);
    ::close(out);
    if (copied &&
        ::renameat(tmp_dir_fd_, message.id.c_str(), queue_dir_fd_, message.id.c_str()) != 0) {
      copied = fail_with("rename", path, errno);
    }
    if (!copied) return copied;
    ++restored;
  }
  std::uint64_t orphaned = 0;
  for (const std::string& name : files) {
    const bool known = std::any_of(live.begin(), live.end(),
                                   [&](const SpoolLog::Live& m) { return m.id == name; });
    if (known) continue;
    if (removed.count(name) != 0) {
      // Delivered: its D record made it to the disk, the unlink did not (never synced).
      if (::unlinkat(queue_dir_fd_, name.c_str(), 0) != 0 && errno != ENOENT) {
        return fail_with("unlink", queue + "/" + name, errno);
      }
      ::unlinkat(state_dir_fd_, name.c_str(), 0);
      continue;
    }
    // Not in the log, so never acknowledged (publish() comes after the log sync): kept aside
    // for a human rather than deleted, because only a bug or a hand puts it there.
    if (auto made = make_directories(dir_ + "/orphaned"); !made) return made;
    const std::string target = dir_ + "/orphaned/" + name;
    if (::rename((queue + "/" + name).c_str(), target.c_str()) != 0) {
      return fail_with("rename", queue + "/" + name, errno);
    }
    obs::Log("spool_orphan", obs::Level::kError)
        .kv("file", target)
        .kv("detail", "in queue/ but not in the commit log: never acknowledged; moved aside");
    ++orphaned;
  }
  if (restored > 0 || orphaned > 0) {
    if (::fsync(queue_dir_fd_) != 0) return fail_with("fsync", queue, errno);
  }
  if (restored > 0) obs::Log("spool_log_restored").kv("messages", restored);
  return base::Ok{};
}

// <12 hex: microseconds since the epoch><4 hex: per-process counter><4 base62: random>.
// Sorting ids sorts by acceptance time; the nonce keeps ids distinct across restarts even
// if the clock steps back; O_EXCL and RENAME_NOREPLACE catch what remains.
std::string Spool::new_id() {
  static constexpr char kHex[] = "0123456789ABCDEF";
  static constexpr char kBase62[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::uint64_t count = counter_.fetch_add(1, std::memory_order_relaxed);
  auto micros = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count());
  // splitmix64 of nonce + counter: distinct per call, unpredictable across processes.
  std::uint64_t mixed = nonce_ + count * 0x9E3779B97F4A7C15ULL;
  mixed = (mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9ULL;
  mixed = (mixed ^ (mixed >> 27)) * 0x94D049BB133111EBULL;
  mixed ^= mixed >> 31;

  std::string id(20, '0');
  for (int i = 11; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kHex[micros & 0xF];
    micros >>= 4;
  }
  for (int i = 15; i >= 12; --i) {
    id[static_cast<std::size_t>(i)] = kHex[count & 0xF];
    count >>= 4;
  }
  for (std::size_t i = 16; i < 20; ++i) {
    id[i] = kBase62[mixed % 62];
    mixed /= 62;
  }
  return id;
}

base::Expected<std::unique_ptr<SpoolWriter>, SpoolError> Spool::begin(
    const smtp::Envelope& envelope, std::int64_t received_unix) {
  // new_id() is unique (time, counter, a per-process nonce); were tmp/<id> taken anyway, the
  // writer's first write would fail with EEXIST (Spool::create_tmp), never replace it.
  return begin_with_id(new_id(), envelope, received_unix);
}

base::Expected<std::unique_ptr<SpoolWriter>, SpoolError> Spool::begin_with_id(
    const std::string& id, const smtp::Envelope& envelope, std::int64_t received_unix) {
  if (!is_valid_id(id)) {
    return base::unexpected(
        SpoolError{"invalid queue id '" + id + "'", /*transient=*/false, EINVAL});
  }
  // What load() can read back is what may be written: an envelope too big for it (many
  // recipients with long ORCPTs) is refused here, permanently, before anything is promised.
  std::string header_text = format_header(id, envelope, received_unix);
  if (header_text.size() > kMaxHeaderSize) {
    return base::unexpected(SpoolError{"envelope too large (" + std::to_string(header_text.size()) +
                                           " octets encoded, limit " +
                                           std::to_string(kMaxHeaderSize) + ")",
                                       /*transient=*/false, EFBIG});
  }
  // tmp/<id> is made when the writer first needs it (Spool::create_tmp).
  auto writer =
      std::make_unique<FileSpoolWriter>(*this, id, tmp_dir_fd_, queue_dir_fd_, state_dir_fd_);
  if (auto header = writer->write_header(header_text); !header) {
    return base::unexpected(header.error());
  }
  return std::unique_ptr<SpoolWriter>(std::move(writer));
}

std::string Spool::new_notice_id(const std::string& original_id) {
  std::string id = new_id();
  if (original_id.size() + 1 + kNoticeSuffixLength > kMaxIdLength) return id;
  // The fresh part: new_id()'s counter and random characters.
  return original_id + kNoticeSeparator + id.substr(id.size() - kNoticeSuffixLength);
}

std::string_view Spool::original_of(std::string_view id) {
  if (id.size() <= 1 + kNoticeSuffixLength || !is_valid_id(id)) return {};
  const std::size_t separator = id.size() - 1 - kNoticeSuffixLength;
  if (id[separator] != kNoticeSeparator) return {};
  return id.substr(0, separator);
}

std::vector<std::string> Spool::list() const {
  std::vector<std::string> ids = read_directory(dir_ + "/queue");
  std::erase_if(ids, [](const std::string& id) { return !is_valid_id(id); });
  std::sort(ids.begin(), ids.end());
  return ids;
}

namespace {

// parse_spool_file() without the late envelope: where it lies (length 0: none) is set in
// late_envelope for the caller to read and parse.
base::Expected<StoredMessage, std::string> parse_spool_head(std::string_view id,
                                                            std::string_view head,
                                                            std::uint64_t file_size,
                                                            ContentSegment& late_envelope) {
  late_envelope = ContentSegment{0, 0};
  std::size_t end = head.substr(0, kMaxHeaderSize + 2).find("\n\n");
  if (end == std::string_view::npos) {
    return base::unexpected(std::string("no end of header (blank line) within 4 MiB"));
  }
  StoredMessage message;
  message.id = std::string(id);
  std::optional<Layout> layout;
  if (auto error = parse_header(head.substr(0, end), message, layout)) {
    return base::unexpected(std::move(*error));
  }
  const std::uint64_t content_offset = end + 2;
  if (content_offset > file_size) return base::unexpected(std::string("shorter than its header"));
  const std::uint64_t after_header = file_size - content_offset;
  message.segments.clear();
  if (!layout) {  // version 1: the content runs to the end of the file
    if (after_header > 0) message.segments.push_back({content_offset, after_header});
    message.content_size = after_header;
    return message;
  }
  // Checked without overflow: content + late (+ the late envelope of version 3) == what
  // follows the header, replaced <= content.
  if (layout->content > after_header || layout->late > after_header - layout->content) {
    return base::unexpected(
        "layout says " + std::to_string(layout->content) + " + " + std::to_string(layout->late) +
        " octets after the header, the file has " + std::to_string(after_header));
  }
  const std::uint64_t rest = after_header - layout->content - layout->late;
  if (layout->late_envelope) {
    if (rest == 0) return base::unexpected(std::string("version 3 without a late envelope"));
    if (rest > kMaxHeaderSize) return base::unexpected(std::string("late envelope over 4 MiB"));
    late_envelope = ContentSegment{content_offset + layout->content + layout->late, rest};
  } else if (rest != 0) {
    return base::unexpected(
        "layout says " + std::to_string(layout->content) + " + " + std::to_string(layout->late) +
        " octets after the header, the file has " + std::to_string(after_header));
  }
  if (layout->replaced > layout->content) {
    return base::unexpected(std::string("layout replaces more than the content"));
  }
  if (layout->late > 0) {
    message.segments.push_back({content_offset + layout->content, layout->late});
  }
  if (layout->content > layout->replaced) {
    message.segments.push_back(
        {content_offset + layout->replaced, layout->content - layout->replaced});
  }
  message.content_size = layout->late + (layout->content - layout->replaced);
  return message;
}

}  // namespace

base::Expected<StoredMessage, std::string> parse_spool_file(std::string_view id,
                                                            std::string_view head,
                                                            std::uint64_t file_size) {
  ContentSegment late_envelope;
  auto parsed = parse_spool_head(id, head, file_size, late_envelope);
  if (!parsed || late_envelope.length == 0) return parsed;
  if (late_envelope.offset + late_envelope.length > head.size()) {
    return base::unexpected(std::string("late envelope not within the octets given"));
  }
  if (auto error =
          parse_late_envelope(head.substr(late_envelope.offset, late_envelope.length), *parsed)) {
    return base::unexpected(std::move(*error));
  }
  return parsed;
}

namespace {

base::Expected<StoredMessage, SpoolError> read_spool_file(const std::string& id, int fd,
                                                          const std::string& path) {
  // Reads until the blank line; the content that came with the last read is not parsed.
  std::string header;
  std::size_t end = std::string::npos;
  std::array<char, 16 * 1024> chunk;
  while (end == std::string::npos) {
    ssize_t got = ::pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(header.size()));
    if (got < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      return fail_with("read", path, saved);
    }
    if (got == 0) break;
    std::size_t search_from = header.size() > 0 ? header.size() - 1 : 0;
    header.append(chunk.data(), static_cast<std::size_t>(got));
    end = header.find("\n\n", search_from);
    if (end == std::string::npos && header.size() > kMaxHeaderSize) break;
  }
  // The size of the same open file: a file in queue/ never changes, and a rename over it
  // (there is none) would not change this one.
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    int saved = errno;
    ::close(fd);
    return fail_with("stat", path, saved);
  }
  ContentSegment late_envelope;
  auto parsed =
      parse_spool_head(id, header, static_cast<std::uint64_t>(status.st_size), late_envelope);
  if (!parsed) {
    ::close(fd);
    return base::unexpected(corrupt(path, parsed.error()));
  }
  if (late_envelope.length > 0) {  // version 3: the envelope of replace_envelope() at the end
    std::string block(static_cast<std::size_t>(late_envelope.length), '\0');
    std::size_t got = 0;
    while (got < block.size()) {
      ssize_t n = ::pread(fd, block.data() + got, block.size() - got,
                          static_cast<off_t>(late_envelope.offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int saved = errno;
        ::close(fd);
        return fail_with("read", path, saved);
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got != block.size()) {
      ::close(fd);
      return base::unexpected(corrupt(path, "late envelope cut short"));
    }
    if (auto error = parse_late_envelope(block, *parsed)) {
      ::close(fd);
      return base::unexpected(corrupt(path, *error));
    }
  }
  parsed->file =
      std::make_shared<const OpenSpoolFile>(fd, static_cast<std::uint64_t>(status.st_size));
  parsed->path = path;
  return std::move(*parsed);
}

base::Expected<StoredMessage, SpoolError> read_spool_memory(const std::string& id,
                                                            std::string_view bytes,
                                                            const std::string& path) {
  auto parsed = parse_spool_file(id, bytes, bytes.size());
  if (!parsed) return base::unexpected(corrupt(path, parsed.error()));
  parsed->file = std::make_shared<const OpenSpoolFile>(std::string(bytes));
  parsed->path = path;
  return std::move(*parsed);
}

}  // namespace

base::Expected<StoredMessage, SpoolError> Spool::load(const std::string& id) const {
  std::string path = queue_path(id);
  if (!is_valid_id(id)) {
    return base::unexpected(
        SpoolError{"invalid queue id '" + id + "'", /*transient=*/false, ENOENT});
  }
  int fd = ::openat(queue_dir_fd_, id.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    SpoolError error = system_error("open", path, errno);
    if (error.error_number == ENOENT) error.transient = false;
    return base::unexpected(std::move(error));
  }
  return read_spool_file(id, fd, path);
}

bool Spool::still_queued(const StoredMessage& message) const {
  struct stat named {};
  struct stat held {};
  if (!message.file || !is_valid_id(message.id)) return false;
  if (::fstatat(queue_dir_fd_, message.id.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (::fstat(message.file->fd, &held) != 0) return false;
  return named.st_ino == held.st_ino && named.st_dev == held.st_dev;
}

OpenSpoolFile::~OpenSpoolFile() {
  if (fd >= 0) ::close(fd);
}

bool Spool::take_memory(std::uint64_t octets) {
  const std::uint64_t budget = memory_budget_.load(std::memory_order_relaxed);
  std::uint64_t in_use = memory_in_use_.load(std::memory_order_relaxed);
  do {
    if (octets > budget || in_use > budget - octets) return false;
  } while (
      !memory_in_use_.compare_exchange_weak(in_use, in_use + octets, std::memory_order_relaxed));
  return true;
}

void Spool::give_memory(std::uint64_t octets) {
  memory_in_use_.fetch_sub(octets, std::memory_order_relaxed);
}

bool Spool::keep_spare(int dir_fd, const std::string& id, std::uint64_t length) {
  if (length > kSpareMaxSize) return false;
  std::uint64_t name;
  {
    std::lock_guard lock(spare_mutex_);
    if (spares_.size() >= kMaxSpares) return false;
    name = next_spare_++;
  }
  if (::renameat(dir_fd, id.c_str(), spare_dir_fd_, std::to_string(name).c_str()) != 0) {
    return false;  // unlinked instead
  }
  std::lock_guard lock(spare_mutex_);
  spares_.push_back(name);
  return true;
}

void Spool::discard_delivered(const std::string& id, std::uint64_t length) {
  if (!keep_spare(tmp_dir_fd_, id, length)) ::unlinkat(tmp_dir_fd_, id.c_str(), 0);
}

base::Expected<base::Ok, SpoolError> Spool::publish_image(const StoredMessage& message) {
  if (!is_valid_id(message.id) || message.file == nullptr || message.file->fd >= 0) {
    return base::unexpected(SpoolError{"publish_image of '" + message.id + "': no image",
                                       /*transient=*/false, EINVAL});
  }
  const std::string path = tmp_path(message.id);
  int fd = create_tmp(message.id);
  if (fd < 0) return fail_with("create", path, errno);
  auto written = write_all(fd, message.file->bytes.data(), message.file->bytes.size(), path);
  if (::close(fd) != 0 && written && errno != EINTR) written = fail_with("close", path, errno);
  if (written && base::rename_no_replace(tmp_dir_fd_, message.id.c_str(), queue_dir_fd_,
                                         message.id.c_str()) != 0) {  // as publish()
    written = fail_with("rename", path, errno);
  }
  if (!written) ::unlinkat(tmp_dir_fd_, message.id.c_str(), 0);
  return written;
}

int Spool::create_tmp(const std::string& id) {
  int fd = reuse_spare(id);
  // Read and write: flush_to_log() reads a large message back for the commit log.
  if (fd < 0) fd = ::openat(tmp_dir_fd_, id.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  return fd;
}

int Spool::reuse_spare(const std::string& id) {
  std::string name;
  {
    std::lock_guard lock(spare_mutex_);
    if (spares_.empty()) return -1;
    name = std::to_string(spares_.back());
    spares_.pop_back();
  }
  if (base::rename_no_replace(spare_dir_fd_, name.c_str(), tmp_dir_fd_, id.c_str()) != 0) {
    ::unlinkat(spare_dir_fd_, name.c_str(), 0);
    return -1;
  }
  int fd = ::openat(tmp_dir_fd_, id.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0 && ::ftruncate(fd, 0) == 0) return fd;
  if (fd >= 0) ::close(fd);
  ::unlinkat(tmp_dir_fd_, id.c_str(), 0);
  return -1;
}

base::Expected<base::Ok, SpoolError> Spool::remove(const std::string& id) {
  if (!is_valid_id(id)) {
    return base::unexpected(
        SpoolError{"invalid queue id '" + id + "'", /*transient=*/false, EINVAL});
  }
  const std::optional<std::uint64_t> length = log_->live_length(id);
  if (!(length && keep_spare(queue_dir_fd_, id, *length)) &&
      ::unlinkat(queue_dir_fd_, id.c_str(), 0) != 0 && errno != ENOENT) {
    return fail_with("unlink", queue_path(id), errno);
  }
  // After the message: a crash in between leaves a state file that open() clears.
  ::unlinkat(state_dir_fd_, id.c_str(), 0);
  log_->append_done(id);
  // No fsync of queue/ here: if a crash undoes this unlink, the message is found again at
  // start and handed to the deliverers as recovered, and they are idempotent (Maildir
  // recognises its own file name). Durability matters for adding messages, not removing.
  return base::Ok{};
}

void Spool::remove_logged(const std::string& id) {
  log_->append_done(id);
}

base::Expected<base::Ok, SpoolError> Spool::append_state(const std::string& id,
                                                         std::string_view line) {
  if (!is_valid_id(id)) {
    return base::unexpected(
        SpoolError{"invalid queue id '" + id + "'", /*transient=*/false, EINVAL});
  }
  std::string path = dir_ + "/state/" + id;
  int fd = ::openat(state_dir_fd_, id.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail_with("open", path, errno);
  std::string text(line);
  text += '\n';
  auto written = write_all(fd, text.data(), text.size(), path);
  ::close(fd);
  return written;
}

base::Expected<base::Ok, SpoolError> Spool::sync_state(const std::string& id) {
  if (!is_valid_id(id)) {
    return base::unexpected(
        SpoolError{"invalid queue id '" + id + "'", /*transient=*/false, EINVAL});
  }
  const std::string path = dir_ + "/state/" + id;
  int fd = ::openat(state_dir_fd_, id.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) return fail_with("open", path, errno);
  if (fd >= 0) {
    const int result = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    if (result != 0) return fail_with("fsync", path, saved);
  }
  // Its name too: the file may have been made since state/ was last synced.
  if (::fsync(state_dir_fd_) != 0) return fail_with("fsync", dir_ + "/state", errno);
  return base::Ok{};
}

std::vector<std::string> Spool::read_state(const std::string& id) const {
  std::vector<std::string> lines;
  if (!is_valid_id(id)) return lines;
  int fd = ::openat(state_dir_fd_, id.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return lines;
  std::string text;
  std::array<char, 4096> chunk;
  for (;;) {
    ssize_t got = ::read(fd, chunk.data(), chunk.size());
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0 || text.size() > (1u << 20)) break;
    text.append(chunk.data(), static_cast<std::size_t>(got));
  }
  ::close(fd);
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a torn last line (crash mid-write) is ignored
    if (end > start) lines.emplace_back(text, start, end - start);
    start = end + 1;
  }
  return lines;
}

bool Spool::is_held(const std::string& id) const {
  bool held = false;
  for (const std::string& line : read_state(id)) {
    if (line == "held") held = true;
    if (line == "released") held = false;
  }
  return held;
}

std::uint64_t Spool::file_size(const std::string& id) const {
  struct stat info {};
  if (!is_valid_id(id) || ::fstatat(queue_dir_fd_, id.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    return 0;
  }
  return static_cast<std::uint64_t>(info.st_size);
}

bool SpoolError::storage_unavailable() const {
  switch (error_number) {
    case ENOSPC:
    case EDQUOT:
    case EROFS:
    case EACCES:
    case EPERM:
      return true;
    default:
      return false;
  }
}

std::uint64_t Spool::free_bytes() const {
  return free_space_of(queue_dir_fd_);
}

base::Expected<base::Ok, SpoolError> Spool::sync_removals() {
  return log_->sync_all();
}

void Spool::close_idle_log() {
  log_->close_idle();
}

}  // namespace queue
