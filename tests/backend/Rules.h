// Hand-built graphs shared by the backend tests and the benchmarks.
#pragma once

#include "ir/IR.h"

namespace nyto::test {

// PSO's inputs x, v, pbest, gbest and params w, c1, c2 (declared on g), as nodes of b.
struct PsoNodes {
  ir::NodeId x, v, pbest, gbest, w, c1, c2;
};
inline void declare_pso(ir::Graph& g) {
  g.inputs = {{"x"}, {"v"}, {"pbest"}, {"gbest"}};
  g.params = {{"w", 0.729}, {"c1", 1.49445}, {"c2", 1.49445}};
}
inline PsoNodes pso_nodes(ir::Builder& b) {
  return {b.input(0, ir::Type::Elem), b.input(1, ir::Type::Elem), b.input(2, ir::Type::Elem),
          b.input(3, ir::Type::Elem), b.param(0), b.param(1), b.param(2)};
}

// v = w*v + c1*rand()*(pbest - x) + c2*rand()*(gbest - x); x = x + v
// inputs: x, v, pbest, gbest; params w, c1, c2; outputs v -> input v, x -> input x.
inline ir::Graph pso_graph() {
  ir::Graph g;
  declare_pso(g);
  ir::Builder b(g);
  using ir::Op;
  const PsoNodes n = pso_nodes(b);
  auto r1 = b.rand(false), r2 = b.rand(false);
  auto t1 = b.binary(Op::Mul, n.w, n.v);
  auto t2 = b.binary(Op::Mul, b.binary(Op::Mul, n.c1, r1), b.binary(Op::Sub, n.pbest, n.x));
  auto t3 = b.binary(Op::Mul, b.binary(Op::Mul, n.c2, r2), b.binary(Op::Sub, n.gbest, n.x));
  auto vn = b.binary(Op::Add, b.binary(Op::Add, t1, t2), t3);
  auto xn = b.binary(Op::Add, n.x, vn);
  g.outputs = {{"v", vn, 1}, {"x", xn, 0}};
  return g;
}

// v = w*v + c1*(r1 + ... + rN)*(pbest - x) + c2*(gbest - x); x = x + v, r the N random sites
// (rand(), or randn() when `normal`): PSO's inputs, outputs, parameters and bytes per element.
inline ir::Graph pso_sites_graph(int sites, bool normal) {
  ir::Graph g;
  declare_pso(g);
  ir::Builder b(g);
  using ir::Op;
  const PsoNodes n = pso_nodes(b);
  auto r = b.rand(normal);
  for (int i = 1; i < sites; ++i) r = b.binary(Op::Add, r, b.rand(normal));
  auto t1 = b.binary(Op::Mul, n.w, n.v);
  auto t2 = b.binary(Op::Mul, b.binary(Op::Mul, n.c1, r), b.binary(Op::Sub, n.pbest, n.x));
  auto t3 = b.binary(Op::Mul, n.c2, b.binary(Op::Sub, n.gbest, n.x));
  auto vn = b.binary(Op::Add, b.binary(Op::Add, t1, t2), t3);
  g.outputs = {{"v", vn, 1}, {"x", b.binary(Op::Add, n.x, vn), 0}};
  return g;
}

// x = x + 0.1*randn()*abs(v) + sigmoid(x)*tanh(v): a mutation step that calls transcendental
// functions (two per element) beside one normal draw. inputs: x, v; output x -> input x.
inline ir::Graph transcendental_graph() {
  ir::Graph g;
  g.inputs = {{"x"}, {"v"}};
  ir::Builder b(g);
  using ir::Op;
  auto x = b.input(0, ir::Type::Elem), v = b.input(1, ir::Type::Elem);
  auto noise = b.binary(Op::Mul, b.binary(Op::Mul, b.constant(0.1), b.rand(true)), b.unary(Op::Abs, v));
  auto squash = b.binary(Op::Mul, b.unary(Op::Sigmoid, x), b.unary(Op::Tanh, v));
  g.outputs = {{"x", b.binary(Op::Add, b.binary(Op::Add, x, noise), squash), 0}};
  return g;
}

}  // namespace nyto::test
