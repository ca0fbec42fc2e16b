// The LLVM backend on hand-written kernels: PSO and every op against values computed here in C++,
// random draws against backend/Random.h bit for bit, vector IR present, threads/chunks invariant.
#include <doctest/doctest.h>

#include <ATen/Parallel.h>


#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <type_traits>
#include <vector>

#include "backend/Random.h"
#include "backend/llvm/LlvmBackend.h"
#include "backend/llvm/LlvmKernel.h"
#include "ir/Eval.h"
#include "tests/backend/Rules.h"

using namespace nyto;
using nyto::llvm_backend::JitEngine;

namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -2, float hi = 2) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

struct PsoData {
  int64_t members, n;
  std::vector<float> x, v, pbest, gbest;
};

PsoData pso_data(int64_t members, int64_t n) {
  return {members, n, random_floats(members * n, 1), random_floats(members * n, 2),
          random_floats(members * n, 3), random_floats(n, 4)};
}

KernelArgs pso_args(PsoData& d, std::vector<std::pair<int64_t, int64_t>> ranges) {
  KernelArgs a;
  a.members = d.members;
  a.ranges = std::move(ranges);
  a.in = {d.x.data(), d.v.data(), d.pbest.data(), d.gbest.data()};
  a.in_stride = {d.n, d.n, d.n, 0};
  a.scalar = {0, 0, 0, 0};
  a.params = {0.729, 1.49445, 1.49445};
  a.out = {d.v.data(), d.x.data()};
  a.out_stride = {d.n, d.n};
  a.seed = 0x123456789ABCDEFull;
  a.invocation = 7;
  a.group = 1;
  return a;
}

KernelSpec pso_spec() {
  return {DType::F32, {BindKind::Swarm, BindKind::Swarm, BindKind::Swarm, BindKind::Particle}};
}

// The PSO rule in plain C++ with the IR numerics: params rounded to float where they meet elems.
void pso_reference(PsoData& d, const KernelArgs& a) {
  rng::Key key{a.seed, a.invocation, a.group};
  float w = float(a.params[0]), c1 = float(a.params[1]), c2 = float(a.params[2]);
  for (int64_t m = 0; m < d.members; ++m)
    for (auto& r : a.ranges)
      for (int64_t e = r.first; e < r.second; ++e) {
        float& x = d.x[m * d.n + e];
        float& v = d.v[m * d.n + e];
        float pb = d.pbest[m * d.n + e], gb = d.gbest[e];
        // Sites 0 and 1 (test_random.cpp checks the layout word by word).
        float r1 = rng::draw_f32(key, 0, false, uint32_t(m), uint32_t(e));
        float r2 = rng::draw_f32(key, 1, false, uint32_t(m), uint32_t(e));
        float vn = w * v + (c1 * r1) * (pb - x) + (c2 * r2) * (gb - x);
        v = vn;
        x = x + vn;
      }
}

}  // namespace

TEST_CASE("llvm: PSO in place over ranges, bit-identical to the C++ reference, every code shape") {
  // Host default (AVX-512 here: 16 lanes x 2 interleaved, masked loop), the host without
  // interleave, AVX2-like (8 lanes x 2 + scalar tail), SSE-like (4 lanes x 4 + tail), scalar only.
  // Each in both tiers (JitOptions::tier_up_elements): Philox words from nyto_philox_words, and
  // the rounds in the loop.
  for (llvm_backend::JitOptions o : {llvm_backend::JitOptions{}, llvm_backend::JitOptions{0, true, 1},
                                     llvm_backend::JitOptions{32, false}, llvm_backend::JitOptions{16, false, 4},
                                     llvm_backend::JitOptions{4, false}})
  for (int64_t tier_up : {-1, 0}) {
  o.tier_up_elements = tier_up;
  JitEngine engine(o);
  CAPTURE(engine.vector_width(DType::F32));
  CAPTURE(engine.interleave());
  CAPTURE(engine.masked_tail());
  CAPTURE(tier_up);
  auto kernel = llvm_backend::compile(engine, test::pso_graph(), pso_spec());
  for (int64_t n : {1, 15, 16, 17, 131, 1000}) {
    PsoData d = pso_data(3, n), ref = d;
    std::vector<std::pair<int64_t, int64_t>> ranges = {{0, n}};
    if (n > 20) ranges = {{1, 7}, {9, n / 2}, {n / 2 + 3, n}};
    KernelArgs a = pso_args(d, ranges);
    kernel->run(a);
    KernelArgs ar = pso_args(ref, ranges);
    pso_reference(ref, ar);
    size_t bad = 0;
    for (size_t i = 0; i < d.x.size(); ++i) bad += !same_bits(d.x[i], ref.x[i]) || !same_bits(d.v[i], ref.v[i]);
    CHECK_MESSAGE(bad == 0, "n = " << n);
  }
  }
  // Compile time is a benchmark figure (nyto_bench_pso, case compile-pso), not a test.
}

