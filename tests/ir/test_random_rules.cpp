// Random rules: the generator's contract, and a differential test of the pass pipeline: for
// hundreds of random rules, the interpreter gives bit-identical results (NaN for NaN) on the rule
// as built and on optimize()'s fused kernel, on float32 and float64, for random bindings. This is
// what makes constant folding and simplification "exact", not just "close".
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "RandomRules.h"
#include "backend/interp/Interp.h"
#include "ir/Passes.h"

using namespace nyto;
using ir::testing::random_rule;
using ir::testing::RandomRuleOptions;

TEST_CASE("random_rule: valid, deterministic, every op, nested") {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    RandomRuleOptions o;
    o.inputs = 1 + int(seed % 4);
    o.params = int(seed % 3);
    o.outputs = 1 + int(seed % 3);
    o.ops = 48 + int(seed % 50);  // at least one of every op with arguments
    o.rand_sites = int(seed % 4);
    o.special_constants = seed % 2 == 1;
    ir::Graph g = random_rule(seed, o);
    INFO("seed ", seed);
    CHECK_NOTHROW(ir::verify(g));
    CHECK(ir::print(g) == ir::print(random_rule(seed, o)));
    std::set<ir::Op> ops;
    for (const ir::Node& n : g.nodes) ops.insert(n.op);
    for (int k = 0; k < ir::kNumOps; ++k)
      if (ir::op_arity(ir::Op(k)) > 0 && !ir::is_param_axis(ir::Op(k))) CHECK(ops.count(ir::Op(k)) == 1);
    CHECK(int(g.outputs.size()) == o.outputs);
    CHECK(g.rand_sites == o.rand_sites);
    // Closed: every node reaches an output, so every input and rand site is exercised.
    CHECK(ir::dce(g).nodes.size() == g.nodes.size());
  }
}

namespace {

template <class T>
bool same_bits_or_nan(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Runs `g` with random bindings drawn from `seed`; returns every output's storage.
template <class T>
std::vector<std::vector<T>> run(const ir::Graph& g, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t members = 3, stride = 17;
  std::vector<bool> elem = ir::testing::elem_inputs(g);
  KernelSpec spec{sizeof(T) == 4 ? DType::F32 : DType::F64, {}};
  KernelArgs a;
  a.members = members;
  a.ranges = {{0, 5}, {7, 17}};
  a.seed = seed * 7919;
  a.invocation = seed % 5;
  static thread_local std::vector<std::vector<T>> data;
  static thread_local std::vector<std::vector<double>> member_scalars;
  data.assign(g.inputs.size(), {});
  member_scalars.assign(g.inputs.size(), {});
  // Signed zeros are frequent on purpose: they are what tells x + 0 from x.
  const double specials[] = {0.0, -0.0, -0.0, 1.0, -2.5, 1e30, -1e-30,
                             std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::quiet_NaN()};
  auto value = [&]() {
    if (rng() % 4 == 0) return specials[rng() % 9];
    return (double(rng() % 2001) - 1000.0) / 250.0;
  };
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    int kind = elem[i] ? 2 + int(rng() % 2) : int(rng() % 4);
    spec.kinds.push_back(BindKind(kind));
    a.in_stride.push_back(stride);
    a.scalar.push_back(value());
    data[i].resize(members * stride);
    for (auto& v : data[i]) v = T(value());
    member_scalars[i] = {value(), value(), value()};
    switch (BindKind(kind)) {
      case BindKind::Scalar: a.in.push_back(nullptr); break;
      case BindKind::MemberScalar: a.in.push_back(member_scalars[i].data()); break;
      default: a.in.push_back(data[i].data());
    }
  }
  for (auto& p : g.params) a.params.push_back(p.default_value);
  std::vector<std::vector<T>> out(g.outputs.size(), std::vector<T>(members * stride, T(-123)));
  for (auto& o : out) {
    a.out.push_back(o.data());
    a.out_stride.push_back(stride);
  }
  interp::compile(g, spec)->run(a);
  return out;
}

size_t g_compared = 0, g_finite = 0;  // how informative the comparisons were

template <class T>
void differential(uint64_t seed, const RandomRuleOptions& o) {
  ir::Graph g = random_rule(seed, o);
  ir::PassOptions po;
  po.bind_params = seed % 2 == 0;  // run() binds the defaults, so both agree
  ir::Graph opt = ir::optimize(g, po).graph;
  auto want = run<T>(g, seed);
  auto got = run<T>(opt, seed);
  for (size_t k = 0; k < want.size(); ++k)
    for (size_t e = 0; e < want[k].size(); ++e) {
      g_compared++;
      g_finite += std::isfinite(want[k][e]);
      if (!same_bits_or_nan(want[k][e], got[k][e])) {
        FAIL("seed ", seed, " output ", k, " element ", e, ": ", want[k][e], " before, ", got[k][e],
             " after optimize\n", ir::print(g), "--- optimized ---\n", ir::print(opt));
        return;
      }
    }
}

}  // namespace

TEST_CASE("optimize() never changes a result: 600 random rules, float32 and float64") {
  for (uint64_t seed = 0; seed < 300; ++seed) {
    RandomRuleOptions o;
    o.inputs = 1 + int(seed % 4);
    o.params = int(seed % 3);
    o.outputs = 1 + int(seed % 3);
    o.ops = 10 + int(seed % 60);
    o.rand_sites = int(seed % 3);
    o.special_constants = seed % 3 == 0;
    o.tame_domains = seed % 5 != 0;
    differential<float>(seed, o);
    differential<double>(seed, o);
  }
  // Most compared values are finite numbers, not NaN or inf that would agree too easily.
  MESSAGE(g_finite, " of ", g_compared, " compared values finite");
  CHECK(g_finite * 2 > g_compared);
}
