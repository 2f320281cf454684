// message_file.h — a message that `sendmail` or `smtpsctl send` is about to submit: written
// to a temporary file (mode 0600 from mkstemp, in $TMPDIR or /tmp) and described by the
// envelope the transport sends it with. Both the TLS mode and the local socket mode use it.
//
// Invariants: the file is removed when the MessageFile goes away, sent or not; the file is
// complete and closed before anyone reads it; the envelope asks for SMTPUTF8 (RFC 6531)
// when an address is not ASCII and BODY=8BITMIME (RFC 6152) when the body is not.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "app/smtpsctl/message_builder.h"
#include "base/expected.h"
#include "queue/spool.h"

namespace app {

class MessageFile {
 public:
  // Why no file was written: creating the temporary file failed (worth trying again), or
  // the message itself is unusable (bad_input: sendmail's EX_DATAERR).
  struct Failure {
    std::string message;
    bool bad_input = false;
  };

  // Writes head, a blank line, then the rest of body (write_message) into a new file.
  static base::Expected<std::unique_ptr<MessageFile>, Failure> write(const MessageHead& head,
                                                                     LineReader& body);
  ~MessageFile();
  MessageFile(const MessageFile&) = delete;
  MessageFile& operator=(const MessageFile&) = delete;

  const std::string& path() const { return path_; }
  const WrittenMessage& written() const { return written_; }

  // The message as the transport takes it, from sender to every recipient in order.
  queue::StoredMessage envelope(const std::string& helo, const std::string& sender,
                                const std::vector<std::string>& recipients) const;

 private:
  explicit MessageFile(std::string path) : path_(std::move(path)) {}

  std::string path_;
  WrittenMessage written_;
};

// The indices of every recipient of message, for delivery::Connection::send.
std::vector<std::size_t> all_recipients(const queue::StoredMessage& message);

}  // namespace app
