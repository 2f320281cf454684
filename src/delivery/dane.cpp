// dane.cpp — see dane.h.
#include "delivery/dane.h"

namespace delivery {

bool usable_tlsa(const dns::TlsaRecord& record) {
  if (record.usage != 2 && record.usage != 3) return false;  // DANE-TA, DANE-EE only
  if (record.selector > 1) return false;                     // Cert, SPKI
  switch (record.matching_type) {
    case 0:
      return !record.data.empty();
    case 1:
      return record.data.size() == 32;
    case 2:
      return record.data.size() == 64;
    default:
      return false;
  }
}

std::string parameters_of(const dns::TlsaRecord& record) {
  return std::to_string(record.usage) + " " + std::to_string(record.selector) + " " +
         std::to_string(record.matching_type);
}

std::string to_string(const dns::TlsaRecord& record) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text = parameters_of(record) + " ";
  for (unsigned char octet : record.data) {
    text += kHex[octet >> 4];
    text += kHex[octet & 0x0F];
  }
  return text;
}

namespace {

// The decision from the TLSA records of one base domain (the MX host or its CNAME target).
DaneLookup tlsa_at(dns::Resolver& resolver, std::string_view base, std::uint16_t port,
                   std::chrono::milliseconds deadline) {
  DaneLookup lookup;
  lookup.base = std::string(base);
  const std::string name = "_" + std::to_string(port) + "._tcp." + std::string(base);
  dns::AnswerPtr answer = resolver.lookup_and_wait(name, dns::Type::kTlsa, deadline);
  switch (answer->status) {
    case dns::Status::kNxDomain:
    case dns::Status::kNoData:
      lookup.kind = DaneLookup::Kind::kNone;
      lookup.detail = "no TLSA record at " + name;
      return lookup;
    case dns::Status::kBogus:
    case dns::Status::kTemporary:
      lookup.kind = DaneLookup::Kind::kFailed;
      lookup.bogus = answer->status == dns::Status::kBogus;
      lookup.detail = "TLSA lookup of " + name + " failed: " + answer->detail;
      return lookup;
    case dns::Status::kOk:
      break;
  }
  if (!answer->secure) {
    lookup.kind = DaneLookup::Kind::kNone;
    lookup.detail = "TLSA records at " + name + " not DNSSEC-signed";
    return lookup;
  }
  for (const dns::TlsaRecord& record : answer->tlsa)
    if (usable_tlsa(record)) lookup.usable.push_back(record);
  if (lookup.usable.empty()) {
    lookup.kind = DaneLookup::Kind::kUnusable;
    lookup.detail = "none of the " + std::to_string(answer->tlsa.size()) + " TLSA records at " +
                    name + " is usable: TLS required, unauthenticated";
    return lookup;
  }
  lookup.kind = DaneLookup::Kind::kUsable;
  lookup.detail = std::to_string(lookup.usable.size()) + " usable TLSA record" +
                  (lookup.usable.size() == 1 ? "" : "s") + " at " + name;
  return lookup;
}

}  // namespace

DaneLookup lookup_dane(dns::Resolver& resolver, std::string_view host, std::uint16_t port,
                       bool mx_secure, bool host_secure, std::chrono::milliseconds deadline,
                       std::string_view canonical) {
  DaneLookup lookup;
  lookup.base = std::string(host);
  if (!resolver.validates()) {
    lookup.detail = "no validating resolver";
    return lookup;
  }
  if (!mx_secure || !host_secure) {
    lookup.detail = !mx_secure ? "MX answer not DNSSEC-signed" : "addresses not DNSSEC-signed";
    return lookup;
  }
  // §2.2.2: a secure CNAME chain's target is asked first; without records there, the MX
  // host's own name.
  if (!canonical.empty() && canonical != host) {
    DaneLookup expanded = tlsa_at(resolver, canonical, port, deadline);
    if (expanded.kind != DaneLookup::Kind::kNone) return expanded;
  }
  return tlsa_at(resolver, host, port, deadline);
}

std::string tlsa_published_unvalidated(dns::Resolver& resolver, std::string_view host,
                                       std::uint16_t port, std::chrono::milliseconds deadline) {
  const std::string name = "_" + std::to_string(port) + "._tcp." + std::string(host);
  dns::AnswerPtr answer = resolver.lookup_and_wait(name, dns::Type::kTlsa, deadline);
  return answer->status == dns::Status::kOk && !answer->tlsa.empty() ? name : std::string();
}

}  // namespace delivery
