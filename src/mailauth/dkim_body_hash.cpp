// dkim_body_hash.cpp — see dkim_body_hash.h.
#include "mailauth/dkim_body_hash.h"

namespace mailauth {

DkimBodyHash::DkimBodyHash(Canonicalization canon, std::optional<std::uint64_t> limit)
    : canon_(canon), limit_(limit), canonicalizer_(canon, *this) {}

void DkimBodyHash::write(std::string_view octets) {
  std::string_view hashed = octets;
  if (limit_) {
    const std::uint64_t room = length_ >= *limit_ ? 0 : *limit_ - length_;
    if (hashed.size() > room) hashed = hashed.substr(0, room);
  }
  hash_.update(hashed);
  length_ += octets.size();
}

void DkimBodyHash::finish() {
  canonicalizer_.finish();
  digest_ = hash_.finish();
}

}  // namespace mailauth
