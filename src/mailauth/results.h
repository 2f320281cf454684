// results.h — the results of the sender-authentication methods, with the names RFC 8601
// §2.7 registers for Authentication-Results (and the logs and metrics use the same words).
// Shared by SPF (RFC 7208 §2.6), DKIM (RFC 6376 §6.1), DMARC (RFC 7489 §11.2) and ARC
// (RFC 8617 §4.4: the chain validation status, also the cv= of an ARC-Seal).
#pragma once

#include <string_view>

namespace mailauth {

// RFC 7208 §2.6.
enum class SpfResult { kNone, kNeutral, kPass, kFail, kSoftFail, kTempError, kPermError };
// RFC 8601 §2.7.1 ("policy": the signature verified, but local policy does not accept it,
// e.g. an RSA key under 1024 bits, RFC 8301 §3.2).
enum class DkimResult { kNone, kPass, kFail, kPolicy, kNeutral, kTempError, kPermError };
// RFC 7489 §11.2.
enum class DmarcResult { kNone, kPass, kFail, kTempError, kPermError };
// RFC 8617 §4.4.
enum class ArcResult { kNone, kPass, kFail };
// RFC 7489 §6.3 p= / sp=.
enum class DmarcPolicy { kNone, kQuarantine, kReject };

std::string_view to_string(SpfResult result);  // "none", "neutral", "pass", "fail", "softfail",
                                               // "temperror", "permerror"
std::string_view to_string(DkimResult result);
std::string_view to_string(DmarcResult result);
std::string_view to_string(DmarcPolicy policy);  // "none", "quarantine", "reject"
std::string_view to_string(ArcResult result);    // "none", "pass", "fail"

}  // namespace mailauth
