// Differential tests: the LLVM JIT against the reference interpreter on random rules
// (tests/ir/RandomRules.h) over random sizes, ranges, member counts, every bind kind, in place
// and not, float32 and float64, 1 and 2 threads, chunkings that put boundaries anywhere.
//
// Tolerance (documented in backend/llvm/LlvmBackend.h): 0 ulp. + - * / sqrt floor ceil abs neg
// min max sign, comparisons, select and the random draws are bit-identical by construction, and
// exp log sin cos tanh pow sigmoid call the same libm functions as the interpreter (scalar,
// `nobuiltin`, so LLVM cannot rewrite them). kUlpTolerance is where a future vector math library
// would state its bound; the test also counts values that differ at all and requires none.
#include "tests/doctest_torch.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>

#include "backend/KernelCache.h"
#include "backend/Staged.h"
#include "backend/aten/AtenBackend.h"
#include "backend/interp/Interp.h"
#include "backend/llvm/LlvmBackend.h"
#include "backend/llvm/LlvmKernel.h"
#include "ir/Passes.h"
#include "tests/backend/FoldChain.h"
#include "tests/backend/RandomBindings.h"
#include "tests/ulp.h"
#include "tests/ir/RandomRules.h"

using namespace nyto;
using ir::testing::random_rule;
using ir::testing::RandomRuleOptions;

namespace {

constexpr int64_t kUlpTolerance = 0;
// Rules per test case: a fifth under sanitizers (tests/CMakeLists.txt), where fuzz/fuzz_pipeline
// carries on the search; a tenth for the 600 random rules (kWideScale), which need no kind of rule
// to appear a given number of times (the windowed test counts its folds and outside rows).
#ifdef NYTO_TEST_SANITIZED
constexpr uint64_t kRuleScale = 5, kWideScale = 10;
#else
constexpr uint64_t kRuleScale = 1, kWideScale = 1;
#endif

using test::ulp_distance;

struct Stats {
  size_t rules = 0, compared = 0, finite = 0, inexact = 0;
  int64_t max_ulp = 0;
};

// Builds the kernel under test; empty = the LLVM JIT on `engine`.
using Candidate = std::function<std::unique_ptr<Kernel>(const ir::Graph&, const KernelSpec&)>;

template <class T>
void differential(llvm_backend::JitEngine& engine, uint64_t seed, const RandomRuleOptions& o, Stats& st,
                  const Candidate& candidate = {}, int64_t tolerance = kUlpTolerance,
                  int64_t members_ = 0) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + sizeof(T));
  ir::Graph g = random_rule(seed, o);
  // Half of the rules go through the optimizer first (what the runtime compiles).
  ir::Graph compiled = seed % 2 ? ir::optimize(g, {}).graph : g;
  // Outputs stored in place into their target input half of the time.
  const bool in_place = rng() % 2 == 0;
  test::RandomBindings<T> b(g, rng, in_place, 120, 3000, members_);
  const int64_t members = b.members, row = b.row;

  auto want_k = interp::compile(g, b.spec);
  std::unique_ptr<Kernel> got_k =
      candidate ? candidate(compiled, b.spec) : compile_llvm(engine, compiled, b.spec);
  auto* lk = dynamic_cast<llvm_backend::LlvmKernel*>(got_k.get());
  int threads = 1 + int(rng() % 2);
  at::set_num_threads(threads);
  if (rng() % 2 && lk) lk->set_chunk_elements(16 * (1 + int64_t(rng() % 8)));  // boundaries everywhere
  std::vector<std::vector<T>> want, got;
  b.run(*want_k, want);
  b.run(*got_k, got);
  st.rules++;
  for (size_t k = 0; k < want.size(); ++k)
    for (size_t e = 0; e < want[k].size(); ++e) {
      T w = want[k][e], v = got[k][e];
      int64_t d = ulp_distance(w, v);
      st.compared++;
      st.finite += std::isfinite(w);
      if ((d != 0 || std::memcmp(&w, &v, sizeof w) != 0) && !(std::isnan(w) && std::isnan(v))) {
        if (st.inexact++ < 3 && getenv("NYTO_SHOW_INEXACT"))
          MESSAGE("inexact: seed " << seed << " output " << k << " interp " << w << " llvm " << v
                                   << "\n" << ir::print(compiled));
      }
      if (!(std::isnan(w) && std::isnan(v))) st.max_ulp = std::max(st.max_ulp, d);
      bool ok = d <= tolerance && (std::fabs(w) < 1e-30 || std::isnan(w) || std::signbit(w) == std::signbit(v) || d <= 1);
      if (!ok) {
        FAIL_CHECK("seed " << seed << " dtype " << (sizeof(T) == 4 ? "f32" : "f64") << " output " << k
                   << " element " << e << ": interp " << w << ", llvm " << v << " (" << d << " ulp), "
                   << members << " members, row " << row << ", threads " << threads << "\n"
                   << ir::print(compiled));
        return;
      }
    }
}