TEST_CASE("llvm: a kernel with draws moves to its second tier after tier_up_elements, same bits") {
  llvm_backend::JitOptions o;
  o.tier_up_elements = 1000;
  JitEngine engine(o);
  auto kernel = llvm_backend::compile(engine, test::pso_graph(), pso_spec());
  auto* lk = dynamic_cast<llvm_backend::LlvmKernel*>(kernel.get());
  REQUIRE(lk != nullptr);
  // 3 members x 131 elements a run: the third run (1,179 elements with it) is the second tier's.
  PsoData d = pso_data(3, 131), ref = d;
  for (int run = 1; run <= 4; ++run) {
    CAPTURE(run);
    KernelArgs a = pso_args(d, {{0, 131}});
    a.invocation = uint64_t(run);
    kernel->run(a);
    CHECK(lk->tiered_up() == (run >= 3));
    KernelArgs ar = pso_args(ref, {{0, 131}});
    ar.invocation = uint64_t(run);
    pso_reference(ref, ar);
    size_t bad = 0;
    for (size_t i = 0; i < d.x.size(); ++i) bad += !same_bits(d.x[i], ref.x[i]) || !same_bits(d.v[i], ref.v[i]);
    CHECK(bad == 0);
  }
  // A kernel without draws has one tier.
  JitEngine eager(o);
  ir::Graph g;
  g.inputs = {{"x"}};
  ir::Builder b(g);
  g.outputs = {{"y", b.binary(ir::Op::Mul, b.input(0, ir::Type::Elem), b.constant(2)), -1}};
  auto plain = llvm_backend::compile(eager, g, KernelSpec{DType::F32, {BindKind::Swarm}});
  std::vector<float> x(4096, 1.5f), y(4096);
  KernelArgs a;
  a.in = {x.data()};
  a.in_stride = {4096};
  a.scalar = {0};
  a.out = {y.data()};
  a.out_stride = {4096};
  a.members = 1;
  a.ranges = {{0, 4096}};
  plain->run(a);
  CHECK(y[4095] == 3.0f);
  CHECK_FALSE(dynamic_cast<llvm_backend::LlvmKernel*>(plain.get())->tiered_up());
}

