// report_mail.h — what the report senders (DMARC aggregate reports, SMTP TLS reports) share:
// queueing a report mail through the spool like a DSN, and signing it with the DKIM keys of
// the reporting address's domain.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mailauth {
class DkimSigningKey;
}
namespace queue {
class Spool;
class Scheduler;
}  // namespace queue

namespace app {

// Queues a message: envelope sender, recipients, content (CRLF lines). False: not queued.
using ReportEnqueue =
    std::function<bool(const std::string& sender, const std::vector<std::string>& recipients,
                       const std::string& content)>;

// Into spool, then handed to scheduler; `what` names the report in the error line
// ("a DMARC report"). The envelope is an authenticated local one (it is our own mail).
// tls_optional: delivered even when the destination's TLS policy fails (a TLS report must
// reach a domain whose TLS is broken, RFC 8460 §5.3), as `TLS-Required: No` does.
ReportEnqueue spool_report_enqueue(queue::Spool& spool, queue::Scheduler& scheduler,
                                   std::string what, bool tls_optional = false);

// message with a DKIM-Signature field per key on top; unchanged without keys.
std::string with_dkim_signatures(
    const std::vector<std::shared_ptr<const mailauth::DkimSigningKey>>& keys, std::string message);

}  // namespace app
