// The parameter axis (ir/ParamAxis.h, backend/ParamAxis.h): the pass driver over llvm kernels
// against the driver over interpreter kernels, bit for bit, on random rules with every
// parameter-axis construct (tensors of 1, 7, 1000 and 100,003 elements, several per particle,
// non-operational gaps between them, 1 to 4 members, 1 and 2 threads); and each construct against
// a naive reference written here (sums in the documented blocked order, selections by sorting).
// The aten backend (its own evaluation, not the pass driver) against both: bit for bit on random
// rules without sums, sums within the bound backend/aten/AtenBackend.h states.
#include "tests/doctest_torch.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>

#include "backend/KernelCache.h"
#include "backend/ParamAxis.h"
#include "backend/Staged.h"
#include "backend/aten/AtenBackend.h"
#include "backend/interp/Interp.h"
#include "backend/llvm/LlvmBackend.h"
#include "backend/llvm/LlvmKernel.h"
#include "frontend/Frontend.h"
#include "ir/Eval.h"
#include "ir/ParamAxis.h"
#include "ir/Passes.h"
#include "tests/backend/FoldChain.h"
#include "tests/backend/RandomBindings.h"
#include "tests/ir/RandomRules.h"

using namespace nyto;

namespace {

#ifdef NYTO_TEST_SANITIZED
constexpr uint64_t kRuleScale = 5;
#else
constexpr uint64_t kRuleScale = 1;
#endif

std::unique_ptr<Kernel> llvm_passes(llvm_backend::JitEngine& engine, const ir::Graph& g, const KernelSpec& spec) {
  return param_axis::compile(
      g, spec, [&](const ir::Graph& pg, const KernelSpec& ps) { return compile_llvm(engine, pg, ps); },
      /*chunk_outputs=*/true);
}
std::unique_ptr<Kernel> interp_passes(const ir::Graph& g, const KernelSpec& spec) {
  return param_axis::compile(g, spec, interp::compile);
}

// Lays out `b`'s rows as tensors of the given sizes, each after a gap of 0-3 non-operational
// elements (never written: they keep -123 in fresh outputs and the input in place).
template <class T>
void relayout(test::RandomBindings<T>& b, const std::vector<int64_t>& sizes, std::mt19937_64& rng) {
  b.args.ranges.clear();
  b.args.tensors.clear();
  int64_t at = 0;
  for (int64_t n : sizes) {
    at += int64_t(rng() % 4);
    b.args.tensors.push_back({at, at + n});
    if (!b.args.ranges.empty() && b.args.ranges.back().second == at)
      b.args.ranges.back().second += n;
    else
      b.args.ranges.push_back({at, at + n});
    at += n;
  }
  b.row = at + int64_t(rng() % 3);
  for (size_t i = 0; i < b.data.size(); ++i) {
    b.data[i].resize(size_t(b.members * b.row));
    for (auto& v : b.data[i]) v = T((double(rng() % 2001) - 1000.0) / 250.0);
    if (rng() % 6 == 0) b.data[i][rng() % b.data[i].size()] = T(std::nan(""));
    if (b.args.in_stride[i] != 0) b.args.in_stride[i] = b.row;
  }
  b.args.out_stride.assign(b.args.out_stride.size(), b.row);
}

template <class T>
bool same_bits(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

namespace {

// Tensor layouts of the random-rule tests: sizes 1, 7, 1000 and 100,003, several per particle,
// chunk boundaries (1024) crossed and just missed.
const std::vector<std::vector<int64_t>> kLayouts = {
    {1}, {7}, {1000}, {1, 7, 1000}, {100003}, {7, 100003, 1}, {1000, 1000, 3, 5000}, {2049, 1, 1023}};

// Runs `count` random rules of `ops` (rule seeds first, first + 1, ...) with the interpreter's
// passes and with `candidate`, float32 and float64, on random bindings laid out as kLayouts, and
// requires the same bits. `threads(seed)` is the candidate's thread count. Returns the runs.
using Candidate = std::function<std::unique_ptr<Kernel>(const ir::Graph&, const KernelSpec&)>;
size_t interp_against(const char* name, uint64_t first, std::vector<ir::Op> ops, const Candidate& candidate,
                      const std::function<int(uint64_t)>& threads, size_t* compared_out = nullptr) {
  const int old_threads = at::get_num_threads();
  size_t runs = 0, compared = 0;
  for (uint64_t seed = 0; seed < 60 / kRuleScale; ++seed) {
    ir::testing::RandomRuleOptions o;
    o.param_axis = true;
    o.population = seed % 3 == 0;
    o.inputs = 1 + int(seed % 3);
    o.params = int(seed % 3);
    o.outputs = 1 + int(seed % 2);
    o.ops = 20 + int(seed % 30);
    o.rand_sites = int(seed % 3);
    o.only_ops = ops;
    const ir::Graph g = ir::optimize(ir::testing::random_rule(first + seed, o), {}).graph;
    if (!ir::has_param_axis(g)) continue;
    for (int dt = 0; dt < 2; ++dt) {
      std::mt19937_64 rng(seed * 7 + uint64_t(dt) + first);
      auto check = [&](auto tag) {
        using T = decltype(tag);
        test::RandomBindings<T> b(g, rng, rng() % 2 == 0, 100, 0, int64_t(1 + seed % 4));
        relayout(b, kLayouts[seed % kLayouts.size()], rng);
        b.spec.dtype = sizeof(T) == 4 ? DType::F32 : DType::F64;
        auto want_k = interp_passes(g, b.spec);
        auto got_k = candidate(g, b.spec);
        std::vector<std::vector<T>> want, got;
        at::set_num_threads(1);
        b.run(*want_k, want);
        at::set_num_threads(threads(seed));
        b.run(*got_k, got);
        ++runs;
        for (size_t k = 0; k < want.size(); ++k)
          for (size_t e = 0; e < want[k].size(); ++e) {
            ++compared;
            if (!same_bits(want[k][e], got[k][e])) {
              FAIL_CHECK("seed " << first + seed << " output " << k << " element " << e << ": interp " << want[k][e]
                                 << ", " << name << " " << got[k][e] << "\n" << param_axis::describe(g, b.spec));
              return;
            }
          }
      };
      if (dt == 0) check(0.0f); else check(0.0);
    }
  }
  at::set_num_threads(old_threads);
  if (compared_out) *compared_out = compared;
  return runs;
}

}  // namespace

TEST_CASE("parameter axis: llvm passes == interp passes on random rules, bit for bit") {
  llvm_backend::JitEngine engine;
  size_t passes = 0, compared = 0;
  auto llvm = [&](const ir::Graph& g, const KernelSpec& spec) {
    passes += param_axis::pass_kernels(g, spec).size();
    return llvm_passes(engine, g, spec);
  };
  const size_t runs = interp_against(
      "llvm", 50000,
      {ir::Op::Add, ir::Op::Sub, ir::Op::Mul, ir::Op::Div, ir::Op::Abs, ir::Op::Sqrt, ir::Op::Min, ir::Op::Max,
       ir::Op::Ge, ir::Op::Lt, ir::Op::Select, ir::Op::TSum, ir::Op::TMin, ir::Op::TMax, ir::Op::PSum,
       ir::Op::PMin, ir::Op::PMax, ir::Op::TKth, ir::Op::PKth, ir::Op::MSum, ir::Op::MRead, ir::Op::Exp},
      llvm, [](uint64_t seed) { return 1 + int(seed % 2); }, &compared);
  MESSAGE(runs << " runs, " << passes << " pass kernels, " << compared << " values compared");
  CHECK(runs >= 60 / kRuleScale);
  CHECK(passes > runs);  // most rules take more than one pass
}

TEST_CASE("parameter axis: aten == interp passes on random rules without sums, bit for bit") {
  // Sums are left out (aten's are within a bound, not in the blocked order), and so is exp (ATen's
  // is within a few ulp): what remains is exactly rounded or a selection.
  size_t compared = 0;
  const size_t runs = interp_against(
      "aten", 70000,
      {ir::Op::Add, ir::Op::Sub, ir::Op::Mul, ir::Op::Div, ir::Op::Abs, ir::Op::Sqrt, ir::Op::Min, ir::Op::Max,
       ir::Op::Ge, ir::Op::Lt, ir::Op::Select, ir::Op::TMin, ir::Op::TMax, ir::Op::PMin, ir::Op::PMax,
       ir::Op::TKth, ir::Op::PKth, ir::Op::MSum, ir::Op::MRead},
      aten_backend::compile, [](uint64_t) { return 1; }, &compared);
  MESSAGE(runs << " runs, " << compared << " values compared");
  CHECK(runs >= 60 / kRuleScale);
}

namespace {

// A rule from text, optimized as the runtime does.
ir::Graph rule(const std::string& text) {
  auto r = frontend::compile_source(text, "test.nyto");
  REQUIRE_MESSAGE(r.ok, frontend::render_all(r));
  return ir::optimize(r.graph, {}).graph;
}

// Runs `g` with input x (members rows of `row`, tensors `tensors`) and value outputs per
// spec.values; returns output o's row-major values, and `values` receives the value outputs.
template <class T>
std::vector<std::vector<T>> run(const Kernel& k, const ir::Graph& g, const std::vector<T>& x, int64_t members,
                                int64_t row, const std::vector<std::pair<int64_t, int64_t>>& tensors,
                                const std::vector<bool>& value_out, std::vector<std::vector<double>>* values = nullptr) {
  KernelArgs a;
  a.members = members;
  a.tensors = tensors;
  for (auto t : tensors) a.ranges.push_back(t);
  a.in = {x.data()};
  a.in_stride = {members > 1 ? row : 0};
  a.scalar = {0};
  for (auto& p : g.params) a.params.push_back(p.default_value);
  std::vector<std::vector<T>> out(g.outputs.size(), std::vector<T>(size_t(members * row), T(-123)));
  std::vector<std::vector<double>> vals(g.outputs.size(), std::vector<double>(size_t(members), -123));
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    a.out.push_back(value_out[o] ? static_cast<void*>(vals[o].data()) : static_cast<void*>(out[o].data()));
    a.out_stride.push_back(row);
  }
  k.run(a);
  if (values) *values = vals;
  return out;
}

// The documented order of a tensor sum (ir/IR.h): 1024-element chunks, 32 lanes each, folded in
// halves.
template <class T>
double blocked_sum(const T* x, int64_t n) {
  double total = -0.0;
  for (int64_t c = 0; c < n; c += 1024) {
    double lane[32];
    std::fill(lane, lane + 32, -0.0);
    for (int64_t i = c; i < std::min(n, c + 1024); ++i) lane[(i - c) % 32] += double(x[i]);
    for (int w = 16; w >= 1; w /= 2)
      for (int j = 0; j < w; ++j) lane[j] += lane[j + w];
    total += lane[0];
  }
  return total;
}

// The k-th largest by sorting (NaN above everything, -0 below +0), k floored and clamped.
template <class T>
T kth_largest(std::vector<T> v, double k) {
  std::sort(v.begin(), v.end(), [](T a, T b) {
    if (std::isnan(a) != std::isnan(b)) return std::isnan(a);
    if (std::isnan(a)) return false;
    if (a == b) return !std::signbit(a) && std::signbit(b);  // +0 before -0
    return a > b;
  });
  const double kk = std::isnan(k) ? 1 : std::clamp(std::floor(k), 1.0, double(v.size()));
  return v[size_t(kk) - 1];
}

}  // namespace

TEST_CASE("parameter axis: each construct against a naive reference, interp and llvm, 1 and 2 threads") {
  llvm_backend::JitEngine engine;
  const int old_threads = at::get_num_threads();
  // x: 3 members; tensors of 7, 1, 3000 and 100003 elements with a gap of 2 after the first.
  const std::vector<std::pair<int64_t, int64_t>> tensors = {{0, 7}, {9, 10}, {10, 3010}, {3010, 103013}};
  const int64_t M = 3, row = 103013;
  std::mt19937_64 rng(11);
  std::vector<float> x(size_t(M * row));
  for (auto& v : x) v = float(int64_t(rng() % 2001) - 1000) / 64.0f;  // many ties
  x[size_t(row + 5)] = -0.0f;
  x[size_t(row + 6)] = 0.0f;
  const ir::Graph g = rule(
      "param density = 0.2\n"
      "param k = 3\n"
      "a = tsum(x*x)\n b = tmin(x) + tmax(x)\n c = tkth(x, density * numel())\n d = tkth(x, k)\n"
      "e = numel() * 100000 + elem()\n"
      "f = where(abs(x) >= tkth(abs(x), density * numel()), x, 0)\n"
      "s = psum(x*x)\n mn = pmin(x)\n mx = pmax(x)\n pk = pkth(x, k)\n pm = pmean(x)\n n = elems()\n");
  std::vector<bool> value_out;
  for (const ir::Output& o : g.outputs) value_out.push_back(o.name.size() == 2 || o.name == "s" || o.name == "n");
  KernelSpec spec{DType::F32, {BindKind::Swarm}};
  spec.values = value_out;
  auto out_index = [&](const char* name) {
    for (size_t o = 0; o < g.outputs.size(); ++o)
      if (g.outputs[o].name == name) return o;
    FAIL("no output " << name);
    return size_t(0);
  };
  for (int which = 0; which < 4; ++which) {
    INFO("kernel " << which);  // interp, llvm, llvm on 2 threads, aten
    at::set_num_threads(which == 2 ? 2 : 1);
    const bool aten = which == 3;
    auto k = which == 0 ? interp_passes(g, spec) : aten ? aten_backend::compile(g, spec) : llvm_passes(engine, g, spec);
    // aten's sums: within 1e-12 of the sum of |terms| (backend/aten/AtenBackend.h), then rounded
    // to float32 where stored per element (up to an ulp apart).
    auto near = [&](double got, double want, double abs_sum, bool rounded) {
      if (!aten) return got == want;
      return std::abs(got - want) <= 1e-12 * abs_sum + (rounded ? 0x1p-23 * std::abs(want) : 0.0);
    };
    std::vector<std::vector<double>> vals;
    auto out = run<float>(*k, g, x, M, row, tensors, value_out, &vals);
    int64_t P = 0;
    for (auto [b, e] : tensors) P += e - b;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x.data() + m * row;
      double psum = -0.0, pmin = INFINITY, pmax = -INFINITY;
      std::vector<float> all;
      int64_t elem = 0;
      for (auto [b, e] : tensors) {
        const int64_t n = e - b;
        std::vector<float> sq(static_cast<size_t>(n)), v(xm + b, xm + e), av(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) sq[size_t(i)] = xm[b + i] * xm[b + i], av[size_t(i)] = std::fabs(xm[b + i]);
        const double tsum = blocked_sum(sq.data(), n);  // of positive terms: S = tsum
        psum += tsum;
        const float tmin = *std::min_element(v.begin(), v.end()), tmax = *std::max_element(v.begin(), v.end());
        pmin = std::min<double>(pmin, tmin), pmax = std::max<double>(pmax, tmax);
        const float c_exact = kth_largest(v, 0.2 * double(n));  // density * numel() is a double
        const float d = kth_largest(v, 3);
        const float thr = kth_largest(av, 0.2 * double(n));
        all.insert(all.end(), v.begin(), v.end());
        for (int64_t i = 0; i < n; ++i) {
          const size_t at = size_t(m * row + b + i);
          REQUIRE(near(out[out_index("a")][at], float(tsum), tsum, true));
          REQUIRE(out[out_index("b")][at] == float(double(tmin) + double(tmax)));
          REQUIRE(out[out_index("c")][at] == c_exact);
          REQUIRE(out[out_index("d")][at] == d);
          // numel() * 100000 is a double, rounded to float32 where it meets elem(), a float32
          REQUIRE(out[out_index("e")][at] == float(double(n) * 100000) + float(elem + i));
          REQUIRE(out[out_index("f")][at] == (std::fabs(xm[b + i]) >= thr ? xm[b + i] : 0.0f));
        }
        elem += n;
      }
      CHECK(out[out_index("a")][size_t(m * row + 7)] == -123);  // the gap is not written
      CHECK(near(vals[out_index("s")][size_t(m)], psum, psum, false));
      CHECK(vals[out_index("mn")][size_t(m)] == pmin);
      CHECK(vals[out_index("mx")][size_t(m)] == pmax);
      CHECK(vals[out_index("pk")][size_t(m)] == double(kth_largest(all, 3)));
      CHECK(vals[out_index("n")][0] == double(P));
      double sum = -0.0, abs_sum = 0.0;
      for (auto [b, e] : tensors) sum += blocked_sum(xm + b, e - b);
      for (auto [b, e] : tensors)
        for (int64_t i = b; i < e; ++i) abs_sum += std::fabs(double(xm[i]));
      CHECK(near(vals[out_index("pm")][size_t(m)], sum / double(P), abs_sum / double(P) * (1 + 1e-15), false));
    }
  }
  at::set_num_threads(old_threads);
}

