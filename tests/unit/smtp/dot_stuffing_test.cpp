// dot_stuffing_test.cpp — the DATA decoder: unstuffing, the only terminator CRLF.CRLF
// (split at every position), smuggling sequences, bare CR/LF, line limits, bounded output;
// and the encoder: stuffing at every split, bare CR/LF written as CRLF, the final dot line,
// and decoding what it wrote gives the content back. The decoder is also compared with the
// old byte-at-a-time algorithm (dot_unstuffer_reference.h) on random inputs, random splits
// and random output bounds.
#include "smtp/dot_stuffing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "dot_stuffer_reference.h"
#include "dot_unstuffer_reference.h"

namespace smtp {
namespace {

struct Decoded {
  std::string body;
  bool finished = false;
  std::size_t consumed = 0;
  bool bare_cr = false;
  bool bare_lf = false;
  bool too_long = false;
};

// Feeds input in pieces of `piece` octets (0: whole), as a session would.
Decoded decode(std::string_view input, std::size_t piece = 0, DotUnstuffer::Options options = {}) {
  DotUnstuffer decoder(options);
  Decoded result;
  std::size_t pos = 0;
  while (pos < input.size() && !decoder.finished()) {
    std::size_t size = piece == 0 ? input.size() - pos : std::min(piece, input.size() - pos);
    std::string_view chunk = input.substr(pos, size);
    std::size_t used = 0;
    while (used < chunk.size() && !decoder.finished()) {
      used += decoder.decode(chunk.substr(used), result.body, 1 << 20);
    }
    pos += used;
  }
  result.finished = decoder.finished();
  result.consumed = pos;
  result.bare_cr = decoder.saw_bare_cr();
  result.bare_lf = decoder.saw_bare_lf();
  result.too_long = decoder.line_too_long();
  return result;
}

// Every input whole and byte by byte must decode the same.
Decoded decode_both(std::string_view input, DotUnstuffer::Options options = {}) {
  Decoded whole = decode(input, 0, options);
  Decoded bytewise = decode(input, 1, options);
  EXPECT_EQ(whole.body, bytewise.body);
  EXPECT_EQ(whole.finished, bytewise.finished);
  EXPECT_EQ(whole.consumed, bytewise.consumed);
  EXPECT_EQ(whole.bare_cr, bytewise.bare_cr);
  EXPECT_EQ(whole.bare_lf, bytewise.bare_lf);
  EXPECT_EQ(whole.too_long, bytewise.too_long);
  return whole;
}

TEST(DotUnstufferTest, PlainBodyEndsAtTerminator) {
  Decoded d = decode_both("Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.body, "Subject: x\r\n\r\nhello\r\n");
  EXPECT_EQ(d.consumed, std::string("Subject: x\r\n\r\nhello\r\n.\r\n").size());
}

TEST(DotUnstufferTest, EmptyBodyIsJustTheDotLine) {
  Decoded d = decode_both(".\r\n");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.body, "");
  EXPECT_EQ(d.consumed, 3u);
}

TEST(DotUnstufferTest, LeadingDotIsRemoved) {
  Decoded d = decode_both("..hidden\r\n...\r\n.x\r\n.\r\n");
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.body, ".hidden\r\n..\r\nx\r\n");
}

TEST(DotUnstufferTest, DotInsideLineIsKept) {
  Decoded d = decode_both("a.b\r\n a.\r\n.\r\n");
  EXPECT_EQ(d.body, "a.b\r\n a.\r\n");
}

TEST(DotUnstufferTest, NoTerminatorMeansNotFinished) {
  Decoded d = decode_both("line\r\n.");
  EXPECT_FALSE(d.finished);
  EXPECT_EQ(d.body, "line\r\n");
}

TEST(DotUnstufferTest, TerminatorSplitAtEveryPosition) {
  const std::string input = "first\r\n..second\r\nthird\r\n.\r\nNEXT";
  const std::string expected = "first\r\n.second\r\nthird\r\n";
  for (std::size_t split = 0; split <= input.size(); ++split) {
    DotUnstuffer decoder;
    std::string body;
    std::size_t used = decoder.decode(std::string_view(input).substr(0, split), body, 1 << 20);
    ASSERT_EQ(used, std::min(split, input.size() - 4)) << split;
    if (!decoder.finished()) {
      used += decoder.decode(std::string_view(input).substr(split), body, 1 << 20);
    }
    EXPECT_TRUE(decoder.finished()) << split;
    EXPECT_EQ(body, expected) << split;
    EXPECT_EQ(used, input.size() - 4) << split;
  }
}

TEST(DotUnstufferTest, EveryPieceSizeGivesTheSameResult) {
  const std::string input = "a\r\n.\r\r\n..\r\n\r\n.\r\n";
  Decoded reference = decode(input);
  for (std::size_t piece = 1; piece <= input.size(); ++piece) {
    Decoded d = decode(input, piece);
    EXPECT_EQ(d.body, reference.body) << piece;
    EXPECT_EQ(d.finished, reference.finished) << piece;
    EXPECT_EQ(d.bare_cr, reference.bare_cr) << piece;
  }
}

// SMTP smuggling (2023): only CRLF "." CRLF ends the data.
TEST(DotUnstufferTest, SmugglingSequencesDoNotEndData) {
  for (std::string_view sequence :
       {"a\n.\nb", "a\r.\rb", "a\n.\r\nb", "a\r\n.\nb", "a\r.\r\nb", "a\r\n.\rb", "a\n.\r\n"}) {
    Decoded d = decode_both(std::string(sequence) + "\r\n");
    EXPECT_FALSE(d.finished) << sequence;
    EXPECT_TRUE(d.bare_cr || d.bare_lf) << sequence;
  }
}

TEST(DotUnstufferTest, SmugglingSequencesNormalizedStayInTheBody) {
  DotUnstuffer::Options options;
  options.normalize_bare_line_endings = true;
  Decoded d = decode_both("a\n.\nMAIL FROM:<x@y>\r\n.\r\n", options);
  EXPECT_TRUE(d.finished);
  EXPECT_TRUE(d.bare_lf);
  EXPECT_EQ(d.body, "a\r\n.\r\nMAIL FROM:<x@y>\r\n");
  Decoded e = decode_both("a\r.\r\nb\r\n.\r\n", options);
  EXPECT_TRUE(e.finished);
  EXPECT_EQ(e.body, "a\r\n.\r\nb\r\n");
}

TEST(DotUnstufferTest, BareLineEndingsAreReported) {
  Decoded lf = decode_both("a\nb\r\n.\r\n");
  EXPECT_TRUE(lf.bare_lf);
  EXPECT_FALSE(lf.bare_cr);
  EXPECT_TRUE(lf.finished);
  Decoded cr = decode_both("a\rb\r\n.\r\n");
  EXPECT_TRUE(cr.bare_cr);
  EXPECT_FALSE(cr.bare_lf);
  Decoded clean = decode_both("a\r\nb\r\n.\r\n");
  EXPECT_FALSE(clean.bare_cr || clean.bare_lf);
}

TEST(DotUnstufferTest, NormalizationTurnsBareEndingsIntoCrlf) {
  DotUnstuffer::Options options;
  options.normalize_bare_line_endings = true;
  Decoded d = decode_both("a\nb\rc\r\r\n.\r\n", options);
  EXPECT_TRUE(d.finished);
  EXPECT_EQ(d.body, "a\r\nb\r\nc\r\n\r\n");
}

TEST(DotUnstufferTest, LineLengthCountsTheTextBeforeTransparency) {
  DotUnstuffer::Options options;
  options.max_line = 10;
  EXPECT_FALSE(decode_both("12345678\r\n.\r\n", options).too_long);  // 10 with CRLF
  EXPECT_TRUE(decode_both("123456789\r\n.\r\n", options).too_long);
  // RFC 5321 §4.5.3.1.6: the transparency dot a client adds is not part of the line, so
  // the 10-octet line ".2345678" CRLF, sent as "..2345678" CRLF, is within the limit.
  EXPECT_FALSE(decode_both("..2345678\r\n.\r\n", options).too_long);
  EXPECT_TRUE(decode_both("..23456789\r\n.\r\n", options).too_long);
  Decoded d = decode_both("123456789012345\r\nok\r\n.\r\n", options);
  EXPECT_TRUE(d.finished);  // still finds the end
}

TEST(DotUnstufferTest, OutputNeverPassesTheBound) {
  std::string input(10000, 'x');
  input += "\r\n.\r\n";
  DotUnstuffer decoder;
  std::string total;
  std::size_t pos = 0;
  while (!decoder.finished()) {
    std::string out;
    pos += decoder.decode(std::string_view(input).substr(pos), out, 100);
    ASSERT_LE(out.size(), 100u);
    total += out;
  }
  EXPECT_EQ(total, std::string(10000, 'x') + "\r\n");
  EXPECT_EQ(pos, input.size());
}

TEST(DotUnstufferTest, ResetStartsANewBody) {
  DotUnstuffer decoder;
  std::string body;
  decoder.decode("a\nb\r\n.\r\n", body, 1000);
  EXPECT_TRUE(decoder.finished());
  decoder.reset();
  EXPECT_FALSE(decoder.finished());
  EXPECT_FALSE(decoder.saw_bare_lf());
  body.clear();
  decoder.decode(".\r\n", body, 1000);
  EXPECT_TRUE(decoder.finished());
  EXPECT_EQ(body, "");
}

// ---- The decoder against its reference (the old byte-at-a-time algorithm) ---------------
//
// decode() copies runs of whole ordinary lines at once and falls back to the state machine
// for anything else; the results must be exactly those of the old algorithm kept in
// dot_unstuffer_reference.h, for every input, every split into chunks and every output
// bound: the same octets out, the same octets consumed by each call, the same flags.

// Pseudo-random input built from pieces that meet the decoder's edges: single octets
// weighted toward '.', CR, LF and 'a', ordinary lines, stuffed lines, terminators.
std::string random_body(std::mt19937& random, std::size_t length) {
  std::string body;
  while (body.size() < length) {
    switch (random() % 16) {
      case 0:
      case 1:
        body += '.';
        break;
      case 2:
        body += '\r';
        break;
      case 3:
        body += '\n';
        break;
      case 4:
        body += 'a';
        break;
      case 5:
        body += static_cast<char>(random() % 256);  // any octet, NUL included
        break;
      case 6:
      case 7:
      case 8:
        body += "\r\n";
        break;
      case 9:
      case 10:
      case 11:
        body += std::string(random() % 90, 'a') + "\r\n";  // an ordinary line
        break;
      case 12:
        body += "." + std::string(random() % 12, 'b') + "\r\n";  // a stuffed line
        break;
      case 13:
        body += std::string(random() % 12, 'c');
        break;
      case 14:
        body += "\r\n.\r\n";  // the end of data, unless a bare line ending precedes it
        break;
      default:
        body += ".\r\n";
        break;
    }
  }
  body.resize(length);
  return body;
}

TEST(DotUnstufferTest, SameResultsAsTheReferenceAlgorithm) {
  std::mt19937 random(19);
  for (int round = 0; round < 1500; ++round) {
    const std::string input = random_body(random, random() % 3001);
    DotUnstuffer::Options options;
    options.normalize_bare_line_endings = random() % 2 == 0;
    const std::size_t max_line_kind = random() % 3;
    options.max_line = max_line_kind == 0 ? 0 : max_line_kind == 1 ? 1 + random() % 40 : 998;
    DotUnstuffer decoder(options);
    smtp_test::ReferenceDotUnstuffer reference(options);
    std::string out;
    std::string reference_out;
    const std::size_t chunk_kind = random() % 3;  // small pieces, medium, or large
    const std::size_t max_chunk = chunk_kind == 0 ? 8 : chunk_kind == 1 ? 200 : 4000;
    std::size_t pos = 0;
    bool stalled = false;  // the last call consumed nothing: give room the next time
    while (pos < input.size() && !reference.finished()) {
      const std::size_t chunk_size =
          std::min<std::size_t>(1 + random() % max_chunk, input.size() - pos);
      const std::string_view chunk = std::string_view(input).substr(pos, chunk_size);
      std::size_t used = 0;
      while (used < chunk.size() && !reference.finished()) {
        // The bound relative to what out already holds: below the 4 octets needed to make
        // progress, tight, moderate, or none to speak of.
        std::size_t room = 1 << 20;
        const std::size_t room_kind = random() % 4;
        if (!stalled && room_kind == 0) room = random() % 12;
        if (!stalled && room_kind == 1) room = random() % 120;
        if (random() % 8 == 0) {  // the session clears its output between calls
          out.clear();
          reference_out.clear();
        }
        const std::size_t before = out.size();
        const std::string_view rest = chunk.substr(used);
        const std::size_t got = decoder.decode(rest, out, before + room);
        const std::size_t expected = reference.decode(rest, reference_out, before + room);
        ASSERT_EQ(got, expected) << "round " << round << " at octet " << pos + used;
        ASSERT_EQ(out.size(), reference_out.size()) << "round " << round << " at " << pos + used;
        ASSERT_EQ(std::string_view(out).substr(before),
                  std::string_view(reference_out).substr(before))
            << "round " << round << " at octet " << pos + used;
        ASSERT_LE(out.size(), before + room) << "round " << round;
        ASSERT_EQ(decoder.finished(), reference.finished()) << "round " << round;
        ASSERT_EQ(decoder.saw_bare_cr(), reference.saw_bare_cr()) << "round " << round;
        ASSERT_EQ(decoder.saw_bare_lf(), reference.saw_bare_lf()) << "round " << round;
        ASSERT_EQ(decoder.line_too_long(), reference.line_too_long()) << "round " << round;
        stalled = got == 0;
        used += got;
      }
      pos += used;
    }
    // Once finished, nothing more is consumed.
    if (reference.finished() && pos < input.size()) {
      ASSERT_EQ(decoder.decode(std::string_view(input).substr(pos), out, 1 << 20), 0u);
    }
  }
}

// ---- DotStuffer (the client side) -------------------------------------------------------

// Encodes content in pieces of `piece` octets (0: whole) and finishes the body.
std::string stuff(std::string_view content, std::size_t piece = 0, std::size_t* bare = nullptr) {
  DotStuffer stuffer;
  std::string out;
  std::size_t pos = 0;
  while (pos < content.size()) {
    std::size_t size = piece == 0 ? content.size() : std::min(piece, content.size() - pos);
    stuffer.encode(content.substr(pos, size), out);
    pos += size;
  }
  stuffer.finish(out);
  if (bare != nullptr) *bare = stuffer.bare_line_endings();
  return out;
}

TEST(DotStufferTest, LeadingDotsAreDoubled) {
  EXPECT_EQ(stuff(".hidden\r\n..\r\na.b\r\n.\r\n"), "..hidden\r\n...\r\na.b\r\n..\r\n.\r\n");
}

TEST(DotStufferTest, EmptyContentIsTheDotLineOnly) {
  EXPECT_EQ(stuff(""), ".\r\n");
}

TEST(DotStufferTest, FirstLineIsALineStart) {
  EXPECT_EQ(stuff(".x"), "..x\r\n.\r\n");
}

TEST(DotStufferTest, OpenLastLineGetsCrlf) {
  EXPECT_EQ(stuff("a\r\nb"), "a\r\nb\r\n.\r\n");
  EXPECT_EQ(stuff("a\r\n"), "a\r\n.\r\n");
}

TEST(DotStufferTest, BareLineEndingsBecomeCrlf) {
  std::size_t bare = 0;
  // The smuggling sequence "\n.\r\n" must reach the wire as a stuffed line, never as an
  // end of data a lenient server could see.
  EXPECT_EQ(stuff("a\n.\r\nMAIL FROM:<x@y>\r\n", 0, &bare), "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n");
  EXPECT_EQ(bare, 1u);
  EXPECT_EQ(stuff("a\r.\rb\r", 0, &bare), "a\r\n..\r\nb\r\n.\r\n");
  EXPECT_EQ(bare, 3u);
  EXPECT_EQ(stuff("\n\r\r\n", 0, &bare), "\r\n\r\n\r\n.\r\n");
  EXPECT_EQ(bare, 2u);
}

TEST(DotStufferTest, EverySplitGivesTheSameOutput) {
  const std::string content = ".a\r\n.\r\n\r\n..b\rc\n.d\r\n.";
  const std::string reference = stuff(content);
  EXPECT_EQ(reference, "..a\r\n..\r\n\r\n...b\r\nc\r\n..d\r\n..\r\n.\r\n");
  for (std::size_t piece = 1; piece <= content.size(); ++piece)
    EXPECT_EQ(stuff(content, piece), reference) << piece;
  // Two pieces split at every position.
  for (std::size_t split = 0; split <= content.size(); ++split) {
    DotStuffer stuffer;
    std::string out;
    stuffer.encode(std::string_view(content).substr(0, split), out);
    stuffer.encode(std::string_view(content).substr(split), out);
    stuffer.finish(out);
    EXPECT_EQ(out, reference) << split;
  }
}

TEST(DotStufferTest, DecodingTheOutputGivesTheContentBack) {
  for (std::string_view content :
       {"Subject: x\r\n\r\nbody\r\n", ".\r\n", "..\r\n.\r\n.", "\r\n.\r\n", "x"}) {
    const std::string wire = stuff(content);
    Decoded d = decode_both(wire);
    EXPECT_TRUE(d.finished) << content;
    EXPECT_EQ(d.consumed, wire.size()) << content;
    std::string expected(content);
    if (!expected.empty() && !expected.ends_with("\r\n")) expected += "\r\n";
    EXPECT_EQ(d.body, expected) << content;
    EXPECT_FALSE(d.bare_cr || d.bare_lf) << content;
  }
}

TEST(DotStufferTest, ResetStartsANewBody) {
  DotStuffer stuffer;
  std::string out;
  stuffer.encode("a\nb", out);
  EXPECT_EQ(stuffer.bare_line_endings(), 1u);
  stuffer.reset();
  EXPECT_EQ(stuffer.bare_line_endings(), 0u);
  out.clear();
  stuffer.encode(".", out);
  stuffer.finish(out);
  EXPECT_EQ(out, "..\r\n.\r\n");
}

// The encoder against its reference (the old line-by-line algorithm): the same octets out
// and the same count of bare line endings for every input and every split into pieces,
// pieces of 1 octet and of 0 included, and across reset().
TEST(DotStufferTest, SameOutputAsTheReferenceAlgorithm) {
  std::mt19937 random(23);
  for (int round = 0; round < 1500; ++round) {
    const std::string input = random_body(random, random() % 3001);
    DotStuffer stuffer;
    smtp_test::ReferenceDotStuffer reference;
    std::string out = "kept";  // encode() appends: what out held stays in front
    std::string reference_out = "kept";
    const std::size_t chunk_kind = random() % 3;
    const std::size_t max_chunk = chunk_kind == 0 ? 4 : chunk_kind == 1 ? 200 : 4000;
    std::size_t pos = 0;
    while (pos < input.size()) {
      const std::size_t chunk_size =
          std::min<std::size_t>(random() % (max_chunk + 1), input.size() - pos);
      const std::string_view chunk = std::string_view(input).substr(pos, chunk_size);
      stuffer.encode(chunk, out);
      reference.encode(chunk, reference_out);
      ASSERT_EQ(out, reference_out) << "round " << round << " at octet " << pos;
      pos += chunk_size;
    }
    stuffer.finish(out);
    reference.finish(reference_out);
    ASSERT_EQ(out, reference_out) << "round " << round;
    ASSERT_EQ(stuffer.bare_line_endings(), reference.bare_line_endings()) << "round " << round;
  }
}

}  // namespace
}  // namespace smtp
