#include "backend/llvm/Philox.h"

#include "backend/Random.h"
#include "backend/llvm/PhiloxWords.inc"

static_assert(kWordsM0 == nyto::rng::kPhiloxM0 && kWordsM1 == nyto::rng::kPhiloxM1 &&
              kWordsW0 == nyto::rng::kPhiloxW0 && kWordsW1 == nyto::rng::kPhiloxW1,
              "PhiloxWords.inc and backend/Random.h must use the same Philox constants");

#if defined(__x86_64__)
extern "C" void nyto_philox_words_avx2(const uint32_t*, const uint32_t*, int32_t, uint32_t, uint32_t, int32_t,
                                       uint32_t*);
extern "C" void nyto_philox_words_avx512(const uint32_t*, const uint32_t*, int32_t, uint32_t, uint32_t, int32_t,
                                         uint32_t*);
#endif

namespace nyto::llvm_backend {

namespace {

// x86-64 always has SSE2; elsewhere each call is rng::philox4x32_10 itself.
void words_generic(const uint32_t* key, const uint32_t* sites, int32_t nsites, uint32_t first, uint32_t mask,
                   int32_t q, uint32_t* out) {
#if defined(__SSE2__)
  philox_words_body<Sse2, Sse2>(key, sites, nsites, first, mask, q, out);
#else
  for (int32_t s = 0; s < nsites; ++s)
    for (int32_t t = 0; t < q; ++t) {
      const rng::Philox4 p = rng::philox4x32_10((first + uint32_t(t)) & mask, key[2], key[3], key[4] | sites[s],
                                                key[0], key[1]);
      for (int j = 0; j < 4; ++j) out[(int64_t(4) * s + j) * q + t] = p.r[j];
    }
#endif
}

}  // namespace

std::vector<std::pair<std::string, void*>> philox_words_forms() {
  std::vector<std::pair<std::string, void*>> forms;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    forms.emplace_back("avx512", reinterpret_cast<void*>(&nyto_philox_words_avx512));
  if (__builtin_cpu_supports("avx2")) forms.emplace_back("avx2", reinterpret_cast<void*>(&nyto_philox_words_avx2));
#endif
  forms.emplace_back("generic", reinterpret_cast<void*>(&words_generic));
  return forms;
}

std::pair<std::string, void*> philox_words_symbol() {
  static void* const widest = philox_words_forms().front().second;  // the CPU does not change
  return {kPhiloxWordsSymbol, widest};
}

}  // namespace nyto::llvm_backend
