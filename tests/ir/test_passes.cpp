// Golden tests (exact text) of every IR pass, the fused PSO kernel and the pipeline, plus the
// verifier's rejections. Graphs are built with the Builder, as the frontend does.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "ir/IR.h"
#include "ir/Passes.h"

using namespace nyto::ir;

namespace {

// Golden texts are written as R"(<newline>...)": drop that first newline.
std::string golden(const char* text) { return text[0] == '\n' ? text + 1 : text; }

// v = w*v + c1*rand()*(pbest - x) + c2*rand()*(gbest - x); x = x + v   (docs/language.md's PSO)
Graph pso() {
  Graph g;
  g.inputs = {{"v"}, {"x"}, {"pbest"}, {"gbest"}};
  g.params = {{"w", 0.729}, {"c1", 1.49445}, {"c2", 1.49445}};
  Builder b(g);
  NodeId v = b.input(0, Type::Elem), x = b.input(1, Type::Elem);
  NodeId w = b.param(0), c1 = b.param(1), c2 = b.param(2);
  // One call per statement: C++ leaves the order of argument evaluation unspecified, and the
  // order nodes are built in is the order they print in.
  NodeId t1 = b.binary(Op::Mul, w, v);
  NodeId r1 = b.rand(false);
  NodeId a1 = b.binary(Op::Mul, c1, r1);
  NodeId pbest = b.input(2, Type::Elem);
  NodeId d1 = b.binary(Op::Sub, pbest, x);
  NodeId t2 = b.binary(Op::Mul, a1, d1);
  NodeId r2 = b.rand(false);
  NodeId a2 = b.binary(Op::Mul, c2, r2);
  NodeId gbest = b.input(3, Type::Elem);
  NodeId d2 = b.binary(Op::Sub, gbest, b.input(1, Type::Elem));  // x again: hash-consed
  NodeId t3 = b.binary(Op::Mul, a2, d2);
  NodeId s1 = b.binary(Op::Add, t1, t2);
  NodeId v2 = b.binary(Op::Add, s1, t3);
  NodeId x2 = b.binary(Op::Add, b.input(1, Type::Elem), v2);
  g.outputs = {{"v", v2, 0}, {"x", x2, 1}};
  return g;
}

}  // namespace

