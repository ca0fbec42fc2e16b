#include "backend/llvm/Sleef.h"

// sleef.h declares a vector form only where this file is compiled for its instruction set
// (__m512 needs __AVX512F__), and this file must run on any x86-64: the forms are declared here
// by name, for their addresses alone (the JIT calls them with the vector ABI their names give).
// The functions of sleef_function's `fn`, one list for the declarations and the symbol table.
#define NYTO_SLEEF_FUNCTIONS(X) X(exp) X(log) X(sin) X(cos) X(tanh) X(acos) X(asin) X(atan) X(pow) X(atan2)
#define NYTO_SLEEF_DECLARE(fn)                                                                      \
  void Sleef_##fn##f1_u10purec();                                                                   \
  void Sleef_##fn##f4_u10sse2();                                                                    \
  void Sleef_##fn##f8_u10avx();                                                                     \
  void Sleef_##fn##f16_u10avx512fnofma();                                                           \
  void Sleef_##fn##d1_u10purec();                                                                   \
  void Sleef_##fn##d2_u10sse2();                                                                    \
  void Sleef_##fn##d4_u10avx();                                                                     \
  void Sleef_##fn##d8_u10avx512fnofma();
extern "C" {
NYTO_SLEEF_FUNCTIONS(NYTO_SLEEF_DECLARE)
}
#undef NYTO_SLEEF_DECLARE

namespace nyto::llvm_backend {

namespace {
const char* isa_of_bytes(int bytes) {
  switch (bytes) {
    case 16: return "sse2";
    case 32: return "avx";
    case 64: return "avx512fnofma";
    default: return nullptr;
  }
}
}  // namespace

std::string sleef_function(const std::string& fn, bool f64, int lanes) {
  const std::string base = "Sleef_" + fn + (f64 ? "d" : "f") + std::to_string(lanes) + "_u10";
  if (lanes == 1) return base + "purec";
  const char* isa = isa_of_bytes(lanes * (f64 ? 8 : 4));
  return isa ? base + isa : std::string();
}

double sleef_vector_bound(const std::string& fn, bool f64) {
  // SLEEF's u10 sin and cos reduce the argument by one of two (float32) or three (float64)
  // methods, chosen for the whole vector: Cody-Waite while every lane's |x| is below
  // TRIGRANGEMAX2 (125 / 15), else one that is right for any argument but rounds differently on
  // small ones. The scalar form chooses per value, so the two agree whenever the vector takes the
  // first method. Measured: 2^21 vectors of mixed arguments (random bits, tiny, 1e5), 1-3% of
  // lanes differ in the last bit without this bound and none with it, for every form; every
  // other function's forms agreed on every lane (70 million float32 and 33 million float64
  // arguments per function, NaN payloads aside).
  if (fn == "sin" || fn == "cos") return f64 ? 15.0 : 125.0;
  return 0;
}

const std::vector<std::pair<std::string, void*>>& sleef_symbols() {
  // Taking each address here also makes the linker keep libsleef (and so every function a cached
  // kernel may name) in the process.
#define NYTO_SLEEF_FORMS(fn)                                                                        \
  {"Sleef_" #fn "f1_u10purec", reinterpret_cast<void*>(&Sleef_##fn##f1_u10purec)},                 \
      {"Sleef_" #fn "f4_u10sse2", reinterpret_cast<void*>(&Sleef_##fn##f4_u10sse2)},               \
      {"Sleef_" #fn "f8_u10avx", reinterpret_cast<void*>(&Sleef_##fn##f8_u10avx)},                 \
      {"Sleef_" #fn "f16_u10avx512fnofma", reinterpret_cast<void*>(&Sleef_##fn##f16_u10avx512fnofma)}, \
      {"Sleef_" #fn "d1_u10purec", reinterpret_cast<void*>(&Sleef_##fn##d1_u10purec)},             \
      {"Sleef_" #fn "d2_u10sse2", reinterpret_cast<void*>(&Sleef_##fn##d2_u10sse2)},               \
      {"Sleef_" #fn "d4_u10avx", reinterpret_cast<void*>(&Sleef_##fn##d4_u10avx)},                 \
      {"Sleef_" #fn "d8_u10avx512fnofma", reinterpret_cast<void*>(&Sleef_##fn##d8_u10avx512fnofma)},
  static const std::vector<std::pair<std::string, void*>> symbols = {NYTO_SLEEF_FUNCTIONS(NYTO_SLEEF_FORMS)};
#undef NYTO_SLEEF_FORMS
  return symbols;
}

}  // namespace nyto::llvm_backend
