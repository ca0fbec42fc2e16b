// Value tests of the reference interpreter: every op on float32 and float64 with hand-computed
// results (NaN, ±inf, ±0 included), Scalar-in-double vs Elem-in-dtype, every binding kind,
// ranges with gaps, in-place aliasing, and random draws against backend/Random.h.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "backend/Random.h"
#include "backend/interp/Interp.h"
#include "ir/IR.h"

using namespace nyto;
using ir::Op;
using ir::Type;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// Bit-level sameness for the test: both NaN, or equal with the same sign (so -0 != +0).
template <class T>
bool same(T a, T b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

// Runs a one-output graph over `n` elements of particle inputs, returns the output.
template <class T>
std::vector<T> run_particles(const ir::Graph& g, const std::vector<std::vector<T>>& inputs) {
  KernelSpec spec{sizeof(T) == 4 ? DType::F32 : DType::F64,
                  std::vector<BindKind>(g.inputs.size(), BindKind::Particle)};
  auto k = interp::compile(g, spec);
  size_t n = inputs.empty() ? 1 : inputs[0].size();
  std::vector<T> out(n, T(-777));
  KernelArgs a;
  a.ranges = {{0, int64_t(n)}};
  for (auto& v : inputs) a.in.push_back(v.data());
  a.in_stride.assign(inputs.size(), 0);
  a.scalar.assign(inputs.size(), 0.0);
  for (auto& p : g.params) a.params.push_back(p.default_value);
  a.out = {out.data()};
  a.out_stride = {0};
  k->run(a);
  return out;
}

struct UnaryCase {
  Op op;
  double x, want;
};
struct BinaryCase {
  Op op;
  double x, y, want;
};

template <class T>
void check_unary(const std::vector<UnaryCase>& cases) {
  for (const auto& c : cases) {
    ir::Graph g;
    g.inputs = {{"x"}};
    ir::Builder b(g);
    g.outputs = {{"y", b.unary(c.op, b.input(0, Type::Elem))}};
    T got = run_particles<T>(g, {{T(c.x)}})[0];
    INFO(ir::op_name(c.op), "(", c.x, ") = ", got, ", want ", c.want, " on ", sizeof(T) * 8, " bits");
    CHECK(same(got, T(c.want)));
  }
}

template <class T>
void check_binary(const std::vector<BinaryCase>& cases) {
  for (const auto& c : cases) {
    ir::Graph g;
    g.inputs = {{"x"}, {"y"}};
    ir::Builder b(g);
    ir::NodeId r = b.binary(c.op, b.input(0, Type::Elem), b.input(1, Type::Elem));
    if (g.nodes[r].type.mask) r = b.select(r, b.constant(1), b.constant(0));
    g.outputs = {{"z", r}};
    T got = run_particles<T>(g, {{T(c.x)}, {T(c.y)}})[0];
    INFO(ir::op_name(c.op), "(", c.x, ", ", c.y, ") = ", got, ", want ", c.want, " on ",
         sizeof(T) * 8, " bits");
    CHECK(same(got, T(c.want)));
  }
}

// Results exact in both float32 and float64 (the libm functions are exact at these points).
const std::vector<UnaryCase> kUnary = {
    {Op::Neg, 2, -2}, {Op::Neg, 0, -0.0}, {Op::Neg, -0.0, 0}, {Op::Neg, kInf, -kInf},
    {Op::Neg, kNaN, kNaN},
    {Op::Abs, -3, 3}, {Op::Abs, -0.0, 0}, {Op::Abs, -kInf, kInf}, {Op::Abs, kNaN, kNaN},
    {Op::Sqrt, 4, 2}, {Op::Sqrt, 2.25, 1.5}, {Op::Sqrt, -0.0, -0.0}, {Op::Sqrt, -1, kNaN},
    {Op::Sqrt, kInf, kInf}, {Op::Sqrt, kNaN, kNaN},
    {Op::Exp, 0, 1}, {Op::Exp, -0.0, 1}, {Op::Exp, -kInf, 0}, {Op::Exp, kInf, kInf},
    {Op::Exp, kNaN, kNaN}, {Op::Exp, 1000, kInf},
    {Op::Log, 1, 0}, {Op::Log, 0, -kInf}, {Op::Log, -0.0, -kInf}, {Op::Log, -1, kNaN},
    {Op::Log, kInf, kInf}, {Op::Log, kNaN, kNaN},
    {Op::Sin, 0, 0}, {Op::Sin, -0.0, -0.0}, {Op::Sin, kInf, kNaN}, {Op::Sin, kNaN, kNaN},
    {Op::Cos, 0, 1}, {Op::Cos, -0.0, 1}, {Op::Cos, kInf, kNaN},
    {Op::Tanh, 0, 0}, {Op::Tanh, -0.0, -0.0}, {Op::Tanh, kInf, 1}, {Op::Tanh, -kInf, -1},
    {Op::Tanh, kNaN, kNaN},
    {Op::Sigmoid, 0, 0.5}, {Op::Sigmoid, kInf, 1}, {Op::Sigmoid, -kInf, 0},
    {Op::Sigmoid, -1000, 0}, {Op::Sigmoid, 1000, 1}, {Op::Sigmoid, kNaN, kNaN},
    {Op::Sign, 3.5, 1}, {Op::Sign, -0.25, -1}, {Op::Sign, 0, 0}, {Op::Sign, -0.0, 0},
    {Op::Sign, kInf, 1}, {Op::Sign, -kInf, -1}, {Op::Sign, kNaN, kNaN},
    {Op::Floor, 1.5, 1}, {Op::Floor, -0.5, -1}, {Op::Floor, -0.0, -0.0}, {Op::Floor, kInf, kInf},
    {Op::Floor, kNaN, kNaN},
    {Op::Ceil, 1.5, 2}, {Op::Ceil, -0.5, -0.0}, {Op::Ceil, -kInf, -kInf}, {Op::Ceil, kNaN, kNaN},
    {Op::Acos, 1, 0}, {Op::Acos, 1.5, kNaN}, {Op::Acos, -1.5, kNaN}, {Op::Acos, kNaN, kNaN},
    {Op::Acos, kInf, kNaN},
    {Op::Asin, 0, 0}, {Op::Asin, -0.0, -0.0}, {Op::Asin, 2, kNaN}, {Op::Asin, kNaN, kNaN},
    {Op::Atan, 0, 0}, {Op::Atan, -0.0, -0.0}, {Op::Atan, kNaN, kNaN},
};

const std::vector<BinaryCase> kBinary = {
    {Op::Add, 1.5, 2.25, 3.75}, {Op::Add, -0.0, 0, 0}, {Op::Add, -0.0, -0.0, -0.0},
    {Op::Add, kInf, -kInf, kNaN}, {Op::Add, kNaN, 1, kNaN},
    {Op::Sub, 5, 7, -2}, {Op::Sub, 0, 0, 0}, {Op::Sub, -0.0, 0, -0.0}, {Op::Sub, kInf, kInf, kNaN},
    {Op::Mul, 1.5, -4, -6}, {Op::Mul, -1, 0, -0.0}, {Op::Mul, kInf, 0, kNaN},
    {Op::Mul, kInf, -2, -kInf},
    {Op::Div, 7, 2, 3.5}, {Op::Div, 1, 0, kInf}, {Op::Div, 1, -0.0, -kInf}, {Op::Div, 0, 0, kNaN},
    {Op::Div, kInf, kInf, kNaN}, {Op::Div, -1, kInf, -0.0},
    {Op::Pow, 2, 10, 1024}, {Op::Pow, 9, 0.5, 3}, {Op::Pow, 2, -1, 0.5}, {Op::Pow, -8, 1.0 / 3, kNaN},
    {Op::Pow, kNaN, 0, 1}, {Op::Pow, 1, kNaN, 1}, {Op::Pow, -0.0, 0.5, 0}, {Op::Pow, 0, -1, kInf},
    {Op::Pow, -2, 3, -8}, {Op::Pow, kNaN, 1, kNaN},
    // atan2(y, x): C's argument order and signed zeros
    {Op::Atan2, 0, 1, 0}, {Op::Atan2, -0.0, 1, -0.0}, {Op::Atan2, 0, 0, 0}, {Op::Atan2, kNaN, 1, kNaN},
    {Op::Atan2, 1, kNaN, kNaN},
    {Op::Min, 2, 3, 2}, {Op::Min, 3, 2, 2}, {Op::Min, kNaN, 1, kNaN}, {Op::Min, 1, kNaN, kNaN},
    {Op::Min, -0.0, 0, -0.0}, {Op::Min, 0, -0.0, -0.0}, {Op::Min, -kInf, kNaN, kNaN},
    {Op::Max, 2, 3, 3}, {Op::Max, 3, 2, 3}, {Op::Max, kNaN, 1, kNaN}, {Op::Max, 1, kNaN, kNaN},
    {Op::Max, -0.0, 0, 0}, {Op::Max, 0, -0.0, 0}, {Op::Max, kInf, kNaN, kNaN},
    // comparisons, shown through select(m, 1, 0)
    {Op::Lt, 1, 2, 1}, {Op::Lt, 2, 2, 0}, {Op::Lt, kNaN, 1, 0}, {Op::Lt, -0.0, 0, 0},
    {Op::Le, 2, 2, 1}, {Op::Le, 3, 2, 0}, {Op::Le, kNaN, kNaN, 0},
    {Op::Gt, 3, 2, 1}, {Op::Gt, 1, kNaN, 0}, {Op::Gt, kInf, 1e30, 1},
    {Op::Ge, 2, 2, 1}, {Op::Ge, 1, 2, 0}, {Op::Ge, kNaN, 0, 0},
    {Op::Eq, -0.0, 0, 1}, {Op::Eq, kNaN, kNaN, 0}, {Op::Eq, 1, 2, 0},
    {Op::Ne, kNaN, kNaN, 1}, {Op::Ne, 1, 1, 0}, {Op::Ne, -0.0, 0, 0},
};

}  // namespace

