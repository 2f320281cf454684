// dkim_zone.cpp — see dkim_zone.h.
#include "mailauth/dkim_zone.h"

namespace mailauth {

std::string dkim_zone_line(std::string_view name, std::string_view rdata) {
  std::string line = std::string(name) + ". IN TXT (";
  for (std::size_t i = 0; i < rdata.size() || i == 0; i += 255) {
    line += " \"";
    for (char c : rdata.substr(i, 255)) {
      if (c == '"' || c == '\\') line.push_back('\\');
      line.push_back(c);
    }
    line += "\"";
  }
  return line + " )";
}

}  // namespace mailauth
