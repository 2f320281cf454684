// dot_stuffer_reference.h — the DATA body encoder as it was before the block scan (a byte
// loop for CR/LF, one state-machine round per line and an append per line), kept unchanged
// as the reference: dot_stuffing_test.cpp compares smtp::DotStuffer with it on random
// inputs and splits, and bench/dot_stuffing_bench.cpp measures both in one run. Do not
// "fix" or speed it up: its value is that it is the old code.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace smtp_test {

class ReferenceDotStuffer {
 public:
  void encode(std::string_view input, std::string& out) {
    std::size_t pos = 0;
    while (pos < input.size()) {
      const char c = input[pos];
      switch (state_) {
        case State::kCr:
          if (c == '\n') {
            out.push_back('\n');
            ++pos;
          } else {
            out.push_back('\n');
            ++bare_line_endings_;
          }
          state_ = State::kLineStart;
          break;
        case State::kLineStart:
          if (c == '.') {
            out.append("..");
            ++pos;
            state_ = State::kInLine;
            break;
          }
          state_ = State::kInLine;
          break;
        case State::kInLine: {
          std::size_t end = pos;
          while (end < input.size() && input[end] != '\r' && input[end] != '\n')
            ++end;
          out.append(input.data() + pos, end - pos);
          pos = end;
          if (pos == input.size()) break;
          if (input[pos] == '\r') {
            out.push_back('\r');
            state_ = State::kCr;
          } else {
            out.append("\r\n");
            ++bare_line_endings_;
            state_ = State::kLineStart;
          }
          ++pos;
          break;
        }
      }
    }
  }

  void finish(std::string& out) {
    switch (state_) {
      case State::kCr:
        out.push_back('\n');
        ++bare_line_endings_;
        break;
      case State::kInLine:
        out.append("\r\n");
        break;
      case State::kLineStart:
        break;
    }
    out.append(".\r\n");
    state_ = State::kLineStart;
  }

  std::size_t bare_line_endings() const { return bare_line_endings_; }

 private:
  enum class State { kLineStart, kInLine, kCr };
  State state_ = State::kLineStart;
  std::size_t bare_line_endings_ = 0;
};

}  // namespace smtp_test
