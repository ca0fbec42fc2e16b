// The parameter-axis constructs (tsum, tmin, tmax, psum, pmin, pmax, tkth, pkth, numel(), elem(),
// elems()) on the aten backend against interp and llvm, through the public runtime: sums within
// the bound backend/aten/AtenBackend.h states, everything else exactly (the sign of a zero and NaN
// included), on a module with tensors of 1, 7, 1000 and 100003 elements (10007 under sanitizers)
// and a non-operational one between them, float32 and float64, one particle and swarms of 3.
#include "tests/doctest_torch.h"
#include <nyto/nyto.h>

#include <torch/nn/cloneable.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

using nyto::AnyParticle;
using nyto::Backend;

namespace {

// Under sanitizers (tests/CMakeLists.txt), where the interpreter runs ~15x slower, the big tensor
// has 10,007 elements: still many 1024-element chunks and a partial one.
#ifdef NYTO_TEST_SANITIZED
constexpr int64_t kBig = 10007;
#else
constexpr int64_t kBig = 100003;
#endif

// Tensors of 1, 7, 1000 and kBig elements, and `skip` (5), made non-operational by the tests,
// between b and c so the operational storage is two ranges.
struct ShapesImpl : torch::nn::Cloneable<ShapesImpl> {
  ShapesImpl() { reset(); }
  void reset() override {
    a = register_parameter("a", torch::zeros({1}));
    b = register_parameter("b", torch::zeros({7}));
    skip = register_parameter("skip", torch::zeros({5}));
    c = register_parameter("c", torch::zeros({10, 100}));
    d = register_parameter("d", torch::zeros({kBig}));
  }
  at::Tensor a, b, skip, c, d;
};

const std::vector<int64_t> kSizes = {1, 7, 1000, kBig};  // the operational tensors, in order
const int64_t kP = 1 + 7 + 1000 + kBig;

enum class Data { Plain, Ties, Special };

// A particle (members == 0) or a swarm of `members` of Shapes in `dtype`, with `skip`
// non-operational and filled with values that would show in any reduction (1e30, NaN).
// Plain: normal draws. Ties: multiples of 0.5 in [-2, 2] (many repeats, +0 and -0; tensor a is
// -0). Special: normal draws with NaN, +-inf, -0 and +0 here and there.
nyto::Value make_x(at::ScalarType dtype, int64_t members, Data data, uint64_t seed) {
  auto module = std::make_shared<ShapesImpl>();
  module->to(dtype);
  auto base = nyto::make_particle_from(module);
  base.set_param_config(false, true, "skip");
  at::manual_seed(seed);
  const int64_t rows = std::max<int64_t>(members, 1);
  auto fill = [&](nyto::Particle<ShapesImpl> p) {
    torch::NoGradGuard g;
    for (at::Tensor* t : {&p->a, &p->b, &p->c, &p->d}) {
      at::Tensor v = at::randn({t->numel()}, at::kDouble);
      if (data == Data::Ties) {
        v = at::round(v * 2).clamp(-4, 4) / 2;
        v = at::where(v.eq(0) & (at::rand_like(v) < 0.5), at::full_like(v, -0.0), v);
      }
      if (data == Data::Special && v.numel() > 1) {
        const int64_t n = v.numel();
        v[n / 2] = std::numeric_limits<double>::quiet_NaN();
        v[0] = INFINITY;
        v[n - 1] = -INFINITY;
        v[n / 3] = -0.0;
        if (n > 6) v[n / 5] = 0.0;
      }
      t->view(-1).copy_(v);
    }
    if (data == Data::Ties) p->a.fill_(-0.0);  // a tensor of -0 only: tsum = -0
    p->skip.copy_(at::tensor(std::vector<double>{1e30, -1e30, NAN, 1e30, 0.0}));
  };
  if (members == 0) {
    fill(nyto::Particle<ShapesImpl>(base));
    return nyto::Value(AnyParticle(base));
  }
  nyto::Swarm<ShapesImpl> x(base, rows);
  for (int64_t m = 0; m < rows; ++m) fill(nyto::Particle<ShapesImpl>(x.member(m)));
  return nyto::Value(nyto::AnySwarm(x));
}

// A particle or swarm output as one [rows, P] double tensor of the operational elements, in
// storage order (a, b, c, d).
at::Tensor elements(const nyto::Value& v) {
  std::vector<at::Tensor> rows;
  auto take = [&](const AnyParticle& p) {
    nyto::Particle<ShapesImpl> q(p);
    rows.push_back(at::cat({q->a.reshape(-1), q->b.reshape(-1), q->c.reshape(-1), q->d.reshape(-1)})
                       .detach().to(at::kDouble).unsqueeze(0));
  };
  if (v.kind() == nyto::Value::Kind::Particle) {
    take(v.particle());
  } else {
    const nyto::AnySwarm& s = v.swarm();
    for (int64_t m = 0; m < s.size(); ++m) take(s.member(m));
  }
  return at::cat(rows, 0);
}

std::vector<double> values_of(const nyto::Value& v) {
  if (v.kind() == nyto::Value::Kind::Scalar) return {v.scalar()};
  REQUIRE(v.kind() == nyto::Value::Kind::MemberScalars);
  return v.member_scalars();
}

// The same value: both NaN, or equal with the same sign (so -0 != +0).
bool same(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}
// Elementwise `same` over two tensors; the number of differing elements.
int64_t differing(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  const at::Tensor nan = at::isnan(a) | at::isnan(b);
  const at::Tensor ok = at::where(nan, at::isnan(a) & at::isnan(b), a.eq(b) & at::signbit(a).eq(at::signbit(b)));
  return (~ok).sum().item<int64_t>();
}
// |a - b| <= tol elementwise (equal when not finite).
int64_t outside(const at::Tensor& a, const at::Tensor& b, const at::Tensor& tol) {
  const at::Tensor finite = at::isfinite(a) & at::isfinite(b);
  const at::Tensor ok = at::where(finite, (a - b).abs() <= tol, (at::isnan(a) & at::isnan(b)) | a.eq(b));
  return (~ok).sum().item<int64_t>();
}

using Outputs = std::map<std::string, nyto::Value>;

Outputs run(const nyto::Rule& rule, const nyto::Value& x, Backend b, const std::map<std::string, double>& params = {}) {
  nyto::RunOptions opt;
  opt.backend = b;
  opt.params = params;
  return rule.run({{"x", x}}, opt);
}

const char* name_of(Backend b) { return b == Backend::Llvm ? "llvm" : b == Backend::Interp ? "interp" : "aten"; }

// The per-tensor column ranges of the operational elements [P] in storage order.
std::vector<std::pair<int64_t, int64_t>> columns() {
  std::vector<std::pair<int64_t, int64_t>> r;
  int64_t at = 0;
  for (int64_t n : kSizes) r.emplace_back(at, at + n), at += n;
  return r;
}

const char* kSums = R"(
ts = tsum(x)
ta = tsum(abs(x))
tm = tmean(x)
tz = 1 / tsum(x)
ps = psum(x * x)
pm = pmean(x)
pa = psum(abs(x))
n = sqrt(tsum(x * x))
y = x / n
)";

