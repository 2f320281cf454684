// dkim_public_key.h — the key of a signature from the TXT answer for
// <selector>._domainkey.<domain> (RFC 6376 §3.6.2, §6.1.2): the DKIM verifier's and the
// ARC verifier's (RFC 8617 §5.2: AMS and AS keys are found as for DKIM).
//
// Decisions: a temporary or DNSSEC-bogus answer → temperror; NXDOMAIN or no TXT → permerror
// "no key"; of several TXT records the first that parses as a key record (RFC 6376
// §3.6.2.2 leaves it undefined); empty p= → fail "key revoked"; k=, h=, s= of the record
// that exclude the algorithm → permerror; an RSA key over 8192 bits → permerror (a bound).
#pragma once

#include <string>
#include <string_view>

#include "base/expected.h"
#include "dns/resolver.h"
#include "mailauth/dkim_crypto.h"
#include "mailauth/results.h"

namespace mailauth {

struct DkimPublicKey {
  Pkey key;
  DkimKeyType type = DkimKeyType::kRsa;
  unsigned bits = 0;
  bool testing = false;          // t=y
  bool strict_identity = false;  // t=s
};

struct DkimKeyProblem {
  DkimResult result = DkimResult::kPermError;
  std::string problem;
};

// `algorithm` is the signature's a= ("rsa-sha256" or "ed25519-sha256").
base::Expected<DkimPublicKey, DkimKeyProblem> dkim_public_key(const dns::Answer& answer,
                                                              std::string_view algorithm);

}  // namespace mailauth
