// dkim_sign_check.cpp — see dkim_sign_check.h.
#include "intake/dkim_sign_check.h"

#include <ctime>
#include <optional>
#include <string>
#include <utility>

#include "base/ascii.h"
#include "intake/message_intake.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/from_header.h"
#include "obs/log.h"

namespace intake {

struct DkimSignCheck::State final : CheckState {
  std::shared_ptr<mailauth::DkimSigner> signer;
  std::string domain;
};

DkimSignCheck::DkimSignCheck(Keys keys, Offload offload)
    : keys_(std::move(keys)), offload_(std::move(offload)) {}

StageMask DkimSignCheck::stages() const {
  return mask(Stage::kEndOfHeaders) | mask(Stage::kBody) | mask(Stage::kEndOfData);
}

std::string DkimSignCheck::summary() const {
  std::string out = "signs mail of";
  for (const auto& [domain, keys] : keys_) {
    out += " " + domain + " (";
    for (std::size_t i = 0; i < keys.size(); ++i)
      out += (i ? ", " : "") + std::string(keys[i]->algorithm());
    out += ")";
  }
  return out;
}

void DkimSignCheck::run(Stage stage, const Context& context, Done done) {
  // Our users' mail only: authenticated, or a local submission.
  if (context.state == nullptr || (context.authenticated_user.empty() && context.role != "local"))
    return done(Verdict::pass());
  if (stage == Stage::kEndOfHeaders) {
    if (context.header_section.empty()) return done(Verdict::pass());
    const mailauth::FromDomains from = mailauth::from_domains(context.header_section);
    if (from.from_fields != 1 || from.domains.size() != 1) return done(Verdict::pass());
    auto found = keys_.find(from.domains.front());
    if (found == keys_.end() || found->second.empty()) return done(Verdict::pass());
    // Only the sender's own domain: the server already holds MAIL FROM to the user's
    // addresses, and a From of another hosted domain must not get that domain's signature.
    const std::string_view sender =
        context.envelope != nullptr ? std::string_view(context.envelope->reverse_path) : "";
    const std::size_t at = sender.rfind('@');
    if (at == std::string_view::npos ||
        !base::equals_ignoring_case(sender.substr(at + 1), found->first)) {
      return done(Verdict::pass());
    }
    auto state = std::make_unique<State>();
    state->domain = found->first;
    state->signer = std::make_shared<mailauth::DkimSigner>(found->second);
    *context.state = std::move(state);
    return done(Verdict::pass());
  }
  auto* state = static_cast<State*>(context.state->get());
  if (state == nullptr || !state->signer) return done(Verdict::pass());
  if (stage == Stage::kBody) {
    state->signer->body(context.body_chunk);
    return done(Verdict::pass());
  }
  if (stage != Stage::kEndOfData) return done(Verdict::pass());
  std::shared_ptr<mailauth::DkimSigner> signer = std::move(state->signer);
  // The header section is a view valid during run() only: the job keeps a copy.
  std::string section(context.header_section);
  // What the checks before this one changed (a milter's header fields, a new body) is in the
  // message we sign: the signature covers the message as stored. A new body (up to 64 MiB)
  // is hashed by the job, off the I/O thread; the job keeps a copy, since the verdict it
  // comes from may be gone by the time a late job runs.
  std::optional<std::string> new_body;
  if (context.earlier != nullptr) {
    const Verdict& earlier = *context.earlier;
    if (earlier.new_body) {
      signer = std::make_shared<mailauth::DkimSigner>(keys_.at(state->domain));
      new_body = earlier.new_body;
    }
    if (!earlier.header_edits.empty()) {
      auto edited = edit_header_section(section, earlier.header_edits);
      if (edited) section = std::move(edited.value());  // else the message fails at apply()
    }
  }
  offload_([signer, new_body = std::move(new_body), section = std::move(section),
            domain = state->domain, session = std::string(context.session_id),
            id = std::string(context.queue_id), done = std::move(done)]() {
    if (new_body) signer->body(*new_body);
    signer->end_of_body();
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::vector<std::string> signatures = signer->sign(section, now);
    Verdict verdict;
    for (std::string& value : signatures) {
      verdict.header_edits.push_back(
          HeaderEdit{HeaderEdit::Kind::kAdd, "DKIM-Signature", std::move(value), 1});
    }
    obs::Log("dkim_signed")
        .kv("session", session)
        .kv("id", id)
        .kv("domain", domain)
        .kv("signatures", static_cast<std::uint64_t>(verdict.header_edits.size()));
    done(std::move(verdict));
  });
}

}  // namespace intake