// llvm == interp on the rules `options(i)` for i in [0, count), seed first + i, float32 and float64.
// Engine (i / 4 + i) mod 4: 1 and 3 are the code shape of AVX2 hosts (8 lanes, 4 for f64, scalar
// tail loop), 2 and 3 the second tier of a kernel with draws (JitOptions::tier_up_elements), 0 and
// 1 the first.
template <class Options>
void llvm_against_interp(uint64_t first, uint64_t count, Options&& options) {
  auto shape = [](int vector_bytes, bool masked, int64_t tier_up) {
    llvm_backend::JitOptions o{vector_bytes, masked};
    o.tier_up_elements = tier_up;
    return o;
  };
  llvm_backend::JitEngine engines[] = {llvm_backend::JitEngine(shape(0, true, -1)),
                                       llvm_backend::JitEngine(shape(32, false, -1)),
                                       llvm_backend::JitEngine(shape(0, true, 0)),
                                       llvm_backend::JitEngine(shape(32, false, 0))};
  int old_threads = at::get_num_threads();
  Stats st;
  for (uint64_t i = 0; i < count; ++i) {
    RandomRuleOptions o = options(i);
    // (i / 4 + i) mod 4: the rules of every i mod 4 (options may depend on it) meet every engine.
    llvm_backend::JitEngine& engine = engines[(i / 4 + i) % 4];
    differential<float>(engine, first + i, o, st);
    differential<double>(engine, first + i, o, st);
  }
  at::set_num_threads(old_threads);
  MESSAGE(st.rules << " rule runs, " << st.compared << " values compared (" << st.finite
                   << " finite), " << st.inexact << " not bit-identical, max " << st.max_ulp << " ulp");
  CHECK(st.finite * 2 > st.compared);
  CHECK(st.inexact == 0);
}

// The random rule of `seed` with 1-5 inputs, 0-3 params, 1-3 outputs, 0-4 draw sites and 10 to
// 10 + op_spread - 1 operations, member constructs included.
RandomRuleOptions rule_options(uint64_t seed, int op_spread) {
  RandomRuleOptions o;
  o.inputs = 1 + int(seed % 5);
  o.params = int(seed % 4);
  o.outputs = 1 + int(seed % 3);
  o.ops = 10 + int(seed % uint64_t(op_spread));
  o.rand_sites = int(seed % 5);
  return o;
}

}  // namespace

TEST_CASE("differential: llvm == interp on 600 random rules x {float32, float64}") {
  llvm_against_interp(0, 600 / kWideScale, [](uint64_t seed) {
    RandomRuleOptions o = rule_options(seed, 70);
    o.special_constants = seed % 3 == 0;
    o.tame_domains = seed % 5 != 0;
    o.scalar_input_probability = seed % 4 == 0 ? 0.6 : 0.3;
    o.population = seed % 4 >= 2;  // half the rules fused (version 0 shape), half staged
    return o;
  });
}

