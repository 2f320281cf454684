// dkim_signature.cpp — the tag-list grammar of RFC 6376 §3.2 and the two records built on
// it: DKIM-Signature (§3.5) and the DKIM key record (§3.6.1, RFC 8463 §4.2).
#include "mailauth/dkim_signature.h"

#include <charconv>

#include "base/ascii.h"
#include "base/base64.h"

namespace mailauth {

namespace {

bool is_fws_char(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
// VALCHAR = %x21-3A / %x3C-7E (RFC 6376 §3.2).
bool is_valchar(char c) {
  return c >= 0x21 && c <= 0x7E && c != ';';
}

// Checks that a CR or LF only appears as CRLF followed by WSP (FWS, RFC 5322 §3.2.2).
bool folding_is_valid(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') return false;  // an LF not preceded by CR (CRLF pairs skip it)
    if (text[i] == '\r') {
      if (i + 2 >= text.size() || text[i + 1] != '\n' || !base::is_wsp(text[i + 2])) return false;
      ++i;
    }
  }
  return true;
}

std::string_view trim_fws(std::string_view text) {
  while (!text.empty() && is_fws_char(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_fws_char(text.back()))
    text.remove_suffix(1);
  return text;
}

std::string without_fws(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text)
    if (!is_fws_char(c)) out.push_back(c);
  return out;
}

// base64string = ALPHADIGITPS *([FWS] ALPHADIGITPS) [...] (RFC 6376 §2.4).
bool decode_folded_base64(std::string_view text, std::string& out, std::string* compact) {
  std::string joined = without_fws(text);
  if (compact != nullptr) *compact = joined;
  return base::decode_base64(joined, out);
}

// A decimal of at most `digits` digits (l=: 76, t=/x=: 12, RFC 6376 §3.5) that fits.
template <typename Integer>
bool parse_decimal(std::string_view text, std::size_t digits, Integer& out) {
  if (text.empty() || text.size() > digits) return false;
  for (char c : text)
    if (!is_digit(c)) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

// A colon-separated list with optional FWS around the colons (h= of both records, s=).
std::vector<std::string> split_colon_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t colon = text.find(':', start);
    out.emplace_back(trim_fws(text.substr(start, colon - start)));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return out;
}

// hdr-name is RFC 5322 field-name: printable US-ASCII but ':'.
bool is_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (c < 0x21 || c > 0x7E || c == ':') return false;
  return true;
}

// A domain name of letters, digits, hyphens and dots (RFC 6376 §3.5 d=, s= sub-domain);
// A-labels only (RFC 6376 §3.5: d= in its "A-label" form for DNS).
bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return true;
}

const DkimTag* find_tag(const std::vector<DkimTag>& tags, std::string_view name) {
  for (const auto& tag : tags)
    if (tag.name == name) return &tag;
  return nullptr;
}

}  // namespace

base::Expected<std::vector<DkimTag>, std::string> parse_dkim_tag_list(std::string_view text) {
  if (!folding_is_valid(text)) return base::unexpected(std::string("bad line folding"));
  std::vector<DkimTag> tags;
  std::size_t position = 0;
  while (position <= text.size()) {
    std::size_t end = text.find(';', position);
    if (end == std::string_view::npos) end = text.size();
    std::string_view spec = text.substr(position, end - position);
    const bool last = end == text.size();
    if (trim_fws(spec).empty()) {
      // tag-list = tag-spec *( ";" tag-spec ) [ ";" ]: only the final one may be empty.
      if (!last) return base::unexpected(std::string("empty tag-spec"));
      if (tags.empty()) return base::unexpected(std::string("empty tag list"));
      break;
    }
    std::size_t equals = spec.find('=');
    if (equals == std::string_view::npos)
      return base::unexpected("tag without '=': " + std::string(trim_fws(spec).substr(0, 32)));
    std::string_view name = trim_fws(spec.substr(0, equals));
    // tag-name = ALPHA *ALNUMPUNC
    if (name.empty() || !is_alpha(name.front()))
      return base::unexpected(std::string("malformed tag name"));
    for (char c : name)
      if (!is_alpha(c) && !is_digit(c) && c != '_')
        return base::unexpected(std::string("malformed tag name"));
    std::string_view region = spec.substr(equals + 1);
    std::string_view value = trim_fws(region);
    for (char c : value)
      if (!is_valchar(c) && !is_fws_char(c))
        return base::unexpected("bad character in the value of " + std::string(name) + "=");
    for (const auto& tag : tags)
      if (tag.name == name) return base::unexpected("duplicate tag " + std::string(name) + "=");
    tags.push_back(DkimTag{name, value, region});
    if (last) break;
    position = end + 1;
  }
  return tags;
}

