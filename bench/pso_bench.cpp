// PSO step benchmark: the LLVM kernel (1 and 2 threads), the interpreter, the aten lowering, a hand-written
// bandwidth-ceiling loop (stream6) and eager LibTorch, on a big and a tiny swarm. Prints one JSON
// object per line; gbps counts 24 bytes per element (x, v, pbest, gbest read; v, x written).
//
//   pso-big : 32 members x 1,068,810 floats (MLP 784-1024-256-10)
//   pso-tiny:  8 members x 131 floats (MLP 4-16-3)
//   pso-l2  :  8 members x 4,096 floats (in cache: the kernel's compute speed, no memory stall)
//   trans-big: 8 members x 1,068,810 floats, x = x + 0.1*randn()*abs(v) + sigmoid(x)*tanh(v)
//              (transcendental functions; llvm, interp, aten)
// On pso-big, impl "sites" runs the same step with N = 1..5 rand() (then randn()) sites summed
// into one factor, v = w*v + c1*(r1 + ... + rN)*(pbest - x) + c2*(gbest - x): the same 24 bytes
// per element as PSO, so stream6 is their ceiling too (case "rand-N" / "randn-N").
//
// Usage: nyto_bench_pso [--quick] [--case pso-big|pso-tiny|pso-l2|trans-big] [--impl NAME] [--vector-bytes N]
//                       [--no-masked-tail] [--interleave N] [--prefetch BYTES]
//                       (JIT code shape, see JitOptions)
#include <ATen/Parallel.h>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/aten/AtenBackend.h"
#include "backend/interp/Interp.h"
#include "backend/llvm/LlvmBackend.h"
#include "backend/llvm/LlvmKernel.h"
#include "bench/bench_util.h"
#include "tests/backend/Rules.h"

namespace nyto::bench {
void stream6(float* x, float* v, const float* pbest, const float* gbest, int64_t members, int64_t n,
             float w, float c1, float c2);
void* eager_create(int64_t members, const std::vector<std::vector<int64_t>>& shapes);
void eager_step(void* p);
void eager_destroy(void* p);
}  // namespace nyto::bench

using namespace nyto;
using Clock = std::chrono::steady_clock;

namespace {

struct Case {
  std::string name;
  int64_t members;
  std::vector<std::vector<int64_t>> shapes;  // per-layer parameter shapes of the MLP
  int64_t elements() const {
    int64_t n = 0;
    for (auto& s : shapes) {
      int64_t k = 1;
      for (auto d : s) k *= d;
      n += k;
    }
    return n;
  }
};

std::vector<std::vector<int64_t>> mlp(std::vector<int64_t> widths) {
  std::vector<std::vector<int64_t>> s;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    s.push_back({widths[i + 1], widths[i]});
    s.push_back({widths[i + 1]});
  }
  return s;
}

using bench::load_avg;
using bench::process_cpu_ms;

double g_cpu_ms = 0;  // CPU ms per call of the last median_ms()

// Median wall time of one call of `fn` in ms: `samples` samples of `batch` calls each.
double median_ms(const std::function<void()>& fn, int samples, int batch, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t, cpu;
  for (int s = 0; s < samples; ++s) {
    auto t0 = Clock::now();
    double c0 = process_cpu_ms();
    for (int b = 0; b < batch; ++b) fn();
    cpu.push_back((process_cpu_ms() - c0) / batch);
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / batch);
  }
  std::sort(t.begin(), t.end());
  std::sort(cpu.begin(), cpu.end());
  g_cpu_ms = cpu[cpu.size() / 2];
  return t[t.size() / 2];
}

