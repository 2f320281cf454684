// report_mail.cpp — see report_mail.h.
#include "app/smtpsd/report_mail.h"

#include "base/clock.h"
#include "mailauth/dkim_signer.h"
#include "obs/log.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "smtp/envelope.h"

namespace app {

ReportEnqueue spool_report_enqueue(queue::Spool& spool, queue::Scheduler& scheduler,
                                   std::string what, bool tls_optional) {
  return [&spool, &scheduler, what = std::move(what), tls_optional](
             const std::string& sender, const std::vector<std::string>& recipients,
             const std::string& content) {
    smtp::Envelope envelope;
    envelope.helo = "localhost";
    envelope.esmtp = true;
    envelope.reverse_path = sender;
    envelope.authenticated = true;
    for (const std::string& recipient : recipients)
      envelope.recipients.push_back(smtp::Recipient{recipient, "", "", false});
    const std::string id = spool.new_id();
    auto writer = spool.begin_with_id(id, envelope, base::unix_now());
    base::Expected<base::Ok, queue::SpoolError> done =
        writer ? writer.value()->append(content) : base::unexpected(writer.error());
    if (done && tls_optional) done = writer.value()->set_tls_optional(true);
    if (done) done = writer.value()->commit();
    if (!done) {
      obs::Log("error", obs::Level::kError)
          .kv("action", "retry")
          .kv("detail", "cannot queue " + what + ": " + done.error().message);
      return false;
    }
    scheduler.enqueue(id);
    return true;
  };
}

std::string with_dkim_signatures(
    const std::vector<std::shared_ptr<const mailauth::DkimSigningKey>>& keys, std::string message) {
  if (keys.empty()) return message;
  const std::size_t split = message.find("\r\n\r\n") + 4;
  mailauth::DkimSigner signer(keys);
  signer.body(std::string_view(message).substr(split));
  signer.end_of_body();
  std::string fields;
  for (const std::string& value : signer.sign(message.substr(0, split), base::unix_now()))
    fields += "DKIM-Signature: " + value + "\r\n";
  return fields + message;
}

}  // namespace app
