// pipeline.cpp — see pipeline.h.
#include "intake/pipeline.h"

#include <utility>

#include "smtp/server_session.h"

namespace intake {

std::string_view to_string(Stage stage) {
  switch (stage) {
    case Stage::kConnect:
      return "connect";
    case Stage::kHelo:
      return "helo";
    case Stage::kMail:
      return "mail";
    case Stage::kRcpt:
      return "rcpt";
    case Stage::kDataStart:
      return "data";
    case Stage::kHeader:
      return "header";
    case Stage::kEndOfHeaders:
      return "end_of_headers";
    case Stage::kBody:
      return "body";
    case Stage::kEndOfData:
      return "end_of_data";
  }
  return "unknown";
}

Pipeline::Pipeline(std::vector<std::shared_ptr<Check>> checks) : checks_(std::move(checks)) {
  for (const auto& check : checks_) {
    stages_ |= check->stages();
    reads_content_ = reads_content_ || check->reads_content();
  }
}

unsigned Pipeline::session_stages() const {
  unsigned bits = 0;
  if (wants(Stage::kConnect)) bits |= static_cast<unsigned>(smtp::CheckStage::kConnect);
  if (wants(Stage::kHelo)) bits |= static_cast<unsigned>(smtp::CheckStage::kHelo);
  if (wants(Stage::kMail)) bits |= static_cast<unsigned>(smtp::CheckStage::kMail);
  if (wants(Stage::kRcpt)) bits |= static_cast<unsigned>(smtp::CheckStage::kRcpt);
  return bits;
}

void Pipeline::session_closed(std::string_view session_id) const {
  for (const auto& check : checks_)
    check->session_closed(session_id);
}

StageRun::StageRun(const Pipeline& pipeline, Stage stage) : pipeline_(pipeline), stage_(stage) {}

Check* StageRun::next_check() {
  current_ = nullptr;
  if (decided_) return nullptr;
  const auto& checks = pipeline_.checks();
  while (position_ < checks.size()) {
    Check* check = checks[position_++].get();
    if ((check->stages() & mask(stage_)) != 0) {
      current_ = check;
      return check;
    }
  }
  decided_ = true;
  return nullptr;
}

void merge_edits(Verdict& into, Verdict&& from) {
  for (HeaderEdit& edit : from.header_edits)
    into.header_edits.push_back(std::move(edit));
  if (from.new_body) into.new_body = std::move(from.new_body);
  if (from.new_sender) into.new_sender = std::move(from.new_sender);
  for (std::string& address : from.add_recipients)
    into.add_recipients.push_back(std::move(address));
  for (std::string& address : from.delete_recipients)
    into.delete_recipients.push_back(std::move(address));
  if (!from.folder.empty()) into.folder = std::move(from.folder);
}

void StageRun::record(Verdict verdict) {
  if (current_ == nullptr || decided_) return;
  current_ = nullptr;
  switch (verdict.kind) {
    case Verdict::Kind::kPass:
      merge_edits(merged_, std::move(verdict));
      return;
    case Verdict::Kind::kReply:
      // A reply must be a refusal; anything else is a broken check: fail safe (temporary).
      if (verdict.reply.code < 400 || verdict.reply.code > 599) {
        verdict.reply = smtp::Reply{451, "4.3.0", "Temporary failure checking the message"};
      }
      merged_.kind = Verdict::Kind::kReply;
      merged_.reply = std::move(verdict.reply);
      decided_ = true;
      return;
    case Verdict::Kind::kDiscard:
      merged_.kind = Verdict::Kind::kDiscard;
      decided_ = true;
      return;
    case Verdict::Kind::kHold:
      // A hold decides where the message goes, not what it is: the later checks still run
      // (a held message is signed like any other, and a later refusal or discard wins).
      merge_edits(merged_, std::move(verdict));
      merged_.kind = Verdict::Kind::kHold;
      return;
  }
}

void StageRun::record_timeout() {
  if (current_ == nullptr || decided_) return;
  Check* check = current_;
  timed_out_.emplace_back(check->name());
  record(check->timeout_verdict(stage_));
}

}  // namespace intake