TEST_CASE("parameter axis: tkth and pkth on ties, k = 0, k > n, NaN k, NaN values, -0 and +0") {
  llvm_backend::JitEngine engine;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::vector<float> v;
    double k;
    float want;
    const char* what;
  };
  const Case cases[] = {
      {{1, 3, 3, 2}, 2, 3, "ties count with multiplicity: the 2nd largest of 3,3,2,1 is 3"},
      {{1, 3, 3, 2}, 3, 2, "the 3rd largest of 3,3,2,1 is 2"},
      {{1, 3, 3, 2}, 0, 3, "k = 0 is clamped to 1: the max"},
      {{1, 3, 3, 2}, -5, 3, "a negative k is clamped to 1"},
      {{1, 3, 3, 2}, 10, 1, "k > n is clamped to n: the min"},
      {{1, 3, 3, 2}, 2.9, 3, "k is floored"},
      {{1, 3, 3, 2}, nan, 3, "a NaN k counts as 1"},
      {{1, nan, 3, 2}, 1, nan, "NaN ranks above every number"},
      {{1, nan, 3, 2}, 2, 3, "the 2nd largest after a NaN"},
      {{-0.0f, 0.0f}, 1, 0.0f, "+0 ranks above -0"},
      {{-0.0f, 0.0f}, 2, -0.0f, "-0 is the 2nd"},
      {{-INFINITY, -1, -INFINITY}, 2, -INFINITY, "infinities are values"},
  };
  for (const Case& c : cases) {
    INFO(std::string(c.what));
    const int64_t n = int64_t(c.v.size());
    for (const char* text : {"param k = 0\ny = tkth(x, k)\n", "param k = 0\ny = pkth(x, k) - 0 * numel()\n"}) {
      ir::Graph g = rule(text);
      g.params[0].default_value = c.k;
      KernelSpec spec{DType::F32, {BindKind::Particle}};
      for (int which = 0; which < 3; ++which) {  // interp, llvm, aten
        auto k = which == 0 ? interp_passes(g, spec) : which == 1 ? llvm_passes(engine, g, spec) : aten_backend::compile(g, spec);
        auto out = run<float>(*k, g, c.v, 1, n, {{0, n}}, {false});
        CHECK_MESSAGE(same_bits(out[0][0], c.want), text << " kernel " << which << " got " << out[0][0] << " want " << c.want);
      }
    }
  }
}

