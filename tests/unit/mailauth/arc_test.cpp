// arc_test.cpp — ARC chain validation (RFC 8617 §5.2) on chains sealed here, hop by hop, the
// way a mailing list seals (AAR, AMS over the message, AS over the sets): valid chains of
// one and two sets pass; a changed body, a changed sealed field, a broken structure (missing
// or duplicated instance, cv=none above 1, more than 50 sets, malformed tags) fail without
// a crash; a message without ARC fields is "none". Keys come through the fake resolver.
#include "mailauth/arc_verifier.h"

#include <gtest/gtest.h>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/base64.h"
#include "fake_resolver.h"
#include "mailauth/arc_headers.h"
#include "mailauth/dkim_body_hash.h"
#include "mailauth/dkim_canonicalization.h"
#include "mailauth/dkim_signer.h"

namespace mailauth {
namespace {

const std::string kMessage =
    "From: Alice <alice@example.com>\r\n"
    "To: list@lists.example.org\r\n"
    "Subject: [list] hello\r\n"
    "\r\n"
    "Hello,\r\n\r\n  a body  line\r\n\r\n";

// One signing key per (algorithm, domain), generated once, its record in `resolver`.
std::shared_ptr<const DkimSigningKey> sealer_key(const std::string& algorithm,
                                                 const std::string& domain) {
  static std::map<std::string, std::shared_ptr<const DkimSigningKey>> keys;
  auto& key = keys[algorithm + " " + domain];
  if (!key) {
    auto generated = generate_dkim_key(algorithm == "ed25519-sha256" ? "ed25519" : "rsa");
    key = *DkimSigningKey::load(generated->private_pem, domain, "arc");
  }
  return key;
}

mailauth_test::FakeResolver& resolver() {
  static mailauth_test::FakeResolver instance;
  static bool filled = false;
  if (!filled) {
    filled = true;
    for (const char* domain : {"lists.example.org", "forwarder.example.net"})
      instance.add_txt(std::string("arc._domainkey.") + domain,
                       sealer_key("rsa-sha256", domain)->dns_record());
    instance.add_txt("ed._domainkey.lists.example.org",
                     sealer_key("ed25519-sha256", "lists.example.org")->dns_record());
  }
  return instance;
}

// The ARC fields of the message, by instance and kind (0 AAR, 1 AMS, 2 AS), as field texts.
std::map<unsigned, std::array<std::string, 3>> arc_sets(std::string_view header) {
  std::map<unsigned, std::array<std::string, 3>> sets;
  for (const HeaderField& field : split_header_section(header)) {
    std::string_view value = field.text.substr(field.text.find(':') + 1);
    if (value.ends_with("\r\n")) value.remove_suffix(2);
    if (base::equals_ignoring_case(field.name, "arc-authentication-results"))
      sets[*parse_arc_results_instance(value)][0] = field.text;
    else if (base::equals_ignoring_case(field.name, "arc-message-signature"))
      sets[parse_arc_message_signature(value)->instance][1] = field.text;
    else if (base::equals_ignoring_case(field.name, "arc-seal"))
      sets[parse_arc_seal(value)->instance][2] = field.text;
  }
  return sets;
}

// One hop: seals `message` as instance i with cv=, signing with the key of `domain`.
std::string seal(const std::string& message, unsigned instance, const std::string& cv,
                 const std::string& domain = "lists.example.org",
                 const std::string& algorithm = "rsa-sha256", const std::string& selector = "arc") {
  resolver();
  auto key = algorithm == "rsa-sha256" ? sealer_key(algorithm, domain)
                                       : sealer_key(algorithm, "lists.example.org");
  const std::size_t end = message.find("\r\n\r\n");
  const std::string header = message.substr(0, end + 4);
  const std::string body = message.substr(end + 4);
  const std::string i = std::to_string(instance);

  const std::string aar =
      "ARC-Authentication-Results: i=" + i + "; " + domain + "; dkim=fail header.d=example.com\r\n";
  DkimBodyHash body_hash(Canonicalization::kRelaxed, std::nullopt);
  body_hash.feed(body);
  body_hash.finish();
  std::string ams = "ARC-Message-Signature: i=" + i + "; a=" + algorithm +
                    "; c=relaxed/relaxed; d=" + domain + "; s=" + selector +
                    "; t=1796472000; h=from:to:subject; bh=" + base::to_base64(body_hash.digest()) +
                    "; b=";
  {
    const std::string with = ams + "\r\n" + header;
    auto fields = split_header_section(with);
    const std::string data = signed_header_data(Canonicalization::kRelaxed, fields,
                                                {"from", "to", "subject"}, 0, ams.size(), 0);
    ams += base::to_base64(*key->sign(data)) + "\r\n";
  }
  std::string as = "ARC-Seal: i=" + i + "; cv=" + cv + "; a=" + algorithm + "; d=" + domain +
                   "; s=" + selector + "; t=1796472000; b=";
  {
    std::string data;
    for (const auto& [number, set] : arc_sets(header))
      for (const std::string& field : set)
        append_canonical_header(Canonicalization::kRelaxed, field, data);
    append_canonical_header(Canonicalization::kRelaxed, aar, data);
    append_canonical_header(Canonicalization::kRelaxed, ams, data);
    append_canonical_header(Canonicalization::kRelaxed, as, data);
    as += base::to_base64(*key->sign(data)) + "\r\n";
  }
  return as + ams + aar + message;
}

// Verifies `message`, its body fed in chunks of `chunk` octets, keys from the fake resolver.
ArcOutcome verify(const std::string& message, std::size_t chunk = 4096) {
  const std::size_t end = message.find("\r\n\r\n");
  ArcVerifier verifier;
  verifier.header_section(message.substr(0, end + 4));
  const std::string body = message.substr(end + 4);
  for (std::size_t at = 0; at < body.size(); at += chunk)
    verifier.body(std::string_view(body).substr(at, chunk));
  verifier.end_of_body();
  if (auto early = verifier.outcome_without_keys()) {
    EXPECT_TRUE(verifier.key_names().empty());
    EXPECT_EQ(verifier.verify({}).result, early->result);
    return *early;
  }
  std::vector<dns::AnswerPtr> keys;
  for (const std::string& name : verifier.key_names())
    resolver().lookup(name, dns::Type::kTxt,
                      [&keys](dns::AnswerPtr answer) { keys.push_back(std::move(answer)); });
  return verifier.verify(keys);
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(ArcVerifier, NoArcFieldsIsNone) {
  EXPECT_FALSE(ArcVerifier::has_arc_fields(kMessage.substr(0, kMessage.find("\r\n\r\n") + 4)));
  const ArcOutcome outcome = verify(kMessage);
  EXPECT_EQ(outcome.result, ArcResult::kNone);
  EXPECT_EQ(outcome.instances, 0u);
}

TEST(ArcVerifier, OneSetPasses) {
  const std::string sealed = seal(kMessage, 1, "none");
  EXPECT_TRUE(ArcVerifier::has_arc_fields(sealed));
  for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
    const ArcOutcome outcome = verify(sealed, chunk);
    EXPECT_EQ(outcome.result, ArcResult::kPass) << outcome.problem;
    EXPECT_EQ(outcome.instances, 1u);
    EXPECT_EQ(outcome.sealer, "lists.example.org");
  }
}

TEST(ArcVerifier, TwoSetsPassAndNameTheLatestSealer) {
  // The second hop changes the subject, which only the latest AMS covers.
  const std::string first = seal(kMessage, 1, "none");
  const std::string second = seal(replace(first, "Subject: [list] hello", "Subject: [fwd] hello"),
                                  2, "pass", "forwarder.example.net");
  const ArcOutcome outcome = verify(second);
  EXPECT_EQ(outcome.result, ArcResult::kPass) << outcome.problem;
  EXPECT_EQ(outcome.instances, 2u);
  EXPECT_EQ(outcome.sealer, "forwarder.example.net");
}

TEST(ArcVerifier, Ed25519SealsPass) {
  const ArcOutcome outcome =
      verify(seal(kMessage, 1, "none", "lists.example.org", "ed25519-sha256", "ed"));
  EXPECT_EQ(outcome.result, ArcResult::kPass) << outcome.problem;
}

TEST(ArcVerifier, ChangedBodyFailsAtTheLatestMessageSignature) {
  const std::string sealed = seal(seal(kMessage, 1, "none"), 2, "pass", "forwarder.example.net");
  const ArcOutcome outcome = verify(replace(sealed, "a body  line", "a bodY  line"));
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "ARC-Message-Signature 2: body hash did not verify");
  EXPECT_EQ(outcome.sealer, "forwarder.example.net");
}

TEST(ArcVerifier, ChangedSealedHeaderFailsTheMessageSignature) {
  const ArcOutcome outcome =
      verify(replace(seal(kMessage, 1, "none"), "Subject: [list] hello", "Subject: [list] Hello"));
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "ARC-Message-Signature 1: signature did not verify");
}

