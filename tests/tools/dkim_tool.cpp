// dkim_tool.cpp — a test-only command line over mailauth's DKIM, so that other
// implementations (dkimpy, OpenDKIM) can check ours and be checked by it
// (tests/tools/dkim_oracle_test.py, tests/integration/test_dkim_keygen.py).
//
//   dkim_tool sign [--now N] KEY.pem DOMAIN SELECTOR [KEY.pem DOMAIN SELECTOR...] <msg
//       prints the message with one DKIM-Signature field per key on top
//   dkim_tool verify [--now N] RECORDS <msg
//       RECORDS: lines "NAME TXT-RDATA" (no NAME: NXDOMAIN); prints one line per signature:
//       "<result> d=<domain> s=<selector> a=<algorithm> bits=<n> problem=<words>"
//   dkim_tool arc-verify RECORDS <msg
//       the ARC chain (RFC 8617 §5.2): prints "<result> instances=<n> sealer=<d> problem=<words>"
//   dkim_tool record KEY.pem     prints the key's TXT rdata
// The message is read whole (CRLF line ends); its body is fed in 7-octet chunks so that the
// streaming paths are the ones checked. Exit codes: 0 done, 1 error, 2 usage.
#include <cstdint>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "mailauth/arc_verifier.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/dkim_verifier.h"
#include "mailauth/results.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::pair<std::string, std::string> split_message(const std::string& message) {
  std::size_t end = message.find("\r\n\r\n");
  if (end == std::string::npos) return {message, ""};
  return {message.substr(0, end + 4), message.substr(end + 4)};
}

// "NAME TXT-RDATA" lines: the TXT records of each name (a name without a line: NXDOMAIN).
std::map<std::string, std::vector<std::string>> read_records(const std::string& path) {
  std::map<std::string, std::vector<std::string>> records;
  std::istringstream lines(read_file(path));
  for (std::string line; std::getline(lines, line);) {
    std::size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    records[line.substr(0, space)].push_back(line.substr(space + 1));
  }
  return records;
}

dns::Answer answer_of(const std::map<std::string, std::vector<std::string>>& records,
                      const std::string& name) {
  dns::Answer answer;
  auto found = records.find(name);
  answer.status = found == records.end() ? dns::Status::kNxDomain : dns::Status::kOk;
  if (found != records.end()) answer.texts = found->second;
  return answer;
}

int usage() {
  std::cerr << "usage: dkim_tool sign|verify|arc-verify|record ...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  std::string command = args[0];
  args.erase(args.begin());
  std::int64_t now = std::time(nullptr);
  if (args.size() >= 2 && args[0] == "--now") {
    now = std::stoll(args[1]);
    args.erase(args.begin(), args.begin() + 2);
  }
  if (command == "record") {
    if (args.size() != 1) return usage();
    auto key = mailauth::DkimSigningKey::load(read_file(args[0]), "example.com", "s");
    if (!key) {
      std::cerr << key.error() << "\n";
      return 1;
    }
    std::cout << (*key)->dns_record() << "\n";
    return 0;
  }
  std::string message(std::istreambuf_iterator<char>(std::cin), {});
  auto [header, body] = split_message(message);
  if (command == "sign") {
    if (args.empty() || args.size() % 3 != 0) return usage();
    std::vector<std::shared_ptr<const mailauth::DkimSigningKey>> keys;
    for (std::size_t i = 0; i < args.size(); i += 3) {
      auto key = mailauth::DkimSigningKey::load(read_file(args[i]), args[i + 1], args[i + 2]);
      if (!key) {
        std::cerr << args[i] << ": " << key.error() << "\n";
        return 1;
      }
      keys.push_back(*key);
    }
    mailauth::DkimSigner signer(keys);
    for (std::size_t i = 0; i < body.size(); i += 7)
      signer.body(std::string_view(body).substr(i, 7));
    signer.end_of_body();
    for (const auto& value : signer.sign(header, now))
      std::cout << "DKIM-Signature: " << value << "\r\n";
    std::cout << message;
    return 0;
  }
  if (command == "verify") {
    if (args.size() != 1) return usage();
    const auto records = read_records(args[0]);
    mailauth::DkimVerifier verifier;
    verifier.header_section(header);
    for (std::size_t i = 0; i < body.size(); i += 7)
      verifier.body(std::string_view(body).substr(i, 7));
    verifier.end_of_body();
    for (std::size_t i = 0; i < verifier.signature_count(); ++i) {
      auto outcome = verifier.verify(i, answer_of(records, verifier.key_name(i)), now);
      std::cout << mailauth::to_string(outcome.result) << " d=" << outcome.domain
                << " s=" << outcome.selector << " a=" << outcome.algorithm
                << " bits=" << outcome.key_bits << " problem=" << outcome.problem << "\n";
    }
    return 0;
  }
  if (command == "arc-verify") {
    if (args.size() != 1) return usage();
    const auto records = read_records(args[0]);
    mailauth::ArcVerifier verifier;
    verifier.header_section(header);
    for (std::size_t i = 0; i < body.size(); i += 7)
      verifier.body(std::string_view(body).substr(i, 7));
    verifier.end_of_body();
    std::vector<dns::AnswerPtr> keys;
    for (const std::string& name : verifier.key_names())
      keys.push_back(std::make_shared<const dns::Answer>(answer_of(records, name)));
    auto outcome = verifier.verify(keys);
    std::cout << mailauth::to_string(outcome.result) << " instances=" << outcome.instances
              << " sealer=" << outcome.sealer << " problem=" << outcome.problem << "\n";
    return 0;
  }
  return usage();
}
