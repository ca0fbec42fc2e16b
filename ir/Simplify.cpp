// IEEE-safe algebraic simplification.
//
// A rewrite is admitted only if it gives the bit-identical value (NaN for NaN) for every operand,
// including NaN, ±inf and ±0, in float32 and in float64, and in double for Scalar nodes. That
// keeps every backend equal to the interpreter whichever of them ran the pass. The admitted rules
// (IEEE 754-2019 section 6.3 fixes the sign of exact zeros; x*1, x/1 are exact operations):
//   x * 1, 1 * x  -> x       multiplication by one is exact, keeps the sign of ±0, NaN stays NaN
//   x / 1         -> x       same for division
//   x * -1, -1 * x, x / -1 -> -x   exact; flips the sign of ±0 and of ±inf exactly as negation does
//   x - (+0)      -> x       x - +0 = x + -0, and x + -0 = x for every x (-0 + -0 = -0, +0 + -0 = +0)
//   x + (-0), (-0) + x -> x  same identity
//   (-0) - x      -> -x      -0 - x = -0 + (-x) = -x for every x, including x = ±0
//   -(-x)         -> x       negation is exact and an involution
//   x ** 1        -> x       pow(x, 1) is x exactly (the result is representable; glibc and LLVM's
//                            own instcombine fold pow(x, 1.0) -> x); pow(NaN, 1) is NaN
//   abs(abs x), abs(-x) -> abs x    |.| ignores the sign bit
//   floor/ceil of floor/ceil x -> the inner one   the inner result is already an integer (or
//                            ±inf, NaN, ±0), which floor and ceil return unchanged
//   min(x, x), max(x, x) -> x       same operand twice
//   select(m, a, a) -> a     when a is Elem (select is Elem, so a Scalar a would change type)
// Deliberately NOT done, because some operand breaks them:
//   x + 0 -> x     (-0 + +0 = +0, not -0)        x * 0 -> 0     (inf * 0 = NaN, -1 * 0 = -0)
//   x - x -> 0     (inf - inf = NaN)             0 - x -> -x    (0 - 0 = +0 but -(+0) = -0)
//   x / x -> 1     (0/0, inf/inf = NaN)          x ** 0.5 -> sqrt(x)   (pow(-0, .5) = +0,
//   sqrt(-0) = -0; pow(-inf, .5) = +inf, sqrt(-inf) = NaN)   and no reassociation or FMA.
// Every rewrite must also keep the node's type (Scalar/Elem): a candidate whose type differs from
// the node's is discarded, so a Scalar operand never silently replaces an Elem node.
#include <cmath>
#include <cstring>

#include "ir/Passes.h"
#include "ir/Rebuild.h"

namespace nyto::ir {

namespace {

// Bit-exact constant test: distinguishes +0 from -0.
bool is_const(const Graph& g, NodeId id, double v) {
  const Node& n = g.nodes[id];
  return n.op == Op::Const && std::memcmp(&n.value, &v, sizeof v) == 0;
}

// Returns the replacement for `n` (args already in `g`), or -1 to keep it.
NodeId rewrite(const Node& n, Builder& b, const Graph& g) {
  const NodeId x = n.args[0], y = n.args[1];
  auto op_of = [&](NodeId id) { return g.nodes[id].op; };
  switch (n.op) {
    case Op::Mul:
      if (is_const(g, y, 1.0)) return x;
      if (is_const(g, x, 1.0)) return y;
      if (is_const(g, y, -1.0)) return b.unary(Op::Neg, x);
      if (is_const(g, x, -1.0)) return b.unary(Op::Neg, y);
      break;
    case Op::Div:
      if (is_const(g, y, 1.0)) return x;
      if (is_const(g, y, -1.0)) return b.unary(Op::Neg, x);
      break;
    case Op::Sub:
      if (is_const(g, y, 0.0)) return x;
      if (is_const(g, x, -0.0)) return b.unary(Op::Neg, y);
      break;
    case Op::Add:
      if (is_const(g, y, -0.0)) return x;
      if (is_const(g, x, -0.0)) return y;
      break;
    case Op::Neg:
      if (op_of(x) == Op::Neg) return g.nodes[x].args[0];
      break;
    case Op::Pow:
      if (is_const(g, y, 1.0)) return x;
      break;
    case Op::Abs:
      if (op_of(x) == Op::Abs) return x;
      if (op_of(x) == Op::Neg) return b.unary(Op::Abs, g.nodes[x].args[0]);
      break;
    case Op::Floor:
    case Op::Ceil:
      if (op_of(x) == Op::Floor || op_of(x) == Op::Ceil) return x;
      break;
    case Op::Min:
    case Op::Max:
      if (x == y) return x;
      break;
    case Op::Select:
      if (n.args[1] == n.args[2]) return n.args[1];
      break;
    default: break;
  }
  return -1;
}

}  // namespace

Graph simplify(const Graph& g) {
  return detail::rebuild(g, [](const Node& n, Builder& b, const Graph& out) {
    NodeId r = rewrite(n, b, out);
    // The type guard (see the header comment). A Neg built for a discarded candidate stays dead
    // and DCE removes it.
    if (r >= 0 && out.nodes[r].type == n.type) return r;
    return b.add(n);
  });
}

}  // namespace nyto::ir