// Language v1's member constructs (msum, mmin, mmax, x[i], member(), mrand()) on the swarm sizes
// the staged schedule must get right: one member (no other row), a few, and more than a block
// holds at once (64 members: fewer elements per block).
TEST_CASE("differential: llvm == interp with 1, 2, 3, 7 and 64 members") {
  llvm_backend::JitEngine engine;
  int old_threads = at::get_num_threads();
  Stats st;
  const int64_t sizes[] = {1, 2, 3, 7, 64};
  for (uint64_t seed = 0; seed < 100 / kRuleScale; ++seed) {
    RandomRuleOptions o;
    o.inputs = 1 + int(seed % 4);
    o.params = int(seed % 3);
    o.outputs = 1 + int(seed % 3);
    o.ops = 40 + int(seed % 40);
    o.rand_sites = int(seed % 4);
    o.only_ops = {ir::Op::Add, ir::Op::Mul, ir::Op::Sub, ir::Op::Mod, ir::Op::Min, ir::Op::Lt,
                  ir::Op::Select, ir::Op::MSum, ir::Op::MMin, ir::Op::MMax, ir::Op::MRead, ir::Op::KRandn,
                  ir::Op::Exp};
    differential<float>(engine, 9000 + seed, o, st, {}, kUlpTolerance, sizes[seed % 5]);
    differential<double>(engine, 9000 + seed, o, st, {}, kUlpTolerance, sizes[seed % 5]);
  }
  at::set_num_threads(old_threads);
  MESSAGE(st.rules << " rule runs, " << st.compared << " values compared, " << st.inexact << " not bit-identical");
  CHECK(st.inexact == 0);
}

// A kernel with more than a few random sites is "large" (backend/llvm/Codegen.cpp,
// kInlineSites): its draws come from helper functions instead of inlined rounds, and its
// transcendentals from per-width helpers. Same bit-identity, on rules of 50-200 random sites and a
// few hundred ops, both dtypes and both code shapes (AVX-512 masked tail, AVX2 scalar tail).
TEST_CASE("differential: llvm == interp on large kernels (50-200 random sites)") {
  llvm_against_interp(7000, 8, [](uint64_t i) {
    RandomRuleOptions o;
    o.inputs = 1 + int(i % 4);
    o.params = int(i % 3);
    o.outputs = 1 + int(i % 3);
    o.ops = 200 + int(i * 37 % 200);
    o.rand_sites = 50 + int(i * 53 % 150);
    o.special_constants = i % 3 == 0;
    o.population = i % 4 >= 2;
    return o;
  });
}

// The staged driver (backend/Staged.h) over interpreter stage kernels against the plain
// interpreter: the schedule (stages, temporaries, crossings, broadcast stores) checked apart from
// LLVM's code generation, on the random rules of the first test (member sums, member reads).
TEST_CASE("differential: staged schedule over interp kernels == interp") {
  llvm_backend::JitEngine unused;
  Stats st;
  size_t staged = 0;
  for (uint64_t seed = 0; seed < 300 / kRuleScale; ++seed) {
    RandomRuleOptions o = rule_options(seed, 70);
    o.special_constants = seed % 3 == 0;
    auto candidate = [&](const ir::Graph& g, const KernelSpec& spec) -> std::unique_ptr<Kernel> {
      if (!staged::needed(g, spec)) return interp::compile(g, spec);
      ++staged;
      return staged::compile(g, spec, interp::compile);
    };
    differential<float>(unused, seed, o, st, candidate, 0);
    differential<double>(unused, seed, o, st, candidate, 0);
  }
  MESSAGE(st.rules << " rule runs (" << staged << " staged), " << st.compared << " values compared");
  CHECK(staged * 2 > st.rules);
  CHECK(st.inexact == 0);
}

