// dot_stuffing.cpp — the DATA body decoder and encoder (RFC 5321 §4.1.1.4, §4.5.2).
//
// RFC 5321 §4.5.2: "When a line of mail text is received by the SMTP server, it checks the
// line. If the line is composed of a single period, it is treated as the end of mail
// indicator. If the first character is a period and there are other characters on the
// line, the first character is deleted." Line ends here are CRLF only (§2.3.8: "Lines
// consist of zero or more data characters terminated by the sequence ASCII character "CR"
// followed immediately by ASCII character "LF""), so the "single period" line is "." CRLF
// preceded by CRLF, nothing else.
//
// Speed (issue 19): the decoder is a state machine octet by octet, but on ordinary mail it
// rarely runs as one. From inside a line, copy_whole_lines() finds each line's end with
// find_cr_or_lf() and takes every following line that ends in CRLF, holds no bare CR or LF, does
// not start with "." and fits the output bound, in one append; anything else goes back to the state
// machine. Both give exactly the same output, octets consumed and flags for every input, split and
// bound: dot_stuffing_test.cpp compares the decoder with the old byte-at-a-time one
// (tests/unit/smtp/dot_unstuffer_reference.h), and bench/dot_stuffing_bench.cpp measures the two.
#include "smtp/dot_stuffing.h"

#include <algorithm>
#include <bit>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace smtp {

namespace {

// The first CR or LF in input[pos, stop), or stop. SSE2 (every x86-64) compares 16 octets
// at a time, inline: the encoder calls this once per line, where two calls of memchr (LF,
// then CR before it) cost more than the line. Elsewhere memchr looks for the LF first and
// for a CR only before it, so each octet is read at most twice.
std::size_t find_cr_or_lf(std::string_view input, std::size_t pos, std::size_t stop) {
  const char* const data = input.data();
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (stop - pos >= 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + pos));
    const auto hits = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(block, cr), _mm_cmpeq_epi8(block, lf))));
    if (hits != 0) return pos + static_cast<std::size_t>(std::countr_zero(hits));
    pos += 16;
  }
  while (pos < stop && data[pos] != '\r' && data[pos] != '\n')
    ++pos;
  return pos;
#else
  const void* lf = std::memchr(data + pos, '\n', stop - pos);
  const std::size_t lf_pos = lf == nullptr ? stop : static_cast<const char*>(lf) - data;
  const void* cr = std::memchr(data + pos, '\r', lf_pos - pos);
  return cr == nullptr ? lf_pos : static_cast<const char*>(cr) - data;
#endif
}

}  // namespace

void DotUnstuffer::reset() {
  state_ = State::kLineStart;
  loose_dot_ = false;
  saw_bare_cr_ = false;
  saw_bare_lf_ = false;
  line_too_long_ = false;
  line_length_ = 0;
}

void DotUnstuffer::count(std::size_t octets) {
  line_length_ += octets;
  if (options_.max_line != 0 && line_length_ > options_.max_line) line_too_long_ = true;
}

