// arc_headers.cpp — see arc_headers.h (RFC 8617 §4.1).
#include "mailauth/arc_headers.h"

#include <charconv>

#include "base/ascii.h"

namespace mailauth {
namespace {

// RFC 8617 §4.2.1: instance = 1*2DIGIT, 1 to 50 (no sign, no leading zero).
base::Expected<unsigned, std::string> parse_instance(std::string_view text) {
  unsigned instance = 0;
  if (text.empty() || text.size() > 2 || text.front() == '0')
    return base::unexpected(std::string("bad instance i="));
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), instance);
  if (error != std::errc() || end != text.data() + text.size())
    return base::unexpected(std::string("bad instance i="));
  if (instance < 1 || instance > kMaxArcInstances)
    return base::unexpected("instance i=" + std::string(text) + " is not in 1..50");
  return instance;
}

void b_region(const std::vector<DkimTag>& tags, std::string_view value, std::size_t& start,
              std::size_t& size) {
  const DkimTag* b = find_dkim_tag(tags, "b");
  start = static_cast<std::size_t>(b->region.data() - value.data());
  size = b->region.size();
}

}  // namespace

base::Expected<ArcSeal, std::string> parse_arc_seal(std::string_view value) {
  using base::unexpected;
  if (value.size() > kMaxSignatureValue)
    return unexpected(std::string("ARC-Seal over 8192 octets"));
  auto tags = parse_dkim_tag_list(value);
  if (!tags) return unexpected(tags.error());
  for (std::string_view required : {"i", "a", "b", "cv", "d", "s"})
    if (find_dkim_tag(*tags, required) == nullptr)
      return unexpected("missing required tag " + std::string(required) + "=");
  // RFC 8617 §4.1.3: the seal signs the ARC fields, chosen by the protocol, never by h=.
  if (find_dkim_tag(*tags, "h") != nullptr) return unexpected(std::string("h= in an ARC-Seal"));
  ArcSeal seal;
  auto instance = parse_instance(find_dkim_tag(*tags, "i")->value);
  if (!instance) return unexpected(instance.error());
  seal.instance = *instance;
  seal.algorithm = base::ascii_lowercase(find_dkim_tag(*tags, "a")->value);
  if (seal.algorithm != "rsa-sha256" && seal.algorithm != "ed25519-sha256")
    return unexpected("unsupported algorithm " + std::string(find_dkim_tag(*tags, "a")->value));
  const std::string cv = base::ascii_lowercase(find_dkim_tag(*tags, "cv")->value);
  if (cv == "none")
    seal.chain_validation = ArcResult::kNone;
  else if (cv == "pass")
    seal.chain_validation = ArcResult::kPass;
  else if (cv == "fail")
    seal.chain_validation = ArcResult::kFail;
  else
    return unexpected(std::string("cv= is not none, pass or fail"));
  seal.domain = base::ascii_lowercase(find_dkim_tag(*tags, "d")->value);
  if (!is_dkim_domain_name(seal.domain)) return unexpected(std::string("d= is not a domain"));
  seal.selector = base::ascii_lowercase(find_dkim_tag(*tags, "s")->value);
  if (!is_dkim_domain_name(seal.selector)) return unexpected(std::string("s= is not a selector"));
  if (seal.domain.size() + seal.selector.size() + 12 > 253)
    return unexpected(std::string("key name too long"));
  if (const DkimTag* t = find_dkim_tag(*tags, "t")) {
    std::int64_t seconds = 0;
    const std::string_view text = t->value;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (text.empty() || text.size() > 12 || text.front() == '-' || error != std::errc() ||
        end != text.data() + text.size())
      return unexpected(std::string("bad t="));
    seal.timestamp = seconds;
  }
  if (!decode_dkim_base64(find_dkim_tag(*tags, "b")->value, seal.signature) ||
      seal.signature.empty())
    return unexpected(std::string("b= is not base64"));
  b_region(*tags, value, seal.b_region_start, seal.b_region_size);
  return seal;
}

base::Expected<ArcMessageSignature, std::string> parse_arc_message_signature(
    std::string_view value) {
  using base::unexpected;
  auto signature = parse_dkim_signature(value, SignatureField::kArcMessage);
  if (!signature) return unexpected(signature.error());
  if (signature->algorithm == "rsa-sha1")  // RFC 8617 §4.1.2 via RFC 8301 §3.1
    return unexpected(std::string("rsa-sha1 is not accepted"));
  // parse_dkim_signature accepted it: the tag list parses and holds b=.
  auto tags = parse_dkim_tag_list(value);
  const DkimTag* i = find_dkim_tag(*tags, "i");
  if (i == nullptr) return unexpected(std::string("missing required tag i="));
  auto instance = parse_instance(i->value);
  if (!instance) return unexpected(instance.error());
  ArcMessageSignature out;
  out.instance = *instance;
  out.signature = std::move(*signature);
  b_region(*tags, value, out.b_region_start, out.b_region_size);
  return out;
}

base::Expected<unsigned, std::string> parse_arc_results_instance(std::string_view value) {
  // RFC 8617 §4.1.1: arc-info = instance [CFWS] ";" authres-payload; instance = [CFWS] "i"
  // [CFWS] "=" [CFWS] 1*2DIGIT. Comments are not expected before the instance: refused.
  auto skip_fws = [&value] {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t' ||
                              value.front() == '\r' || value.front() == '\n'))
      value.remove_prefix(1);
  };
  skip_fws();
  if (value.empty() || (value.front() != 'i' && value.front() != 'I'))
    return base::unexpected(std::string("does not start with i="));
  value.remove_prefix(1);
  skip_fws();
  if (value.empty() || value.front() != '=')
    return base::unexpected(std::string("does not start with i="));
  value.remove_prefix(1);
  skip_fws();
  std::size_t digits = 0;
  while (digits < value.size() && value[digits] >= '0' && value[digits] <= '9')
    ++digits;
  auto instance = parse_instance(value.substr(0, digits));
  if (!instance) return instance;
  value.remove_prefix(digits);
  skip_fws();
  if (value.empty() || value.front() != ';')
    return base::unexpected(std::string("no ';' after the instance"));
  return instance;
}

}  // namespace mailauth
