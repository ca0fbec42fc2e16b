// The Philox4x32-10 words of a kernel's rand() / randn() sites, computed by precompiled code
// the kernel calls (internal to backend/llvm). Philox is most of a drawing kernel's code: in
// the kernel's own IR its ten rounds per site made LLVM's instruction selection the bulk of a
// compile (the DAG combiner's known-bits queries through the multiply chains), so a kernel
// names this function instead and LLVM compiles only the rule's arithmetic.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nyto::llvm_backend {

// The symbol kernels call:
//   void nyto_philox_words(const uint32_t key[5], const uint32_t* sites, int32_t nsites,
//                          uint32_t first, uint32_t mask, int32_t q, uint32_t* out)
// key = {k0, k1, c1, c2, group << 16} (the kernel's key words, backend/Random.h layout); for
// site s and call t < q, counter (c0, c1, c2, c3) = ((first + t) & mask, c1, c2,
// group << 16 | sites[s]); out[(4 s + j) q + t] = word j of that call: exactly
// rng::philox4x32_10. q is a power of two >= 2.
constexpr char kPhiloxWordsSymbol[] = "nyto_philox_words";

// {kPhiloxWordsSymbol, the address of the widest form this CPU runs (AVX-512, AVX2, or the
// 128-bit one)}: the JIT defines it as an absolute symbol, so compiled and disk-cached kernels
// link to it. All forms give the same words.
std::pair<std::string, void*> philox_words_symbol();

// Each form by name ("avx512", "avx2", "generic"), those this CPU runs: for the tests.
std::vector<std::pair<std::string, void*>> philox_words_forms();

using PhiloxWordsFn = void (*)(const uint32_t*, const uint32_t*, int32_t, uint32_t, uint32_t, int32_t, uint32_t*);

}  // namespace nyto::llvm_backend
