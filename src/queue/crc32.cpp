// crc32.cpp — CRC-32 by carry-less multiplication (the interface: crc32.h).
//
// The arithmetic is over GF(2) polynomials. A message of n bits m_0 .. m_{n-1} (m_0 the
// low bit of the first octet: the CRC is reflected) is M(x) = sum m_j x^(n-1-j), and its
// CRC before the final complement is M(x) x^32 mod P(x), P = x^32 + 0x04C11DB7. Register
// layouts follow: in a 128-bit lane loaded from 16 octets, bit i holds the coefficient of
// x^(127-i); in a 64-bit half, of x^(63-i); in the 32-bit CRC, of x^(31-i). PCLMULQDQ of
// two halves a and b then holds, as a lane, a(x) b(x) x (the product's top degree is 126;
// the lane has room for 127).
//
// - Folding: a lane L = H x^64 + Lo (H its first half) followed by 512 more bits of data
//   counts as L x^512 there, and only its remainder mod P matters: L x^512 ≡
//   H (x^575 mod P) x + Lo (x^511 mod P) x, two products of at most 96 bits, XORed into
//   the lane loaded 64 octets later. Four lanes run side by side (their products
//   overlap in the pipeline); at the end they fold into one, 128 bits at a time.
//   The multipliers are computed here at compile time (crc32_fold_multiplier(n) stands
//   for x^n).
// - Reduction: the lane X (a polynomial of degree < 128) needs X x^32 mod P. Its first
//   half times (x^95 mod P) x leaves 96 bits, the top 32 of those times (x^63 mod P) x
//   leaves 64 bits Z, and Barrett's reduction with mu = x^64 div P gives Z mod P exactly
//   (no correction step over GF(2)): q = ((Z div x^32) mu) div x^32, Z mod P = Z + q P.
// - The 512-bit engine (AVX-512F and VPCLMULQDQ) runs sixteen lanes in four registers,
//   each folded by x^2048 per 256 octets, then folds them into four lanes and hands over.
// - zlib's initial and final complements: the complement of crc is XORed into the first
//   32 bits of the data, and the remainder is complemented at the end.
#include "queue/crc32.h"

#include <zlib.h>

#include <algorithm>
#include <cstddef>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SMTPSD_CRC32_X86 1
#endif

