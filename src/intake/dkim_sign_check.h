// dkim_sign_check.h — DKIM signatures (RFC 6376) on the mail our users send: AUTH on any
// listener, and local submission. Signed once, at acceptance, before queueing: retries never
// sign again, and the signature is part of the message committed to the spool.
//
// Which keys: those of the local domain named by the message's single From field (DMARC
// aligns DKIM with From, RFC 7489 §3.1.1), and only when it is also the domain of the
// envelope sender (which the server holds to the user's own addresses): a user of one hosted
// domain never gets another's signature. Otherwise the message goes unsigned. With two keys
// (RSA-2048 and Ed25519, RFC 8463) there are two signatures: a verifier that knows only RSA still
// finds one it can check.
//
// When: kEndOfHeaders picks the keys and starts a streaming signer; kBody feeds its body
// hash as the body streams to disk; kEndOfData signs on the offload pool (RSA-2048 costs
// ~0.3 ms: never on the I/O thread) and adds the DKIM-Signature fields on top. In the
// pipeline it is the last check, after every check that edits the message (the header
// fields it signs are then final: mailauth::DkimSigner's header list). The edits of the checks
// before it (a milter's, Context::earlier) are in what it signs: their header edits applied to
// the section, a new body hashed again.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "intake/check.h"

namespace mailauth {
class DkimSigningKey;
}

namespace intake {

class DkimSignCheck final : public Check, public std::enable_shared_from_this<DkimSignCheck> {
 public:
  using Offload = std::function<void(std::function<void()>)>;
  using Keys = std::map<std::string, std::vector<std::shared_ptr<const mailauth::DkimSigningKey>>>;
  // keys: per lower-case domain, in signing order.
  DkimSignCheck(Keys keys, Offload offload);

  std::string_view name() const override { return "dkim-sign"; }
  StageMask stages() const override;
  std::string summary() const override;
  // A late signature: the message goes unsigned rather than waiting or failing.
  Verdict timeout_verdict(Stage) const override { return Verdict::pass(); }
  void run(Stage stage, const Context& context, Done done) override;

 private:
  struct State;
  Keys keys_;
  Offload offload_;
};

}  // namespace intake