// Keyed draws share one Philox call between 5 (float32) / 2 (float64) elements of a lane-major
// block of 80 / 32 (backend/Random.h); a loop's blocks, and the first tier's groups of blocks
// (four with keyed_interleave), must line up with calls whatever a range's first element, and
// every width must give rng::keyed's bits. n spans several groups of four float32 blocks.
template <class T>
void check_keyed_draws() {
  constexpr DType dt = std::is_same_v<T, float> ? DType::F32 : DType::F64;
  ir::Graph g;
  g.inputs = {{"k"}, {"j"}};
  ir::Builder b(g);
  auto k = b.input(0, ir::Type::Scalar), j = b.input(1, ir::Type::MemberScalar);
  g.outputs = {{"u", b.keyed_rand(false, k, j, 0), -1},
               {"z", b.keyed_rand(true, k, b.binary(ir::Op::Add, j, b.constant(1)), 1), -1}};
  const KernelSpec spec{dt, {BindKind::Scalar, BindKind::MemberScalar}};
  for (llvm_backend::JitOptions o : {llvm_backend::JitOptions{}, llvm_backend::JitOptions{0, true, 1},
                                     llvm_backend::JitOptions{32, false}, llvm_backend::JitOptions{16, false, 4},
                                     llvm_backend::JitOptions{8, false, 1}, llvm_backend::JitOptions{4, false}})
  for (int64_t tier_up : {-1, 0}) {  // words from nyto_philox_words (first tier), rounds inlined
    o.tier_up_elements = tier_up;
    JitEngine engine(o);
    CAPTURE(engine.vector_width(dt));
    CAPTURE(engine.interleave());
    CAPTURE(tier_up);
    auto kernel = llvm_backend::compile(engine, g, spec);
    const int64_t M = 2, n = 1301;
    const std::vector<double> js = {5, 4294967294.0};
    for (auto ranges : std::vector<std::vector<std::pair<int64_t, int64_t>>>{
             {{0, n}}, {{1, 7}, {9, 150}, {153, n}}, {{2, 3}, {3, 70}, {75, 1299}}}) {
      std::vector<T> u(size_t(M * n), T(-7)), z(size_t(M * n), T(-7));
      KernelArgs a;
      a.members = M;
      a.ranges = ranges;
      a.in = {nullptr, js.data()};
      a.in_stride = {0, 0};
      a.scalar = {17, 0};
      a.out = {u.data(), z.data()};
      a.out_stride = {n, n};
      a.seed = 0x0123456789ABCDEFull, a.group = 3;
      kernel->run(a);
      rng::Key key{a.seed, 0, a.group};
      size_t bad = 0, untouched = 0;
      std::vector<char> in_range(size_t(n), 0);
      for (auto [b0, b1] : ranges)
        for (int64_t e = b0; e < b1; ++e) in_range[size_t(e)] = 1;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t e = 0; e < n; ++e) {
          const size_t i = size_t(m * n + e);
          if (!in_range[size_t(e)]) {
            untouched += u[i] == T(-7) && z[i] == T(-7);
            continue;
          }
          const uint32_t jm = uint32_t(js[size_t(m)]);
          T wu, wz;
          if constexpr (std::is_same_v<T, float>) {
            wu = rng::keyed_f32(key, 17, jm, false, uint64_t(e));
            wz = rng::keyed_f32(key, 17, jm + 1, true, uint64_t(e));
          } else {
            wu = rng::keyed_f64(key, 17, jm, false, uint64_t(e));
            wz = rng::keyed_f64(key, 17, jm + 1, true, uint64_t(e));
          }
          bad += !same_bits(u[i], wu) || !same_bits(z[i], wz);
        }
      CHECK(bad == 0);
      size_t outside = 0;
      for (char c : in_range) outside += !c;
      CHECK(untouched == size_t(M) * outside);
    }
  }
}

TEST_CASE("llvm: keyed draws over unaligned ranges, bit-identical to rng::keyed, every code shape, float32") {
  check_keyed_draws<float>();
}
TEST_CASE("llvm: keyed draws over unaligned ranges, bit-identical to rng::keyed, every code shape, float64") {
  check_keyed_draws<double>();
}