TEST_CASE("interp: every unary op, float32 and float64, including NaN, inf and -0") {
  check_unary<float>(kUnary);
  check_unary<double>(kUnary);
}

TEST_CASE("interp: every binary op and comparison, float32 and float64") {
  check_binary<float>(kBinary);
  check_binary<double>(kBinary);
}

TEST_CASE("interp: inexact ops round in the dtype") {
  // exp(1) and sigmoid(1) rounded to each dtype (values from the C library in double, then
  // compared with a few ulps of slack because libm is not correctly rounded).
  ir::Graph g;
  g.inputs = {{"x"}};
  ir::Builder b(g);
  ir::NodeId x = b.input(0, Type::Elem);
  g.outputs = {{"e", b.unary(Op::Exp, x)}, {"s", b.unary(Op::Sigmoid, x)}};
  for (DType dt : {DType::F32, DType::F64}) {
    auto k = interp::compile(g, {dt, {BindKind::Particle}});
    double in64 = 1, e64 = 0, s64 = 0;
    float in32 = 1, e32 = 0, s32 = 0;
    KernelArgs a;
    a.ranges = {{0, 1}};
    a.in = {dt == DType::F32 ? (const void*)&in32 : (const void*)&in64};
    a.in_stride = {0};
    a.scalar = {0};
    a.out = {dt == DType::F32 ? (void*)&e32 : (void*)&e64, dt == DType::F32 ? (void*)&s32 : (void*)&s64};
    a.out_stride = {0, 0};
    k->run(a);
    if (dt == DType::F32) {
      CHECK(e32 == doctest::Approx(2.718281828459045).epsilon(1e-7));
      CHECK(s32 == doctest::Approx(0.7310585786300049).epsilon(1e-7));
    } else {
      CHECK(e64 == doctest::Approx(2.718281828459045).epsilon(1e-15));
      CHECK(s64 == doctest::Approx(0.7310585786300049).epsilon(1e-15));
    }
  }
}

