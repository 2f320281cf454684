// crc32.h — CRC-32 as zlib's crc32() computes it (IEEE 802.3, reflected, 0xEDB88320), by
// carry-less multiplication where the CPU has it.
//
// The spool checksums every message as it is written (queue/spool_log.h); zlib's
// byte-table code took 14% of server CPU on 10 MiB messages. crc32_update (spool_log.h)
// picks the fastest engine this CPU runs, once per process; all are here so that tests can
// hold each to zlib's value. XXX: the 512-bit engine may lower the clock of its core for a
// moment on older AVX-512 parts (Skylake-SP); it runs only on inputs of 256 octets and more.
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

// Whether this CPU runs crc32_carryless_wide (also AVX-512F and VPCLMULQDQ), asked once.
bool crc32_carryless_wide_supported();

// The same value, 256 octets at a time in 512-bit registers; under 256 octets (and what
// is left after the last 256) as crc32_carryless. Only where
// crc32_carryless_wide_supported().
std::uint32_t crc32_carryless_wide(std::uint32_t crc, std::string_view bytes);

}  // namespace queue