TEST_CASE("llvm: threads and chunking never change results") {
  JitEngine engine;
  auto kernel = llvm_backend::compile(engine, test::pso_graph(), pso_spec());
  auto* lk = dynamic_cast<llvm_backend::LlvmKernel*>(kernel.get());
  REQUIRE(lk);
  const int64_t n = 100003;
  PsoData base = pso_data(5, n);
  std::vector<std::vector<float>> results;
  // A kernel left with its own work items (whole Philox blocks for a kernel that draws).
  auto own = llvm_backend::compile(engine, test::pso_graph(), pso_spec());
  int old = at::get_num_threads();
  for (int threads : {1, 2}) {
    // 0: `own`'s items, then set ones.
    for (int64_t chunk : {0, 16, 4096, 1 << 20}) {
      at::set_num_threads(threads);
      if (chunk) lk->set_chunk_elements(chunk);
      PsoData d = base;
      KernelArgs a = pso_args(d, {{0, 777}, {1000, n}});
      (chunk ? kernel : own)->run(a);
      d.x.insert(d.x.end(), d.v.begin(), d.v.end());
      results.push_back(d.x);
    }
  }
  at::set_num_threads(old);
  for (size_t i = 1; i < results.size(); ++i)
    CHECK(std::memcmp(results[i].data(), results[0].data(), results[0].size() * sizeof(float)) == 0);
}

TEST_CASE("llvm: optimized IR is vectorized, also for the in-place PSO") {
  std::string ir = llvm_backend::emit_llvm_ir(test::pso_graph(), pso_spec(), true);
  JitEngine engine;
  CHECK(engine.interleave() == 2);
  int w = engine.vector_width(DType::F32) * engine.interleave();  // lanes per loop iteration
  // The host's widest vector (JitEngine's choice): 16 floats with AVX-512, 8 with AVX, else 4
  // (SSE, NEON).
#if defined(__x86_64__)
  const int host = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx") ? 8 : 4;
#else
  const int host = 4;
#endif
  CHECK(engine.vector_width(DType::F32) == host);
  // A kernel with draws steps by blocks of 80 elements (16 Philox calls of 5 float32 draws per
  // site, backend/Random.h), emitted as bodies of min(w, 16) lanes: plain vector loads/stores,
  // or lane-masked ones at the ends: llvm.masked.load.v16f32.
  const int bl = std::min(w, 16);
  const std::string vt = "<" + std::to_string(bl) + " x float>", vs = "v" + std::to_string(bl) + "f32";
  CHECK((ir.find("load " + vt) != std::string::npos || ir.find("@llvm.masked.load." + vs) != std::string::npos));
  CHECK((ir.find("store " + vt) != std::string::npos || ir.find("@llvm.masked.store." + vs) != std::string::npos));
  CHECK(ir.find("fmul " + vt) != std::string::npos);
  // Second tier: Philox multiplies in the loop, i64 products of zero-extended lanes, the 16
  // calls of a block per site at once.
  CHECK(ir.find("mul nuw <16 x i64>") != std::string::npos);
  CHECK(ir.find("mul nuw <32 x i64>") == std::string::npos);
  CHECK(ir.find("@nyto_philox_words") == std::string::npos);
  // First tier (JitOptions::tier_up_elements): the words of both sites from one call per
  // block (backend/llvm/Philox.h), loaded as one vector per word: no rounds in the kernel.
  std::string first = llvm_backend::emit_llvm_ir(test::pso_graph(), pso_spec(), true, {}, true);
  CHECK(first.find("call void @nyto_philox_words(") != std::string::npos);
  CHECK(first.find("load <16 x i32>") != std::string::npos);
  CHECK(first.find("mul nuw <") == std::string::npos);
  // Draw-heavy loops prefetch their input rows (JitOptions::prefetch_bytes).
  CHECK(ir.find("@llvm.prefetch") != std::string::npos);
  CHECK(ir.find("@llvm.fma") == std::string::npos);
  CHECK(ir.find("fmuladd") == std::string::npos);
  CHECK(ir.find(" fast ") == std::string::npos);
  CHECK(ir.find(" contract ") == std::string::npos);
  std::string unopt = llvm_backend::emit_llvm_ir(test::pso_graph(), pso_spec(), false);
  CHECK(unopt.find("bloop") != std::string::npos);
}

