// crc32.h — CRC-32 as zlib's crc32() computes it (IEEE 802.3, reflected, 0xEDB88320), by
// carry-less multiplication where the CPU has it.
//
// The spool checksums every message as it is written (queue/spool_log.h); zlib's
// byte-table code took 14% of server CPU on 10 MiB messages. crc32_update (spool_log.h)
// picks the engine once per process; both are here so that tests can hold each to zlib's
// value on any machine.
#pragma once

#include <cstdint>
#include <string_view>

namespace queue {

// Whether this CPU runs crc32_carryless (PCLMULQDQ and SSE4.1), asked once.
bool crc32_carryless_supported();

// CRC-32 of bytes continued from crc (0 to start), through zlib.
std::uint32_t crc32_zlib(std::uint32_t crc, std::string_view bytes);

// The same value by folding 64 octets at a time with PCLMULQDQ; fewer than 64 octets,
// and the last 15 or fewer, go to zlib. Only where crc32_carryless_supported().
std::uint32_t crc32_carryless(std::uint32_t crc, std::string_view bytes);

}  // namespace queue
