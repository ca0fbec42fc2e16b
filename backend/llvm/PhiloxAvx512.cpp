// nyto_philox_words for AVX-512 (compiled with -mavx512f; Philox.cpp calls it only where the CPU
// has it). See PhiloxWords.inc.
#include <immintrin.h>

#include "backend/llvm/PhiloxWords.inc"

namespace {
struct Avx512 {
  using V = __m512i;
  static constexpr int L = 8, N = 4;  // lanes; chains side by side (registers allow)
  static constexpr bool kPairs = true;
  static V set1(uint32_t x) { return _mm512_set1_epi64(int64_t(x)); }
  static V iota() { return _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0); }
  static V add(V a, V b) { return _mm512_add_epi64(a, b); }
  static V band(V a, V b) { return _mm512_and_si512(a, b); }
  static V mul(V a, V b) { return _mm512_mul_epu32(a, b); }
  static V hi(V a) { return _mm512_shuffle_epi32(a, _MM_PERM_DDBB); }  // see Sse2::hi
  static V xor3(V a, V b, V c) { return _mm512_ternarylogic_epi64(a, b, c, 0x96); }
  static void store_low(uint32_t* p, V a) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi64_epi32(a));
  }
  // The low halves of a's lanes, then of b's: one vpermt2d, where store_low's narrowing takes two
  // uops per chain on Intel cores.
  static void store_pair(uint32_t* p, V a, V b) {
    const V even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    _mm512_storeu_si512(p, _mm512_permutex2var_epi32(a, even, b));
  }
};
}  // namespace

extern "C" void nyto_philox_words_avx512(const uint32_t* key, const uint32_t* sites, int32_t nsites,
                                         uint32_t first, uint32_t mask, int32_t q, uint32_t* out) {
  philox_words_body<Avx512, Sse2>(key, sites, nsites, first, mask, q, out);
}
