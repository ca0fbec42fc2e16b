// Population rules of language version 1 through the public API (Rule::run, llvm backend), against
// eager LibTorch written the usual way, on a swarm of 32 MLPs 784-1024-256-10 (1,068,810 float32
// parameters each) and on the tiny swarm (8 x 131). One JSON object per line, as nyto_bench_pso.
//
//   es-big / es-tiny, impl rule: OpenAI-ES tell + ask (examples/rules/openai_es.nyto): mu -=
//     lr * msum(centered_rank(f) * s * randn(g, j)) / (M sigma); x = mu + sigma * s * randn(g+1, j),
//     keyed noise regenerated, x updated in place. Bytes per step: mu read and written, x written:
//     4 P (M + 2).
//   es-big, impl eager: the same step on flat float32 tensors: per member a generator seeded by
//     (g, j) regenerates its noise (at::randn), the weighted noise is summed, mu updated, then per
//     member the next noise is drawn and x = mu + sigma * s * noise written.
//   de-big / de-tiny, impl rule: DE/rand/1/bin (examples/rules/de.nyto) with p, x swarms (in
//     place) and pf, f per-member vectors. Bytes: p and x read and written: 16 M P.
//   de-big, impl eager: where(f <= pf) selection, index_select of three random partners,
//     rand() < CR crossover by where(), on [M, P] float32 tensors.
//
// Usage: nyto_bench_population [--quick] [--case es-big|es-tiny|de-big|de-tiny]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nyto/nyto.h>

#include "bench/bench_api.h"
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace {


using nyto::bench::median_ms;
using nyto::bench::mlp;

void print(const std::string& c, const char* impl, int threads, double ms, double bytes) {
  std::printf("{\"case\": \"%s\", \"impl\": \"%s\", \"threads\": %d, \"ms_median\": %.6g, \"us_median\": %.6g, "
              "\"gbps\": %.4g, \"bytes_per_step\": %.6g}\n",
              c.c_str(), impl, threads, ms, ms * 1e3, bytes / (ms * 1e-3) / 1e9, bytes);
  std::fflush(stdout);
}

const char* kEs = R"(param sigma = 0.1
param lr = 0.05
let h = members() / 2
let s = where(member() < h, 1, -1)
let j = mod(member(), h)
mu = mu - lr * msum(centered_rank(f) * s * randn(g, j)) / (members() * sigma)
x = mu + sigma * s * randn(g + 1, j)
)";

const char* kDe = R"(param F = 0.8
param CR = 0.9
p = where(f <= pf, x, p)
pf = where(f <= pf, f, pf)
x = where(rand() < CR, p[pick(0)] + F * (p[pick(1)] - p[pick(2)]), p)
)";

std::vector<double> centered_ranks(const std::vector<double>& f) {
  const size_t M = f.size();
  std::vector<size_t> order(M);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return f[a] < f[b]; });
  std::vector<double> r(M);
  for (size_t i = 0; i < M; ++i) r[order[i]] = M == 1 ? 0.0 : double(i) / double(M - 1) - 0.5;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--case" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--case es-big|es-tiny|de-big|de-tiny]\n", argv[0]);
      return 2;
    }
  }
  auto es = nyto::compile(kEs, "openai_es.nyto");
  auto de = nyto::compile(kDe, "de.nyto");
  for (const nyto::bench::SwarmSize& sz : nyto::bench::swarm_sizes()) {
    const bool big = std::string(sz.name) == "big";
    const int64_t M = sz.members;
    auto seed = nyto::make_particle_from(mlp(sz.widths).ptr());
    const int64_t P = seed.storage()[0].numel();
    std::vector<double> f(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) f[size_t(m)] = double((m * 7919) % M) + 0.5;
    const int samples = quick ? 3 : big ? 11 : 25, batch = big ? 1 : 2000;

    const std::string es_case = std::string("es-") + sz.name;
    if (only.empty() || only == es_case) {
      auto mu = seed.clone();
      nyto::AnySwarm x(seed, M, nyto::SwarmInit::Randn);
      nyto::Bindings b{{"mu", mu}, {"x", x}, {"f", f}, {"g", 7.0}};
      const double bytes = 4.0 * double(P) * double(M + 2);
      for (int t : {2, 1}) {
        at::set_num_threads(t);
        print(es_case, "rule", t, median_ms([&] { es.run(b); }, samples, batch), bytes);
      }
      if (big) {
        at::Tensor mu_t = at::randn({P}), xs = at::empty({M, P});
        const std::vector<double> w = centered_ranks(f);
        const double sigma = 0.1, lr = 0.05;
        auto step = [&] {
          at::NoGradGuard no_grad;
          const int64_t h = M / 2;
          at::Tensor grad = at::zeros({P});
          for (int64_t m = 0; m < M; ++m) {
            at::Generator gen = at::detail::createCPUGenerator(uint64_t(7 * 1000 + m % h));
            at::Tensor eps = at::randn({P}, gen);
            grad.add_(eps, w[size_t(m)] * (m < h ? 1.0 : -1.0));
          }
          mu_t.sub_(grad, lr / (double(M) * sigma));
          for (int64_t m = 0; m < M; ++m) {
            at::Generator gen = at::detail::createCPUGenerator(uint64_t(8 * 1000 + m % h));
            at::Tensor eps = at::randn({P}, gen);
            xs[m].copy_(mu_t + eps * (sigma * (m < h ? 1.0 : -1.0)));
          }
        };
        for (int t : {2, 1}) {
          at::set_num_threads(t);
          print(es_case, "eager", t, median_ms(step, samples, batch), bytes);
        }
      }
    }

    const std::string de_case = std::string("de-") + sz.name;
    if (only.empty() || only == de_case) {
      nyto::AnySwarm p(seed, M, nyto::SwarmInit::Randn), x(seed, M, nyto::SwarmInit::Randn);
      std::vector<double> pf(static_cast<size_t>(M));
      for (int64_t m = 0; m < M; ++m) pf[size_t(m)] = double((m * 31) % M);
      nyto::Bindings b{{"p", p}, {"x", x}, {"pf", pf}, {"f", f}};
      const double bytes = 16.0 * double(M) * double(P);
      for (int t : {2, 1}) {
        at::set_num_threads(t);
        print(de_case, "rule", t, median_ms([&] { de.run(b); }, samples, batch), bytes);
      }
      if (big) {
        at::Tensor pt = at::randn({M, P}), xt = at::randn({M, P});
        at::Tensor ft = at::tensor(f, at::kDouble), pft = at::tensor(pf, at::kDouble);
        auto step = [&] {
          at::NoGradGuard no_grad;
          at::Tensor better = (ft <= pft).unsqueeze(1);
          pt = at::where(better, xt, pt);
          pft = at::where(better.squeeze(1), ft, pft);
          // Three distinct partners per member other than itself.
          at::Tensor perm = at::argsort(at::rand({M, M}) + at::eye(M) * 2, int64_t(1), false).narrow(1, 0, 3);
          at::Tensor a = pt.index_select(0, perm.select(1, 0)), bb = pt.index_select(0, perm.select(1, 1)),
                     c = pt.index_select(0, perm.select(1, 2));
          xt = at::where(at::rand({M, P}) < 0.9, a + 0.8 * (bb - c), pt);
        };
        for (int t : {2, 1}) {
          at::set_num_threads(t);
          print(de_case, "eager", t, median_ms(step, samples, batch), bytes);
        }
      }
    }
  }
  return 0;
}