// Member windows (the ranks' blocks of a distributed run) over llvm's staged kernels: each
// window's rows, and the values stored once, are the interpreter's whole-run values, bit for bit,
// on random rules with member sums and reads. The population is split into 1-3 windows (some
// empty) run at once; rows a window's member reads reach outside it come as
// KernelArgs::outside_rows (Kernel::rows_read), member folds of windowed values through a
// FoldChain, in chunks of 64 to 512 elements.
TEST_CASE("differential: staged kernels on member windows == interp") {
  llvm_backend::JitEngine engine;
  size_t runs = 0, folded = 0, outside = 0, compared = 0, messages = 0;
  for (uint64_t seed = 0; seed < 250 / kRuleScale; ++seed) {
    const RandomRuleOptions o = rule_options(seed, 50);
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 7);
    ir::Graph g = random_rule(seed, o);
    const bool in_place = rng() % 2 == 0;
    test::RandomBindings<float> b(g, rng, in_place, 120, 3000, 2 + int64_t(seed % 6));
    if (!staged::needed(g, b.spec)) continue;
    auto got_k = compile_llvm(engine, g, b.spec);
    REQUIRE(staged::windowable(g, b.spec));
    REQUIRE(got_k->member_window());
    std::vector<int64_t> cuts;
    for (uint64_t k = rng() % 3; k > 0; --k) cuts.push_back(int64_t(rng() % uint64_t(b.members + 1)));
    const auto windows = test::windows_of(cuts, b.members);
    // Folds pass on in chunks of whole blocks (64 elements and up); small chunks put the chunk
    // boundaries anywhere.
    const int64_t chunk = int64_t(64) << (rng() % 4);
    std::vector<std::vector<float>> want;
    b.run(*interp::compile(g, b.spec), want);
    const test::WindowRuns<float> got = test::run_windows<float>(b, *got_k, windows, chunk);
    ++runs;
    folded += got_k->member_folds();
    outside += got.outside;
    messages += got.messages;
    const std::string diff = test::first_difference(want, got, windows, b.row, compared);
    if (!diff.empty())
      FAIL_CHECK("seed " << seed << " " << diff << "\n" << ir::print(g)
                         << (getenv("NYTO_SHOW_SCHEDULE") ? staged::describe(g, b.spec) : std::string()));
  }
  MESSAGE(runs << " windowed runs (" << folded << " with member folds, " << messages << " fold messages; " << outside
               << " outside rows), " << compared << " values compared");
  CHECK(runs > 20);
  CHECK(folded > 10);
  CHECK(messages > 10);
  CHECK(outside > 0);
}

// The aten backend computes with LibTorch's kernels. On the operations IEEE 754 rounds exactly
// (+ - * / sqrt, abs, neg, floor, ceil, min, max, sign, comparisons, select) and on the random
// draws (Random.h code, shared) it must be bit-identical to the interpreter.
TEST_CASE("differential: aten == interp, bit for bit, on 300 random rules of exactly rounded ops") {
  llvm_backend::JitEngine unused;
  int old_threads = at::get_num_threads();
  Stats st;
  for (uint64_t seed = 0; seed < 300 / kRuleScale; ++seed) {
    RandomRuleOptions o;
    o.inputs = 1 + int(seed % 5);
    o.params = int(seed % 4);
    o.outputs = 1 + int(seed % 3);
    o.ops = 10 + int(seed % 50);
    o.rand_sites = int(seed % 5);
    o.special_constants = seed % 3 == 0;
    o.only_ops = {ir::Op::Neg, ir::Op::Abs, ir::Op::Sqrt, ir::Op::Sign, ir::Op::Floor, ir::Op::Ceil,
                  ir::Op::Add, ir::Op::Sub, ir::Op::Mul, ir::Op::Div, ir::Op::Min, ir::Op::Max,
                  ir::Op::Lt, ir::Op::Le, ir::Op::Gt, ir::Op::Ge, ir::Op::Eq, ir::Op::Ne, ir::Op::Select,
                  ir::Op::MSum, ir::Op::MMin, ir::Op::MMax, ir::Op::MRead, ir::Op::KRand, ir::Op::KRandn};
    differential<float>(unused, seed, o, st, aten_backend::compile, 0);
    differential<double>(unused, seed, o, st, aten_backend::compile, 0);
  }
  at::set_num_threads(old_threads);
  MESSAGE(st.rules << " aten rule runs, " << st.compared << " values compared, max " << st.max_ulp << " ulp");
  CHECK(st.finite * 2 > st.compared);
  CHECK(st.max_ulp == 0);
}