TEST_CASE("interp: Scalar nodes compute in double, Elem nodes in the dtype") {
  // a = 2^24, b = 1: (a + b) - a is 1 in double but 0 in float32 (2^24 + 1 rounds to 2^24).
  ir::Graph g;
  g.params = {{"a", 16777216.0}, {"b", 1.0}};
  g.inputs = {{"x"}};
  ir::Builder bl(g);
  ir::NodeId a = bl.param(0), b = bl.param(1), x = bl.input(0, Type::Elem);
  ir::NodeId scalar = bl.binary(Op::Sub, bl.binary(Op::Add, a, b), a);  // Scalar
  ir::NodeId elem = bl.binary(Op::Sub, bl.binary(Op::Add, x, b), x);    // Elem
  // 0.1 meets an Elem operand: rounded to float first, then multiplied in float. With 9 that
  // differs from the double product rounded once: 0.900000036f vs 0.899999976f.
  ir::NodeId mixed = bl.binary(Op::Mul, bl.binary(Op::Sub, x, bl.constant(16777207)),
                               bl.constant(0.1));
  g.outputs = {{"s", scalar}, {"e", elem}, {"m", mixed}};
  REQUIRE(g.nodes[scalar].type == Type::Scalar);

  auto run = [&](auto x0) {
    using T = decltype(x0);
    std::vector<T> outs(3, T(-1));
    auto k = interp::compile(g, {sizeof(T) == 4 ? DType::F32 : DType::F64, {BindKind::Particle}});
    KernelArgs args;
    args.ranges = {{0, 1}};
    args.in = {&x0};
    args.in_stride = {0};
    args.scalar = {0};
    args.params = {16777216.0, 1.0};
    args.out = {&outs[0], &outs[1], &outs[2]};
    args.out_stride = {0, 0, 0};
    k->run(args);
    return outs;
  };
  auto f = run(16777216.0f);
  CHECK(f[0] == 1.0f);  // Scalar: double
  CHECK(f[1] == 0.0f);  // Elem: float
  CHECK(f[2] == 9.0f * 0.1f);
  CHECK(f[2] == 0.900000036f);
  CHECK(f[2] != float(9.0 * 0.1));  // not computed in double then rounded
  auto d = run(16777216.0);
  CHECK(d[0] == 1.0);
  CHECK(d[1] == 1.0);
  CHECK(d[2] == 9.0 * 0.1);
}