namespace queue {

namespace {

#ifdef SMTPSD_CRC32_X86

// P(x) without its x^32 term, coefficient of x^d at bit d (not reflected).
constexpr std::uint32_t kCrc32Polynomial = 0x04C11DB7;

// x^n mod P, coefficient of x^d at bit d.
constexpr std::uint32_t crc32_x_power_mod(unsigned n) {
  std::uint32_t remainder = 1;
  for (unsigned i = 0; i < n; ++i) {
    const bool carry = (remainder & 0x80000000U) != 0;
    remainder = (remainder << 1) ^ (carry ? kCrc32Polynomial : 0U);
  }
  return remainder;
}

// The low `width` bits of value in reverse order.
constexpr std::uint64_t crc32_reflect(std::uint64_t value, unsigned width) {
  std::uint64_t reflected = 0;
  for (unsigned i = 0; i < width; ++i) {
    if ((value >> i & 1U) != 0) reflected |= std::uint64_t{1} << (width - 1 - i);
  }
  return reflected;
}

// x^64 div P (degree 32), coefficient of x^d at bit d: long division, one dividend bit
// at a time from x^64 down.
constexpr std::uint64_t crc32_barrett_quotient() {
  constexpr std::uint64_t divisor = (std::uint64_t{1} << 32) | kCrc32Polynomial;
  std::uint64_t remainder = 0;
  std::uint64_t quotient = 0;
  for (int degree = 64; degree >= 0; --degree) {
    remainder = remainder << 1 | (degree == 64 ? 1U : 0U);
    quotient <<= 1;
    if ((remainder >> 32 & 1U) != 0) {
      remainder ^= divisor;
      quotient |= 1;
    }
  }
  return quotient;
}

// The multiplier that makes PCLMULQDQ of a 64-bit half h stand for h x^n: x^(n-1) mod P
// (the product adds one x) in the top 32 bits of a half. The product has at most 96 bits.
constexpr std::uint64_t crc32_fold_multiplier(unsigned n) {
  return crc32_reflect(crc32_x_power_mod(n - 1), 32) << 32;
}

static_assert(crc32_reflect(kCrc32Polynomial, 32) == 0xEDB88320, "zlib's reflected polynomial");
static_assert(crc32_x_power_mod(32) == kCrc32Polynomial, "x^32 = P + x^32");

// A lane 64 octets back: its first half times x^(512+64), its second half times x^512.
constexpr std::uint64_t kFold512First = crc32_fold_multiplier(576);
constexpr std::uint64_t kFold512Second = crc32_fold_multiplier(512);
// A lane 256 octets back (the 512-bit engine).
constexpr std::uint64_t kFold2048First = crc32_fold_multiplier(2112);
constexpr std::uint64_t kFold2048Second = crc32_fold_multiplier(2048);
// A lane 16 octets back.
constexpr std::uint64_t kFold128First = crc32_fold_multiplier(192);
constexpr std::uint64_t kFold128Second = crc32_fold_multiplier(128);
// Reduction of X x^32: the first half times x^96, then the top 32 of 96 bits times x^64.
constexpr std::uint64_t kReduce96 = crc32_fold_multiplier(96);
constexpr std::uint64_t kReduce64 = crc32_fold_multiplier(64);
// Barrett: mu and P, 33 bits, reflected so that a product of a 32-bit value in the low half
// with either lands in the low half of the lane (x^d at bit 32-d).
constexpr std::uint64_t kBarrettMu = crc32_reflect(crc32_barrett_quotient(), 33);
constexpr std::uint64_t kBarrettPolynomial =
    crc32_reflect((std::uint64_t{1} << 32) | kCrc32Polynomial, 33);

constexpr std::size_t kCarrylessMinimum = 64;
constexpr std::size_t kCarrylessWideMinimum = 256;

__attribute__((target("pclmul,sse4.1"))) inline __m128i crc32_load_lane(const char* at) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
}

// lane x^n mod P as a lane of at most 96 bits (folding: see the top of the file);
// multipliers holds those of the two halves for that n, the first half's in the low half.
__attribute__((target("pclmul,sse4.1"))) inline __m128i crc32_fold(__m128i lane,
                                                                   __m128i multipliers) {
  return _mm_xor_si128(_mm_clmulepi64_si128(lane, multipliers, 0x00),
                       _mm_clmulepi64_si128(lane, multipliers, 0x11));
}

// What the folding engines return (in registers: a view passed by reference was copied
// through memory, 12 ns of 29 at 64 octets): the CRC register (not complemented) of the
// data up to `rest`, where the last 15 octets or fewer start.
struct Crc32Folded {
  std::uint32_t crc;
  const char* rest;
};

// Folds the data from at to end into the four lanes, then them into one lane and that to
// 32 bits.
__attribute__((target("pclmul,sse4.1"))) Crc32Folded crc32_fold_rest(__m128i lane0, __m128i lane1,
                                                                     __m128i lane2, __m128i lane3,
                                                                     const char* at,
                                                                     const char* end) {
  const __m128i fold512 =
      _mm_set_epi64x(static_cast<long long>(kFold512Second), static_cast<long long>(kFold512First));
  while (end - at >= 64) {
    lane0 = _mm_xor_si128(crc32_fold(lane0, fold512), crc32_load_lane(at));
    lane1 = _mm_xor_si128(crc32_fold(lane1, fold512), crc32_load_lane(at + 16));
    lane2 = _mm_xor_si128(crc32_fold(lane2, fold512), crc32_load_lane(at + 32));
    lane3 = _mm_xor_si128(crc32_fold(lane3, fold512), crc32_load_lane(at + 48));
    at += 64;
  }

  const __m128i fold128 =
      _mm_set_epi64x(static_cast<long long>(kFold128Second), static_cast<long long>(kFold128First));
  __m128i lane = _mm_xor_si128(crc32_fold(lane0, fold128), lane1);
  lane = _mm_xor_si128(crc32_fold(lane, fold128), lane2);
  lane = _mm_xor_si128(crc32_fold(lane, fold128), lane3);
  while (end - at >= 16) {
    lane = _mm_xor_si128(crc32_fold(lane, fold128), crc32_load_lane(at));
    at += 16;
  }

  // X x^32 = H x^96 + Lo x^32: H times x^96 mod P (96 bits, in bits 32..127) plus the
  // second half moved to bits 32..95.
  const __m128i reduce =
      _mm_set_epi64x(static_cast<long long>(kReduce64), static_cast<long long>(kReduce96));
  const __m128i wide = _mm_xor_si128(_mm_clmulepi64_si128(lane, reduce, 0x00),
                                     _mm_slli_si128(_mm_srli_si128(lane, 8), 4));
  // Its top 32 bits (bits 32..63, the rest of the first half is zero) times x^64 mod P:
  // at most 64 bits, in the second half, where the rest of the 96 is.
  const __m128i narrow = _mm_xor_si128(_mm_clmulepi64_si128(wide, reduce, 0x10), wide);
  // Z is the second half; Z div x^32 is its low 32 bits.
  const __m128i low32 = _mm_set_epi64x(0, 0xFFFFFFFF);
  const __m128i barrett = _mm_set_epi64x(static_cast<long long>(kBarrettPolynomial),
                                         static_cast<long long>(kBarrettMu));
  const __m128i z = _mm_srli_si128(narrow, 8);
  // (Z div x^32) mu lands in the first half; its low 32 bits are q.
  const __m128i q =
      _mm_and_si128(_mm_clmulepi64_si128(_mm_and_si128(z, low32), barrett, 0x00), low32);
  // q P likewise; Z + q P has Z mod P in its bits 32..63.
  const __m128i remainder = _mm_xor_si128(z, _mm_clmulepi64_si128(q, barrett, 0x10));
  return {static_cast<std::uint32_t>(_mm_extract_epi32(remainder, 1)), at};
}

// Requires end - at >= 64.
__attribute__((target("pclmul,sse4.1"))) Crc32Folded crc32_fold_lanes(std::uint32_t crc,
                                                                      const char* at,
                                                                      const char* end) {
  const __m128i lane0 =
      _mm_xor_si128(crc32_load_lane(at), _mm_cvtsi32_si128(static_cast<int>(~crc)));
  return crc32_fold_rest(lane0, crc32_load_lane(at + 16), crc32_load_lane(at + 32),
                         crc32_load_lane(at + 48), at + 64, end);
}

#define SMTPSD_CRC32_WIDE_TARGET __attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))

SMTPSD_CRC32_WIDE_TARGET inline __m512i crc32_load_lanes(const char* at) {
  return _mm512_loadu_si512(at);
}

// The two multipliers of a lane in every 128-bit lane. (Not _mm512_broadcast_i32x4, nor
// below the unmasked extract: in gcc 12.2 their undefined operand trips -Wuninitialized.)
SMTPSD_CRC32_WIDE_TARGET inline __m512i crc32_broadcast(std::uint64_t second, std::uint64_t first) {
  const auto high = static_cast<long long>(second);
  const auto low = static_cast<long long>(first);
  return _mm512_set_epi64(high, low, high, low, high, low, high, low);
}

// lanes x^n mod P + next, each 128-bit lane by itself (as crc32_fold).
SMTPSD_CRC32_WIDE_TARGET inline __m512i crc32_fold_wide(__m512i lanes, __m512i multipliers,
                                                        __m512i next) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(lanes, multipliers, 0x00),
                                   _mm512_clmulepi64_epi128(lanes, multipliers, 0x11), next,
                                   0x96);  // a ^ b ^ c
}

