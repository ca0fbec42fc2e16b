// The SLEEF functions a kernel calls for exp, log, sin, cos, tanh, acos, asin, atan, pow and
// atan2 (the lane function of each is ir/Math.h's, so kernels and the interpreter agree bit for
// bit). Internal to backend/llvm.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace nyto::llvm_backend {

// The SLEEF function computing `fn` (exp log sin cos tanh acos asin atan pow atan2) on `lanes`
// lanes of float32 (f64
// false) or float64, e.g. ("exp", false, 16) -> "Sleef_expf16_u10avx512fnofma": the forms built
// without FMA, 16 bytes sse2, 32 avx, 64 avx512fnofma, 1 lane the scalar purec. "" when SLEEF has
// no form of that many lanes (then the kernel calls the scalar one per lane).
std::string sleef_function(const std::string& fn, bool f64, int lanes);

// A vector form gives the scalar form's bits on every lane only while every lane's |x| is below
// this bound (sin, cos); 0: always. Above it, a kernel calls the scalar form per lane.
double sleef_vector_bound(const std::string& fn, bool f64);

// Every function sleef_function names, with its address in this process: the JIT defines them
// as absolute symbols, so a kernel (compiled now or loaded from the disk cache) links to them.
const std::vector<std::pair<std::string, void*>>& sleef_symbols();

}  // namespace nyto::llvm_backend
