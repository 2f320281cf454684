// dane_rollover.cpp — see dane_rollover.h.
#include "acme/dane_rollover.h"

#include <algorithm>

namespace acme {
namespace {

bool holds(const dns::Answer& answer, const std::string& spki_sha256) {
  return std::any_of(answer.tlsa.begin(), answer.tlsa.end(), [&](const dns::TlsaRecord& record) {
    return record.usage == 3 && record.selector == 1 && record.matching_type == 1 &&
           record.data == spki_sha256;
  });
}

std::string parent_of(const std::string& name) {
  const std::size_t dot = name.find('.');
  return dot == std::string::npos ? "." : name.substr(dot + 1);
}

std::string failure(const dns::Answer& answer) {
  std::string text(dns::to_string(answer.status));
  if (!answer.detail.empty()) text += " (" + answer.detail + ")";
  return text;
}

}  // namespace

std::vector<std::string> tlsa_owners(const std::vector<std::string>& names) {
  std::vector<std::string> owners;
  for (std::string name : names) {
    if (!name.empty() && name.back() == '.') name.pop_back();
    std::string owner = "_25._tcp." + name;
    if (std::find(owners.begin(), owners.end(), owner) == owners.end()) owners.push_back(owner);
  }
  return owners;
}

TlsaVisibility check_tlsa_visible(dns::Resolver& resolver,
                                  const AuthoritativeResolvers& authoritative,
                                  const std::vector<std::string>& names,
                                  const std::string& spki_sha256,
                                  std::chrono::milliseconds per_lookup) {
  TlsaVisibility out;
  auto not_yet = [&](std::string detail) {
    out.state = TlsaVisibility::State::kNotYet;
    out.detail = std::move(detail);
    return out;
  };
  bool any_dane = false;
  for (const std::string& owner : tlsa_owners(names)) {
    dns::AnswerPtr answer = resolver.lookup_and_wait(owner, dns::Type::kTlsa, per_lookup);
    if (answer->status == dns::Status::kNxDomain || answer->status == dns::Status::kNoData)
      continue;
    if (answer->status != dns::Status::kOk)
      return not_yet(owner + " TLSA: " + failure(*answer) + " through the resolver");
    if (!answer->secure) {
      // Unsigned: DANE clients ignore it (RFC 7672 §2.2), so it binds nothing. A resolver
      // that does not validate cannot tell signed from unsigned: no change on its word.
      if (!resolver.validates())
        return not_yet(owner +
                       " TLSA: the resolver does not validate DNSSEC ([dns] validation), so "
                       "whether DANE clients use the record cannot be told");
      continue;
    }
    any_dane = true;
    if (!holds(*answer, spki_sha256))
      return not_yet(owner + " TLSA: the next key's record is not published yet (resolver)");
    out.ttl = std::max(out.ttl, answer->ttl);

    // The zone cut: the first name up from the owner that has NS records.
    std::vector<std::string> servers;
    for (std::string zone = parent_of(owner);; zone = parent_of(zone)) {
      dns::AnswerPtr ns = resolver.lookup_and_wait(zone, dns::Type::kNs, per_lookup);
      if (ns->status == dns::Status::kOk && !ns->names.empty()) {
        servers = ns->names;
        break;
      }
      if (ns->status != dns::Status::kNoData && ns->status != dns::Status::kNxDomain)
        return not_yet(zone + " NS: " + failure(*ns));
      if (zone == ".") return not_yet("no NS records above " + owner);
    }
    for (const std::string& server : servers) {
      std::vector<std::string> addresses;
      for (dns::Type type : {dns::Type::kA, dns::Type::kAaaa}) {
        dns::AnswerPtr a = resolver.lookup_and_wait(server, type, per_lookup);
        if (a->status == dns::Status::kOk)
          addresses.insert(addresses.end(), a->addresses.begin(), a->addresses.end());
      }
      if (addresses.empty()) return not_yet("nameserver " + server + " has no address");
      bool confirmed = false;
      std::string why;
      for (const std::string& address : addresses) {
        std::shared_ptr<dns::Resolver> direct = authoritative(address);
        if (!direct) {
          why = "cannot ask " + address;
          continue;
        }
        dns::AnswerPtr at = direct->lookup_and_wait(owner, dns::Type::kTlsa, per_lookup);
        direct->stop();
        if (at->status == dns::Status::kTemporary) {
          why = failure(*at);
          continue;  // unreachable from here: another address of the server may answer
        }
        if (at->status != dns::Status::kOk || !holds(*at, spki_sha256))
          return not_yet(owner + " TLSA: nameserver " + server + " (" + address +
                         ") does not serve the next key's record yet");
        out.ttl = std::max(out.ttl, at->ttl);
        confirmed = true;
      }
      if (!confirmed) return not_yet("nameserver " + server + " did not answer: " + why);
    }
  }
  out.state = any_dane ? TlsaVisibility::State::kVisible : TlsaVisibility::State::kNoDane;
  out.detail.clear();
  return out;
}

}  // namespace acme