TEST_CASE("fused PSO kernel: each input loaded once, each output stored once") {
  FusedKernel k = fuse(pso());
  CHECK(print(k) == golden(R"(
kernel(v, x, pbest, gbest; params w = 0.729, c1 = 1.49445, c2 = 1.49445; rand sites 2) {
  load  %0 = input v : elem
  load  %1 = input x : elem
  load  %2 = input pbest : elem
  load  %3 = input gbest : elem
        %4 = param w : scalar
        %5 = param c1 : scalar
        %6 = param c2 : scalar
        %7 = mul %4, %0 : elem
        %8 = rand site 0 : member elem
        %9 = mul %5, %8 : member elem
        %10 = sub %2, %1 : elem
        %11 = mul %9, %10 : member elem
        %12 = rand site 1 : member elem
        %13 = mul %6, %12 : member elem
        %14 = sub %3, %1 : elem
        %15 = mul %13, %14 : member elem
        %16 = add %7, %11 : member elem
        %17 = add %16, %15 : member elem
        %18 = add %1, %17 : member elem
  store v = %17 -> input v (in place)
  store x = %18 -> input x (in place)
}
)"));
}

TEST_CASE("builder: the PSO rule as the frontend builds it") {
  CHECK(print(pso()) == golden(R"(
param w = 0.729
param c1 = 1.49445
param c2 = 1.49445
input 0 v
input 1 x
input 2 pbest
input 3 gbest
%0 = input v : elem
%1 = input x : elem
%2 = param w : scalar
%3 = param c1 : scalar
%4 = param c2 : scalar
%5 = mul %2, %0 : elem
%6 = rand site 0 : member elem
%7 = mul %3, %6 : member elem
%8 = input pbest : elem
%9 = sub %8, %1 : elem
%10 = mul %7, %9 : member elem
%11 = rand site 1 : member elem
%12 = mul %4, %11 : member elem
%13 = input gbest : elem
%14 = sub %13, %1 : elem
%15 = mul %12, %14 : member elem
%16 = add %5, %10 : member elem
%17 = add %16, %15 : member elem
%18 = add %1, %17 : member elem
out v = %17 -> input v
out x = %18 -> input x
)"));
}

TEST_CASE("constant_fold: Scalar arithmetic on constants folds in double") {
  Graph g;
  g.inputs = {{"x"}};
  g.params = {{"w", 0.729}};
  Builder b(g);
  NodeId x = b.input(0, Type::Elem);
  // Leaves first, one builder call per statement: C++ does not fix the order in which sibling
  // arguments are evaluated, and build order is print order.
  NodeId c0 = b.constant(0), c1 = b.constant(1), c2 = b.constant(2), c3 = b.constant(3);
  NodeId c4 = b.constant(4), cm1 = b.constant(-1), w = b.param(0), r0 = b.rand(false);
  NodeId k = b.binary(Op::Add, b.binary(Op::Mul, c2, c3), c1);
  NodeId y = b.binary(Op::Mul, x, k);                                   // x * 7
  NodeId nan = b.unary(Op::Sqrt, cm1);                                  // nan
  NodeId inf = b.binary(Op::Div, c1, c0);                               // inf
  NodeId nz = b.unary(Op::Neg, c0);                                     // -0
  NodeId r = b.binary(Op::Mul, r0, b.binary(Op::Add, c1, c1));          // rand is never folded
  NodeId sel = b.select(b.binary(Op::Lt, c1, c2), c3, c4);              // Elem: not folded
  NodeId wp = b.binary(Op::Mul, w, c2);                                 // only with bind_params
  NodeId c01 = b.constant(0.1), c02 = b.constant(0.2);
  NodeId tenth = b.binary(Op::Add, c01, c02);                           // 0.30000000000000004
  g.outputs = {{"y", y}, {"n", nan}, {"i", inf}, {"z", nz}, {"r", r}, {"s", sel}, {"w2", wp},
               {"t", tenth}};
  CHECK(print(dce(constant_fold(g))) == golden(R"(
param w = 0.729
input 0 x
%0 = input x : elem
%1 = const 1 : scalar
%2 = const 2 : scalar
%3 = const 3 : scalar
%4 = const 4 : scalar
%5 = param w : scalar
%6 = rand site 0 : member elem
%7 = const 7 : scalar
%8 = mul %0, %7 : elem
%9 = const nan : scalar
%10 = const inf : scalar
%11 = const -0 : scalar
%12 = mul %6, %2 : member elem
%13 = lt %1, %2 : scalar mask
%14 = select %13, %3, %4 : scalar
%15 = mul %5, %2 : scalar
%16 = const 0.30000000000000004 : scalar
out y = %8
out n = %9
out i = %10
out z = %11
out r = %12
out s = %14
out w2 = %15
out t = %16
)"));
  SUBCASE("params bound as constants only on request") {
    CHECK(print(dce(constant_fold(g, true))) == golden(R"(
param w = 0.729
input 0 x
%0 = input x : elem
%1 = const 1 : scalar
%2 = const 2 : scalar
%3 = const 3 : scalar
%4 = const 4 : scalar
%5 = rand site 0 : member elem
%6 = const 7 : scalar
%7 = mul %0, %6 : elem
%8 = const nan : scalar
%9 = const inf : scalar
%10 = const -0 : scalar
%11 = mul %5, %2 : member elem
%12 = lt %1, %2 : scalar mask
%13 = select %12, %3, %4 : scalar
%14 = const 1.458 : scalar
%15 = const 0.30000000000000004 : scalar
out y = %7
out n = %8
out i = %9
out z = %10
out r = %11
out s = %13
out w2 = %14
out t = %15
)"));
    CHECK(print(dce(constant_fold(g, true, {0.5}))) == golden(R"(
param w = 0.729
input 0 x
%0 = input x : elem
%1 = const 1 : scalar
%2 = const 2 : scalar
%3 = const 3 : scalar
%4 = const 4 : scalar
%5 = rand site 0 : member elem
%6 = const 7 : scalar
%7 = mul %0, %6 : elem
%8 = const nan : scalar
%9 = const inf : scalar
%10 = const -0 : scalar
%11 = mul %5, %2 : member elem
%12 = lt %1, %2 : scalar mask
%13 = select %12, %3, %4 : scalar
%14 = const 0.30000000000000004 : scalar
out y = %7
out n = %8
out i = %9
out z = %10
out r = %11
out s = %13
out w2 = %1
out t = %14
)"));
  }
}

TEST_CASE("simplify: the IEEE-safe rewrites") {
  Graph g;
  g.inputs = {{"x"}, {"s"}};
  Builder b(g);
  NodeId x = b.input(0, Type::Elem), s = b.input(1, Type::Scalar);
  auto c = [&](double v) { return b.constant(v); };
  NodeId m = b.binary(Op::Lt, x, c(0));
  g.outputs = {
      {"mul1", b.binary(Op::Mul, x, c(1))},
      {"one_mul", b.binary(Op::Mul, c(1), x)},
      {"div1", b.binary(Op::Div, x, c(1))},
      {"sub0", b.binary(Op::Sub, x, c(0))},
      {"add_m0", b.binary(Op::Add, x, c(-0.0))},
      {"m0_add", b.binary(Op::Add, c(-0.0), x)},
      {"negneg", b.unary(Op::Neg, b.unary(Op::Neg, x))},
      {"pow1", b.binary(Op::Pow, x, c(1))},
      {"min_xx", b.binary(Op::Min, x, x)},
      {"max_xx", b.binary(Op::Max, x, x)},
      {"sel_xx", b.select(m, x, x)},
      {"scalar_mul1", b.binary(Op::Mul, s, c(1))},
      {"mul_m1", b.binary(Op::Mul, x, c(-1))},
      {"div_m1", b.binary(Op::Div, x, c(-1))},
      {"m0_sub", b.binary(Op::Sub, c(-0.0), x)},
      {"abs_neg", b.unary(Op::Abs, b.unary(Op::Neg, x))},
      {"floor_ceil", b.unary(Op::Floor, b.unary(Op::Ceil, x))},
  };
  CHECK(print(dce(simplify(g))) == golden(R"(
input 0 x
input 1 s
%0 = input x : elem
%1 = input s : scalar
%2 = neg %0 : elem
%3 = abs %0 : elem
%4 = ceil %0 : elem
out mul1 = %0
out one_mul = %0
out div1 = %0
out sub0 = %0
out add_m0 = %0
out m0_add = %0
out negneg = %0
out pow1 = %0
out min_xx = %0
out max_xx = %0
out sel_xx = %0
out scalar_mul1 = %1
out mul_m1 = %2
out div_m1 = %2
out m0_sub = %2
out abs_neg = %3
out floor_ceil = %4
)"));
}

TEST_CASE("simplify: rewrites that are wrong for some IEEE value are not done") {
  Graph g;
  g.inputs = {{"x"}, {"s"}};
  Builder b(g);
  NodeId x = b.input(0, Type::Elem), s = b.input(1, Type::Scalar);
  auto c = [&](double v) { return b.constant(v); };
  g.outputs = {
      {"add0", b.binary(Op::Add, x, c(0))},         // -0 + 0 = +0
      {"mul0", b.binary(Op::Mul, x, c(0))},         // inf * 0 = NaN, -1 * 0 = -0
      {"sub_self", b.binary(Op::Sub, x, x)},        // inf - inf = NaN
      {"div_self", b.binary(Op::Div, x, x)},        // 0 / 0 = NaN
      {"pow_half", b.binary(Op::Pow, x, c(0.5))},   // pow(-0, .5) = +0, sqrt(-0) = -0
      {"zero_sub", b.binary(Op::Sub, c(0), x)},     // 0 - 0 = +0, -(0) = -0
      {"sub_m0", b.binary(Op::Sub, x, c(-0.0))},    // -0 - -0 = +0
      {"neg_sub", b.unary(Op::Neg, b.binary(Op::Sub, x, s))},  // -(a - a) = -0, a - a = +0
      // select of a Scalar on both sides stays: select is Elem, s is Scalar (type guard)
      {"sel_ss", b.select(b.binary(Op::Lt, x, s), s, s)},
  };
  std::string before = print(g);
  CHECK(print(simplify(g)) == before);
}

TEST_CASE("cse: identical nodes merge, rand() sites never do") {
  Graph g;
  g.inputs = {{"x"}};
  g.rand_sites = 2;
  // Built by hand (not through the Builder) so the duplicates exist.
  auto node = [&](Op op, Type t, NodeId a = -1, NodeId b2 = -1, int32_t index = 0) {
    Node n{op, t};
    n.args[0] = a;
    n.args[1] = b2;
    n.index = index;
    g.nodes.push_back(n);
    return NodeId(g.nodes.size() - 1);
  };
  NodeId x1 = node(Op::Input, Type::Elem);
  NodeId x2 = node(Op::Input, Type::Elem);
  NodeId e1 = node(Op::Exp, Type::Elem, x1);
  NodeId e2 = node(Op::Exp, Type::Elem, x2);
  NodeId r0 = node(Op::Rand, Type::Swarm, -1, -1, 0);
  NodeId r1 = node(Op::Rand, Type::Swarm, -1, -1, 1);
  NodeId s1 = node(Op::Add, Type::Swarm, e1, r0);
  NodeId s2 = node(Op::Add, Type::Swarm, e2, r1);
  g.outputs = {{"a", s1}, {"b", s2}, {"c", node(Op::Mul, Type::Swarm, s1, s2)}};
  verify(g);
  CHECK(print(cse(g)) == golden(R"(
input 0 x
%0 = input x : elem
%1 = exp %0 : elem
%2 = rand site 0 : member elem
%3 = rand site 1 : member elem
%4 = add %1, %2 : member elem
%5 = add %1, %3 : member elem
%6 = mul %4, %5 : member elem
out a = %4
out b = %5
out c = %6
)"));
}

TEST_CASE("dce: dead nodes go, rand site numbers stay") {
  Graph g;
  g.inputs = {{"x"}, {"unused"}};
  Builder b(g);
  NodeId x = b.input(0, Type::Elem);
  NodeId dead = b.binary(Op::Add, x, b.rand(true));  // site 0, result never stored
  (void)dead;
  NodeId live = b.binary(Op::Mul, x, b.rand(false));  // site 1
  g.outputs = {{"y", live}};
  Graph d = dce(g);
  CHECK(print(d) == golden(R"(
input 0 x
input 1 unused
%0 = input x : elem
%1 = rand site 1 : member elem
%2 = mul %0, %1 : member elem
out y = %2
)"));
  CHECK(d.rand_sites == 2);  // not renumbered: the live draw keeps its stream
  CHECK(d.inputs.size() == 2);  // the binding ABI is unchanged
}

TEST_CASE("fuse: an input read both as Scalar and Elem is loaded once") {
  Graph g;
  g.inputs = {{"x"}, {"y"}};
  Builder b(g);
  NodeId xs = b.input(0, Type::Scalar);
  NodeId y = b.input(1, Type::Elem);
  NodeId xe = b.input(0, Type::Elem);
  NodeId two = b.binary(Op::Mul, xs, b.constant(2));  // Scalar until fused
  NodeId xy = b.binary(Op::Mul, y, xe);
  g.outputs = {{"z", b.binary(Op::Add, two, xy)}};
  CHECK(print(fuse(g)) == golden(R"(
kernel(x, y; params; rand sites 0) {
  load  %0 = input x : elem
  load  %1 = input y : elem
        %2 = const 2 : scalar
        %3 = mul %0, %2 : elem
        %4 = mul %1, %0 : elem
        %5 = add %3, %4 : elem
  store z = %5 (new particle)
}
)"));
}

TEST_CASE("optimize: prints the IR after each pass and times each pass") {
  Graph g;
  g.inputs = {{"x"}};
  g.params = {{"a", 2}};
  Builder b(g);
  NodeId x = b.input(0, Type::Elem);
  NodeId c3 = b.constant(3), c2 = b.constant(2);
  NodeId k = b.binary(Op::Sub, c3, c2);                             // folds to 1
  NodeId y = b.binary(Op::Mul, x, k);                               // then x * 1 -> x
  NodeId dead = b.unary(Op::Exp, x);
  (void)dead;
  NodeId z = b.binary(Op::Add, y, b.binary(Op::Mul, b.param(0), x));
  g.outputs = {{"x", z, 0}};
  std::ostringstream trace, times;
  PassOptions o;
  o.print_after = &trace;
  o.timings = &times;
  FusedKernel f = optimize(g, o);
  CHECK(trace.str() == golden(R"(
-- input --
param a = 2
input 0 x
%0 = input x : elem
%1 = const 3 : scalar
%2 = const 2 : scalar
%3 = sub %1, %2 : scalar
%4 = mul %0, %3 : elem
%5 = exp %0 : elem
%6 = param a : scalar
%7 = mul %6, %0 : elem
%8 = add %4, %7 : elem
out x = %8 -> input x
-- fold (round 1) --
param a = 2
input 0 x
%0 = input x : elem
%1 = const 3 : scalar
%2 = const 2 : scalar
%3 = const 1 : scalar
%4 = mul %0, %3 : elem
%5 = exp %0 : elem
%6 = param a : scalar
%7 = mul %6, %0 : elem
%8 = add %4, %7 : elem
out x = %8 -> input x
-- simplify (round 1) --
param a = 2
input 0 x
%0 = input x : elem
%1 = const 3 : scalar
%2 = const 2 : scalar
%3 = const 1 : scalar
%4 = exp %0 : elem
%5 = param a : scalar
%6 = mul %5, %0 : elem
%7 = add %0, %6 : elem
out x = %7 -> input x
-- cse (round 1) --
param a = 2
input 0 x
%0 = input x : elem
%1 = const 3 : scalar
%2 = const 2 : scalar
%3 = const 1 : scalar
%4 = exp %0 : elem
%5 = param a : scalar
%6 = mul %5, %0 : elem
%7 = add %0, %6 : elem
out x = %7 -> input x
-- dce (round 1) --
param a = 2
input 0 x
%0 = input x : elem
%1 = param a : scalar
%2 = mul %1, %0 : elem
%3 = add %0, %2 : elem
out x = %3 -> input x
-- fold (round 2) --
param a = 2
input 0 x
%0 = input x : elem
%1 = param a : scalar
%2 = mul %1, %0 : elem
%3 = add %0, %2 : elem
out x = %3 -> input x
-- simplify (round 2) --
param a = 2
input 0 x
%0 = input x : elem
%1 = param a : scalar
%2 = mul %1, %0 : elem
%3 = add %0, %2 : elem
out x = %3 -> input x
-- cse (round 2) --
param a = 2
input 0 x
%0 = input x : elem
%1 = param a : scalar
%2 = mul %1, %0 : elem
%3 = add %0, %2 : elem
out x = %3 -> input x
-- dce (round 2) --
param a = 2
input 0 x
%0 = input x : elem
%1 = param a : scalar
%2 = mul %1, %0 : elem
%3 = add %0, %2 : elem
out x = %3 -> input x
-- fuse --
kernel(x; params a = 2; rand sites 0) {
  load  %0 = input x : elem
        %1 = param a : scalar
        %2 = mul %1, %0 : elem
        %3 = add %0, %2 : elem
  store x = %3 -> input x (in place)
}
)"));
  std::string t = times.str();
  for (const char* pass : {"fold ", "simplify ", "cse ", "dce ", "fuse "}) {
    INFO(pass);
    CHECK(t.find(pass) != std::string::npos);
  }
  CHECK(t.find(" us\n") != std::string::npos);
  CHECK(f.loads.size() == 1);
  CHECK(f.stores.size() == 1);
}

TEST_CASE("optimize: the fused PSO kernel with params bound") {
  PassOptions o;
  o.bind_params = true;
  CHECK(print(optimize(pso(), o)) == golden(R"(
kernel(v, x, pbest, gbest; params w = 0.729, c1 = 1.49445, c2 = 1.49445; rand sites 2) {
  load  %0 = input v : elem
  load  %1 = input x : elem
  load  %2 = input pbest : elem
  load  %3 = input gbest : elem
        %4 = const 0.729 : scalar
        %5 = const 1.49445 : scalar
        %6 = mul %4, %0 : elem
        %7 = rand site 0 : member elem
        %8 = mul %5, %7 : member elem
        %9 = sub %2, %1 : elem
        %10 = mul %8, %9 : member elem
        %11 = rand site 1 : member elem
        %12 = mul %5, %11 : member elem
        %13 = sub %3, %1 : elem
        %14 = mul %12, %13 : member elem
        %15 = add %6, %10 : member elem
        %16 = add %15, %14 : member elem
        %17 = add %1, %16 : member elem
  store v = %16 -> input v (in place)
  store x = %17 -> input x (in place)
}
)"));
}

TEST_CASE("verify: rejects broken graphs with an internal error") {
  auto rejects = [](const Graph& g, const char* what) {
    INFO(what);
    CHECK_THROWS_WITH_AS(verify(g), doctest::Contains("nyto internal error (this is a bug in nyto)"),
                         std::logic_error);
  };
  Graph ok;
  ok.inputs = {{"x"}};
  Builder b(ok);
  NodeId x = b.input(0, Type::Elem);
  NodeId r = b.rand(false);
  NodeId m = b.binary(Op::Lt, x, r);
  ok.outputs = {{"y", b.select(m, x, r), 0}};
  verify(ok);
  CHECK_NOTHROW(verify(pso()));

  Graph g = ok;
  g.nodes[3].args[0] = 3;
  rejects(g, "an argument defined at or after its user");
  g = ok;
  g.nodes[3].args[2] = 2;
  rejects(g, "a mask used as a value");
  g = ok;
  g.nodes[3].type = Type::Scalar;
  rejects(g, "a type inconsistent with the arguments");
  g = ok;
  g.rand_sites = 0;
  rejects(g, "a rand site >= rand_sites");
  g = ok;
  g.nodes.push_back(g.nodes[1]);
  g.rand_sites = 1;
  rejects(g, "a rand site used twice");
  g = ok;
  g.outputs[0].node = 2;
  rejects(g, "a mask output");
  g = ok;
  g.outputs.push_back({"z", 0, 0});
  rejects(g, "two outputs storing to one input");
  g = ok;
  g.outputs[0].target = 1;
  rejects(g, "a target that is not an input");
  g = ok;
  g.nodes[0].index = 4;
  rejects(g, "an input index out of range");
  g = ok;
  g.nodes[2].args[2] = 0;
  rejects(g, "an extra argument");
}

TEST_CASE("specialize_inputs: retypes by binding and keeps node ids (fused plans stay valid)") {
  Graph g;
  g.inputs = {{"x"}, {"s"}};
  Builder b(g);
  NodeId x = b.input(0, Type::Elem), s = b.input(1, Type::Scalar);
  NodeId s2 = b.binary(Op::Mul, s, b.constant(2));
  g.outputs = {{"y", b.binary(Op::Add, x, s2)}};
  FusedKernel k = fuse(g);
  Graph bound = specialize_inputs(k.graph, {Type::Elem, Type::Elem});  // s bound to a particle
  CHECK(bound.nodes.size() == k.graph.nodes.size());
  CHECK(print(bound) == golden(R"(
input 0 x
input 1 s
%0 = input x : elem
%1 = input s : elem
%2 = const 2 : scalar
%3 = mul %1, %2 : elem
%4 = add %0, %3 : elem
out y = %4
)"));
  CHECK(specialize_inputs(bound, {Type::Elem, Type::Scalar}).nodes[3].type == Type::Scalar);
  (void)x;
}
