// expiry_watch.cpp — see expiry_watch.h.
#include "tls/expiry_watch.h"

namespace tls {
namespace {

constexpr std::int64_t kSecondsPerDay = 86400;

std::int64_t floor_days(std::int64_t seconds) {
  std::int64_t days = seconds / kSecondsPerDay;
  return (seconds % kSecondsPerDay < 0) ? days - 1 : days;
}

}  // namespace

std::vector<ExpiryNotice> ExpiryWatch::check(const std::vector<CertificateDetails>& certificates,
                                             std::int64_t now_unix) {
  std::vector<ExpiryNotice> notices;
  for (const CertificateDetails& certificate : certificates) {
    State& state = states_[{certificate.file, certificate.fingerprint}];
    const std::int64_t left = certificate.not_after - now_unix;
    ExpiryNotice notice{certificate, false, 0, left, floor_days(left)};
    if (left < 0) {
      if (state.last_expired_notice == 0 ||
          now_unix - state.last_expired_notice >= kSecondsPerDay) {
        state.last_expired_notice = now_unix;
        notice.expired = true;
        notices.push_back(notice);
      }
      continue;
    }
    // The nearest threshold crossed: the smallest one that `left` is within.
    int crossed = 0;
    for (int days : kExpiryWarningDays) {
      if (left <= days * kSecondsPerDay) crossed = days;
    }
    if (crossed != 0 && (state.warned_threshold == 0 || crossed < state.warned_threshold)) {
      state.warned_threshold = crossed;
      notice.threshold_days = crossed;
      notices.push_back(notice);
    }
  }
  return notices;
}

}  // namespace tls
