// message_file.cpp — see message_file.h.
#include "app/smtpsctl/message_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>

namespace app {

base::Expected<std::unique_ptr<MessageFile>, MessageFile::Failure> MessageFile::write(
    const MessageHead& head, LineReader& body) {
  const char* directory = std::getenv("TMPDIR");
  std::string path = std::string(directory != nullptr && *directory != '\0' ? directory : "/tmp") +
                     "/smtpsctl-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) {
    return base::unexpected(
        Failure{std::string("cannot create a temporary file: ") + std::strerror(errno), false});
  }
  ::close(fd);
  std::unique_ptr<MessageFile> file(new MessageFile(std::move(path)));
  {
    std::ofstream out(file->path_, std::ios::binary | std::ios::trunc);
    auto result = write_message(head, body, out);
    if (!result) return base::unexpected(Failure{result.error(), true});
    file->written_ = result.value();
  }
  return file;
}

MessageFile::~MessageFile() {
  ::unlink(path_.c_str());
}

queue::StoredMessage MessageFile::envelope(const std::string& helo, const std::string& sender,
                                           const std::vector<std::string>& recipients) const {
  queue::StoredMessage message;
  message.path = path_;
  message.envelope.helo = helo;
  message.envelope.esmtp = true;
  message.envelope.reverse_path = sender;
  bool utf8_address = !is_ascii(sender);
  for (const std::string& recipient : recipients) {
    message.envelope.recipients.push_back(smtp::Recipient{recipient, "", ""});
    utf8_address = utf8_address || !is_ascii(recipient);
  }
  message.envelope.smtputf8 = utf8_address;
  if (written_.eight_bit) message.envelope.body = smtp::BodyType::k8BitMime;
  return message;
}

std::vector<std::size_t> all_recipients(const queue::StoredMessage& message) {
  std::vector<std::size_t> indices(message.envelope.recipients.size());
  std::iota(indices.begin(), indices.end(), std::size_t{0});
  return indices;
}

}  // namespace app