TEST(ArcVerifier, ChangedAuthenticationResultsFailsTheSeal) {
  const std::string sealed = seal(seal(kMessage, 1, "none"), 2, "pass", "forwarder.example.net");
  // Instance 1's AAR is covered by both seals, by no AMS.
  const std::string changed =
      replace(sealed, "i=1; lists.example.org; dkim=fail", "i=1; lists.example.org; dkim=pass");
  ArcOutcome outcome = verify(changed);
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "ARC-Seal 2: signature did not verify");
  outcome = verify(replace(seal(kMessage, 1, "none"), "dkim=fail", "dkim=pass"));
  EXPECT_EQ(outcome.problem, "ARC-Seal 1: signature did not verify");
}

// The three fields of instance `i` removed from a message.
std::string without_set(const std::string& message, unsigned i) {
  std::string out = message;
  const std::size_t end = message.find("\r\n\r\n");
  const auto sets = arc_sets(message.substr(0, end + 4));
  for (const std::string& field : sets.at(i))
    out = replace(out, field, "");
  return out;
}

TEST(ArcVerifier, BrokenStructureFails) {
  const std::string one = seal(kMessage, 1, "none");
  const std::string two = seal(one, 2, "pass", "forwarder.example.net");
  const std::size_t end = two.find("\r\n\r\n");
  const auto sets = arc_sets(two.substr(0, end + 4));

  ArcOutcome outcome = verify(without_set(two, 1));
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "ARC set 1 is missing or incomplete");

  outcome = verify(replace(two, sets.at(1)[0], ""));  // AAR 1 only
  EXPECT_EQ(outcome.problem, "ARC set 1 is missing or incomplete");

  outcome = verify(sets.at(1)[1] + two);  // AMS 1 twice
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "two ARC-Message-Signature fields for instance 1");

  outcome = verify(seal(one, 2, "none", "forwarder.example.net"));
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "ARC-Seal 2 has cv=none, not pass");

  outcome = verify(seal(kMessage, 1, "pass"));
  EXPECT_EQ(outcome.problem, "ARC-Seal 1 has cv=pass, not none");

  outcome = verify(seal(one, 2, "fail", "forwarder.example.net"));
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "the latest ARC-Seal says cv=fail");
  EXPECT_EQ(outcome.sealer, "forwarder.example.net");
}