// Sixteen lanes in four 512-bit registers (256 octets a step, each lane folded by x^2048),
// folded into four lanes, which crc32_fold_rest finishes. Requires end - at >= 256.
SMTPSD_CRC32_WIDE_TARGET Crc32Folded crc32_fold_lanes_wide(std::uint32_t crc, const char* at,
                                                           const char* end) {
  __m512i lanes0 = _mm512_xor_si512(
      crc32_load_lanes(at), _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(~crc))));
  __m512i lanes1 = crc32_load_lanes(at + 64);
  __m512i lanes2 = crc32_load_lanes(at + 128);
  __m512i lanes3 = crc32_load_lanes(at + 192);
  at += 256;
  const __m512i fold2048 = crc32_broadcast(kFold2048Second, kFold2048First);
  while (end - at >= 256) {
    lanes0 = crc32_fold_wide(lanes0, fold2048, crc32_load_lanes(at));
    lanes1 = crc32_fold_wide(lanes1, fold2048, crc32_load_lanes(at + 64));
    lanes2 = crc32_fold_wide(lanes2, fold2048, crc32_load_lanes(at + 128));
    lanes3 = crc32_fold_wide(lanes3, fold2048, crc32_load_lanes(at + 192));
    at += 256;
  }
  const __m512i fold512 = crc32_broadcast(kFold512Second, kFold512First);
  __m512i lanes = crc32_fold_wide(lanes0, fold512, lanes1);
  lanes = crc32_fold_wide(lanes, fold512, lanes2);
  lanes = crc32_fold_wide(lanes, fold512, lanes3);
  const __m128i lane0 = _mm512_maskz_extracti32x4_epi32(0xF, lanes, 0);
  const __m128i lane1 = _mm512_maskz_extracti32x4_epi32(0xF, lanes, 1);
  const __m128i lane2 = _mm512_maskz_extracti32x4_epi32(0xF, lanes, 2);
  const __m128i lane3 = _mm512_maskz_extracti32x4_epi32(0xF, lanes, 3);
  // The rest runs SSE code (and zlib, and the caller's memcpy): with the upper halves of
  // the vector registers left dirty, each of its instructions pays a merge. gcc 12 does
  // not put this VZEROUPPER before the tail call on its own (seen in the disassembly).
  _mm256_zeroupper();
  return crc32_fold_rest(lane0, lane1, lane2, lane3, at, end);
}