// The fused reductions of the llvm backend (KernelSpec::chunk: a pass kernel sums, or takes the
// min or max of, a reduction's argument per 1024-element chunk itself, backend/llvm/Codegen.cpp
// emit_chunks) against the interpreter, whose pass kernels store the argument for the driver to
// reduce. Compared in double, where a sum's last bit is still visible: the chunk values
// themselves, and the rule's value outputs and float64 element outputs. Tensors of 1, 7, 1000,
// 1025 (a full chunk and one element) and 100,003 elements, several per particle; 1 and 2
// threads; the kernel shapes of AVX-512 (masked tail), AVX2 (scalar tail), other widths and the
// scalar loop; work items cut at chunk multiples.

namespace {

const std::vector<std::vector<int64_t>> kSumLayouts = {
    {1}, {7}, {1000}, {1025}, {100003}, {1, 7, 1000, 1025, 100003}, {1025, 1025, 7}, {100003, 1, 1025}};

bool same_double_bits(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

// Every bit of a value, for a failure message.
std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

// One chunk's value: its sum in the documented order (ir/IR.h), written out independently of
// the driver's chunk_sum, or its IEEE minimum / maximum in element order, as the driver folds.
template <class T>
double reference_chunk(ChunkReduce r, const T* x, int64_t n) {
  if (r != ChunkReduce::Sum) {
    T acc = x[0];
    for (int64_t i = 1; i < n; ++i) acc = r == ChunkReduce::Min ? ir::ieee_minimum(acc, x[i]) : ir::ieee_maximum(acc, x[i]);
    return double(acc);
  }
  double lane[32];
  std::fill(lane, lane + 32, -0.0);
  for (int64_t i = 0; i < n; ++i) lane[i % 32] += double(x[i]);
  for (int w = 16; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) lane[j] += lane[j + w];
  return lane[0];
}

}  // namespace

TEST_CASE("parameter axis: llvm chunk kernels == the documented chunk sums, mins, maxs of interp's values, bit for bit") {
  llvm_backend::JitEngine host, avx2(llvm_backend::JitOptions{32, false}), narrow(llvm_backend::JitOptions{16, false, 4}),
      one(llvm_backend::JitOptions{0, true, 1}), scalar(llvm_backend::JitOptions{4, false});
  llvm_backend::JitEngine* engines[] = {&host, &avx2, &narrow, &one, &scalar};
  const int old_threads = at::get_num_threads();
  size_t compared = 0;
  for (uint64_t seed = 0; seed < 40 / kRuleScale; ++seed) {
    ir::testing::RandomRuleOptions o;
    o.population = false;  // a chunk-sum kernel is one fused kernel
    o.in_place = false;
    o.inputs = 1 + int(seed % 3);
    o.outputs = 1 + int(seed % 3);
    o.ops = 8 + int(seed % 30);
    o.rand_sites = int(seed % 3);
    o.special_constants = seed % 5 == 0;
    const ir::Graph g = ir::optimize(ir::testing::random_rule(90000 + seed, o), {}).graph;
    for (int dt = 0; dt < 2; ++dt) {
      std::mt19937_64 rng(seed * 3 + uint64_t(dt));
      auto check = [&](auto tag) {
        using T = decltype(tag);
        test::RandomBindings<T> b(g, rng, false, 100, 0, int64_t(1 + seed % 3));
        relayout(b, kSumLayouts[seed % kSumLayouts.size()], rng);
        b.args.ranges = b.args.tensors;  // chunks start at each range: here, each tensor
        b.spec.dtype = sizeof(T) == 4 ? DType::F32 : DType::F64;
        std::vector<std::vector<T>> want;
        at::set_num_threads(1);
        b.run(*interp::compile(g, b.spec), want);
        int64_t chunks = 0;
        for (auto [lo, hi] : b.args.ranges) chunks += (hi - lo + 1023) / 1024;
        llvm_backend::JitEngine& engine = *engines[(seed + uint64_t(dt)) % std::size(engines)];
        KernelSpec spec = b.spec;
        for (size_t k = 0; k < g.outputs.size(); ++k)  // mostly sums, each kind in every rule of 3 outputs
          spec.chunk.push_back(k == 1 ? ChunkReduce::Min : k == 2 ? ChunkReduce::Max : ChunkReduce::Sum);
        auto kernel = llvm_backend::compile(engine, g, spec);
        if (auto* lk = dynamic_cast<llvm_backend::LlvmKernel*>(kernel.get()); lk && rng() % 2)
          lk->set_chunk_elements(1024 * (1 + int64_t(rng() % 3)));  // work items of 1-3 chunks
        // Run it on the bindings' inputs, each output a row of `chunks` doubles per member.
        KernelArgs a = b.args;
        for (size_t i = 0; i < g.inputs.size(); ++i)
          a.in.push_back(b.spec.kinds[i] == BindKind::Scalar         ? nullptr
                         : b.spec.kinds[i] == BindKind::MemberScalar ? static_cast<const void*>(b.member_scalars[i].data())
                                                                     : static_cast<const void*>(b.data[i].data()));
        std::vector<std::vector<double>> sums(g.outputs.size(), std::vector<double>(size_t(b.members * chunks), -123));
        for (size_t k = 0; k < g.outputs.size(); ++k) a.out.push_back(sums[k].data());
        a.out_stride.assign(g.outputs.size(), chunks);
        at::set_num_threads(1 + int(seed % 2));
        kernel->run(a);
        for (size_t k = 0; k < g.outputs.size(); ++k)
          for (int64_t m = 0; m < b.members; ++m) {
            int64_t slot = 0;
            for (auto [lo, hi] : b.args.ranges)
              for (int64_t c = lo; c < hi; c += 1024, ++slot) {
                const double ref = reference_chunk(spec.chunk[k], want[k].data() + m * b.row + c, std::min<int64_t>(1024, hi - c));
                const double got = sums[k][size_t(m * chunks + slot)];
                ++compared;
                if (!same_double_bits(ref, got)) {
                  FAIL_CHECK("seed " << seed << " output " << k << " member " << m << " chunk at " << c << ": want "
                                     << exact(ref) << ", llvm " << exact(got) << "\n" << ir::print(g));
                  return;
                }
              }
          }
      };
      if (dt == 0) check(0.0f); else check(0.0);
    }
  }
  at::set_num_threads(old_threads);
  MESSAGE(compared << " chunk values compared");
  CHECK(compared > 1000);
}

TEST_CASE("parameter axis: fused llvm reductions == interp through the driver, bit for bit (tsum, psum, tmean, pmean, min, max)") {
  llvm_backend::JitEngine engine;
  const int old_threads = at::get_num_threads();
  // Random element expressions of x, y and a param, with draws (element and keyed) and numel().
  const char* atoms[] = {"x", "y", "k", "(x * y)", "(x - y)", "abs(x)", "sqrt(abs(y))", "exp(x / 8)",
                         "(x / (abs(y) + 1))", "where(x > y, x, 3 * y)", "rand()", "randn()", "randn(2, 9)",
                         "(x * numel())", "(y * 1e-3)", "(x * 1e7)"};
  size_t compared = 0, fused_passes = 0;
  for (uint64_t seed = 0; seed < 24 / kRuleScale; ++seed) {
    std::mt19937_64 rng(1234 + seed);
    auto expr = [&]() {
      std::string e = atoms[rng() % std::size(atoms)];
      for (int t = int(rng() % 3); t > 0; --t) e += std::string(rng() % 2 ? " + " : " * ") + atoms[rng() % std::size(atoms)];
      return "(" + e + ")";
    };
    const std::string text = "param k = 0.75\n"
                             "a = tsum(" + expr() + ")\n"
                             "b = tmean(" + expr() + ") * x\n"
                             "c = tsum(" + expr() + " * tsum(" + expr() + "))\n"
                             "p = psum(" + expr() + ")\n"
                             "q = pmean(" + expr() + ")\n"
                             "r = psum(" + expr() + ") / pmean(" + expr() + " + tmean(" + expr() + "))\n"
                             "u = tmax(" + expr() + ") - tmin(" + expr() + ") * x\n"
                             "v = pmax(" + expr() + ") + pmin(" + expr() + " * tmax(" + expr() + "))\n";
    INFO(text);
    const ir::Graph g = rule(text);
    std::vector<bool> value_out;
    for (const ir::Output& out : g.outputs)
      value_out.push_back(out.name == "p" || out.name == "q" || out.name == "r" || out.name == "v");
    const std::vector<int64_t>& sizes = kSumLayouts[seed % kSumLayouts.size()];
    const int64_t M = 1 + int64_t(seed % 3);
    std::vector<std::pair<int64_t, int64_t>> tensors;
    int64_t row = 0;
    for (int64_t n : sizes) {
      row += int64_t(rng() % 3);  // gaps of non-operational elements
      tensors.push_back({row, row + n});
      row += n;
    }
    for (int dt = 0; dt < 2; ++dt) {
      auto check = [&](auto tag) {
        using T = decltype(tag);
        KernelSpec spec{sizeof(T) == 4 ? DType::F32 : DType::F64, {}};
        for (size_t i = 0; i < g.inputs.size(); ++i) spec.kinds.push_back(M > 1 ? BindKind::Swarm : BindKind::Particle);
        spec.values = value_out;
        // The llvm passes really reduce in their kernels: every pass with a reduction, but one
        // that runs as a member loop (a keyed draw of a swarm is drawn once for all members: staged).
        const ir::ParamPlan plan = ir::plan_passes(g, bind_types(spec.kinds), value_out);
        const auto kernels = param_axis::pass_kernels(g, spec);
        REQUIRE(kernels.size() == plan.passes.size());
        for (size_t p = 0; p < plan.passes.size(); ++p) {
          const bool staged = staged::needed(kernels[p].first, kernels[p].second);
          CHECK(kernels[p].second.has_chunk_outputs() == (plan.passes[p].roots > 0 && !staged));
          fused_passes += kernels[p].second.has_chunk_outputs();
        }
        std::vector<std::vector<T>> inputs(g.inputs.size(), std::vector<T>(size_t(M * row)));
        for (auto& in : inputs)
          for (auto& v : in) v = T((double(rng() % 20001) - 10000.0) / 997.0);
        auto run_kernel = [&](const Kernel& kernel, std::vector<std::vector<T>>& out, std::vector<std::vector<double>>& vals) {
          KernelArgs a;
          a.members = M;
          a.tensors = tensors;
          a.ranges = tensors;
          a.seed = 77 + seed;
          a.invocation = 3;
          for (auto& in : inputs) {
            a.in.push_back(in.data());
            a.in_stride.push_back(M > 1 ? row : 0);
            a.scalar.push_back(0);
          }
          for (auto& p : g.params) a.params.push_back(p.default_value);
          out.assign(g.outputs.size(), std::vector<T>(size_t(M * row), T(-123)));
          vals.assign(g.outputs.size(), std::vector<double>(size_t(M), -123));
          for (size_t o = 0; o < g.outputs.size(); ++o) {
            a.out.push_back(value_out[o] ? static_cast<void*>(vals[o].data()) : static_cast<void*>(out[o].data()));
            a.out_stride.push_back(row);
          }
          kernel.run(a);
        };
        std::vector<std::vector<T>> want, got;
        std::vector<std::vector<double>> want_vals, got_vals;
        at::set_num_threads(1);
        run_kernel(*interp_passes(g, spec), want, want_vals);
        for (int threads : {1, 2}) {
          at::set_num_threads(threads);
          run_kernel(*llvm_passes(engine, g, spec), got, got_vals);
          for (size_t o = 0; o < g.outputs.size(); ++o) {
            if (value_out[o]) {
              for (int64_t m = 0; m < M; ++m, ++compared)
                REQUIRE_MESSAGE(same_double_bits(want_vals[o][size_t(m)], got_vals[o][size_t(m)]),
                                g.outputs[o].name << " member " << m << ", " << threads << " threads: interp "
                                                  << exact(want_vals[o][size_t(m)]) << ", llvm "
                                                  << exact(got_vals[o][size_t(m)]));
              continue;
            }
            for (size_t e = 0; e < want[o].size(); ++e, ++compared)
              if (!same_bits(want[o][e], got[o][e]))
                FAIL(g.outputs[o].name << " element " << e << ", " << threads << " threads: interp "
                                       << exact(double(want[o][e])) << ", llvm " << exact(double(got[o][e])));
          }
        }
      };
      if (dt == 0) check(0.0f); else check(0.0);
    }
  }
  at::set_num_threads(old_threads);
  MESSAGE(compared << " values compared, " << fused_passes << " pass kernels with fused reductions");
  CHECK(fused_passes >= 24 / kRuleScale);
}

// Member windows (the ranks' blocks) over llvm's passes: rules whose reductions along the
// parameter axis do not vary per member and whose pass kernels read no rows across members
// (PGPE's shape; sep-CMA-ES's, whose member sums of rows are folded over the windows) compute
// the windows' rows, and what is stored once, with the bits of interp's passes on the whole
// population, 1-3 windows run at once; the others refuse the window (Kernel::member_window()
// agrees with param_axis::windowable).
TEST_CASE("parameter axis: llvm passes on member windows == interp passes on every member") {
  llvm_backend::JitEngine engine;
  size_t windowed = 0, refused = 0, folded = 0, messages = 0, compared = 0;
  for (uint64_t seed = 0; seed < 400 / kRuleScale; ++seed) {
    ir::testing::RandomRuleOptions o;
    o.param_axis = true;
    o.population = true;
    o.inputs = 1 + int(seed % 3);
    o.params = int(seed % 2);
    o.outputs = 1 + int(seed % 2);
    o.ops = 10 + int(seed % 20);
    o.rand_sites = int(seed % 3);
    const ir::Graph g = ir::optimize(ir::testing::random_rule(70000 + seed, o), {}).graph;
    if (!ir::has_param_axis(g)) continue;
    std::mt19937_64 rng(seed * 11 + 5);
    test::RandomBindings<float> b(g, rng, rng() % 2 == 0, 100, 0, int64_t(2 + seed % 4));
    relayout(b, kLayouts[seed % kLayouts.size()], rng);
    auto got_k = llvm_passes(engine, g, b.spec);
    CHECK(got_k->member_window() == param_axis::windowable(g, b.spec));
    if (!got_k->member_window()) {
      ++refused;
      continue;
    }
    std::vector<int64_t> cuts;
    for (uint64_t k = rng() % 3; k > 0; --k) cuts.push_back(int64_t(rng() % uint64_t(b.members + 1)));
    const auto windows = test::windows_of(cuts, b.members);
    std::vector<std::vector<float>> want;
    b.run(*interp_passes(g, b.spec), want);
    const test::WindowRuns<float> got = test::run_windows<float>(b, *got_k, windows, int64_t(1024) << (rng() % 3));
    ++windowed;
    folded += got_k->member_folds();
    messages += got.messages;
    const std::string diff = test::first_difference(want, got, windows, b.row, compared);
    if (!diff.empty()) FAIL_CHECK("seed " << 70000 + seed << " " << diff << "\n" << param_axis::describe(g, b.spec));
  }
  MESSAGE(windowed << " windowed runs (" << folded << " with member folds, " << messages << " fold messages), "
                   << refused << " refused, " << compared << " values compared");
  CHECK(windowed > 50 / kRuleScale);
  CHECK(folded > 5 / kRuleScale);
  CHECK(refused > 50 / kRuleScale);
}
