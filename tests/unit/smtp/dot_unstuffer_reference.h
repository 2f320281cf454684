// dot_unstuffer_reference.h — the DATA body decoder as it was before the line-at-a-time
// fast path (a byte loop for CR/LF, one state-machine round per step), kept unchanged as
// the reference: dot_stuffing_test.cpp compares smtp::DotUnstuffer with it on random
// inputs, chunkings and output bounds, and bench/dot_stuffing_bench.cpp measures both in
// one run. Do not "fix" or speed it up: its value is that it is the old code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "smtp/dot_stuffing.h"

namespace smtp_test {

class ReferenceDotUnstuffer {
 public:
  using Options = smtp::DotUnstuffer::Options;

  explicit ReferenceDotUnstuffer(const Options& options) : options_(options) {}

  bool finished() const { return state_ == State::kFinished; }
  bool saw_bare_cr() const { return saw_bare_cr_; }
  bool saw_bare_lf() const { return saw_bare_lf_; }
  bool line_too_long() const { return line_too_long_; }

  std::size_t decode(std::string_view input, std::string& out, std::size_t out_limit) {
    std::size_t pos = 0;
    while (pos < input.size() && state_ != State::kFinished) {
      if (out.size() + 4 > out_limit) break;
      const char c = input[pos];
      switch (state_) {
        case State::kLineStart:
        case State::kLooseLineStart:
          if (c == '.') {
            loose_dot_ = state_ == State::kLooseLineStart;
            count(1);
            state_ = State::kDot;
            ++pos;
          } else {
            state_ = State::kInLine;
          }
          break;
        case State::kDot:
          if (c == '\r') {
            count(1);
            state_ = State::kDotCr;
            ++pos;
          } else if (c == '\n') {
            out.push_back('.');
            count(1);
            bare_line_ending('\n', out);
            ++pos;
          } else {
            --line_length_;
            state_ = State::kInLine;
          }
          break;
        case State::kDotCr:
          if (c == '\n') {
            ++pos;
            if (!loose_dot_) {
              state_ = State::kFinished;
            } else {
              out.append(".\r\n");
              end_line();
              state_ = State::kLineStart;
            }
          } else {
            out.push_back('.');
            bare_line_ending('\r', out);
          }
          break;
        case State::kInLine: {
          std::size_t end = pos;
          const std::size_t room = out_limit - out.size() - 4;
          const std::size_t stop = input.size() - pos > room ? pos + room : input.size();
          while (end < stop && input[end] != '\r' && input[end] != '\n')
            ++end;
          if (end > pos) {
            out.append(input.data() + pos, end - pos);
            count(end - pos);
            pos = end;
            break;
          }
          if (c == '\r') {
            count(1);
            state_ = State::kCr;
            ++pos;
          } else if (c == '\n') {
            count(1);
            bare_line_ending('\n', out);
            ++pos;
          } else {
            return pos;
          }
          break;
        }
        case State::kCr:
          if (c == '\n') {
            count(1);
            out.append("\r\n");
            end_line();
            state_ = State::kLineStart;
            ++pos;
          } else {
            bare_line_ending('\r', out);
          }
          break;
        case State::kFinished:
          break;
      }
    }
    return pos;
  }

 private:
  enum class State { kLineStart, kLooseLineStart, kDot, kDotCr, kInLine, kCr, kFinished };

  void count(std::size_t octets) {
    line_length_ += octets;
    if (options_.max_line != 0 && line_length_ > options_.max_line) line_too_long_ = true;
  }
  void end_line() { line_length_ = 0; }
  void bare_line_ending(char which, std::string& out) {
    if (which == '\r') {
      saw_bare_cr_ = true;
    } else {
      saw_bare_lf_ = true;
    }
    if (options_.normalize_bare_line_endings) {
      out.append("\r\n");
    } else {
      out.push_back(which);
    }
    end_line();
    state_ = State::kLooseLineStart;
  }

  Options options_;
  State state_ = State::kLineStart;
  bool loose_dot_ = false;
  bool saw_bare_cr_ = false;
  bool saw_bare_lf_ = false;
  bool line_too_long_ = false;
  std::size_t line_length_ = 0;
};

}  // namespace smtp_test
