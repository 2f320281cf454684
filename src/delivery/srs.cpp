// srs.cpp — see srs.h.
#include "delivery/srs.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>

#include "base/ascii.h"
#include "base/base64.h"

namespace delivery {
namespace {

using base::ascii_lowercase;
using base::equals_ignoring_case;
using base::starts_with_ignoring_case;

constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::int64_t kSecondsPerDay = 86400;
constexpr int kTimeSlots = 1024;  // two base32 characters

// "SRS0" or "SRS1" followed by one of libsrs2's separators (=, + or -).
bool has_tag(std::string_view local, std::string_view tag) {
  return local.size() >= 5 && starts_with_ignoring_case(local, tag) &&
         (local[4] == '=' || local[4] == '+' || local[4] == '-');
}

int base32_value(char c) {
  const char upper = base::ascii_upper(c);
  const std::size_t at = kBase32.find(upper);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// Splits text at its first '=' into head and the rest; false when there is none.
bool split_field(std::string_view& text, std::string_view& head) {
  const std::size_t at = text.find('=');
  if (at == std::string_view::npos) return false;
  head = text.substr(0, at);
  text.remove_prefix(at + 1);
  return true;
}

}  // namespace

std::string_view to_string(SrsError error) {
  switch (error) {
    case SrsError::kNotSrs:
      return "not an SRS address";
    case SrsError::kMalformed:
      return "malformed SRS address";
    case SrsError::kBadHash:
      return "invalid SRS hash";
    case SrsError::kExpired:
      return "expired SRS address";
  }
  return "?";
}

std::string srs_timestamp(std::int64_t unix_now) {
  const std::int64_t day = unix_now / kSecondsPerDay;
  std::string stamp;
  stamp += kBase32[static_cast<std::size_t>((day >> 5) & 31)];
  stamp += kBase32[static_cast<std::size_t>(day & 31)];
  return stamp;
}

std::string Srs::hash(std::string_view secret,
                      std::initializer_list<std::string_view> parts) const {
  std::string data;
  for (std::string_view part : parts)
    data += ascii_lowercase(part);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  static const unsigned char kEmpty = 0;
  if (HMAC(EVP_sha1(),
           secret.empty() ? static_cast<const void*>(&kEmpty)
                          : static_cast<const void*>(secret.data()),
           static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), digest, &length) == nullptr) {
    std::abort();  // HMAC-SHA1 is always there in OpenSSL 3's default provider
  }
  std::string encoded;
  base::append_base64(encoded, std::string_view(reinterpret_cast<const char*>(digest), length));
  encoded.resize(std::min<std::size_t>(encoded.size(), options_.hash_length));
  return encoded;
}

bool Srs::hash_matches(std::string_view given,
                       std::initializer_list<std::string_view> parts) const {
  if (given.size() != options_.hash_length) return false;
  bool matched = false;
  for (const std::string& secret : options_.secrets) {
    // Case-insensitive, as libsrs2 accepts: a relay may have folded the local part. Every
    // secret is tried, so the time does not say which one matched.
    const std::string expected = ascii_lowercase(hash(secret, parts));
    const std::string seen = ascii_lowercase(given);
    matched |= CRYPTO_memcmp(expected.data(), seen.data(), expected.size()) == 0;
  }
  return matched;
}

std::string Srs::forward(std::string_view sender, std::int64_t unix_now) const {
  const std::size_t at = sender.rfind('@');
  if (sender.empty() || at == std::string_view::npos || at == 0 || at + 1 == sender.size()) {
    return std::string(sender);
  }
  const std::string_view local = sender.substr(0, at);
  const std::string_view domain = sender.substr(at + 1);
  if (equals_ignoring_case(domain, options_.domain)) return std::string(sender);
  const std::string& secret = options_.secrets.front();
  std::string out;
  if (has_tag(local, "SRS0") && local.size() > 5) {
    // Another forwarder's SRS0: keep it whole (with its separator) after its domain.
    const std::string_view kept = local.substr(4);
    out = "SRS1=" + hash(secret, {domain, kept}) + "=" + std::string(domain) + "=" +
          std::string(kept);
  } else if (has_tag(local, "SRS1")) {
    // Already SRS1: keep the first forwarder and its SRS0 part, sign them again.
    std::string_view rest = local.substr(5);
    std::string_view old_hash;
    std::string_view first;
    // Only a well-formed one (reverse() must read back what is written here); any other
    // "SRS1=…" local part is an ordinary sender and gets SRS0 below.
    if (split_field(rest, old_hash) && split_field(rest, first) && !first.empty() &&
        rest.size() >= 2 && (rest[0] == '=' || rest[0] == '+' || rest[0] == '-')) {
      // rest keeps the separator that began the first forwarder's SRS0 part.
      out = "SRS1=" + hash(secret, {first, rest}) + "=" + std::string(first) + "=" +
            std::string(rest);
    }
  }
  if (out.empty()) {
    const std::string stamp = srs_timestamp(unix_now);
    out = "SRS0=" + hash(secret, {stamp, domain, local}) + "=" + stamp + "=" + std::string(domain) +
          "=" + std::string(local);
  }
  return out + "@" + options_.domain;
}

base::Expected<std::string, SrsError> Srs::reverse(std::string_view address,
                                                   std::int64_t unix_now) const {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos ||
      !equals_ignoring_case(address.substr(at + 1), options_.domain)) {
    return base::unexpected(SrsError::kNotSrs);
  }
  const std::string_view local = address.substr(0, at);
  if (has_tag(local, "SRS0")) {
    std::string_view rest = local.substr(5);
    std::string_view given, stamp, domain;
    if (!split_field(rest, given) || !split_field(rest, stamp) || !split_field(rest, domain) ||
        stamp.size() != 2 || domain.empty() || rest.empty()) {
      return base::unexpected(SrsError::kMalformed);
    }
    const int high = base32_value(stamp[0]);
    const int low = base32_value(stamp[1]);
    if (high < 0 || low < 0) return base::unexpected(SrsError::kMalformed);
    if (!hash_matches(given, {stamp, domain, rest})) return base::unexpected(SrsError::kBadHash);
    const int then = high * 32 + low;
    const int today = static_cast<int>((unix_now / kSecondsPerDay) % kTimeSlots);
    const int age = ((today - then) % kTimeSlots + kTimeSlots) % kTimeSlots;
    if (age > static_cast<int>(options_.max_age_days)) return base::unexpected(SrsError::kExpired);
    return std::string(rest) + "@" + std::string(domain);
  }
  if (has_tag(local, "SRS1")) {
    std::string_view rest = local.substr(5);
    std::string_view given, first;
    if (!split_field(rest, given) || !split_field(rest, first) || first.empty() ||
        rest.size() < 2 || (rest[0] != '=' && rest[0] != '+' && rest[0] != '-')) {
      return base::unexpected(SrsError::kMalformed);
    }
    if (!hash_matches(given, {first, rest})) return base::unexpected(SrsError::kBadHash);
    return "SRS0" + std::string(rest) + "@" + std::string(first);
  }
  return base::unexpected(SrsError::kNotSrs);
}

}  // namespace delivery
