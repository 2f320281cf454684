// dot_stuffing.h — the DATA body of RFC 5321 §4.1.1.4 / §4.5.2 in both directions:
// DotUnstuffer (server side) removes the transparency dot and finds the end-of-data
// indicator CRLF "." CRLF; DotStuffer (client side) adds the dot and writes the indicator.
//
// DotUnstuffer invariants:
// - Only the exact octets CR LF "." CR LF end the data (the CRLF before the dot may be the
//   one that ended the DATA command). "\n.\n", "\r.\r", "\n.\r\n" and "\r\n.\n" never do:
//   reading those as an end is the SMTP smuggling bug of 2023.
// - Streaming: state survives between decode() calls, so the terminator may be split at
//   any octet; the decoder never holds more than the caller's output bound.
// - A bare CR or bare LF is reported; it is copied as is, or, with
//   normalize_bare_line_endings, written as CRLF. A line that starts after a bare line
//   ending is never the start of a terminator.
// Usable by the client side as well (e.g. to read a body back in tests).
//
// DotStuffer invariants:
// - Its output never holds a bare CR or a bare LF: each one in the content is written as
//   CRLF (counted in bare_line_endings()). Sending them as is would let a lenient next hop
//   read "\n.\r\n" in a body as the end of data (SMTP smuggling, 2023); our spool holds
//   CRLF text, so this only ever changes a damaged message.
// - Every line that starts with "." gets one more "." (§4.5.2), wherever the content is
//   split between encode() calls (a "." right after a CRLF that ended the previous piece
//   is still doubled): decoding the output with DotUnstuffer gives back the content.
// - finish() ends the last line with CRLF if the content did not, then writes "." CRLF,
//   so the output ends with exactly one end-of-data indicator and holds no other.
// - Line length is not limited here (§4.5.3.1.6's 1000 octets is the spool's concern).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace smtp {

class DotUnstuffer {
 public:
  struct Options {
    bool normalize_bare_line_endings = false;
    std::size_t max_line = 0;  // octets incl. CRLF as sent (stuffing dot included); 0: none
  };

  DotUnstuffer() = default;
  explicit DotUnstuffer(const Options& options) : options_(options) {}

  // Back to the start of a body (just after the CRLF of the DATA command).
  void reset();
  void set_options(const Options& options) { options_ = options; }

  // Decodes from input, appending unstuffed octets to out, and stops at the end of the
  // terminator, when input is exhausted, or before out would grow past out_limit (at least
  // 4 octets of room are needed to make progress). Returns the input octets consumed.
  std::size_t decode(std::string_view input, std::string& out, std::size_t out_limit);

  bool finished() const { return state_ == State::kFinished; }
  bool saw_bare_cr() const { return saw_bare_cr_; }
  bool saw_bare_lf() const { return saw_bare_lf_; }
  bool saw_bare_line_ending() const { return saw_bare_cr_ || saw_bare_lf_; }
  bool line_too_long() const { return line_too_long_; }

 private:
  enum class State {
    kLineStart,       // after a real CRLF (or at the start): a '.' may start a terminator
    kLooseLineStart,  // after a bare CR/LF: a '.' is unstuffed but never ends the data
    kDot,             // saw '.' at the start of a line
    kDotCr,           // saw '.' CR at the start of a line
    kInLine,          // inside a line
    kCr,              // saw CR inside a line
    kFinished,
  };

  std::size_t copy_whole_lines(std::string_view input, std::size_t pos, std::string& out,
                               std::size_t out_limit);
  void bare_line_ending(char which, std::string& out);
  void count(std::size_t octets);
  void end_line() { line_length_ = 0; }

  Options options_;
  State state_ = State::kLineStart;
  bool loose_dot_ = false;  // the pending dot started a loose line
  bool saw_bare_cr_ = false;
  bool saw_bare_lf_ = false;
  bool line_too_long_ = false;
  std::size_t line_length_ = 0;
};

// Streaming encoder for the client side of DATA. The state starts at the beginning of a
// line (just after the DATA command's 354 reply).
class DotStuffer {
 public:
  // Back to the start of a body.
  void reset();
  // Appends the stuffed form of input to out (at most 2 * input.size() + 1 octets).
  void encode(std::string_view input, std::string& out);
  // Appends the end of the body: CRLF if the last line is open, then "." CRLF. The state
  // is back at the start of a line; bare_line_endings() keeps its count until reset().
  void finish(std::string& out);
  // Bare CR or LF octets of the content written as CRLF since the last reset().
  std::size_t bare_line_endings() const { return bare_line_endings_; }

 private:
  enum class State {
    kLineStart,  // at the start of a line: a '.' is doubled
    kInLine,     // inside a line
    kCr,         // wrote a CR; an LF completes the pair, anything else makes it bare
  };
  State state_ = State::kLineStart;
  std::size_t bare_line_endings_ = 0;
};

}  // namespace smtp
