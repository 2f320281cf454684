// certificate_user.cpp — see certificate_user.h.
#include "auth/certificate_user.h"

#include "auth/user_store.h"

namespace auth {

base::Expected<std::string, std::string> certificate_user(const CertificateNames& names,
                                                          const UserLookup& lookup) {
  // RFC 5280 §4.1.2.6: "Conforming implementations generating new certificates with
  // electronic mail addresses MUST use the rfc822Name in the subject alternative name
  // extension". So the SANs speak for the certificate when it has any; the commonName is a
  // fallback for older certificates only, as RFC 6125 §6.4.4 does for DNS names.
  if (!names.email_sans.empty()) {
    for (const std::string& address : names.email_sans) {
      if (!validate_address(address)) continue;
      if (const User* user = lookup(address); user != nullptr) return user->address;
    }
    return base::unexpected(std::string("no rfc822Name of the client certificate is a user"));
  }
  if (names.subject_cn.empty()) {
    return base::unexpected(std::string("client certificate has no rfc822Name and no commonName"));
  }
  if (!validate_address(names.subject_cn)) {
    return base::unexpected(std::string("client certificate commonName is not an address"));
  }
  if (const User* user = lookup(names.subject_cn); user != nullptr) return user->address;
  return base::unexpected(std::string("client certificate commonName is not a user"));
}

}  // namespace auth
