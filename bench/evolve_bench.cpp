// Fitness evaluation of a swarm of zoo classifiers (cli/Fitness.h), the per-generation cost of
// gradient-free training: the mean NLL loss of every member on 1,000 images, as FitnessEvaluator
// computes it against a plain LibTorch loop of member forwards. One JSON object per line, as the
// other benches.
//
//   evolve-eval-mlp: 64 members of the zoo's mlp, --hidden 32 (784-32-10), 1,000 images
//   evolve-eval-cnn: 16 members of the zoo's cnn, 1,000 images
//
// impl loop: for each member, net->forward(images), at::nll_loss, .item<double>(), under
// at::NoGradGuard: Trainer::fitness's way. impl nyto: FitnessEvaluator with the strategy it
// picks (Auto); impls nyto-batched, nyto-member-threads and nyto-loop force the others (what the
// choice was made from; --no-strategies leaves them out).
//
// threads N: at::set_num_threads(N) and OpenBLAS's own pool (which LibTorch on Debian calls for
// matrix products, and which at::set_num_threads does not govern) set to N, for every impl: so
// "threads 1" uses one core. FitnessEvaluator holds OpenBLAS to 1 thread while it runs and splits
// the members over the N threads itself.
//
// Each line: ms_median (wall per evaluation of the whole swarm), cpu_ms_median (process CPU time;
// coarse for calls of a few ms on 2 threads), images_per_s (members x images / s), ratio_to_loop
// (loop ms_median / this ms_median at the same thread count: >1 is faster), max_rel_diff (max over
// members of |loss - loop loss| / max(1, |loop loss|)), threads_used (FitnessEvaluator's),
// strategy, cpu (the host's model name), load_avg. Each impl runs one warm call, then its samples
// back to back. Random images and labels (at::rand, at::randint): the bench measures speed.
//
// --impl NAME times that impl alone (ratio_to_loop null; the loop still runs once, for
// max_rel_diff): no other impl's threads run between its samples.
//
// Usage: nyto_bench_evolve [--quick] [--case NAME] [--threads N] [--samples N] [--no-strategies]
//                          [--impl NAME]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <nyto/swarm.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "cli/Fitness.h"
#include "cli/Zoo.h"

namespace {

using nyto::bench::load_avg;
using nyto::bench::process_cpu_ms;
using nyto::cli::FitnessEvaluator;
using nyto::cli::FitnessStrategy;

constexpr int64_t kImages = 1000;

struct Case {
  const char* name;
  const char* model;
  int64_t members, hidden;
};
const std::vector<Case> kCases = {{"evolve-eval-mlp", "mlp", 64, 32},
                                  {"evolve-eval-cnn", "cnn", 16, 0}};

/// OpenBLAS's thread count (looked up at run time: absent with another BLAS); returns whether set.
bool set_blas_threads(int n) {
  using Set = void (*)(int);
  static const Set set = reinterpret_cast<Set>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set) set(n);
  return set != nullptr;
}

struct Impl {
  std::string name;
  std::function<void(std::vector<double>&)> run;
  std::string strategy;
  std::vector<double> wall, cpu;
  std::vector<double> losses;
  const FitnessEvaluator* fe = nullptr;
};