TEST_CASE("llvm: a large kernel draws through helpers, a small one inlines Philox") {
  // y = x + rand()*randn() + ... with `terms` terms: 2 * terms sites (up to 8 are inlined).
  auto terms_rule = [](int terms) {
    ir::Graph g;
    g.inputs = {{"x"}};
    ir::Builder b(g);
    ir::NodeId y = b.input(0, ir::Type::Elem);
    for (int t = 0; t < terms; ++t)
      y = b.binary(ir::Op::Add, y, b.binary(ir::Op::Mul, b.rand(false), b.rand(true)));
    g.outputs = {{"y", y, -1}};
    return g;
  };
  KernelSpec spec{DType::F32, {BindKind::Swarm}};
  std::string small = llvm_backend::emit_llvm_ir(terms_rule(4), spec, true);
  CHECK(small.find("@nyto.draw.") == std::string::npos);
  CHECK(llvm_backend::emit_llvm_ir(terms_rule(4), spec, true, {}, true).find("call void @nyto_philox_words(") !=
        std::string::npos);
  // Keyed draws alike: the first tier takes their words from a call each, the second inlines
  // their rounds, and past kInlineSites draw sites both tiers call.
  auto keyed_rule = [](int sites) {
    ir::Graph g;
    g.inputs = {{"x"}, {"k"}};
    ir::Builder b(g);
    ir::NodeId y = b.input(0, ir::Type::Elem), k = b.input(1, ir::Type::MemberScalar);
    for (int s = 0; s < sites; ++s)
      y = b.binary(ir::Op::Add, y, b.keyed_rand(s % 2 == 1, k, b.constant(s), int32_t(s)));
    g.outputs = {{"y", y, -1}};
    return g;
  };
  KernelSpec keyed_spec{DType::F32, {BindKind::Swarm, BindKind::MemberScalar}};
  std::string keyed2 = llvm_backend::emit_llvm_ir(keyed_rule(2), keyed_spec, true);
  CHECK(keyed2.find("mul nuw <") != std::string::npos);
  CHECK(keyed2.find("@nyto_philox_words") == std::string::npos);
  std::string keyed1 = llvm_backend::emit_llvm_ir(keyed_rule(2), keyed_spec, true, {}, true);
  CHECK(keyed1.find("call void @nyto_philox_words(") != std::string::npos);
  CHECK(keyed1.find("mul nuw <") == std::string::npos);
  std::string keyed_many = llvm_backend::emit_llvm_ir(keyed_rule(12), keyed_spec, true);
  CHECK(keyed_many.find("call void @nyto_philox_words(") != std::string::npos);
  CHECK(keyed_many.find("mul nuw <") == std::string::npos);

  std::string large = llvm_backend::emit_llvm_ir(terms_rule(50), spec, true);
  // One helper per width and site kind, called once per site and body.
  CHECK(large.find("define internal void @nyto.draw.") != std::string::npos);
  CHECK(large.find("call void @nyto.draw.") != std::string::npos);
  // The rounds are in the helper only: the multiplies of 10 rounds x 2 per call would otherwise
  // appear 50 times per body.
  size_t muls = 0;
  for (size_t at = large.find("mul nuw <"); at != std::string::npos; at = large.find("mul nuw <", at + 1)) ++muls;
  CHECK(muls <= 2 * 10 * 2);
}