const char* kExact = R"(
param kt = 3
param kp = 5
param density = 0.2
tmn = tmin(x)
tmx = tmax(x)
pmn = pmin(x)
pmx = pmax(x)
k1 = tkth(x, kt)
k2 = tkth(abs(x), density * numel())
k3 = tkth(x, kt + 2 * member())
k4 = pkth(x, kp)
k5 = pkth(x, kp + 1000 * member())
k6 = pkth(-x, kp) + tkth(x, kt) * 0.5
z = where(abs(x) >= tkth(abs(x), density * numel()), x, 0)
ne = numel()
el = elem()
es = elems()
w = numel() + elem() + elems() + tmax(x)
)";

}  // namespace

TEST_CASE("aten: tsum, tmean, psum, pmean within the stated bound of interp and llvm") {
  const nyto::Rule rule = nyto::compile(kSums, "sums.nyto");
  double worst = 0;  // the largest |aten - interp| / S of a psum seen
  for (at::ScalarType dtype : {at::kFloat, at::kDouble})
    for (int64_t members : {0, 3})
      for (Data data : {Data::Plain, Data::Ties, Data::Special}) {
        CAPTURE(dtype);
        CAPTURE(members);
        CAPTURE(int(data));
        const nyto::Value x = make_x(dtype, members, data, 11 + uint64_t(members));
        const Outputs ref = run(rule, x, Backend::Interp);
        const double eps = dtype == at::kFloat ? 0x1p-24 : 0x1p-53;  // half an ulp, relative
        for (Backend b : {Backend::Llvm, Backend::Aten}) {
          CAPTURE(name_of(b));
          const Outputs got = run(rule, x, b);
          if (b == Backend::Llvm) {  // the blocked order of ir/IR.h: the same bits
            for (const char* o : {"ts", "ta", "tm", "tz", "n", "y"}) {
              CAPTURE(o);
              CHECK(differing(elements(got.at(o)), elements(ref.at(o))) == 0);
            }
            for (const char* o : {"ps", "pm", "pa"}) {
              const auto g = values_of(got.at(o)), r = values_of(ref.at(o));
              for (size_t m = 0; m < r.size(); ++m) CHECK(same(g[m], r[m]));
            }
            continue;
          }
          // A sum within 1e-12 of the sum of |terms| in double, then rounded to the dtype where it
          // is stored per element: one more rounding, up to an ulp of the value apart.
          const at::Tensor ta = elements(ref.at("ta")).abs();
          const at::Tensor ts = elements(ref.at("ts"));
          CHECK(outside(elements(got.at("ts")), ts, 1e-12 * ta * (1 + 4 * eps) + 2 * eps * ts.abs()) == 0);
          std::vector<double> numel;
          for (int64_t n : kSizes) numel.insert(numel.end(), size_t(n), double(n));
          const at::Tensor ne = at::tensor(numel, at::kDouble);
          const at::Tensor tm = elements(ref.at("tm"));
          CHECK(outside(elements(got.at("tm")), tm, 1e-12 * ta / ne * (1 + 4 * eps) + 2 * eps * tm.abs()) == 0);
          CHECK(outside(elements(got.at("ta")), ta, 1e-12 * ta * (1 + 4 * eps) + 2 * eps * ta) == 0);
          // tz = 1 / tsum(x): the sign of an all -0 tensor's sum (tensor a in Ties) is kept.
          const at::Tensor tz = elements(ref.at("tz")), tzg = elements(got.at("tz"));
          CHECK(differing(tzg.narrow(1, 0, 1), tz.narrow(1, 0, 1)) == 0);
          if (data == Data::Ties) CHECK(tzg[0][0].item<double>() == -INFINITY);
          // psum / pmean are value outputs, in double.
          const auto ps = values_of(got.at("ps")), psr = values_of(ref.at("ps"));
          const auto pm = values_of(got.at("pm")), pmr = values_of(ref.at("pm"));
          const auto pa = values_of(ref.at("pa")), pag = values_of(got.at("pa"));
          REQUIRE(ps.size() == size_t(std::max<int64_t>(members, 1)));
          for (size_t m = 0; m < psr.size(); ++m) {
            CAPTURE(m);
            if (std::isfinite(psr[m])) {
              CHECK(std::abs(ps[m] - psr[m]) <= 1e-12 * psr[m]);
              worst = std::max(worst, std::abs(ps[m] - psr[m]) / psr[m]);
              CHECK(std::abs(pm[m] - pmr[m]) <= 1e-12 * pa[m] / double(kP) * (1 + 1e-15));
              CHECK(std::abs(pag[m] - pa[m]) <= 1e-12 * pa[m]);
            } else {
              CHECK(same(ps[m], psr[m]));
              CHECK(same(pm[m], pmr[m]));
            }
          }
          // y = x / sqrt(tsum(x * x)): n within the bound before rounding; y a few ulp apart.
          const at::Tensor y = elements(ref.at("y"));
          CHECK(outside(elements(got.at("y")), y, 4 * eps * y.abs() + 1e-300) == 0);
        }
      }
  MESSAGE("psum: aten within " << worst << " * sum |a| of interp (bound 1e-12)");
}

