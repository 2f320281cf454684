// pipeline.h — the ordered checks of a listener, and one stage's run through them.
//
// Pipeline is immutable once built and shared by every session of a listener (a reload
// builds a new one). StageRun is the sans-I/O sequencing of one stage: it hands the host the
// checks that subscribe to the stage, in order, takes each verdict (or the host's report that
// the check's deadline passed) and merges them: the first reply or discard ends the stage;
// a hold is kept while the later checks still run (their refusal or discard wins); edits of
// passing and holding checks accumulate in order. The host only waits (net/ does it with
// Asio timers; tests do it by hand), so ordering, deadlines' default verdicts and merging are
// all here and unit-tested.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "intake/check.h"

namespace intake {

class Pipeline {
 public:
  Pipeline() = default;
  explicit Pipeline(std::vector<std::shared_ptr<Check>> checks);

  const std::vector<std::shared_ptr<Check>>& checks() const { return checks_; }
  // The stages at least one check subscribes to.
  StageMask stages() const { return stages_; }
  bool wants(Stage stage) const { return (stages_ & mask(stage)) != 0; }
  // A check reads the stored message at the end of data (Check::reads_content).
  bool reads_content() const { return reads_content_; }
  // The same as smtp::SessionConfig::checked_stages bits (connect, HELO, MAIL, RCPT).
  unsigned session_stages() const;
  // Tells every check that the session ended (Check::session_closed).
  void session_closed(std::string_view session_id) const;

 private:
  std::vector<std::shared_ptr<Check>> checks_;
  StageMask stages_ = 0;
  bool reads_content_ = false;
};

class StageRun {
 public:
  StageRun(const Pipeline& pipeline, Stage stage);

  // The next check to run, or nullptr when the stage is decided (then read verdict()).
  Check* next_check();
  // The result of the check next_check() returned.
  void record(Verdict verdict);
  // Its deadline passed: its timeout_verdict() applies; timed_out() names it for the log.
  void record_timeout();

  // The position in Pipeline::checks() of the check next_check() returned last (its
  // CheckState slot).
  std::size_t check_index() const { return position_ - 1; }
  Stage stage() const { return stage_; }
  // The merged verdict: the deciding one (reply, discard) with the edits of the checks
  // before it, else a hold or a pass with every edit.
  const Verdict& verdict() const { return merged_; }
  Verdict take_verdict() { return std::move(merged_); }
  // Names of the checks whose deadline passed, for the log line.
  const std::vector<std::string>& timed_out() const { return timed_out_; }

 private:
  const Pipeline& pipeline_;
  Stage stage_;
  std::size_t position_ = 0;
  Check* current_ = nullptr;
  bool decided_ = false;
  Verdict merged_;
  std::vector<std::string> timed_out_;
};

// Adds the edits of `from` to `into` in order (later header edits apply after earlier ones;
// a later body, sender or folder replaces an earlier one).
void merge_edits(Verdict& into, Verdict&& from);

}  // namespace intake