namespace {

// %a: every bit of a value in a failure message.
template <class T>
std::string hex(T v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", double(v));
  return buf;
}

// y = op(a, b) (or op(a)) over a particle a and a particle b, dtype T, against `expect` in C++.
template <class T>
void check_op(JitEngine& engine, ir::Op op, std::function<T(T, T)> expect, bool exact,
              const char* name, std::vector<T> as, std::vector<T> bs) {
  ir::Graph g;
  g.inputs = {{"a"}, {"b"}};
  ir::Builder b(g);
  auto a = b.input(0, ir::Type::Elem), c = b.input(1, ir::Type::Elem);
  ir::NodeId y;
  int arity = ir::op_arity(op);
  if (arity == 1)
    y = b.unary(op, a);
  else if (arity == 2)
    y = b.binary(op, a, c);
  else
    y = b.select(b.binary(ir::Op::Lt, a, c), a, c);
  if (g.nodes[y].type.mask)  // masks are not outputs: store it as 1 / 0
    y = b.select(y, b.constant(1), b.constant(0));
  g.outputs = {{"y", y, -1}};
  KernelSpec spec{sizeof(T) == 4 ? DType::F32 : DType::F64, {BindKind::Particle, BindKind::Particle}};
  auto k = llvm_backend::compile(engine, g, spec);
  int64_t n = int64_t(as.size());
  std::vector<T> out(n, T(-12345));
  KernelArgs args;
  args.members = 1;
  args.ranges = {{0, n}};
  args.in = {as.data(), bs.data()};
  args.in_stride = {0, 0};
  args.scalar = {0, 0};
  args.out = {out.data()};
  args.out_stride = {0};
  k->run(args);
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    T want = expect(as[i], bs[i]);
    bool ok;
    if (std::isnan(want))
      ok = std::isnan(out[i]);
    else  // every op is exact, transcendental ones included (SLEEF, ir/Math.h)
      ok = same_bits(want, out[i]);
    if (!ok && bad++ < 3)
      FAIL_CHECK(std::string(name) << "(" << hex(as[i]) << ", " << hex(bs[i]) << ") = " << hex(out[i]) << ", want "
                                    << hex(want));
  }
  CHECK_MESSAGE(bad == 0, std::string(name));
}

}  // namespace