TEST_CASE("interp: an input typed Scalar follows its binding") {
  // (x + 1) - x with x = 2^24: bound as a scalar it is Scalar (double): 1; bound to a float
  // particle the same node is Elem (float): 0.
  ir::Graph g;
  g.inputs = {{"x"}};
  ir::Builder b(g);
  ir::NodeId x = b.input(0, Type::Scalar);
  g.outputs = {{"y", b.binary(Op::Sub, b.binary(Op::Add, x, b.constant(1)), x)}};
  float xs = 16777216.0f, out = -1;
  KernelArgs a;
  a.ranges = {{0, 1}};
  a.in = {nullptr};
  a.in_stride = {0};
  a.scalar = {16777216.0};
  a.out = {&out};
  a.out_stride = {0};
  interp::compile(g, {DType::F32, {BindKind::Scalar}})->run(a);
  CHECK(out == 1.0f);
  a.in = {&xs};
  interp::compile(g, {DType::F32, {BindKind::Particle}})->run(a);
  CHECK(out == 0.0f);
}

TEST_CASE("interp: Swarm, Particle, MemberScalar and Scalar bindings over ranges with gaps") {
  // y = s + 10*p + 100*ms + 1000*k, 3 members of 6 elements (row stride 7: one padding element),
  // operational ranges [0, 2) and [3, 6): element 2 and the padding must stay untouched.
  ir::Graph g;
  g.inputs = {{"s"}, {"p"}, {"ms"}, {"k"}};
  ir::Builder b(g);
  auto c = [&](double v) { return b.constant(v); };
  ir::NodeId s = b.input(0, Type::Elem), p = b.input(1, Type::Elem);
  ir::NodeId ms = b.input(2, Type::Scalar), k = b.input(3, Type::Scalar);
  ir::NodeId y = b.binary(Op::Add, s, b.binary(Op::Mul, c(10), p));
  y = b.binary(Op::Add, y, b.binary(Op::Mul, c(100), ms));
  y = b.binary(Op::Add, y, b.binary(Op::Mul, c(1000), k));
  g.outputs = {{"y", y}};
  const int64_t members = 3, stride = 7, n = 6;
  std::vector<double> sw(members * stride), part(n), out(members * stride, -7.0);
  std::vector<double> per_member = {1, 2, 3};
  for (int64_t i = 0; i < members * stride; ++i) sw[i] = double(i % stride) * 0.5 + double(i / stride);
  for (int64_t i = 0; i < n; ++i) part[i] = double(i);
  KernelArgs a;
  a.members = members;
  a.ranges = {{0, 2}, {3, 6}};
  a.in = {sw.data(), part.data(), per_member.data(), nullptr};
  a.in_stride = {stride, 0, 0, 0};
  a.scalar = {0, 0, 0, 4};
  a.out = {out.data()};
  a.out_stride = {stride};
  interp::compile(g, {DType::F64, {BindKind::Swarm, BindKind::Particle, BindKind::MemberScalar,
                                   BindKind::Scalar}})
      ->run(a);
  for (int64_t m = 0; m < members; ++m)
    for (int64_t e = 0; e < stride; ++e) {
      double want = (e == 2 || e == 6) ? -7.0 : double(e) * 0.5 + double(m) + 10.0 * double(e) +
                                                    100.0 * double(m + 1) + 4000.0;
      INFO("member ", m, " element ", e);
      CHECK(out[m * stride + e] == want);
    }
}