void DotUnstuffer::bare_line_ending(char which, std::string& out) {
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

// The fast path, entered inside a line (kInLine) at pos: copies the rest of this line and
// the whole lines after it with one append, stopping before the first line that is not
// ordinary. The octets out are the octets in, and the state afterwards is what the state
// machine below reaches octet by octet; it is left to that machine to handle:
// - a line that does not end in CRLF within input, or holds a bare CR or LF;
// - a line that starts with "." (unstuffing, or the end of data), except the first, whose
//   start is behind us;
// - a line that does not fit the bound as the machine sees it: it copies content while
//   out.size() + 4 <= out_limit, and needs that room again for the CR and for the LF, so a
//   line of n octets before its CRLF goes through whole only if out.size() + n + 4 <=
//   out_limit. A line that does not fit is copied in part by the machine, as before.
// A line longer than max_line is copied too: the limit only sets line_too_long_.
// Returns where the copy ends (pos: nothing copied); after a copy the state is kLineStart.
std::size_t DotUnstuffer::copy_whole_lines(std::string_view input, std::size_t pos,
                                           std::string& out, std::size_t out_limit) {
  const char* const data = input.data();
  std::size_t copy_end = pos;          // end of the lines taken so far
  std::size_t out_size = out.size();   // what out holds once they are appended
  std::size_t line_start = pos;        // where the line being looked at starts in input
  std::size_t counted = line_length_;  // octets of that line counted before pos
  bool too_long = false;
  while (out_size + 4 <= out_limit) {
    // A line that fits has its LF at most out_limit - out_size - 3 octets after its start;
    // looking no further keeps a small bound from costing a scan of all the input.
    const std::size_t span = std::min(input.size() - line_start, out_limit - out_size - 2);
    // An ordinary line's first CR or LF is a CR, and its LF comes next within the span;
    // anything else (a bare CR or LF, a line that goes on) is the machine's.
    const std::size_t stop = line_start + span;
    const std::size_t cr_pos = find_cr_or_lf(input, line_start, stop);
    if (stop - cr_pos < 2 || data[cr_pos] != '\r' || data[cr_pos + 1] != '\n') break;
    const std::size_t lf_pos = cr_pos + 1;
    const std::size_t content = cr_pos - line_start;
    if (out_size + content + 4 > out_limit) break;  // (the span already ensures it)
    if (options_.max_line != 0 && counted + content + 2 > options_.max_line) too_long = true;
    counted = 0;
    out_size += content + 2;
    copy_end = lf_pos + 1;
    if (copy_end == input.size() || data[copy_end] == '.') break;
    line_start = copy_end;
  }
  if (copy_end == pos) return pos;
  out.append(data + pos, copy_end - pos);
  if (too_long) line_too_long_ = true;
  end_line();
  state_ = State::kLineStart;
  return copy_end;
}

std::size_t DotUnstuffer::decode(std::string_view input, std::string& out, std::size_t out_limit) {
  std::size_t pos = 0;
  while (pos < input.size() && state_ != State::kFinished) {
    // Worst case one octet appends 4 ("." + CRLF + reprocessed octet is done in two steps,
    // each at most 3); keep room so a step never overshoots the bound.
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
          state_ = State::kInLine;  // same octet again, as line content
        }
        break;
      case State::kDot:
        if (c == '\r') {
          count(1);
          state_ = State::kDotCr;
          ++pos;
        } else if (c == '\n') {
          // "." followed by a bare LF: no other characters on the line, keep the dot.
          out.push_back('.');
          count(1);
          bare_line_ending('\n', out);
          ++pos;
        } else {
          // Transparency dot: dropped; the octet is line content. It does not count toward
          // the line length either (§4.5.3.1.6: the limit applies to the text before
          // transparency), so a legal 998-octet line starting with "." is accepted.
          --line_length_;
          state_ = State::kInLine;
        }
        break;
      case State::kDotCr:
        if (c == '\n') {
          ++pos;
          if (!loose_dot_) {
            state_ = State::kFinished;  // CRLF "." CRLF
          } else {
            // ".\r\n" after a bare line ending: a line holding one dot, not the end.
            out.append(".\r\n");
            end_line();
            state_ = State::kLineStart;
          }
        } else {
          // "." then a bare CR: keep the dot, the CR is a bare line ending, and the octet
          // after it starts a loose line (reprocessed, not consumed).
          out.push_back('.');
          bare_line_ending('\r', out);
        }
        break;
      case State::kInLine: {
        // The fast path for ordinary mail: this line and the whole lines after it at once.
        const std::size_t lines_end = copy_whole_lines(input, pos, out, out_limit);
        if (lines_end != pos) {
          pos = lines_end;
          break;
        }
        // Otherwise the content up to the next CR or LF, or up to the bound, at once.
        const std::size_t room = out_limit - out.size() - 4;
        const std::size_t stop = input.size() - pos > room ? pos + room : input.size();
        const std::size_t end = find_cr_or_lf(input, pos, stop);
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
          // No room for content: the bound check at the top ends the loop next round.
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
          bare_line_ending('\r', out);  // the octet starts a loose line, reprocessed
        }
        break;
      case State::kFinished:
        break;
    }
  }
  return pos;
}

// RFC 5321 §4.5.2: "Before sending a line of mail text, the SMTP client checks the first
// character of the line. If it is a period, one additional period is inserted at the
// beginning of the line."
void DotStuffer::reset() {
  state_ = State::kLineStart;
  bare_line_endings_ = 0;
}

// Ordinary content goes out as it came in: encode() collects it as one run of the input
// and appends the run when something must be added (a dot, a completed line ending) or the
// input ends, so a body of CRLF lines without leading dots is one append whatever its size.
// Each line costs one find_cr_or_lf(); the common CR LF followed by a line that does not
// start with "." is taken without leaving kInLine. tests/unit/smtp/dot_stuffer_reference.h
// keeps the old line-by-line encoder; the tests compare the two on random input and splits.
void DotStuffer::encode(std::string_view input, std::string& out) {
  const char* const data = input.data();
  const std::size_t size = input.size();
  std::size_t pos = 0;
  std::size_t run = 0;  // input[run, pos) is still to be appended as it is
  const auto flush = [&](std::size_t end) {
    out.append(data + run, end - run);
    run = end;
  };
  while (pos < size) {
    switch (state_) {
      case State::kCr:
        if (data[pos] == '\n') {
          ++pos;
        } else {
          // A bare CR: complete it to CRLF; the octet starts a new line (reprocessed).
          flush(pos);
          out.push_back('\n');
          ++bare_line_endings_;
        }
        state_ = State::kLineStart;
        break;
      case State::kLineStart:
        if (data[pos] == '.') {
          flush(pos);
          out.push_back('.');  // the content's own dot follows in the run
          ++pos;
        }
        state_ = State::kInLine;  // otherwise the same octet again, as line content
        break;
      case State::kInLine: {
        const std::size_t end = find_cr_or_lf(input, pos, size);
        if (end == size) {
          pos = size;
        } else if (data[end] == '\n') {
          flush(end);
          out.append("\r\n");  // a bare LF
          ++bare_line_endings_;
          pos = run = end + 1;
          state_ = State::kLineStart;
        } else if (size - end > 2 && data[end + 1] == '\n' && data[end + 2] != '.') {
          pos = end + 2;  // CR LF and a next line that needs nothing: still in the run
        } else {
          pos = end + 1;
          state_ = State::kCr;
        }
        break;
      }
    }
  }
  flush(size);
}

void DotStuffer::finish(std::string& out) {
  switch (state_) {
    case State::kCr:
      out.push_back('\n');  // the content ended with a bare CR
      ++bare_line_endings_;
      break;
    case State::kInLine:
      out.append("\r\n");  // the last line had no line ending
      break;
    case State::kLineStart:
      break;
  }
  out.append(".\r\n");
  state_ = State::kLineStart;
}

}  // namespace smtp