const DkimTag* find_dkim_tag(const std::vector<DkimTag>& tags, std::string_view name) {
  return find_tag(tags, name);
}
bool decode_dkim_base64(std::string_view text, std::string& out) {
  return decode_folded_base64(text, out, nullptr);
}
bool is_dkim_domain_name(std::string_view name) {
  return is_dns_name(name);
}

base::Expected<DkimSignature, std::string> parse_dkim_signature(std::string_view value,
                                                                SignatureField field) {
  const bool arc = field == SignatureField::kArcMessage;
  using base::unexpected;
  if (value.size() > kMaxSignatureValue)
    return unexpected(std::string("DKIM-Signature over 8192 octets"));
  auto tags = parse_dkim_tag_list(value);
  if (!tags) return unexpected(tags.error());
  DkimSignature signature;
  for (std::string_view required : {"a", "b", "bh", "d", "h", "s"})
    if (find_tag(*tags, required) == nullptr)
      return unexpected("missing required tag " + std::string(required) + "=");
  // RFC 8617 §4.1.2: no v= in an AMS; "if seen, a version tag MUST be ignored".
  if (!arc) {
    if (find_tag(*tags, "v") == nullptr) return unexpected(std::string("missing required tag v="));
    if (find_tag(*tags, "v")->value != "1") return unexpected(std::string("v= is not 1"));
  }

  std::string algorithm = base::ascii_lowercase(find_tag(*tags, "a")->value);
  if (algorithm != "rsa-sha256" && algorithm != "ed25519-sha256" && algorithm != "rsa-sha1")
    return unexpected("unknown algorithm " + std::string(find_tag(*tags, "a")->value));
  signature.algorithm = std::move(algorithm);

  if (!decode_folded_base64(find_tag(*tags, "b")->value, signature.signature, &signature.b_text) ||
      signature.signature.empty())
    return unexpected(std::string("b= is not base64"));
  if (!decode_folded_base64(find_tag(*tags, "bh")->value, signature.body_hash, nullptr) ||
      signature.body_hash.empty())
    return unexpected(std::string("bh= is not base64"));

  signature.header_canon = "simple";
  signature.body_canon = "simple";
  if (const DkimTag* c = find_tag(*tags, "c")) {
    std::string canon = base::ascii_lowercase(c->value);
    std::size_t slash = canon.find('/');
    signature.header_canon = canon.substr(0, slash);
    if (slash != std::string::npos) signature.body_canon = canon.substr(slash + 1);
    for (const std::string& part : {signature.header_canon, signature.body_canon})
      if (part != "simple" && part != "relaxed")
        return unexpected("unknown canonicalization " + std::string(c->value));
  }

  signature.domain = base::ascii_lowercase(find_tag(*tags, "d")->value);
  if (!is_dns_name(signature.domain)) return unexpected(std::string("d= is not a domain"));
  signature.selector = base::ascii_lowercase(find_tag(*tags, "s")->value);
  if (!is_dns_name(signature.selector)) return unexpected(std::string("s= is not a selector"));
  if (signature.domain.size() + signature.selector.size() + 12 > 253)
    return unexpected(std::string("key name too long"));

  signature.signed_headers = split_colon_list(find_tag(*tags, "h")->value);
  if (signature.signed_headers.size() > kMaxSignedHeaders)
    return unexpected(std::string("h= lists more than 64 header fields"));
  bool from_signed = false;
  for (const auto& name : signature.signed_headers) {
    if (!is_field_name(name)) return unexpected(std::string("h= holds a malformed name"));
    if (base::equals_ignoring_case(name, "from")) from_signed = true;
  }
  // RFC 6376 §6.1.1: "If the "h=" tag does not include the From header field, the Verifier
  // MUST ignore the DKIM-Signature header field and return PERMFAIL".
  if (!from_signed && !arc) return unexpected(std::string("h= does not sign From"));

  const DkimTag* i = arc ? nullptr : find_tag(*tags, "i");
  if (i != nullptr) {
    // RFC 6376 §3.5 i=: "The domain part of the address MUST be the same as, or a subdomain
    // of, the value of the "d=" tag."
    std::string_view identity = i->value;
    std::size_t at = identity.rfind('@');
    if (at == std::string_view::npos) return unexpected(std::string("i= has no '@'"));
    std::string domain = base::ascii_lowercase(identity.substr(at + 1));
    const bool same = domain == signature.domain;
    const bool sub = domain.size() > signature.domain.size() &&
                     domain.ends_with(signature.domain) &&
                     domain[domain.size() - signature.domain.size() - 1] == '.';
    if (!same && !sub) return unexpected(std::string("i= is not in d="));
    signature.identity = std::string(identity);
  } else {
    signature.identity = "@" + signature.domain;
  }

  if (const DkimTag* l = find_tag(*tags, "l")) {
    std::uint64_t length = 0;
    if (!parse_decimal(l->value, 76, length)) return unexpected(std::string("bad l="));
    signature.length = length;
  }
  if (const DkimTag* q = find_tag(*tags, "q")) {
    bool dns_txt = false;
    for (const auto& method : split_colon_list(q->value))
      if (base::equals_ignoring_case(method, "dns/txt")) dns_txt = true;
    if (!dns_txt) return unexpected(std::string("q= does not offer dns/txt"));
  }
  for (auto [name, target] :
       {std::pair{"t", &signature.timestamp}, std::pair{"x", &signature.expiration}}) {
    if (const DkimTag* tag = find_tag(*tags, name)) {
      std::int64_t seconds = 0;
      if (!parse_decimal(tag->value, 12, seconds))
        return unexpected("bad " + std::string(name) + "=");
      *target = seconds;
    }
  }
  // RFC 6376 §3.5 x=: "the value of the "x=" tag MUST be greater than the value of the "t="
  // tag if both are present".
  if (signature.timestamp && signature.expiration && *signature.expiration <= *signature.timestamp)
    return unexpected(std::string("x= is not after t="));
  return signature;
}

