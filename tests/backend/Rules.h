// Hand-built graphs shared by the backend tests and the benchmarks.
#pragma once

#include "ir/IR.h"

namespace nyto::test {

// v = w*v + c1*rand()*(pbest - x) + c2*rand()*(gbest - x); x = x + v
// inputs: x, v, pbest, gbest; params w, c1, c2; outputs v -> input v, x -> input x.
inline ir::Graph pso_graph() {
  ir::Graph g;
  g.inputs = {{"x"}, {"v"}, {"pbest"}, {"gbest"}};
  g.params = {{"w", 0.729}, {"c1", 1.49445}, {"c2", 1.49445}};
  ir::Builder b(g);
  using ir::Op;
  auto x = b.input(0, ir::Type::Elem), v = b.input(1, ir::Type::Elem);
  auto pb = b.input(2, ir::Type::Elem), gb = b.input(3, ir::Type::Elem);
  auto w = b.param(0), c1 = b.param(1), c2 = b.param(2);
  auto r1 = b.rand(false), r2 = b.rand(false);
  auto t1 = b.binary(Op::Mul, w, v);
  auto t2 = b.binary(Op::Mul, b.binary(Op::Mul, c1, r1), b.binary(Op::Sub, pb, x));
  auto t3 = b.binary(Op::Mul, b.binary(Op::Mul, c2, r2), b.binary(Op::Sub, gb, x));
  auto vn = b.binary(Op::Add, b.binary(Op::Add, t1, t2), t3);
  auto xn = b.binary(Op::Add, x, vn);
  g.outputs = {{"v", vn, 1}, {"x", xn, 0}};
  return g;
}

}  // namespace nyto::test
