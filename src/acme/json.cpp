// json.cpp — see json.h.
#include "acme/json.h"

#include <charconv>
#include <cstdlib>

namespace acme {
namespace {

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  base::Expected<Json, std::string> document() {
    Json value;
    if (!parse_value(value, 0)) return base::unexpected(error_);
    skip_space();
    if (position_ != text_.size()) return fail_here("text after the JSON value");
    return value;
  }

 private:
  base::Unexpected<std::string> fail_here(const std::string& why) {
    return base::unexpected(why + " at byte " + std::to_string(position_));
  }
  bool fail(const std::string& why) {
    error_ = why + " at byte " + std::to_string(position_);
    return false;
  }
  void skip_space() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\t' ||
                                        text_[position_] == '\n' || text_[position_] == '\r'))
      ++position_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(position_, word.size()) != word) return fail("unknown literal");
    position_ += word.size();
    return true;
  }

  bool parse_value(Json& out, int depth) {
    if (depth > kMaxJsonDepth) return fail("nested too deeply");
    // Each value is a node of ~150 bytes: a 1 MiB answer of "[0,0,0,…" would make half a
    // million of them.
    if (++nodes_ > kMaxJsonNodes)
      return fail("more than " + std::to_string(kMaxJsonNodes) + " values");
    skip_space();
    if (position_ >= text_.size()) return fail("value expected");
    const char c = text_[position_];
    if (c == '{') return parse_object(out, depth);
    if (c == '[') return parse_array(out, depth);
    if (c == '"') {
      out.kind = Json::Kind::kString;
      return parse_string(out.text);
    }
    if (c == 't') {
      out.kind = Json::Kind::kBool;
      out.boolean = true;
      return literal("true");
    }
    if (c == 'f') {
      out.kind = Json::Kind::kBool;
      return literal("false");
    }
    if (c == 'n') return literal("null");
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(out);
    return fail("unexpected character");
  }

  bool parse_object(Json& out, int depth) {
    out.kind = Json::Kind::kObject;
    ++position_;  // {
    skip_space();
    if (position_ < text_.size() && text_[position_] == '}') {
      ++position_;
      return true;
    }
    while (true) {
      skip_space();
      if (position_ >= text_.size() || text_[position_] != '"') return fail("member name expected");
      std::string name;
      if (!parse_string(name)) return false;
      skip_space();
      if (position_ >= text_.size() || text_[position_] != ':') return fail("':' expected");
      ++position_;
      Json value;
      if (!parse_value(value, depth + 1)) return false;
      out.keys.push_back(std::move(name));
      out.values.push_back(std::move(value));
      skip_space();
      if (position_ >= text_.size()) return fail("unterminated object");
      if (text_[position_] == ',') {
        ++position_;
        continue;
      }
      if (text_[position_] == '}') {
        ++position_;
        return true;
      }
      return fail("',' or '}' expected");
    }
  }

  bool parse_array(Json& out, int depth) {
    out.kind = Json::Kind::kArray;
    ++position_;  // [
    skip_space();
    if (position_ < text_.size() && text_[position_] == ']') {
      ++position_;
      return true;
    }
    while (true) {
      Json value;
      if (!parse_value(value, depth + 1)) return false;
      out.items.push_back(std::move(value));
      skip_space();
      if (position_ >= text_.size()) return fail("unterminated array");
      if (text_[position_] == ',') {
        ++position_;
        continue;
      }
      if (text_[position_] == ']') {
        ++position_;
        return true;
      }
      return fail("',' or ']' expected");
    }
  }

  bool parse_number(Json& out) {
    // RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    const std::size_t start = position_;
    auto digits = [&] {
      std::size_t n = 0;
      while (position_ < text_.size() && text_[position_] >= '0' && text_[position_] <= '9') {
        ++position_;
        ++n;
      }
      return n;
    };
    if (text_[position_] == '-') ++position_;
    if (position_ < text_.size() && text_[position_] == '0') {
      ++position_;
    } else if (digits() == 0) {
      return fail("bad number");
    }
    if (position_ < text_.size() && text_[position_] == '.') {
      ++position_;
      if (digits() == 0) return fail("bad number");
    }
    if (position_ < text_.size() && (text_[position_] == 'e' || text_[position_] == 'E')) {
      ++position_;
      if (position_ < text_.size() && (text_[position_] == '+' || text_[position_] == '-'))
        ++position_;
      if (digits() == 0) return fail("bad number");
    }
    out.kind = Json::Kind::kNumber;
    out.number = std::strtod(std::string(text_.substr(start, position_ - start)).c_str(), nullptr);
    return true;
  }

  static void append_utf8(std::string& out, std::uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  bool hex4(std::uint32_t& code) {
    if (text_.size() - position_ < 4) return fail("short \\u escape");
    code = 0;
    const char* begin = text_.data() + position_;
    auto [end, error] = std::from_chars(begin, begin + 4, code, 16);
    if (error != std::errc() || end != begin + 4) return fail("bad \\u escape");
    position_ += 4;
    return true;
  }

  bool parse_string(std::string& out) {
    ++position_;  // "
    while (true) {
      if (position_ >= text_.size()) return fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[position_]);
      if (c == '"') {
        ++position_;
        return true;
      }
      if (c < 0x20) return fail("control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        ++position_;
        continue;
      }
      ++position_;
      if (position_ >= text_.size()) return fail("unterminated escape");
      const char e = text_[position_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t code = 0;
          if (!hex4(code)) return false;
          if (code >= 0xDC00 && code <= 0xDFFF) return fail("lone low surrogate");
          if (code >= 0xD800 && code <= 0xDBFF) {
            if (text_.substr(position_, 2) != "\\u") return fail("lone high surrogate");
            position_ += 2;
            std::uint32_t low = 0;
            if (!hex4(low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return fail("bad surrogate pair");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, code);
          break;
        }
        default:
          return fail("unknown escape");
      }
    }
  }

  std::string_view text_;
  std::size_t position_ = 0;
  std::size_t nodes_ = 0;
  std::string error_;
};

}  // namespace

const Json* Json::get(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (keys[i] == key) return &values[i];
  return nullptr;
}

std::string Json::string_at(std::string_view key) const {
  const Json* value = get(key);
  return value != nullptr && value->kind == Kind::kString ? value->text : std::string();
}

base::Expected<Json, std::string> parse_json(std::string_view text) {
  if (text.size() > kMaxJsonBytes)
    return base::unexpected("JSON of " + std::to_string(text.size()) + " bytes is too large");
  return JsonParser(text).document();
}

}  // namespace acme
