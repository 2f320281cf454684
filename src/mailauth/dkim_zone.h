// dkim_zone.h — a DKIM key record (RFC 6376 §3.6.1) as the zone-file line an administrator
// publishes: NAME. IN TXT ( "…" "…" ), the rdata cut into character-strings of at most 255
// octets (RFC 1035 §3.3.14), quotes and backslashes escaped (§5.1).
#pragma once

#include <string>
#include <string_view>

namespace mailauth {

// name: "sel._domainkey.example.org" (without the final dot); rdata: "v=DKIM1; k=rsa; p=…".
std::string dkim_zone_line(std::string_view name, std::string_view rdata);

}  // namespace mailauth
