// dkim_test_keys.h — keys and helpers shared by the DKIM unit tests: one RSA-2048 and one
// Ed25519 key generated once per test run, and a verification of a whole message.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/dkim_verifier.h"

namespace mailauth::testing {

inline std::shared_ptr<const DkimSigningKey> test_key(const std::string& algorithm,
                                                      const std::string& selector) {
  static std::map<std::string, std::string> pems;
  if (!pems.contains(algorithm)) pems[algorithm] = generate_dkim_key(algorithm)->private_pem;
  return *DkimSigningKey::load(pems[algorithm], "example.com", selector);
}

inline dns::Answer txt_answer(std::vector<std::string> texts) {
  dns::Answer answer;
  answer.status = dns::Status::kOk;
  answer.texts = std::move(texts);
  return answer;
}

// The message split at its empty line; the body fed in chunks of `chunk` octets.
inline std::vector<DkimOutcome> verify_message(const std::string& message,
                                               const std::map<std::string, dns::Answer>& keys,
                                               std::int64_t now, std::size_t chunk = 4096) {
  std::size_t end = message.find("\r\n\r\n");
  DkimVerifier verifier;
  verifier.header_section(message.substr(0, end + 4));
  std::string body = message.substr(end + 4);
  for (std::size_t i = 0; i < body.size(); i += chunk)
    verifier.body(std::string_view(body).substr(i, chunk));
  verifier.end_of_body();
  std::vector<DkimOutcome> outcomes;
  for (std::size_t i = 0; i < verifier.signature_count(); ++i) {
    auto found = keys.find(verifier.key_name(i));
    dns::Answer nxdomain;
    nxdomain.status = dns::Status::kNxDomain;
    outcomes.push_back(verifier.verify(i, found == keys.end() ? nxdomain : found->second, now));
  }
  return outcomes;
}

inline std::string sign_message(const std::string& message,
                                std::vector<std::shared_ptr<const DkimSigningKey>> keys,
                                std::int64_t now) {
  std::size_t end = message.find("\r\n\r\n");
  DkimSigner signer(std::move(keys));
  signer.body(message.substr(end + 4));
  signer.end_of_body();
  std::string signed_message;
  for (const auto& value : signer.sign(message.substr(0, end + 4), now))
    signed_message += "DKIM-Signature: " + value + "\r\n";
  return signed_message + message;
}

}  // namespace mailauth::testing
