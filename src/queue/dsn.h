// dsn.h — delivery status notifications: the bounce, delay and success reports the queue
// sends back to a message's reverse-path (RFC 3464 message/delivery-status inside an
// RFC 6522 multipart/report, honouring the RFC 3461 NOTIFY / RET / ENVID / ORCPT
// parameters the client gave, marked Auto-Submitted per RFC 3834 §5; for a REQUIRETLS message,
// RFC 8689 §5: headers only, and REQUIRETLS on the notice's own envelope).
//
// Pure functions: no clock, no file, no randomness — the caller passes the times and a
// unique Message-ID, so the same request always builds the same octets (testable).
// Invariants of every DSN built here:
// - Its envelope has the null reverse-path: a DSN is never answered by another DSN
//   (RFC 5321 §4.5.5: notifications are sent with the null reverse-path).
// - Nothing taken from the request or the original message can start a header line:
//   CR, LF and other controls are removed from every value placed in a header or in a
//   delivery-status field, and the original message is only ever quoted inside a body part.
// - The MIME boundary occurs in none of the parts; every line ends in CRLF and is at most
//   998 octets (RFC 5322 §2.1.1), so the content can be spooled and relayed as is.
// - envelope.body is BODY=8BITMIME exactly when the content holds an octet over 127
//   (RFC 6152); envelope.smtputf8 exactly when its own header holds one (RFC 6531 §3.4:
//   only then is SMTPUTF8 needed).
// build_dsn reports every recipient it is given; choosing them is the caller's job, with
// wants_notification().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/envelope.h"

namespace queue {

// RFC 3464 §2.3.3 action-value; "expanded" for an alias expanded to several addresses
// (RFC 3461 §5.2.7), whose targets then report no success.
enum class DsnAction { kFailed, kDelayed, kDelivered, kRelayed, kExpanded };

struct DsnRecipient {
  std::string final_recipient;     // the address we tried
  std::string original_recipient;  // ORCPT as stored in smtp::Recipient::original_recipient
                                   // ("addr-type;decoded-address"), may be empty
  DsnAction action = DsnAction::kFailed;
  std::string status;      // enhanced status "5.1.1", "4.4.7", "2.0.0"; empty or malformed:
                           // X.0.0 of the class the action implies
  std::string remote_mta;  // remote host name, empty when the failure was local
  std::string diagnostic;  // remote reply "550 5.1.1 no such user" (-> Diagnostic-Code: smtp;
                           // ...) or empty; a multi-line reply is joined with spaces
  std::int64_t last_attempt_unix = 0;      // 0: no Last-Attempt-Date field
  std::int64_t will_retry_until_unix = 0;  // kDelayed only; 0: no Will-Retry-Until field
};

struct DsnRequest {
  std::string reporting_mta;      // our host name
  std::string sender;             // the original reverse-path = recipient of the DSN; never empty
  std::string envelope_id;        // ENVID (decoded), may be empty
  std::int64_t arrival_unix = 0;  // 0: no Arrival-Date field
  std::int64_t now_unix = 0;      // the DSN's Date
  smtp::DsnReturn ret = smtp::DsnReturn::kUnspecified;
  // The original came with REQUIRETLS (RFC 8689 §5): headers only whatever ret says, and the
  // DSN's envelope asks for REQUIRETLS too.
  bool require_tls = false;
  std::vector<DsnRecipient> recipients;
  std::string_view original;             // the stored message (headers + body, CRLF line endings)
  std::size_t max_returned = 64 * 1024;  // full message returned only up to this size, else
                                         // headers only
  // Nothing of the original at all, not even its header section (RFC 6522 §3 makes the
  // third part optional): success notices that anyone could have asked for.
  bool omit_original = false;
  std::string message_id;  // Message-ID for the DSN without <>, e.g. "<queueid>.dsn@host";
                           // caller makes it unique
};

struct DsnMessage {
  std::string content;      // a complete RFC 5322 message, CRLF, ready to spool
  smtp::Envelope envelope;  // reverse_path "" (null: never bounce a bounce), one recipient =
                            // sender, body/smtputf8 set as the content needs
};

// What build_dsn returns of the original (RFC 3461 §4.3, RFC 6522 §4):
// - the whole message (message/rfc822, or message/global per RFC 6533 §6.3) only when at
//   least one recipient failed, RET is FULL or absent, the message is at most max_returned
//   octets and it can travel as 8BITMIME (no NUL, no bare CR or LF, no line over 998
//   octets; XXX: such a message is not re-encoded, its headers are returned instead);
// - otherwise its header section (text/rfc822-headers, or message/global-headers),
//   cut at a line boundary past 64 KiB. RFC 3461 §4.3: "If a DSN contains no indications
//   of delivery failure, only the headers of the message SHOULD be returned", so delay and
//   success reports never carry the body.
// Internationalised mail (RFC 6533): when an address in the report (sender, final or
// original recipient) or a returned header holds non-ASCII octets, the report is
// message/global-delivery-status, such addresses use the "utf-8" address type, and the
// original is returned as message/global or message/global-headers; otherwise plain
// message/delivery-status with "rfc822" addresses and any non-ASCII octet of a remote's
// diagnostic replaced by '?'.
DsnMessage build_dsn(const DsnRequest& request);

// RFC 3461 §4.1: whether the sender asked for a notice of this kind for this recipient.
// No NOTIFY: failures and delays yes, success no (§4.1 allows "FAILURE" or
// "FAILURE,DELAY" as the default). NOTIFY=NEVER: nothing. kRelayed counts as SUCCESS
// (a "relayed" notice stands in for the success notice a next hop without DSN support
// cannot send), and so does kExpanded. Keywords case-insensitive, as the session accepted
// them.
bool wants_notification(const smtp::Recipient& recipient, DsnAction action);

// "failed", "delayed", "delivered", "relayed", "expanded" (RFC 3464 §2.3.3).
std::string_view to_string(DsnAction action);

}  // namespace queue