// Transcendental functions: ATen's vectorized kernels (SLEEF, 1-ulp class) against libm, one op
// at a time on values spread over each function's domain. Stated tolerance: 4 ulp.
TEST_CASE("differential: aten transcendental ops within 4 ulp of interp") {
  constexpr int64_t kAtenUlp = 4;
  const ir::Op ops[] = {ir::Op::Exp,  ir::Op::Log,  ir::Op::Sin,  ir::Op::Cos,  ir::Op::Tanh, ir::Op::Sigmoid,
                        ir::Op::Pow,  ir::Op::Acos, ir::Op::Asin, ir::Op::Atan, ir::Op::Atan2};
  std::mt19937_64 rng(5);
  for (ir::Op op : ops)
    for (DType dt : {DType::F32, DType::F64}) {
      ir::Graph g;
      ir::Builder b(g);
      g.inputs = {{"x"}, {"y"}};
      ir::NodeId x = b.input(0, ir::Type::Elem), y = b.input(1, ir::Type::Elem);
      const bool binary = op == ir::Op::Pow || op == ir::Op::Atan2;
      ir::NodeId r = binary ? b.binary(op, x, y) : b.binary(ir::Op::Add, b.unary(op, x), b.binary(ir::Op::Mul, y, b.constant(0)));
      g.outputs = {{"out", r, -1}};
      const int64_t n = 4096;
      std::vector<double> xs(n), ys(n);
      for (int64_t i = 0; i < n; ++i) {
        double u = double(rng() >> 11) * 0x1p-53;
        const double v = double(rng() >> 11) * 0x1p-53;
        xs[i] = op == ir::Op::Log || op == ir::Op::Pow   ? std::exp(u * 20 - 10)
                : op == ir::Op::Acos || op == ir::Op::Asin ? u * 2 - 1
                                                           : u * 40 - 20;
        ys[i] = op == ir::Op::Pow ? u * 6 - 3 : op == ir::Op::Atan2 ? v * 40 - 20 : 1.0;
      }
      auto run = [&](const Kernel& k, auto tag) {
        using T = decltype(tag);
        std::vector<T> xv(xs.begin(), xs.end()), yv(ys.begin(), ys.end()), out(n);
        KernelArgs a;
        a.ranges = {{0, n}};
        a.in = {xv.data(), yv.data()};
        a.in_stride = {0, 0};
        a.scalar = {0, 0};
        a.out = {out.data()};
        a.out_stride = {0};
        k.run(a);
        return std::vector<double>(out.begin(), out.end());
      };
      KernelSpec spec{dt, {BindKind::Particle, BindKind::Particle}};
      auto want_k = interp::compile(g, spec);
      auto got_k = aten_backend::compile(g, spec);
      std::vector<double> want, got;
      if (dt == DType::F32)
        want = run(*want_k, 0.0f), got = run(*got_k, 0.0f);
      else
        want = run(*want_k, 0.0), got = run(*got_k, 0.0);
      int64_t worst = 0;
      for (int64_t i = 0; i < n; ++i) {
        int64_t d = dt == DType::F32 ? ulp_distance(float(want[i]), float(got[i])) : ulp_distance(want[i], got[i]);
        worst = std::max(worst, d);
      }
      MESSAGE(std::string(ir::op_name(op)) << (dt == DType::F32 ? " f32" : " f64") << ": max " << worst << " ulp");
      CHECK(worst <= kAtenUlp);
    }
}
