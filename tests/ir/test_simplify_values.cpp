// Simplify's rewrites checked by value: each admitted rewrite gives bit-identical results on
// NaN, ±inf, ±0 and ordinary numbers, in float32, float64 and the Scalar (double) path; each
// refused rewrite has a counterexample among those values, which is why simplify must not do it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "backend/interp/Interp.h"
#include "ir/Passes.h"

using namespace nyto;
using ir::Builder;
using ir::NodeId;
using ir::Op;
using ir::Type;

namespace {

using Expr = std::function<NodeId(Builder&, NodeId x)>;

const double kInf = std::numeric_limits<double>::infinity();
const std::vector<double> kValues = {0.0, -0.0, 1.0, -1.0, 2.5, -0.75, 1e-310, kInf, -kInf,
                                     std::numeric_limits<double>::quiet_NaN()};

ir::Graph rule(const Expr& f, Type x_type) {
  ir::Graph g;
  g.inputs = {{"x"}};
  Builder b(g);
  NodeId x = b.input(0, x_type);
  g.outputs = {{"y", f(b, x)}};
  return g;
}

// y(x) for every value of kValues, by the interpreter, as doubles (float results widened).
std::vector<double> eval(const ir::Graph& g, DType dt, BindKind kind) {
  std::vector<double> out;
  for (double v : kValues) {
    float x32 = float(v), y32 = 0;
    double x64 = v, y64 = 0;
    KernelArgs a;
    a.ranges = {{0, 1}};
    a.in = {kind == BindKind::Scalar ? nullptr
                                     : (dt == DType::F32 ? (const void*)&x32 : (const void*)&x64)};
    a.in_stride = {0};
    a.scalar = {v};
    a.out = {dt == DType::F32 ? (void*)&y32 : (void*)&y64};
    a.out_stride = {0};
    interp::compile(g, {dt, {kind}})->run(a);
    out.push_back(dt == DType::F32 ? double(y32) : y64);
  }
  return out;
}

bool same(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

struct Config {
  DType dt;
  BindKind kind;
  Type x_type;
};
const Config kConfigs[] = {{DType::F32, BindKind::Particle, Type::Elem},
                           {DType::F64, BindKind::Particle, Type::Elem},
                           {DType::F64, BindKind::Scalar, Type::Scalar}};  // the double path

}  // namespace

TEST_CASE("every admitted simplification is exact on NaN, inf, -0 (f32, f64, scalar)") {
  auto c = [](Builder& b, double v) { return b.constant(v); };
  const std::vector<std::pair<const char*, Expr>> safe = {
      {"x*1", [&](Builder& b, NodeId x) { return b.binary(Op::Mul, x, c(b, 1)); }},
      {"1*x", [&](Builder& b, NodeId x) { return b.binary(Op::Mul, c(b, 1), x); }},
      {"x/1", [&](Builder& b, NodeId x) { return b.binary(Op::Div, x, c(b, 1)); }},
      {"x*-1", [&](Builder& b, NodeId x) { return b.binary(Op::Mul, x, c(b, -1)); }},
      {"-1*x", [&](Builder& b, NodeId x) { return b.binary(Op::Mul, c(b, -1), x); }},
      {"x/-1", [&](Builder& b, NodeId x) { return b.binary(Op::Div, x, c(b, -1)); }},
      {"x-0", [&](Builder& b, NodeId x) { return b.binary(Op::Sub, x, c(b, 0.0)); }},
      {"x+-0", [&](Builder& b, NodeId x) { return b.binary(Op::Add, x, c(b, -0.0)); }},
      {"-0+x", [&](Builder& b, NodeId x) { return b.binary(Op::Add, c(b, -0.0), x); }},
      {"-0-x", [&](Builder& b, NodeId x) { return b.binary(Op::Sub, c(b, -0.0), x); }},
      {"--x", [&](Builder& b, NodeId x) { return b.unary(Op::Neg, b.unary(Op::Neg, x)); }},
      {"x**1", [&](Builder& b, NodeId x) { return b.binary(Op::Pow, x, c(b, 1)); }},
      {"abs(abs x)", [&](Builder& b, NodeId x) { return b.unary(Op::Abs, b.unary(Op::Abs, x)); }},
      {"abs(-x)", [&](Builder& b, NodeId x) { return b.unary(Op::Abs, b.unary(Op::Neg, x)); }},
      {"floor(ceil x)", [&](Builder& b, NodeId x) { return b.unary(Op::Floor, b.unary(Op::Ceil, x)); }},
      {"ceil(floor x)", [&](Builder& b, NodeId x) { return b.unary(Op::Ceil, b.unary(Op::Floor, x)); }},
      {"floor(floor x)", [&](Builder& b, NodeId x) { return b.unary(Op::Floor, b.unary(Op::Floor, x)); }},
      {"min(x,x)", [&](Builder& b, NodeId x) { return b.binary(Op::Min, x, x); }},
      {"max(x,x)", [&](Builder& b, NodeId x) { return b.binary(Op::Max, x, x); }},
  };
  for (const auto& entry : safe)
    for (const Config& cf : kConfigs) {
      const auto& name = entry.first;  // not a structured binding: C++17 lambdas (INFO) cannot capture one
      const auto& f = entry.second;
      ir::Graph g = rule(f, cf.x_type);
      ir::Graph s = ir::dce(ir::simplify(g));
      INFO(name, " dtype ", int(cf.dt), " kind ", int(cf.kind));
      CHECK(s.nodes.size() < ir::dce(g).nodes.size());  // the rewrite fired
      auto want = eval(g, cf.dt, cf.kind), got = eval(s, cf.dt, cf.kind);
      for (size_t i = 0; i < kValues.size(); ++i) {
        INFO("x = ", kValues[i]);
        CHECK(same(want[i], got[i]));
      }
    }
}

TEST_CASE("every refused simplification has a counterexample, and is not done") {
  auto c = [](Builder& b, double v) { return b.constant(v); };
  auto id = [](Builder&, NodeId x) { return x; };
  auto neg = [](Builder& b, NodeId x) { return b.unary(Op::Neg, x); };
  struct Refused {
    const char* name;
    Expr before, wrong;
  };
  const std::vector<Refused> refused = {
      {"x+0 -> x", [&](Builder& b, NodeId x) { return b.binary(Op::Add, x, c(b, 0)); }, id},
      {"x-(-0) -> x", [&](Builder& b, NodeId x) { return b.binary(Op::Sub, x, c(b, -0.0)); }, id},
      {"x*0 -> 0", [&](Builder& b, NodeId x) { return b.binary(Op::Mul, x, c(b, 0)); },
       [&](Builder& b, NodeId) { return c(b, 0); }},
      {"x-x -> 0", [&](Builder& b, NodeId x) { return b.binary(Op::Sub, x, x); },
       [&](Builder& b, NodeId) { return c(b, 0); }},
      {"x/x -> 1", [&](Builder& b, NodeId x) { return b.binary(Op::Div, x, x); },
       [&](Builder& b, NodeId) { return c(b, 1); }},
      {"0-x -> -x", [&](Builder& b, NodeId x) { return b.binary(Op::Sub, c(b, 0), x); }, neg},
      {"x**0.5 -> sqrt x", [&](Builder& b, NodeId x) { return b.binary(Op::Pow, x, c(b, 0.5)); },
       [&](Builder& b, NodeId x) { return b.unary(Op::Sqrt, x); }},
  };
  for (const auto& r : refused)
    for (const Config& cf : kConfigs) {
      INFO(r.name, " dtype ", int(cf.dt), " kind ", int(cf.kind));
      ir::Graph g = rule(r.before, cf.x_type);
      CHECK(ir::print(ir::simplify(g)) == ir::print(g));
      auto a = eval(g, cf.dt, cf.kind), b = eval(rule(r.wrong, cf.x_type), cf.dt, cf.kind);
      bool differs = false;
      for (size_t i = 0; i < kValues.size(); ++i) differs |= !same(a[i], b[i]);
      CHECK(differs);
    }
}