// `kernel`: an llvm kernel, whose tier (JitOptions::tier_up_elements) the line names.
void print_line(const Case& c, const char* impl, int threads, double ms, const Kernel* kernel = nullptr) {
  double bytes = 24.0 * double(c.members) * double(c.elements());
  std::string tier;
  if (auto* k = dynamic_cast<const llvm_backend::LlvmKernel*>(kernel))
    tier = std::string(", \"tier\": ") + (k->tiered_up() ? "2" : "1");
  std::printf("{\"case\": \"%s\", \"impl\": \"%s\", \"threads\": %d, \"ms_median\": %.6g, "
              "\"gbps\": %.4g, \"cpu_ms_median\": %.6g, \"load_avg\": %.2f%s}\n",
              c.name.c_str(), impl, threads, ms, bytes / (ms * 1e-3) / 1e9, g_cpu_ms, load_avg(), tier.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only_case, only_impl;
  llvm_backend::JitOptions jit_options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--case" && i + 1 < argc) only_case = argv[++i];
    else if (a == "--impl" && i + 1 < argc) only_impl = argv[++i];
    else if (a == "--vector-bytes" && i + 1 < argc) jit_options.vector_bytes = std::atoi(argv[++i]);
    else if (a == "--no-masked-tail") jit_options.allow_masked_tail = false;
    else if (a == "--interleave" && i + 1 < argc) jit_options.interleave = std::atoi(argv[++i]);
    else if (a == "--prefetch" && i + 1 < argc) jit_options.prefetch_bytes = std::atoi(argv[++i]);
    else if (a == "--tier-up" && i + 1 < argc) jit_options.tier_up_elements = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--case pso-big|pso-tiny|pso-l2|trans-big] [--impl NAME] [--vector-bytes N] "
                   "[--no-masked-tail] [--interleave N] [--prefetch BYTES] [--tier-up ELEMENTS]\n",
                   argv[0]);
      return 2;
    }
  }
  auto want = [&](const std::string& impl) { return only_impl.empty() || only_impl == impl; };
  const int max_threads = 2;

  // The engine lives in main (an LLJIT must not be a static). Compiles are timed without the
  // persistent kernel cache; the cache is timed on its own below (compile-pso-disk).
  jit_options.cache_dir = "";
  llvm_backend::JitEngine engine(jit_options);
  ir::Graph pso = test::pso_graph();
  KernelSpec spec{DType::F32, {BindKind::Swarm, BindKind::Swarm, BindKind::Swarm, BindKind::Particle}};

  // Compile time of the PSO rule, IR -> runnable machine code (first = cold, then warm median).
  std::unique_ptr<Kernel> kernel;
  {
    auto t0 = Clock::now();
    kernel = llvm_backend::compile(engine, pso, spec);
    double cold = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::vector<double> totals, cpu;
    llvm_backend::CompileTimes best;
    for (int i = 0; i < 7; ++i) {
      auto t1 = Clock::now();
      double c0 = process_cpu_ms();
      auto k = llvm_backend::compile(engine, pso, spec);
      cpu.push_back(process_cpu_ms() - c0);
      totals.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
      if (i == 0 || engine.last_compile_times().total_ms() < best.total_ms()) best = engine.last_compile_times();
    }
    std::sort(totals.begin(), totals.end());
    std::sort(cpu.begin(), cpu.end());
    std::printf("{\"case\": \"compile-pso\", \"impl\": \"llvm\", \"threads\": 1, \"ms_median\": %.4g, "
                "\"gbps\": 0, \"cpu_ms_median\": %.4g, \"load_avg\": %.2f, \"ms_cold\": %.4g, "
                "\"best_codegen_ms\": %.3g, \"best_opt_ms\": %.3g, \"best_jit_ms\": %.3g, "
                "\"vector_width\": %d, \"interleave\": %d, \"masked_tail\": %s, \"host\": \"%s\"}\n",
                totals[totals.size() / 2], cpu[cpu.size() / 2], load_avg(), cold, best.codegen_ms,
                best.optimize_ms, best.jit_ms, engine.vector_width(DType::F32), engine.interleave(),
                engine.masked_tail() ? "true" : "false",
                engine.host_description().substr(0, engine.host_description().find(' ', 25)).c_str());
    std::fflush(stdout);
    // The second tier (JitOptions::tier_up_elements): the same rule with its Philox rounds in
    // the loop, compiled when a kernel has run enough elements (pso-big's runs are that tier).
    {
      llvm_backend::JitOptions o = jit_options;
      o.tier_up_elements = 0;
      llvm_backend::JitEngine second(o);
      (void)llvm_backend::compile(second, pso, spec);
      std::vector<double> t2;
      for (int i = 0; i < 7; ++i) {
        auto t1 = Clock::now();
        auto k = llvm_backend::compile(second, pso, spec);
        t2.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
      }
      std::sort(t2.begin(), t2.end());
      std::printf("{\"case\": \"compile-pso-tier2\", \"impl\": \"llvm\", \"threads\": 1, \"ms_median\": %.4g, "
                  "\"ms_min\": %.4g, \"gbps\": 0, \"load_avg\": %.2f}\n",
                  t2[t2.size() / 2], t2[0], load_avg());
      std::fflush(stdout);
    }
    // The persistent kernel cache: a fresh engine (a second process) gets the kernel from a file
    // written by another: the file read, checked, linked and looked up.
    const std::string dir = (std::filesystem::temp_directory_path() /
                             ("nyto_bench_cache_" + std::to_string(::getpid()))).string();
    {
      llvm_backend::JitOptions o = jit_options;
      o.cache_dir = dir;
      llvm_backend::JitEngine writer(o);
      (void)llvm_backend::compile(writer, pso, spec);
    }
    // engine_ms: making the JIT engine (LLJIT, target machine), which a process does once.
    std::vector<double> disk, make;
    bool all_from_disk = true;
    for (int i = 0; i < 7; ++i) {
      llvm_backend::JitOptions o = jit_options;
      o.cache_dir = dir;
      auto t0 = Clock::now();
      llvm_backend::JitEngine reader(o);
      auto t1 = Clock::now();
      auto k = llvm_backend::compile(reader, pso, spec);
      disk.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t1).count());
      make.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      all_from_disk = all_from_disk && reader.last_compile_times().from_disk;
    }
    std::filesystem::remove_all(dir);
    std::sort(disk.begin(), disk.end());
    std::sort(make.begin(), make.end());
    std::printf("{\"case\": \"compile-pso-disk\", \"impl\": \"llvm\", \"threads\": 1, \"ms_median\": %.4g, "
                "\"ms_min\": %.4g, \"engine_ms_median\": %.4g, \"gbps\": 0, \"from_disk\": %s, \"load_avg\": %.2f}\n",
                disk[disk.size() / 2], disk[0], make[make.size() / 2], all_from_disk ? "true" : "false", load_avg());
    std::fflush(stdout);
  }

  std::vector<Case> cases = {{"pso-big", 32, mlp({784, 1024, 256, 10})}, {"pso-tiny", 8, mlp({4, 16, 3})},
                             {"pso-l2", 8, {{4096}}}};
  for (const Case& c : cases) {
    if (!only_case.empty() && only_case != c.name) continue;
    const int64_t n = c.elements(), members = c.members;
    bool big = n > 100000;
    std::vector<float> x(members * n), v(members * n), pbest(members * n), gbest(n);
    std::mt19937 gen(3);
    std::normal_distribution<float> d(0, 0.1f);
    for (auto* vec : {&x, &v, &pbest, &gbest})
      for (auto& e : *vec) e = d(gen);
    KernelArgs a;
    a.members = members;
    a.ranges = {{0, n}};
    a.in = {x.data(), v.data(), pbest.data(), gbest.data()};
    a.in_stride = {n, n, n, 0};
    a.scalar = {0, 0, 0, 0};
    a.params = {0.729, 1.49445, 1.49445};
    a.out = {v.data(), x.data()};
    a.out_stride = {n, n};
    a.seed = 42;
    int samples = quick ? 5 : big ? 15 : 25;
    int batch = big ? 1 : 2000;
    if (want("llvm"))
      for (int t : {max_threads, 1}) {
        at::set_num_threads(t);
        double ms = median_ms([&] { kernel->run(a); ++a.invocation; }, samples, batch, 2);
        print_line(c, "llvm", t, ms, kernel.get());
      }
    if (big && want("sites"))
      for (bool normal : {false, true})
        for (int sites = 1; sites <= 5; ++sites) {
          auto k = llvm_backend::compile(engine, test::pso_sites_graph(sites, normal), spec);
          Case named = c;
          named.name = std::string(normal ? "randn-" : "rand-") + std::to_string(sites);
          for (int t : {max_threads, 1}) {
            at::set_num_threads(t);
            double ms = median_ms([&] { k->run(a); ++a.invocation; }, samples, batch, 2);
            print_line(named, "llvm", t, ms, k.get());
          }
        }
    if (want("stream6"))
      for (int t : {max_threads, 1}) {
        at::set_num_threads(t);
        double ms = median_ms([&] {
          bench::stream6(x.data(), v.data(), pbest.data(), gbest.data(), members, n, 0.729f, 1.49445f, 1.49445f);
        }, samples, batch, 2);
        print_line(c, "stream6", t, ms);
      }
    if (want("interp")) {
      at::set_num_threads(1);
      auto ik = interp::compile(pso, spec);
      double ms = median_ms([&] { ik->run(a); ++a.invocation; }, big ? 3 : samples, big ? 1 : 100, 1);
      print_line(c, "interp", 1, ms);
    }
    if (want("aten")) {
      auto ak = aten_backend::compile(pso, spec);
      for (int t : {max_threads, 1}) {
        at::set_num_threads(t);
        double ms = median_ms([&] { ak->run(a); ++a.invocation; }, quick ? 3 : big ? 5 : samples,
                              big ? 1 : 100, 1);
        print_line(c, "aten", t, ms);
      }
    }
    if (want("eager")) {
      void* e = bench::eager_create(members, c.shapes);
      for (int t : {max_threads, 1}) {
        at::set_num_threads(t);
        double ms = median_ms([&] { bench::eager_step(e); }, quick ? 3 : big ? 7 : samples,
                              big ? 1 : 50, 1);
        print_line(c, "eager", t, ms);
      }
      bench::eager_destroy(e);
    }
  }
  // Transcendental functions: x = x + 0.1*randn()*abs(v) + sigmoid(x)*tanh(v) on 8 members of the
  // pso-big MLP (gbps counts 12 bytes per element: x and v read, x written).
  if (only_case.empty() || only_case == "trans-big") {
    const Case c{"trans-big", 8, mlp({784, 1024, 256, 10})};
    const int64_t n = c.elements(), members = c.members;
    std::vector<float> x(members * n), v(members * n);
    std::mt19937 gen(5);
    std::normal_distribution<float> d(0, 1.0f);
    for (auto* vec : {&x, &v})
      for (auto& e : *vec) e = d(gen);
    const std::vector<float> x0 = x;
    ir::Graph g = test::transcendental_graph();
    KernelSpec tspec{DType::F32, {BindKind::Swarm, BindKind::Swarm}};
    KernelArgs a;
    a.members = members;
    a.ranges = {{0, n}};
    a.in = {x.data(), v.data()};
    a.in_stride = {n, n};
    a.scalar = {0, 0};
    a.out = {x.data()};
    a.out_stride = {n};
    a.seed = 42;
    const int samples = quick ? 5 : 11;
    auto line = [&](const char* impl, int threads, double ms) {
      std::printf("{\"case\": \"trans-big\", \"impl\": \"%s\", \"threads\": %d, \"ms_median\": %.6g, "
                  "\"ns_per_element\": %.4g, \"gbps\": %.4g, \"cpu_ms_median\": %.6g, \"load_avg\": %.2f}\n",
                  impl, threads, ms, ms * 1e6 / double(members * n), 12.0 * double(members * n) / (ms * 1e-3) / 1e9,
                  g_cpu_ms, load_avg());
      std::fflush(stdout);
    };
    // x is updated in place; each implementation starts from the same values, and a step moves it
    // by less than 1 plus the noise, so the functions see ordinary arguments throughout.
    if (want("llvm")) {
      auto k = llvm_backend::compile(engine, g, tspec);
      for (int t : {max_threads, 1}) {
        at::set_num_threads(t);
        x = x0;
        line("llvm", t, median_ms([&] { k->run(a); ++a.invocation; }, samples, 1, 1));
      }
    }
    if (want("interp")) {
      at::set_num_threads(1);
      auto ik = interp::compile(g, tspec);
      x = x0;
      line("interp", 1, median_ms([&] { ik->run(a); ++a.invocation; }, 3, 1, 1));
    }
    if (want("aten")) {
      auto ak = aten_backend::compile(g, tspec);
      for (int t : {max_threads, 1}) {
        at::set_num_threads(t);
        x = x0;
        line("aten", t, median_ms([&] { ak->run(a); ++a.invocation; }, quick ? 3 : 5, 1, 1));
      }
    }
  }
  return 0;
}
