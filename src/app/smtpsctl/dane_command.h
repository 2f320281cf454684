// dane_command.h — `smtpsctl dane tlsa [--config FILE] [--host NAME] [--port N]`: the DANE
// TLSA records (RFC 7671, RFC 7672) to publish for this server: one "3 1 1" record (DANE-EE,
// SubjectPublicKeyInfo, SHA2-256) per certificate the configuration serves, at
// _<port>._tcp.<host> (default port 25 and [server] hostname). Reads only the certificate
// files (public), so any account that can read them may run it. Exit 0, 1 on an unreadable
// configuration or certificate, 2 on usage errors.
//
// "3 1 1" names the key, not the certificate: a renewal that keeps the key keeps the record
// valid (RFC 7671 §8.1); the README says how to roll a new key.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace app {

int run_dane_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace app
