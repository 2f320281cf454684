// posture.cpp — see posture.h.
#include "delivery/posture.h"

#include <algorithm>

#include "delivery/tls_report.h"

namespace delivery {

bool DomainTls::sts_applies() const {
  return sts != nullptr && sts->has_policy() && sts->policy.mode != StsMode::kNone;
}

bool DomainTls::sts_enforced() const {
  return sts_applies() && sts->policy.mode == StsMode::kEnforce;
}

std::string_view DomainTls::fallback_policy() const {
  switch (relaxation) {
    case Relaxation::kSenderOptional:
      return "tls-required-no";
    case Relaxation::kException:
      return "exception";
    case Relaxation::kNone:
      break;
  }
  if (static_policy) return "static";
  return remembered != SeenTls::kNone ? "learned" : "opportunistic";
}

HostTls decide_host(const DomainTls& domain, const DaneLookup& dane, std::string_view host) {
  HostTls decision;
  decision.level = domain.level;
  decision.policy = domain.fallback_policy();
  // DANE decides a host with usable records or a failed lookup; secure records none of
  // which is usable only make TLS mandatory, and MTA-STS still applies to such a host.
  const bool dane_decides =
      dane.kind == DaneLookup::Kind::kUsable || dane.kind == DaneLookup::Kind::kFailed;
  decision.sts_host = domain.sts_applies() && !dane_decides;
  decision.sts_unnamed = decision.sts_host && !matches(domain.sts->policy, host);
  if (dane_decides) {
    decision.policy = "dane";
    decision.report_type = "tlsa";
  } else if (decision.sts_host) {
    decision.policy = "mta-sts";
    decision.report_type = "sts";
  } else if (dane.kind == DaneLookup::Kind::kUnusable) {
    decision.policy = "dane";
  }
  if (dane.kind == DaneLookup::Kind::kFailed) {
    decision.used = false;
    decision.why_not = std::string(host) + ": " + dane.detail + " (DANE: host not used)";
    return decision;
  }
  if (decision.sts_unnamed && domain.sts_enforced()) {
    decision.used = false;
    decision.why_not =
        "MX host " + std::string(host) + " is not named by the MTA-STS policy of " + domain.name;
    return decision;
  }
  decision.dane_authenticates = dane.kind == DaneLookup::Kind::kUsable;
  if (decision.sts_host && domain.sts_enforced()) {
    decision.level = std::max(decision.level, tls::OutboundLevel::kVerify);
  } else if (decision.dane_authenticates || dane.kind == DaneLookup::Kind::kUnusable) {
    decision.level = std::max(decision.level, tls::OutboundLevel::kEncrypt);
  }
  return decision;
}

TlsrptRecord lookup_tlsrpt(dns::Resolver& resolver, std::string_view domain,
                           std::chrono::milliseconds deadline) {
  TlsrptRecord record;
  const std::string name = "_smtp._tls." + std::string(domain);
  dns::AnswerPtr answer = resolver.lookup_and_wait(name, dns::Type::kTxt, deadline);
  record.secure = answer->secure;
  if (answer->status == dns::Status::kTemporary || answer->status == dns::Status::kBogus) {
    record.status = TlsrptRecord::Status::kUnknown;
    record.detail = "TXT lookup of " + name + " failed: " + answer->detail;
    return record;
  }
  std::size_t found = 0;
  for (const std::string& text : answer->texts) {
    if (!text.starts_with("v=TLSRPTv1")) continue;
    ++found;
    if (auto rua = parse_tlsrpt_record(text)) {
      record.rua = std::move(*rua);
    } else {
      record.detail = "\"" + text + "\" is not a valid TLSRPTv1 record";
    }
  }
  if (found == 0) {
    record.detail = "no TLSRPTv1 record at " + name;
  } else if (found > 1) {
    // §3: several records are as none.
    record.status = TlsrptRecord::Status::kInvalid;
    record.rua.clear();
    record.detail = std::to_string(found) + " TLSRPTv1 records at " + name + ": none applies";
  } else {
    record.status =
        record.detail.empty() ? TlsrptRecord::Status::kFound : TlsrptRecord::Status::kInvalid;
  }
  return record;
}

Posture look_up_posture(dns::Resolver& resolver, MxResolver& mx, MtaSts* mta_sts,
                        std::string_view domain, const PostureOptions& options) {
  Posture posture;
  posture.domain = std::string(domain);
  posture.validating = resolver.validates();
  if (mta_sts != nullptr) {
    posture.sts_asked = true;
    posture.sts = mta_sts->policy_for(domain, std::chrono::steady_clock::now() + options.deadline);
  }
  posture.mx = mx.resolve(domain);
  posture.dane.resize(posture.mx.targets.size());
  if (options.dane) {
    for (std::size_t i = 0; i < posture.mx.targets.size(); ++i) {
      const MxTarget& target = posture.mx.targets[i];
      posture.dane[i] = lookup_dane(resolver, target.host, options.port, posture.mx.secure,
                                    target.secure, options.deadline, target.canonical);
    }
  }
  posture.tlsrpt = lookup_tlsrpt(resolver, domain, options.deadline);
  return posture;
}

namespace {

std::string dnssec(bool secure) {
  return secure ? " (DNSSEC: secure)" : " (DNSSEC: insecure)";
}

std::string host_line(const DomainTls& domain, const HostTls& host, std::string_view name) {
  if (!host.used && host.policy == "dane")
    return "    policy dane: this host is not used (the TLSA lookup failed)\n";
  if (host.sts_host) {
    const bool enforce = domain.sts_enforced();
    return "    policy mta-sts (" + std::string(to_string(domain.sts->policy.mode)) +
           "): " + (host.sts_unnamed ? "NOT named by the policy; " : "named by the policy; ") +
           (!enforce ? std::string("failures are only reported")
            : host.sts_unnamed
                ? std::string("this host is not used")
                : "STARTTLS and a certificate valid for " + std::string(name) + " required") +
           "\n";
  }
  if (host.dane_authenticates)
    return "    policy dane: STARTTLS required, the certificate must match a TLSA record\n";
  if (host.policy == "dane")
    return "    policy dane: STARTTLS required (no usable TLSA record to authenticate)\n";
  return "    policy " + std::string(host.policy) + ": level " +
         std::string(tls::to_string(host.level)) +
         (domain.remembered != SeenTls::kNone && !domain.relaxed()
              ? ", at least " + std::string(to_string(domain.remembered)) + " TLS"
              : std::string()) +
         "\n";
}

}  // namespace

std::string describe_posture(const Posture& posture, const DomainTls& domain) {
  std::string out;
  if (!posture.validating) out += "  DANE: not applied (the resolver does not validate DNSSEC)\n";
  if (posture.sts_asked) {
    const PolicyLookup& sts = posture.sts;
    if (sts.has_policy()) {
      std::string patterns;
      for (const std::string& mx : sts.policy.mx)
        patterns += " " + mx;
      out += "  MTA-STS: mode " + std::string(to_string(sts.policy.mode)) + ", mx" + patterns +
             ", id " + sts.id + " (" + std::string(to_string(sts.source)) + ", expires at " +
             std::to_string(sts.expires_at) + ")\n";
      if (sts.failure != StsFailure::kNone)
        out += "    the last fetch failed (" + sts.detail + "): the cached policy applies\n";
    } else {
      out += "  MTA-STS: no policy" +
             (sts.detail.empty() ? std::string() : " (" + sts.detail + ")") + "\n";
    }
  }
  switch (posture.tlsrpt.status) {
    case TlsrptRecord::Status::kFound: {
      std::string rua;
      for (const std::string& uri : posture.tlsrpt.rua)
        rua += " " + uri;
      out += "  TLS-RPT: reports to" + rua + dnssec(posture.tlsrpt.secure) + "\n";
      break;
    }
    case TlsrptRecord::Status::kNone:
    case TlsrptRecord::Status::kInvalid:
    case TlsrptRecord::Status::kUnknown:
      out += "  TLS-RPT: no reports (" + posture.tlsrpt.detail + ")\n";
      break;
  }
  out += "  MX: " + posture.mx.detail + dnssec(posture.mx.secure) + "\n";
  for (std::size_t i = 0; i < posture.mx.targets.size(); ++i) {
    const MxTarget& target = posture.mx.targets[i];
    const DaneLookup& dane = posture.dane[i];
    std::string addresses;
    for (const std::string& address : target.addresses)
      addresses += (addresses.empty() ? "" : " ") + address;
    out += "  host " + target.host + " (preference " + std::to_string(target.preference) +
           "): " + (addresses.empty() ? std::string("no address") : addresses) +
           (target.secure ? " (DNSSEC: secure)" : "") +
           (target.canonical.empty() ? std::string() : ", an alias of " + target.canonical) + "\n";
    if (!dane.detail.empty()) out += "    DANE: " + dane.detail + "\n";
    for (const dns::TlsaRecord& record : dane.usable)
      out += "      TLSA " + to_string(record) + "\n";
    if (domain.relaxation == Relaxation::kException) {
      out += "    policy exception: opportunistic TLS until the exception ends\n";
      continue;
    }
    out += host_line(domain, decide_host(domain, dane, target.host), target.host);
  }
  return out;
}

}  // namespace delivery