TEST_CASE("interp: in-place outputs see every input loaded first") {
  // (a, b) = (b, a + b) updated in place on float32: a correct swap needs all loads before the
  // stores of each element.
  ir::Graph g;
  g.inputs = {{"a"}, {"b"}};
  ir::Builder bl(g);
  ir::NodeId a = bl.input(0, Type::Elem), b = bl.input(1, Type::Elem);
  g.outputs = {{"a", b, 0}, {"b", bl.binary(Op::Add, a, b), 1}};
  std::vector<float> av = {1, 2, 3, 4}, bv = {10, 20, 30, 40};
  KernelArgs args;
  args.members = 2;
  args.ranges = {{0, 2}};
  args.in = {av.data(), bv.data()};
  args.in_stride = {2, 2};
  args.scalar = {0, 0};
  args.out = {av.data(), bv.data()};
  args.out_stride = {2, 2};
  interp::compile(g, {DType::F32, {BindKind::Swarm, BindKind::Swarm}})->run(args);
  CHECK(av == std::vector<float>{10, 20, 30, 40});
  CHECK(bv == std::vector<float>{11, 22, 33, 44});
}

TEST_CASE("interp: select, and a scalar output broadcast to every element") {
  ir::Graph g;
  g.inputs = {{"x"}};
  g.params = {{"t", 0.5}};
  ir::Builder b(g);
  ir::NodeId x = b.input(0, Type::Elem), t = b.param(0);
  g.outputs = {{"y", b.select(b.binary(Op::Lt, x, t), b.unary(Op::Neg, x), t)},
               {"z", b.binary(Op::Mul, t, b.constant(4))}};
  std::vector<float> xs = {0.25f, 0.5f, 1.0f, -3.0f}, y(4), z(4);
  KernelArgs a;
  a.ranges = {{0, 4}};
  a.in = {xs.data()};
  a.in_stride = {0};
  a.scalar = {0};
  a.params = {0.75};  // overrides the default
  a.out = {y.data(), z.data()};
  a.out_stride = {0, 0};
  interp::compile(g, {DType::F32, {BindKind::Particle}})->run(a);
  CHECK(y == std::vector<float>{-0.25f, -0.5f, 0.75f, 3.0f});
  CHECK(z == std::vector<float>{3, 3, 3, 3});
}

