// expiry_watch.h — when to warn that a certificate in service is about to expire.
//
// Pure: the caller passes the certificates and the time, and logs what comes back (so tests
// drive the clock). Not thread-safe: one owner (the daemon's watch thread, under its lock).
//
// Rules: a warning when a certificate is within 30, 14, 7, 3 or 1 days of its notAfter — once
// per threshold per certificate (file and fingerprint) per process, and only for the nearest
// threshold crossed (a certificate found with 5 days left warns once, "7", not also "30" and
// "14"); an error once it has expired, repeated once a day while it stays in service.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tls/certificate_store.h"

namespace tls {

inline constexpr int kExpiryWarningDays[] = {30, 14, 7, 3, 1};

struct ExpiryNotice {
  CertificateDetails certificate;
  bool expired = false;
  int threshold_days = 0;         // the threshold just crossed (not for expired)
  std::int64_t seconds_left = 0;  // negative once expired
  std::int64_t days_left = 0;     // rounded down; negative once expired
};

class ExpiryWatch {
 public:
  // The notices due now for these certificates (empty most of the time).
  std::vector<ExpiryNotice> check(const std::vector<CertificateDetails>& certificates,
                                  std::int64_t now_unix);

 private:
  struct State {
    int warned_threshold = 0;              // smallest threshold warned about (0: none)
    std::int64_t last_expired_notice = 0;  // unix seconds (0: never)
  };
  std::map<std::pair<std::string, std::string>, State> states_;  // (file, fingerprint)
};

}  // namespace tls