TEST(ArcVerifier, MoreThanFiftySetsFail) {
  // Unsigned sets suffice: the bound is checked before any key or body work.
  std::string header;
  for (unsigned i = 1; i <= 51; ++i) {
    const std::string n = std::to_string(i);
    header += "ARC-Seal: i=" + n + "; cv=pass; a=rsa-sha256; d=x.example; s=s; b=AAAA\r\n";
    header += "ARC-Message-Signature: i=" + n +
              "; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\r\n";
    header += "ARC-Authentication-Results: i=" + n + "; x.example; arc=pass\r\n";
  }
  ArcOutcome outcome = verify(header + kMessage);
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "more than 50 ARC sets");
  // One set numbered 51.
  outcome = verify("ARC-Authentication-Results: i=51; x.example; arc=pass\r\n" + kMessage);
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "malformed ARC-Authentication-Results: instance i=51 is not in 1..50");
}

TEST(ArcVerifier, MalformedFieldsFailWithoutACrash) {
  const std::string sealed = seal(kMessage, 1, "none");
  const std::size_t end = sealed.find("\r\n\r\n");
  const auto set = arc_sets(sealed.substr(0, end + 4)).at(1);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cv=none", "cv=maybe"},
      {"cv=none", "cv=none; cv=none"},
      {"ARC-Seal: i=1", "ARC-Seal: i=01"},
      {"ARC-Seal: i=1", "ARC-Seal: i=0"},
      {"; d=lists.example.org; s=arc; t", "; d=lists..example.org; s=arc; t"},
      {"t=1796472000; b=", "t=1796472000; h=from; b="},
      {"bh=", "bh=!"},
      {"ARC-Message-Signature: i=1; ", "ARC-Message-Signature: "},
      {"a=rsa-sha256; c=", "a=rsa-sha1; c="},
      {"ARC-Authentication-Results: i=1;", "ARC-Authentication-Results: i=1 "},
      {"ARC-Authentication-Results: i=1;", "ARC-Authentication-Results: x=1;"},
      {"ARC-Seal: ", "ARC-Seal: ;;"},
  };
  for (const auto& [from, to] : cases) {
    const std::string changed = replace(sealed, from, to);
    const ArcOutcome outcome = verify(changed);
    EXPECT_EQ(outcome.result, ArcResult::kFail) << to;
    EXPECT_FALSE(outcome.problem.empty()) << to;
  }
  // Every prefix of each field, alone: never a crash, never a pass.
  for (const std::string& field : set) {
    for (std::size_t size = 0; size + 2 < field.size(); size += 3) {
      const ArcOutcome outcome = verify(field.substr(0, size) + "\r\n" + kMessage);
      EXPECT_NE(outcome.result, ArcResult::kPass);
    }
  }
}

TEST(ArcVerifier, KeyProblemsFail) {
  const std::string sealed = seal(kMessage, 1, "none", "lists.example.org", "rsa-sha256", "gone");
  const ArcOutcome outcome = verify(sealed);
  EXPECT_EQ(outcome.result, ArcResult::kFail);
  EXPECT_EQ(outcome.problem, "ARC-Message-Signature 1: no key");
}

}  // namespace
}  // namespace mailauth
