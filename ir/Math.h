// The language's transcendental functions on one value, as every nyto backend but aten computes
// them: SLEEF's (https://sleef.org) 1.0-ulp functions (the `_u10` family) in the form built
// without fused multiply-add. The LLVM backend calls the vector forms of the same functions
// (sse2, avx, avx512fnofma), which give the same bits lane by lane (sin and cos: while every
// lane's argument is small, else the JIT calls this scalar form per lane; backend/llvm/Sleef.h):
// the interpreter, the JIT and constant folding agree bit for bit on every x86-64 host, with or
// without FMA.
//
// Accuracy: within 1.0 ulp of the exact result for every argument in each function's domain
// (SLEEF's documented bound); within 2 ulp of glibc's libm in float and double
// (tests/ir/test_math.cpp; docs/language.md, "Numerics"), except that float64 exp and pow
// overflow to inf for results above 0.99999825 of the largest double. Special values (NaN, ±inf, ±0, domain
// errors) follow C's Annex F, as libm does. No errno is set.
#pragma once

namespace nyto::ir::math {

float exp(float x);
double exp(double x);
float log(float x);
double log(double x);
float sin(float x);
double sin(double x);
float cos(float x);
double cos(double x);
float tanh(float x);
double tanh(double x);
float acos(float x);
double acos(double x);
float asin(float x);
double asin(double x);
float atan(float x);
double atan(double x);
float pow(float x, float y);
double pow(double x, double y);
/// atan2(y, x), C's argument order.
float atan2(float y, float x);
double atan2(double y, double x);

}  // namespace nyto::ir::math