TEST_CASE("aten: tmin, tmax, pmin, pmax, tkth, pkth, numel, elem, elems exactly as interp and llvm") {
  const nyto::Rule rule = nyto::compile(kExact, "exact.nyto");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::map<std::string, double>> ks = {
      {}, {{"kt", 0}, {"kp", 0}}, {{"kt", 1e9}, {"kp", 1e12}}, {{"kt", nan}, {"kp", nan}},
      {{"kt", -4}, {"kp", 2.9}, {"density", 1.0}}, {{"kt", 7.5}, {"kp", 101010}, {"density", 0.0}}};
  for (at::ScalarType dtype : {at::kFloat, at::kDouble})
    for (int64_t members : {0, 3})
      for (Data data : {Data::Plain, Data::Ties, Data::Special})
        for (size_t p = 0; p < ks.size(); ++p) {
          if (data == Data::Plain && p > 1) continue;  // the k edge cases on ties and specials
          CAPTURE(dtype);
          CAPTURE(members);
          CAPTURE(int(data));
          CAPTURE(p);
          const nyto::Value x = make_x(dtype, members, data, 5 + uint64_t(members) + 100 * uint64_t(data));
          const Outputs ref = run(rule, x, Backend::Interp, ks[p]);
          for (Backend b : {Backend::Llvm, Backend::Aten}) {
            CAPTURE(name_of(b));
            const Outputs got = run(rule, x, b, ks[p]);
            for (const char* o : {"tmn", "tmx", "k1", "k2", "k3", "k6", "z", "ne", "el", "w"}) {
              CAPTURE(o);
              CHECK(differing(elements(got.at(o)), elements(ref.at(o))) == 0);
            }
            for (const char* o : {"pmn", "pmx", "k4", "k5", "es"}) {
              CAPTURE(o);
              const auto g = values_of(got.at(o)), r = values_of(ref.at(o));
              REQUIRE(g.size() == r.size());
              for (size_t m = 0; m < r.size(); ++m) CHECK(same(g[m], r[m]));
            }
          }
          if (p != 0) continue;
          // Hand-made expectations (aten's outputs, now known equal to interp's).
          const Outputs a = run(rule, x, Backend::Aten, ks[p]);
          const at::Tensor xs = elements(x);
          const int64_t rows = xs.size(0);
          CHECK(values_of(a.at("es")) == std::vector<double>{double(kP)});
          const at::Tensor el = elements(a.at("el")), ne = elements(a.at("ne"));
          const at::Tensor iota = at::arange(kP, at::kDouble).to(dtype).to(at::kDouble);
          CHECK(differing(el[0], iota) == 0);
          for (auto [b, e] : columns()) CHECK((ne[0].narrow(0, b, e - b) == double(e - b)).all().item<bool>());
          const auto pmx = values_of(a.at("pmx")), pmn = values_of(a.at("pmn")), k4 = values_of(a.at("k4"));
          for (int64_t m = 0; m < rows; ++m) {
            CAPTURE(m);
            if (data == Data::Special) {  // NaN propagates; NaN is the largest for pkth
              CHECK(std::isnan(pmx[size_t(m)]));
              CHECK(std::isnan(pmn[size_t(m)]));
              continue;
            }
            CHECK(pmx[size_t(m)] == xs[m].max().item<double>());  // skip's 1e30 takes no part
            CHECK(pmn[size_t(m)] == xs[m].min().item<double>());
            CHECK(k4[size_t(m)] == std::get<0>(at::topk(xs[m], 5)).index({4}).item<double>());
            const at::Tensor k1 = elements(a.at("k1"));
            for (auto [b, e] : columns()) {
              const int64_t k = std::min<int64_t>(3, e - b);
              CHECK(k1[k1.size(0) == 1 ? 0 : m][b].item<double>() ==
                    std::get<0>(at::topk(xs[m].narrow(0, b, e - b), k)).index({k - 1}).item<double>());
            }
          }
        }
}

