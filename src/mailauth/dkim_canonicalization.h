// dkim_canonicalization.h — the "simple" and "relaxed" canonicalizations of RFC 6376 §3.4,
// for header fields (§3.4.1, §3.4.2) and, streaming, for the body (§3.4.3, §3.4.4).
//
// Invariants: the body canonicalizer sees the body in chunks of any size (one byte at a
// time included) and writes the same octets as for the whole body; it holds back only what
// it cannot decide yet (a CR, a run of white space, a count of empty lines), never the body;
// what it writes is gathered per feed() (at most kBufferSize octets at a time) for the sink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mailauth {

// One field of a header section: `text` is the whole field as received (name, colon,
// value, folding and the final CRLF); `name` is the field name without trailing WSP.
struct HeaderField {
  std::string_view name;
  std::string_view text;
};
// Splits a header section (fields with CRLF, up to the empty line or the end) into fields.
// A line without a colon becomes a field with an empty name (it can never be selected).
std::vector<HeaderField> split_header_section(std::string_view section);

enum class Canonicalization { kSimple, kRelaxed };

// RFC 6376 §3.4.1 / §3.4.2: appends the canonical form of `field` (as in HeaderField::text)
// to out, with its final CRLF when the field had one.
void append_canonical_header(Canonicalization canon, std::string_view field, std::string& out);

// RFC 6376 §3.7 (and RFC 8617 §4.1.2 for an AMS): the header data a signature signs. The
// fields named in `names` bottom-up (§5.4.2: one instance per name occurrence, a name without
// a field left contributing nothing), then the signature's own field `fields[own]` with its
// b= value emptied (the octets [b_start, b_start + b_size) of its text) and without its final
// CRLF, each in canonical form.
std::string signed_header_data(Canonicalization canon, const std::vector<HeaderField>& fields,
                               const std::vector<std::string>& names, std::size_t own,
                               std::size_t b_start, std::size_t b_size);

// Where the canonical body goes (a hasher, a test buffer).
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void write(std::string_view octets) = 0;
};

class BodyCanonicalizer {
 public:
  BodyCanonicalizer(Canonicalization canon, BodySink& sink) : canon_(canon), sink_(sink) {}
  void feed(std::string_view chunk);
  void finish();  // the end of the body: writes what is left (RFC 6376 §3.4.3 final CRLF)

 private:
  void flush_pending_lines();
  void write_content(std::string_view content);
  void emit(std::string_view octets);  // to buffer_, so the sink gets few large writes
  void flush_buffer();

  static constexpr std::size_t kBufferSize = 8192;

  Canonicalization canon_;
  BodySink& sink_;
  bool saw_cr_ = false;              // a CR whose LF has not been seen yet
  bool pending_space_ = false;       // relaxed: a run of WSP not yet known to be trailing
  std::uint64_t pending_crlfs_ = 0;  // line ends not yet known to precede more content
  bool wrote_content_ = false;
  std::string buffer_;  // canonical octets not yet written; flushed by each feed()
};

}  // namespace mailauth