namespace {
// The transcendental ops against ir::math, bit for bit (acos and asin on the arguments brought
// into [-1.25, 1.25], so most are in their domain).
template <class T>
void check_math_ops(JitEngine& engine, const std::vector<T>& as, const std::vector<T>& bs) {
  using ir::Op;
  check_op<T>(engine, Op::Exp, [](T a, T) { return ir::math::exp(a); }, false, "exp", as, bs);
  check_op<T>(engine, Op::Log, [](T a, T) { return ir::math::log(a); }, false, "log", as, bs);
  check_op<T>(engine, Op::Sin, [](T a, T) { return ir::math::sin(a); }, false, "sin", as, bs);
  check_op<T>(engine, Op::Cos, [](T a, T) { return ir::math::cos(a); }, false, "cos", as, bs);
  check_op<T>(engine, Op::Tanh, [](T a, T) { return ir::math::tanh(a); }, false, "tanh", as, bs);
  std::vector<T> unit;
  for (T a : as) unit.push_back(std::isfinite(a) ? std::fmod(a, T(1.25)) : a);
  check_op<T>(engine, Op::Acos, [](T a, T) { return ir::math::acos(a); }, false, "acos", unit, bs);
  check_op<T>(engine, Op::Asin, [](T a, T) { return ir::math::asin(a); }, false, "asin", unit, bs);
  check_op<T>(engine, Op::Atan, [](T a, T) { return ir::math::atan(a); }, false, "atan", as, bs);
  check_op<T>(engine, Op::Atan2, [](T a, T b) { return ir::math::atan2(a, b); }, false, "atan2", as, bs);
  check_op<T>(engine, Op::Pow, [](T a, T b) { return ir::math::pow(a, b); }, false, "pow", as, bs);
}

template <class T>
void check_all_ops() {
  JitEngine engine;
  using ir::Op;
  std::vector<T> as = {0, T(-0.0), 1, -1, T(0.5), T(-2.5), T(3.75), T(1e-3), T(88), T(-88),
                       T(NAN), T(INFINITY), T(-INFINITY), T(2), T(-0.0), 0, T(NAN), 7};
  std::vector<T> bs = {T(-0.0), 0, -1, 1, T(0.5), T(2.5), T(-3.75), T(NAN), T(2), T(-3),
                       1, T(-INFINITY), T(INFINITY), T(NAN), T(-0.0), T(-0.0), T(NAN), T(0.5)};
  std::mt19937 gen(5);
  std::uniform_real_distribution<double> dist(-10, 10);
  for (int i = 0; i < 77; ++i) as.push_back(T(dist(gen))), bs.push_back(T(dist(gen)));
  check_op<T>(engine, Op::Neg, [](T a, T) { return -a; }, true, "neg", as, bs);
  check_op<T>(engine, Op::Abs, [](T a, T) { return std::fabs(a); }, true, "abs", as, bs);
  check_op<T>(engine, Op::Sqrt, [](T a, T) { return std::sqrt(a); }, true, "sqrt", as, bs);
  check_op<T>(engine, Op::Floor, [](T a, T) { return std::floor(a); }, true, "floor", as, bs);
  check_op<T>(engine, Op::Ceil, [](T a, T) { return std::ceil(a); }, true, "ceil", as, bs);
  check_math_ops<T>(engine, as, bs);
  check_op<T>(engine, Op::Sigmoid, [](T a, T) { return T(1) / (T(1) + ir::math::exp(-a)); }, false, "sigmoid", as, bs);
  check_op<T>(engine, Op::Sign, [](T a, T) { return a > 0 ? T(1) : a < 0 ? T(-1) : std::isnan(a) ? a : T(0); },
              true, "sign", as, bs);
  check_op<T>(engine, Op::Add, [](T a, T b) { return a + b; }, true, "add", as, bs);
  check_op<T>(engine, Op::Sub, [](T a, T b) { return a - b; }, true, "sub", as, bs);
  check_op<T>(engine, Op::Mul, [](T a, T b) { return a * b; }, true, "mul", as, bs);
  check_op<T>(engine, Op::Div, [](T a, T b) { return a / b; }, true, "div", as, bs);
  check_op<T>(engine, Op::Min, [](T a, T b) { return ir::ieee_minimum(a, b); }, true, "min", as, bs);
  check_op<T>(engine, Op::Max, [](T a, T b) { return ir::ieee_maximum(a, b); }, true, "max", as, bs);
  check_op<T>(engine, Op::Lt, [](T a, T b) { return T(a < b); }, true, "lt", as, bs);
  check_op<T>(engine, Op::Le, [](T a, T b) { return T(a <= b); }, true, "le", as, bs);
  check_op<T>(engine, Op::Gt, [](T a, T b) { return T(a > b); }, true, "gt", as, bs);
  check_op<T>(engine, Op::Ge, [](T a, T b) { return T(a >= b); }, true, "ge", as, bs);
  check_op<T>(engine, Op::Eq, [](T a, T b) { return T(a == b); }, true, "eq", as, bs);
  check_op<T>(engine, Op::Ne, [](T a, T b) { return T(a != b); }, true, "ne", as, bs);
  check_op<T>(engine, Op::Select, [](T a, T b) { return a < b ? a : b; }, true, "select", as, bs);
}
}  // namespace

TEST_CASE("llvm: every op, float32") { check_all_ops<float>(); }
TEST_CASE("llvm: every op, float64") { check_all_ops<double>(); }