TEST_CASE("aten: parameter-axis rules in place, and a rule of value outputs only") {
  const nyto::Rule norm = nyto::compile("mx = pmax(x)\nx = x / sqrt(tsum(x * x))", "norm.nyto");
  const nyto::Rule prune = nyto::compile("x = where(abs(x) >= tkth(abs(x), 2), x, 0)", "prune.nyto");
  const nyto::Rule only = nyto::compile("s = psum(x * x)\nq = pkth(x, 3) + elems()", "only.nyto");
  for (at::ScalarType dtype : {at::kFloat, at::kDouble})
    for (int64_t members : {0, 1, 3}) {
      CAPTURE(dtype);
      CAPTURE(members);
      std::map<Backend, at::Tensor> normed, pruned;
      std::map<Backend, std::vector<double>> mx, s, q;
      for (Backend b : {Backend::Interp, Backend::Llvm, Backend::Aten}) {
        CAPTURE(name_of(b));
        const nyto::Value x = make_x(dtype, members, Data::Ties, 3);
        const nyto::Value x2 = make_x(dtype, members, Data::Plain, 4);
        const Outputs o = run(norm, x, b);
        CHECK(o.size() == 1);  // x in place
        normed[b] = elements(x);
        mx[b] = values_of(o.at("mx"));
        CHECK(run(prune, x2, b).empty());
        pruned[b] = elements(x2);
        const Outputs v = run(only, x2, b);
        s[b] = values_of(v.at("s"));
        q[b] = values_of(v.at("q"));
      }
      const double eps = dtype == at::kFloat ? 0x1p-24 : 0x1p-53;
      for (Backend b : {Backend::Llvm, Backend::Aten}) {
        CAPTURE(name_of(b));
        const at::Tensor& r = normed[Backend::Interp];
        CHECK(outside(normed[b], r, 4 * eps * r.abs()) == 0);
        CHECK(differing(pruned[b], pruned[Backend::Interp]) == 0);
        // mx = pmax(x) is of the x before the rule writes it: the inputs' max (Ties: 2).
        for (size_t m = 0; m < mx[b].size(); ++m) {
          CHECK(same(mx[b][m], mx[Backend::Interp][m]));
          CHECK(mx[b][m] == 2.0);
          CHECK(std::abs(s[b][m] - s[Backend::Interp][m]) <= 1e-12 * s[Backend::Interp][m]);
          CHECK(same(q[b][m], q[Backend::Interp][m]));
        }
      }
    }
}
