// dkim_canonicalization.cpp — RFC 6376 §3.4 canonicalizations. The body state machine
// defers line ends (so that empty lines at the end are dropped, §3.4.3, §3.4.4 c) and, for
// relaxed, white space (dropped at a line end, §3.4.4 a, else one SP, §3.4.4 b).
#include "mailauth/dkim_canonicalization.h"

#include "base/ascii.h"

namespace mailauth {

namespace {}  // namespace

std::string signed_header_data(Canonicalization canon, const std::vector<HeaderField>& fields,
                               const std::vector<std::string>& names, std::size_t own,
                               std::size_t b_start, std::size_t b_size) {
  std::string data;
  std::vector<bool> used(fields.size(), false);
  used[own] = true;
  for (const std::string& name : names) {
    for (std::size_t f = fields.size(); f-- > 0;) {
      if (used[f] || !base::equals_ignoring_case(fields[f].name, name)) continue;
      used[f] = true;
      append_canonical_header(canon, fields[f].text, data);
      break;
    }
  }
  std::string_view text = fields[own].text;
  if (text.ends_with("\r\n")) text.remove_suffix(2);
  std::string emptied(text.substr(0, b_start));
  emptied.append(text.substr(b_start + b_size));
  append_canonical_header(canon, emptied, data);
  return data;
}

std::vector<HeaderField> split_header_section(std::string_view section) {
  std::vector<HeaderField> fields;
  std::size_t position = 0;
  std::size_t field_start = std::string_view::npos;
  auto close_field = [&](std::size_t end) {
    if (field_start == std::string_view::npos) return;
    std::string_view text = section.substr(field_start, end - field_start);
    std::string_view name;
    if (std::size_t colon = text.find(':'); colon != std::string_view::npos) {
      name = text.substr(0, colon);
      while (!name.empty() && base::is_wsp(name.back()))
        name.remove_suffix(1);
    }
    fields.push_back(HeaderField{name, text});
    field_start = std::string_view::npos;
  };
  while (position < section.size()) {
    std::size_t line_end = section.find("\r\n", position);
    std::size_t next = line_end == std::string_view::npos ? section.size() : line_end + 2;
    if (line_end == position) break;  // the empty line that ends the header section
    if (!base::is_wsp(section[position])) {
      close_field(position);
      field_start = position;
    } else if (field_start == std::string_view::npos) {
      field_start = position;  // a continuation before any field: kept, never selectable
    }
    position = next;
  }
  close_field(position);
  return fields;
}

void append_canonical_header(Canonicalization canon, std::string_view field, std::string& out) {
  if (canon == Canonicalization::kSimple) {
    out.append(field);  // §3.4.1: "MUST NOT change header fields in any way"
    return;
  }
  // §3.4.2: lower-case the name; unfold; WSP runs to one SP; no WSP at the end of the value
  // nor around the colon.
  bool final_crlf = field.ends_with("\r\n");
  if (final_crlf) field.remove_suffix(2);
  std::size_t colon = field.find(':');
  std::string_view name = field.substr(0, colon);
  while (!name.empty() && base::is_wsp(name.back()))
    name.remove_suffix(1);
  for (char c : name)
    out.push_back(base::ascii_lower(c));
  out.push_back(':');
  if (colon != std::string_view::npos) {
    std::string_view value = field.substr(colon + 1);
    bool pending_space = false;
    bool started = false;
    for (std::size_t i = 0; i < value.size(); ++i) {
      char c = value[i];
      if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
        ++i;  // unfolding removes the CRLF; the WSP after it is a run like any other
        continue;
      }
      if (base::is_wsp(c)) {
        pending_space = started;
        continue;
      }
      if (pending_space) out.push_back(' ');
      pending_space = false;
      started = true;
      out.push_back(c);
    }
  }
  if (final_crlf) out.append("\r\n");
}

void BodyCanonicalizer::flush_pending_lines() {
  static constexpr std::string_view kLines =
      "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
  while (pending_crlfs_ > 0) {
    std::uint64_t count = pending_crlfs_ < kLines.size() / 2 ? pending_crlfs_ : kLines.size() / 2;
    emit(kLines.substr(0, count * 2));
    pending_crlfs_ -= count;
  }
}

void BodyCanonicalizer::emit(std::string_view octets) {
  buffer_.append(octets);
  if (buffer_.size() >= kBufferSize) flush_buffer();
}

void BodyCanonicalizer::flush_buffer() {
  if (!buffer_.empty()) sink_.write(buffer_);
  buffer_.clear();
}

void BodyCanonicalizer::write_content(std::string_view content) {
  flush_pending_lines();
  if (pending_space_) emit(" ");
  pending_space_ = false;
  emit(content);
  wrote_content_ = true;
}

void BodyCanonicalizer::feed(std::string_view chunk) {
  const bool relaxed = canon_ == Canonicalization::kRelaxed;
  std::size_t i = 0;
  while (i < chunk.size()) {
    if (saw_cr_) {
      saw_cr_ = false;
      if (chunk[i] == '\n') {
        pending_space_ = false;  // relaxed: white space at the end of a line goes
        ++pending_crlfs_;
        ++i;
        continue;
      }
      write_content("\r");  // a bare CR is content
    }
    char c = chunk[i];
    if (c == '\r') {
      saw_cr_ = true;
      ++i;
      continue;
    }
    if (relaxed && base::is_wsp(c)) {
      pending_space_ = true;
      ++i;
      continue;
    }
    std::size_t end = i + 1;
    while (end < chunk.size() && chunk[end] != '\r' && !(relaxed && base::is_wsp(chunk[end])))
      ++end;
    write_content(chunk.substr(i, end - i));
    i = end;
  }
  flush_buffer();
}

void BodyCanonicalizer::finish() {
  if (saw_cr_) {
    saw_cr_ = false;
    write_content("\r");
  }
  // §3.4.3: simple ends with exactly one CRLF (an empty body is "CRLF"); §3.4.4: relaxed
  // adds one to a non-empty body and leaves an empty body empty.
  if (canon_ == Canonicalization::kSimple || wrote_content_) emit("\r\n");
  flush_buffer();
  pending_crlfs_ = 0;
  pending_space_ = false;
}

}  // namespace mailauth