base::Expected<DkimKeyRecord, std::string> parse_dkim_key_record(std::string_view txt) {
  using base::unexpected;
  if (txt.size() > kMaxKeyRecord) return unexpected(std::string("key record over 8192 octets"));
  auto tags = parse_dkim_tag_list(txt);
  if (!tags) return unexpected(tags.error());
  DkimKeyRecord record;
  // RFC 6376 §3.6.1 v=: "If specified, this tag MUST be set to "DKIM1" ... and MUST be the
  // first tag in the record."
  if (const DkimTag* v = find_tag(*tags, "v")) {
    if (v != &tags->front() || v->value != "DKIM1")
      return unexpected(std::string("v= is not DKIM1 or not first"));
  }
  const DkimTag* p = find_tag(*tags, "p");
  if (p == nullptr) return unexpected(std::string("missing p="));
  if (!decode_folded_base64(p->value, record.public_key, nullptr))
    return unexpected(std::string("p= is not base64"));
  if (const DkimTag* k = find_tag(*tags, "k")) record.key_type = base::ascii_lowercase(k->value);
  if (const DkimTag* h = find_tag(*tags, "h"))
    for (auto& hash : split_colon_list(h->value))
      record.hashes.push_back(base::ascii_lowercase(hash));
  if (const DkimTag* s = find_tag(*tags, "s"))
    for (auto& service : split_colon_list(s->value))
      record.services.push_back(base::ascii_lowercase(service));
  if (const DkimTag* t = find_tag(*tags, "t"))
    for (auto& flag : split_colon_list(t->value)) {
      if (flag == "y") record.testing = true;
      if (flag == "s") record.strict_identity = true;
    }
  return record;
}

}  // namespace mailauth
