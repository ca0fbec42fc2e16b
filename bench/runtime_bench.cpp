// End-to-end benchmarks through the public API, on real modules: a compiled rule run on swarms of
// MLPs (what a trainer pays per step, binding checks included), and a lazy particle expression
// against the same arithmetic written as eager per-parameter LibTorch operations. One JSON object
// per line, as nyto_bench_pso.
//
//   case pso-big / pso-tiny, impl rule: Rule::run of the PSO rule (llvm backend) on Swarm<MLP>
//     with x, v, pbest swarms and gbest a particle; gbps counts 24 bytes per element. pso-big's
//     threads = 1 line adds memory: storage_mb (the three swarms' and gbest's flat storage),
//     rss_before_mb (resident set before any of it was made), peak_rss_mb (the process's peak
//     resident set over the runs, /proc/self/status VmHWM, reset once the swarms exist) and
//     peak_over_storage = (peak_rss_mb - rss_before_mb) / storage_mb; rss_created_mb (resident
//     once the swarms exist) and run_extra_mb = peak_rss_mb - rss_created_mb, what the runs add:
//     0 when a run allocates nothing the size of a particle.
//   case rand-tsum, impl rule: x = x + 1e-9 * tsum(rand()) on pso-big's swarm size
//     (one swarm): a per-tensor sum of draws, a chunk kernel that draws, then the shift; gbps
//     counts 8 bytes per element (x read and written).
//   case expr-big, impl lazy | eager: x = 0.5*x + 10*y - x*y on one 1,068,810-parameter MLP
//     (lazy: one fused kernel; eager: ATen ops per parameter tensor, each producing a
//     temporary, as particle arithmetic without fusion computes it); gbps counts 12 bytes per
//     element (x, y read; result written).
//
// Usage: nyto_bench_runtime [--quick] [--case NAME]
#include <ATen/Parallel.h>
#include <nyto/nyto.h>

#include "bench/bench_api.h"
#include <time.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {


using nyto::bench::median_ms;
using nyto::bench::mlp;

void print(const char* c, const char* impl, int threads, double ms, double bytes, const std::string& extra = "") {
  std::printf("{\"case\": \"%s\", \"impl\": \"%s\", \"threads\": %d, \"ms_median\": %.6g, \"gbps\": %.4g%s}\n",
              c, impl, threads, ms, bytes / (ms * 1e-3) / 1e9, extra.c_str());
  std::fflush(stdout);
}

// A field of /proc/self/status in MB ("VmRSS", "VmHWM"; given there in kB).
double status_mb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::strtod(line.c_str() + field.size() + 1, nullptr) / 1024.0;
  return -1;
}
// Restarts VmHWM from the current resident set (Linux: clear_refs 5).
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

const char* kPso = R"(param w  = 0.729
param c1 = 1.49445
param c2 = 1.49445
v = w*v + c1*rand()*(pbest - x) + c2*rand()*(gbest - x)
x = x + v
)";

// A per-tensor sum of draws: its pass is a chunk kernel that draws (then x is shifted by it).
const char* kRandTsum = "x = x + 1e-9 * tsum(rand())\n";

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;  // --case NAME: that case alone (e.g. pso-tiny, to profile Rule::run's overhead)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--case" && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--case pso-big|pso-tiny|rand-tsum|expr-big]\n", argv[0]);
      return 2;
    }
  }
  auto pso = nyto::compile(kPso, "pso.nyto");
  for (const nyto::bench::SwarmSize& c : nyto::bench::swarm_sizes()) {
    const std::string name = std::string("pso-") + c.name;
    if (!only.empty() && only != name) continue;
    const double rss_before = status_mb("VmRSS");
    auto seed = nyto::make_particle_from(mlp(c.widths).ptr());
    nyto::AnySwarm x(seed, c.members, nyto::SwarmInit::Randn), v(seed, c.members, nyto::SwarmInit::Randn),
        pbest(seed, c.members, nyto::SwarmInit::Randn);
    const double storage_mb = 4.0 * double((3 * c.members + 1) * seed.storage()[0].numel()) / (1024.0 * 1024.0);
    const double rss_created = status_mb("VmRSS");
    reset_peak_rss();
    nyto::Bindings b{{"x", x}, {"v", v}, {"pbest", pbest}, {"gbest", seed}};
    bool big = c.members * seed.storage()[0].numel() > 100000;
    double bytes = 24.0 * double(c.members * seed.storage()[0].numel());
    for (int t : {2, 1}) {
      at::set_num_threads(t);
      double ms = median_ms([&] { pso.run(b); }, quick ? 3 : big ? 15 : 25, big ? 1 : 2000);
      std::string memory;
      if (big && t == 1) {
        const double peak = status_mb("VmHWM");
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      ", \"storage_mb\": %.1f, \"rss_before_mb\": %.1f, \"rss_created_mb\": %.1f, "
                      "\"peak_rss_mb\": %.1f, \"peak_over_storage\": %.3f, \"run_extra_mb\": %.1f",
                      storage_mb, rss_before, rss_created, peak, (peak - rss_before) / storage_mb, peak - rss_created);
        memory = buf;
      }
      print(name.c_str(), "rule", t, ms, bytes, memory);
    }
  }

  if (only.empty() || only == "rand-tsum") {
    auto rule = nyto::compile(kRandTsum, "rand_tsum.nyto");
    const nyto::bench::SwarmSize& c = nyto::bench::swarm_sizes().front();
    auto seed = nyto::make_particle_from(mlp(c.widths).ptr());
    nyto::AnySwarm x(seed, c.members, nyto::SwarmInit::Randn);
    nyto::Bindings b{{"x", x}};
    const double bytes = 8.0 * double(c.members * seed.storage()[0].numel());
    for (int t : {2, 1}) {
      at::set_num_threads(t);
      print("rand-tsum", "rule", t, median_ms([&] { rule.run(b); }, quick ? 3 : 15, 1), bytes);
    }
  }

  if (!only.empty() && only != "expr-big") return 0;
  auto x = nyto::make_particle_from(mlp({784, 1024, 256, 10}).ptr());
  auto y = x.randn();
  double bytes = 12.0 * double(x.storage()[0].numel());
  for (int t : {2, 1}) {
    at::set_num_threads(t);
    double lazy = median_ms([&] { nyto::AnyParticle r = 0.5 * x + 10 * y - x * y; }, quick ? 3 : 15, 1);
    print("expr-big", "lazy", t, lazy, bytes);
    std::vector<at::Tensor> xs = x.param_tensors(), ys = y.param_tensors();
    double eager = median_ms([&] {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < xs.size(); ++i) {
        at::Tensor r = xs[i] * 0.5 + ys[i] * 10 - xs[i] * ys[i];
      }
    }, quick ? 3 : 15, 1);
    print("expr-big", "eager", t, eager, bytes);
  }
  return 0;
}