TEST_CASE("interp: rand and randn draw from (seed, invocation, group, site, member, element)") {
  ir::Graph g;
  g.inputs = {{"x"}};
  ir::Builder b(g);
  ir::NodeId x = b.input(0, Type::Elem);
  ir::NodeId u = b.rand(false), z = b.rand(true);
  g.outputs = {{"u", b.binary(Op::Add, x, u)}, {"z", z}};
  REQUIRE(g.rand_sites == 2);
  const int64_t members = 2, stride = 8;
  for (DType dt : {DType::F32, DType::F64}) {
    std::vector<double> x64(members * stride, 0.0), u64(members * stride, -1), z64(members * stride, -1);
    std::vector<float> x32(members * stride, 0.0f), u32(members * stride, -1), z32(members * stride, -1);
    bool f32 = dt == DType::F32;
    KernelArgs a;
    a.members = members;
    a.ranges = {{3, 5}, {6, 8}};
    a.in = {f32 ? (const void*)x32.data() : (const void*)x64.data()};
    a.in_stride = {stride};
    a.scalar = {0};
    a.out = {f32 ? (void*)u32.data() : (void*)u64.data(), f32 ? (void*)z32.data() : (void*)z64.data()};
    a.out_stride = {stride, stride};
    a.seed = 0xfeedbeefcafef00dull;
    a.invocation = 12;
    a.group = 3;
    interp::compile(g, {dt, {BindKind::Swarm}})->run(a);
    rng::Key key{a.seed, a.invocation, a.group};
    for (int64_t m = 0; m < members; ++m)
      for (int64_t e : {3, 4, 6, 7}) {
        // The element index in the member's flat storage (not the position in the range).
        INFO("member ", m, " element ", e);
        // Elements below 16 are lane e, slot 0 of their block: call e. Site 0 takes the top 24 bits
        // of word 0 (float32) / words 0 and 1 (float64); site 1's normal is the cosine of the
        // Box-Muller pair on words 0 and 1 (float32) / of u1 from words 0-1, u2 from words 2-3.
        const uint32_t um = uint32_t(m), ue = uint32_t(e);
        const rng::Philox4 pu = rng::site_call(key, 0, um, ue), pz = rng::site_call(key, 1, um, ue);
        if (f32) {
          CHECK(u32[m * stride + e] == rng::uniform_f32(pu, 0));
          const float u1 = float((pz.r[0] >> 8) + 1) * 0x1p-24f, u2 = float(pz.r[1] >> 8) * 0x1p-24f;
          CHECK(z32[m * stride + e] == std::sqrt(-2.0f * rng::log_f32(u1)) * rng::cos2pi_f32(u2));
        } else {
          CHECK(u64[m * stride + e] == rng::uniform_f64(pu));
          CHECK(z64[m * stride + e] == rng::normal_f64(pz));
        }
      }
    CHECK((f32 ? u32[0] : u64[0]) == -1);  // outside the ranges: untouched
    CHECK((f32 ? z32[5] : z64[5]) == -1);
  }
}

TEST_CASE("interp: invalid graphs and specs are internal errors") {
  ir::Graph g;
  g.inputs = {{"x"}};
  ir::Builder b(g);
  g.outputs = {{"y", b.input(0, Type::Elem)}};
  CHECK_THROWS_AS(interp::compile(g, {DType::F32, {}}), std::logic_error);
  auto k = interp::compile(g, {DType::F32, {BindKind::Particle}});
  float v[4] = {};
  KernelArgs a;
  a.ranges = {{2, 4}, {0, 1}};  // not sorted
  a.in = {v};
  a.in_stride = {0};
  a.scalar = {0};
  a.out = {v};
  a.out_stride = {0};
  CHECK_THROWS_AS(k->run(a), std::logic_error);
  a.ranges = {{0, 1}};
  a.params = {1.0};  // the graph has no params
  CHECK_THROWS_AS(k->run(a), std::logic_error);
  g.outputs[0].node = 5;
  CHECK_THROWS_WITH_AS(interp::compile(g, {DType::F32, {BindKind::Particle}}),
                       doctest::Contains("this is a bug in nyto"), std::logic_error);
}