#undef SMTPSD_CRC32_WIDE_TARGET

#endif

}  // namespace

bool crc32_carryless_supported() {
#ifdef SMTPSD_CRC32_X86
  static const bool supported = [] {
    __builtin_cpu_init();  // in case this runs before the constructors (static init)
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }();
  return supported;
#else
  return false;
#endif
}

std::uint32_t crc32_zlib(std::uint32_t crc, std::string_view bytes) {
  // zlib takes a uInt length.
  while (!bytes.empty()) {
    const auto piece = static_cast<uInt>(std::min<std::size_t>(bytes.size(), 1U << 30));
    crc = static_cast<std::uint32_t>(
        ::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), piece));
    bytes.remove_prefix(piece);
  }
  return crc;
}

#ifdef SMTPSD_CRC32_X86
namespace {
// The CRC of bytes from what an engine folded: the rest (15 octets or fewer) through zlib,
// which continues from the complemented register.
std::uint32_t crc32_finish(Crc32Folded folded, std::string_view bytes) {
  const char* const end = bytes.data() + bytes.size();
  return crc32_zlib(~folded.crc, {folded.rest, static_cast<std::size_t>(end - folded.rest)});
}
}  // namespace
#endif

std::uint32_t crc32_carryless(std::uint32_t crc, std::string_view bytes) {
#ifdef SMTPSD_CRC32_X86
  if (bytes.size() >= kCarrylessMinimum) {
    return crc32_finish(crc32_fold_lanes(crc, bytes.data(), bytes.data() + bytes.size()), bytes);
  }
#endif
  return crc32_zlib(crc, bytes);
}

bool crc32_carryless_wide_supported() {
#ifdef SMTPSD_CRC32_X86
  static const bool supported = [] {
    __builtin_cpu_init();
    return crc32_carryless_supported() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("vpclmulqdq");
  }();
  return supported;
#else
  return false;
#endif
}

std::uint32_t crc32_carryless_wide(std::uint32_t crc, std::string_view bytes) {
#ifdef SMTPSD_CRC32_X86
  if (bytes.size() >= kCarrylessWideMinimum) {
    return crc32_finish(crc32_fold_lanes_wide(crc, bytes.data(), bytes.data() + bytes.size()),
                        bytes);
  }
#endif
  return crc32_carryless(crc, bytes);
}

}  // namespace queue

// The layer is built as unity units: the next file of this one must not see it.
#undef SMTPSD_CRC32_X86
