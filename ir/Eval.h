// The meaning of every arithmetic and comparison op on one value, as IR.h's numerics rule states
// it. Shared by constant folding (T = double, for Scalar nodes) and the reference interpreter
// (T = float or double), so folding can never disagree with the oracle. Transcendental functions
// are SLEEF's (ir/Math.h), which the LLVM backend calls in vector form.
#pragma once

#include <cmath>
#include <limits>

#include "ir/Error.h"
#include "ir/IR.h"
#include "ir/Math.h"

namespace nyto::ir {

/// IEEE 754-2019 minimum (LLVM's llvm.minimum): NaN if either operand is NaN, and -0 < +0.
/// torch.minimum propagates NaN the same way; ordering the zeros makes the result independent of
/// operand order, so a backend may commute it.
template <class T>
T ieee_minimum(T a, T b) {
  if (a < b) return a;
  if (b < a) return b;
  if (a == b) return std::signbit(a) ? a : b;  // equal: only ±0 differ, pick -0
  return std::isnan(a) ? a : b;                // at least one NaN: return a NaN operand
}

/// IEEE 754-2019 maximum (llvm.maximum): NaN if either operand is NaN, and +0 > -0.
template <class T>
T ieee_maximum(T a, T b) {
  if (a > b) return a;
  if (b > a) return b;
  if (a == b) return std::signbit(a) ? b : a;
  return std::isnan(a) ? a : b;
}

/// sign(x): -1, +0 or 1; NaN stays NaN; sign(-0) = +0 (as `(0 < x) - (x < 0)`, torch.sign's
/// CPU formula, which also yields +0 for both zeros).
template <class T>
T sign_of(T x) {
  if (x > T(0)) return T(1);
  if (x < T(0)) return T(-1);
  if (x == T(0)) return T(0);
  return x;
}

/// Floored modulo, the sign of b (Python's float a % b, numpy.mod): fmod, then b added where the
/// remainder's sign differs from b's; a zero remainder takes b's sign. mod(x, 0) is NaN.
template <class T>
T floored_mod(T a, T b) {
  T r = std::fmod(a, b);
  if (r != T(0)) return (r < T(0)) != (b < T(0)) ? r + b : r;  // NaN != 0 too: stays NaN
  return std::copysign(T(0), b);
}

/// A unary op on T. Throws an internal error for a non-unary op.
template <class T>
T eval_unary(Op op, T x) {
  switch (op) {
    case Op::Neg: return -x;
    case Op::Abs: return std::fabs(x);
    case Op::Sqrt: return std::sqrt(x);
    case Op::Exp: return math::exp(x);
    case Op::Log: return math::log(x);
    case Op::Sin: return math::sin(x);
    case Op::Cos: return math::cos(x);
    case Op::Tanh: return math::tanh(x);
    case Op::Sigmoid: return T(1) / (T(1) + math::exp(-x));
    case Op::Sign: return sign_of(x);
    case Op::Floor: return std::floor(x);
    case Op::Ceil: return std::ceil(x);
    case Op::Acos: return math::acos(x);
    case Op::Asin: return math::asin(x);
    case Op::Atan: return math::atan(x);
    default: internal_error(std::string("eval_unary: not a unary op: ") + op_name(op));
  }
}

/// An arithmetic binary op on T (not a comparison). Throws an internal error otherwise.
template <class T>
T eval_binary(Op op, T a, T b) {
  switch (op) {
    case Op::Add: return a + b;
    case Op::Sub: return a - b;
    case Op::Mul: return a * b;
    case Op::Div: return a / b;
    case Op::Pow: return math::pow(a, b);
    case Op::Min: return ieee_minimum(a, b);
    case Op::Max: return ieee_maximum(a, b);
    case Op::Mod: return floored_mod(a, b);
    case Op::Atan2: return math::atan2(a, b);  // atan2(y = a, x = b), C's argument order
    default: internal_error(std::string("eval_binary: not an arithmetic op: ") + op_name(op));
  }
}

/// A comparison on T (IEEE: every comparison with NaN is false except Ne).
template <class T>
bool eval_compare(Op op, T a, T b) {
  switch (op) {
    case Op::Lt: return a < b;
    case Op::Le: return a <= b;
    case Op::Gt: return a > b;
    case Op::Ge: return a >= b;
    case Op::Eq: return a == b;
    case Op::Ne: return a != b;
    default: internal_error(std::string("eval_compare: not a comparison: ") + op_name(op));
  }
}

/// Op classes, from the X-macro's grouping in IR.h.
inline bool is_leaf(Op op) { return op_arity(op) == 0; }
inline bool is_compare_op(Op op) {
  return op == Op::Lt || op == Op::Le || op == Op::Gt || op == Op::Ge || op == Op::Eq ||
         op == Op::Ne;
}

}  // namespace nyto::ir