namespace {
// The transcendental ops on vectors of every width SLEEF has a form of (16, 32, 64 bytes: sse2,
// avx, avx512fnofma), on 8 bytes (no vector form: the scalar one per lane), with a scalar tail and
// a masked one, and in pieces (two hardware vectors per loop iteration): each piece's lanes must
// land where they belong. Inputs span the reduction paths (sin of 1e4 and 1e30, exp to overflow).
template <class T>
void check_math_shapes() {
  using ir::Op;
  std::vector<T> as = {0, T(-0.0), T(NAN), T(INFINITY), T(-INFINITY), 1, -1, T(0.5)};
  std::vector<T> bs = {T(2), T(-0.0), T(0.5), T(NAN), 3, T(-2), T(INFINITY), 0};
  std::mt19937 gen(11);
  std::uniform_real_distribution<double> mid(-12, 12), wide(-1e4, 1e4);
  std::uniform_int_distribution<int> expo(-40, 40);
  for (int i = 0; i < 157; ++i) {
    as.push_back(T(i % 3 == 0 ? wide(gen) : i % 3 == 1 ? mid(gen) : std::ldexp(mid(gen), expo(gen))));
    bs.push_back(T(i % 2 ? mid(gen) : mid(gen) / 4));
  }
  as.push_back(T(1e30));
  bs.push_back(T(1.5));
  for (int bytes : {64, 32, 16, 8})
    for (bool masked : {true, false}) {
      llvm_backend::JitOptions o;
      o.vector_bytes = bytes;
      o.allow_masked_tail = masked;
      o.cache_dir = "";
      llvm_backend::JitEngine engine(o);
      INFO("vector bytes " << bytes << (masked ? ", masked tail" : ", scalar tail"));
      check_math_ops<T>(engine, as, bs);
    }
}
}  // namespace

TEST_CASE("llvm: SLEEF functions on every vector shape, float32") { check_math_shapes<float>(); }
TEST_CASE("llvm: SLEEF functions on every vector shape, float64") { check_math_shapes<double>(); }

TEST_CASE("llvm: scalar nodes in double, converted where they meet the dtype") {
  // y = x * (p / 3 + s) with p a param, s a per-member scalar: p/3 + s in double, then rounded.
  ir::Graph g;
  g.inputs = {{"x"}, {"s"}};
  g.params = {{"p", 1.0}};
  ir::Builder b(g);
  auto x = b.input(0, ir::Type::Elem), s = b.input(1, ir::Type::Scalar), p = b.param(0);
  auto t = b.binary(ir::Op::Add, b.binary(ir::Op::Div, p, b.constant(3.0)), s);
  auto y = b.binary(ir::Op::Mul, x, t);
  auto r = b.rand(true);
  g.outputs = {{"y", y, -1}, {"r", r, -1}};
  for (DType dt : {DType::F32, DType::F64}) {
    JitEngine engine;
    auto k = llvm_backend::compile(engine, g, {dt, {BindKind::Swarm, BindKind::MemberScalar}});
    const int64_t n = 37, members = 3;
    std::vector<double> xs(members * n), ys(members * n), rs(members * n);
    std::vector<float> xf(members * n), yf(members * n), rf(members * n);
    for (int64_t i = 0; i < members * n; ++i) xs[i] = xf[i] = float(0.1 * i - 3);
    std::vector<double> svals = {0.1, 1e10, -7.3};
    KernelArgs a;
    a.members = members;
    a.ranges = {{0, n}};
    bool f32 = dt == DType::F32;
    a.in = {f32 ? (const void*)xf.data() : (const void*)xs.data(), svals.data()};
    a.in_stride = {n, 0};
    a.scalar = {0, 0};
    a.params = {2.0};
    a.out = {f32 ? (void*)yf.data() : (void*)ys.data(), f32 ? (void*)rf.data() : (void*)rs.data()};
    a.out_stride = {n, n};
    a.seed = 99;
    k->run(a);
    rng::Key key{a.seed, a.invocation, a.group};
    int bad = 0;
    for (int64_t m = 0; m < members; ++m) {
      double td = 2.0 / 3.0 + svals[m];
      for (int64_t e = 0; e < n; ++e) {
        if (f32) {
          bad += !same_bits(yf[m * n + e], xf[m * n + e] * float(td));
          bad += !same_bits(rf[m * n + e], rng::draw_f32(key, 0, true, uint32_t(m), uint32_t(e)));
        } else {
          bad += !same_bits(ys[m * n + e], xs[m * n + e] * td);
          bad += !same_bits(rs[m * n + e], rng::draw_f64(key, 0, true, uint32_t(m), uint32_t(e)));
        }
      }
    }
    CHECK_MESSAGE(bad == 0, (f32 ? "f32" : "f64"));
  }
}
