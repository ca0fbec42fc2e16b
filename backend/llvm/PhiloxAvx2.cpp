// nyto_philox_words for AVX2 (compiled with -mavx2; Philox.cpp calls it only where the CPU has
// it). See PhiloxWords.inc.
#include <immintrin.h>

#include "backend/llvm/PhiloxWords.inc"

namespace {
struct Avx2 {
  using V = __m256i;
  static constexpr int L = 4, N = 2;  // lanes; chains side by side (registers allow)
  static constexpr bool kPairs = false;  // packing two chains costs as much as narrowing each
  static V set1(uint32_t x) { return _mm256_set1_epi64x(int64_t(x)); }
  static V iota() { return _mm256_set_epi64x(3, 2, 1, 0); }
  static V add(V a, V b) { return _mm256_add_epi64(a, b); }
  static V band(V a, V b) { return _mm256_and_si256(a, b); }
  static V mul(V a, V b) { return _mm256_mul_epu32(a, b); }
  static V hi(V a) { return _mm256_shuffle_epi32(a, 0xF5); }  // see Sse2::hi
  static V xor3(V a, V b, V c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
  static void store_low(uint32_t* p, V a) {
    const __m256i even = _mm256_permutevar8x32_epi32(a, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(even));
  }
};
}  // namespace

extern "C" void nyto_philox_words_avx2(const uint32_t* key, const uint32_t* sites, int32_t nsites, uint32_t first,
                                       uint32_t mask, int32_t q, uint32_t* out) {
  philox_words_body<Avx2, Sse2>(key, sites, nsites, first, mask, q, out);
}