std::string fmt2(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_case(const Case& c, int threads, int samples, bool strategies,
              const std::string& only_impl, const std::string& cpu_name) {
  at::set_num_threads(threads);
  const bool blas = set_blas_threads(threads);
  at::manual_seed(7);
  nyto::cli::ZooOptions opts;
  if (c.hidden > 0) opts.hidden = c.hidden;
  nyto::AnySwarm swarm(nyto::cli::make_model(c.model, opts), c.members);
  {
    at::NoGradGuard ng;
    swarm.storage()[0].add_(at::randn(swarm.storage()[0].sizes()) * 0.05);  // members differ
  }
  const at::Tensor images = at::rand({kImages, 1, 28, 28});
  const at::Tensor labels = at::randint(10, {kImages}, at::kLong);

  // The loop, written the usual way over the members' modules.
  std::vector<nyto::cli::Classifier*> nets;
  for (int64_t m = 0; m < c.members; ++m) nets.push_back(&nyto::cli::classifier(swarm.member(m)));
  std::vector<Impl> impls;
  impls.push_back({"loop",
                   [&](std::vector<double>& out) {
                     at::NoGradGuard ng;
                     out.resize(nets.size());
                     for (size_t m = 0; m < nets.size(); ++m)
                       out[m] = at::nll_loss(nets[m]->forward(images), labels).item<double>();
                   },
                   "plain LibTorch loop of member forwards",
                   {},
                   {},
                   {},
                   nullptr});
  std::vector<std::pair<std::string, FitnessStrategy>> kinds = {{"nyto", FitnessStrategy::Auto}};
  if (strategies) {
    if (std::string(c.model) == "mlp") kinds.push_back({"nyto-batched", FitnessStrategy::Batched});
    kinds.push_back({"nyto-member-threads", FitnessStrategy::MemberThreads});
    kinds.push_back({"nyto-loop", FitnessStrategy::Loop});
  }
  std::vector<std::shared_ptr<FitnessEvaluator>> evaluators;
  for (const auto& [name, kind] : kinds) {
    auto fe = std::make_shared<FitnessEvaluator>(swarm, c.model, threads, kind);
    evaluators.push_back(fe);
    impls.push_back(
        {name,
         [&images, &labels, fe](std::vector<double>& out) { fe->evaluate(images, labels, out); },
         fe->strategy(),
         {},
         {},
         {},
         fe.get()});
  }

  using Clock = std::chrono::steady_clock;
  for (Impl& impl : impls) {
    if (!only_impl.empty() && impl.name != only_impl) continue;
    impl.run(impl.losses);  // warm: first touch, oneDNN primitives, and the losses compared
    for (int s = 0; s < samples; ++s) {
      std::vector<double> out;
      const double c0 = process_cpu_ms();
      const auto t0 = Clock::now();
      impl.run(out);
      impl.wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      impl.cpu.push_back(process_cpu_ms() - c0);
    }
  }
  if (impls[0].losses.empty()) impls[0].run(impls[0].losses);  // --impl: the loop's losses, untimed
  const double loop_ms = impls[0].wall.empty() ? 0 : median(impls[0].wall);
  for (const Impl& impl : impls) {
    if (impl.wall.empty()) continue;
    double diff = 0;
    for (size_t m = 0; m < impl.losses.size(); ++m)
      diff = std::max(diff, std::abs(impl.losses[m] - impls[0].losses[m]) /
                                std::max(1.0, std::abs(impls[0].losses[m])));
    const double ms = median(impl.wall);
    std::printf(
        "{\"case\": \"%s\", \"impl\": \"%s\", \"threads\": %d, \"blas_threads\": %s, \"members\": "
        "%ld, "
        "\"images\": %ld, \"samples\": %d, \"ms_median\": %.3f, \"cpu_ms_median\": %.3f, "
        "\"images_per_s\": %.0f, \"ratio_to_loop\": %s, \"max_rel_diff\": %.2g, \"threads_used\": "
        "%s, \"strategy\": \"%s\", "
        "\"cpu\": \"%s\", \"load_avg\": %.2f}\n",
        c.name, impl.name.c_str(), threads, blas ? std::to_string(threads).c_str() : "null",
        long(c.members), long(kImages), samples, ms, median(impl.cpu),
        double(c.members * kImages) / (ms / 1e3), loop_ms > 0 ? fmt2(loop_ms / ms).c_str() : "null",
        diff, impl.fe ? std::to_string(impl.fe->threads_used()).c_str() : "null",
        impl.strategy.c_str(), cpu_name.c_str(), load_avg());
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, strategies = true;
  int samples = 0, only_threads = 0;
  std::string only, only_impl;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--no-strategies")
      strategies = false;
    else if (a == "--case" && i + 1 < argc)
      only = argv[++i];
    else if (a == "--impl" && i + 1 < argc)
      only_impl = argv[++i];
    else if (a == "--threads" && i + 1 < argc)
      only_threads = std::atoi(argv[++i]);
    else if (a == "--samples" && i + 1 < argc)
      samples = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: nyto_bench_evolve [--quick] [--case evolve-eval-mlp|evolve-eval-cnn] "
                   "[--threads N] "
                   "[--samples N] [--no-strategies] [--impl NAME]\n");
      return 2;
    }
  }
  const nyto::bench::HostCpu host = nyto::bench::host_cpu();
  std::printf(
      "{\"case\": \"host\", \"cpu\": \"%s\", \"logical_cpus\": %ld, \"avx512f\": %s, \"load_avg\": "
      "%.2f}\n",
      host.model.c_str(), sysconf(_SC_NPROCESSORS_ONLN), host.avx512f ? "true" : "false",
      load_avg());
  std::fflush(stdout);
  for (const Case& c : kCases) {
    if (!only.empty() && only != c.name) continue;
    const bool mlp = std::string(c.model) == "mlp";
    const int n = samples > 0 ? samples : quick ? 3 : mlp ? 31 : 9;
    const std::vector<int> thread_counts =
        only_threads > 0 ? std::vector<int>{only_threads} : std::vector<int>{1, 2};
    for (int threads : thread_counts) run_case(c, threads, n, strategies, only_impl, host.model);
  }
  return 0;
}
