// SLEEF's scalar functions built without FMA (Sleef_*1_u10purec): the lane function of the
// vector forms the JIT calls (backend/llvm/Sleef.cpp).
#include "ir/Math.h"

#include <sleef.h>

namespace nyto::ir::math {

#define NYTO_MATH_UNARY(fn)                                           \
  float fn(float x) { return Sleef_##fn##f1_u10purec(x); }            \
  double fn(double x) { return Sleef_##fn##d1_u10purec(x); }
NYTO_MATH_UNARY(exp)
NYTO_MATH_UNARY(log)
NYTO_MATH_UNARY(sin)
NYTO_MATH_UNARY(cos)
NYTO_MATH_UNARY(tanh)
NYTO_MATH_UNARY(acos)
NYTO_MATH_UNARY(asin)
NYTO_MATH_UNARY(atan)
#undef NYTO_MATH_UNARY

float pow(float x, float y) { return Sleef_powf1_u10purec(x, y); }
double pow(double x, double y) { return Sleef_powd1_u10purec(x, y); }
float atan2(float y, float x) { return Sleef_atan2f1_u10purec(y, x); }
double atan2(double y, double x) { return Sleef_atan2d1_u10purec(y, x); }

}  // namespace nyto::ir::math
