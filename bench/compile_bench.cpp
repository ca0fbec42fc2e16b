// Compile-time benchmark: how compile time grows with the size of a rule. Prints one JSON object
// per line:
//   {"case": "terms", "n": 200, "sites": 400, "frontend_ms": ..., "passes_ms": ..., "codegen_ms": ...,
//    "llvm_opt_ms": ..., "jit_ms": ..., "total_ms": ..., "cpu_ms": ..., "load_avg": ...}
//
//   terms N   y = x + rand()*randn() + ... (N terms, 2N random sites), float32 swarm x: text ->
//             runnable machine code through the llvm backend
//   sin N     y = sin(sin(...sin(x))) as N statements a = sin(a): text -> machine code
//   check N   N statements a<i> = a<i-1> * 0.5 + x: text -> optimized IR (what `nyto check` does)
//   keyed N   y = x + rand(1, member()) + randn(2, member()) + ... (N keyed draws, OpenAI-ES's
//             kind): text -> the staged kernels (one shared draw kernel per draw), in the JIT's
//             first tier and its second ("tier": 1 | 2; JitOptions::tier_up_elements)
//
// Each line is one cold run (a fresh JitEngine per process, the cases in order). Usage:
//   nyto_bench_compile [--case terms|sin|check|keyed] [--n N]   (default: every case at every size)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/KernelCache.h"
#include "backend/Staged.h"
#include "backend/llvm/LlvmBackend.h"
#include "bench/bench_util.h"
#include "frontend/Frontend.h"
#include "ir/Passes.h"

using namespace nyto;
using Clock = std::chrono::steady_clock;

namespace {

using bench::load_avg;
using bench::process_cpu_ms;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
std::string terms_rule(int n) {
  std::string s = "y = x";
  for (int i = 0; i < n; ++i) s += " + rand()*randn()";
  return s + "\n";
}
std::string sin_rule(int n) {
  std::string s = "let a0 = x\n";
  for (int i = 1; i <= n; ++i) s += "let a" + std::to_string(i) + " = sin(a" + std::to_string(i - 1) + ")\n";
  return s + "y = a" + std::to_string(n) + "\n";
}
std::string keyed_rule(int n) {
  std::string s = "y = x";
  for (int i = 0; i < n; ++i) s += std::string(i % 2 ? " + randn(" : " + rand(") + std::to_string(i + 1) + ", member())";
  return s + "\n";
}
std::string check_rule(int n) {
  std::string s = "let a0 = x\n";
  for (int i = 1; i < n; ++i)
    s += "let a" + std::to_string(i) + " = a" + std::to_string(i - 1) + " * 0.5 + x\n";
  return s + "y = a" + std::to_string(n - 1) + "\n";
}

void run(llvm_backend::JitEngine& engine, const char* name, int n, const std::string& text,
         bool jit, int tier = 0) {
  double c0 = process_cpu_ms();
  auto t0 = Clock::now();
  frontend::FrontendResult fe = frontend::compile_source(text, "bench.nyto");
  double frontend_ms = ms_since(t0);
  if (!fe.ok) {
    std::fprintf(stderr, "%s", frontend::render_all(fe).c_str());
    std::exit(1);
  }
  t0 = Clock::now();
  ir::FusedKernel k = ir::optimize(fe.graph);
  double passes_ms = ms_since(t0);
  llvm_backend::CompileTimes ct;
  double staged_ms = -1;
  if (jit) {
    KernelSpec spec{DType::F32, std::vector<BindKind>(k.graph.inputs.size(), BindKind::Swarm)};
    if (staged::needed(k.graph, spec)) {  // several kernels: their total, as the runtime compiles them
      auto ts = Clock::now();
      auto kernel = compile_llvm(engine, k.graph, spec);
      staged_ms = ms_since(ts);
    } else {
      auto kernel = llvm_backend::compile(engine, k.graph, spec);
      ct = engine.last_compile_times();
    }
  }
  double cpu = process_cpu_ms() - c0;
  const double total = frontend_ms + passes_ms + (staged_ms >= 0 ? staged_ms : ct.total_ms());
  std::string tier_field = tier ? ", \"tier\": " + std::to_string(tier) : std::string();
  // A staged rule's kernels are timed together (their phases are not split out).
  char phases[160];
  if (staged_ms >= 0)
    std::snprintf(phases, sizeof phases, "\"staged_ms\": %.4g", staged_ms);
  else
    std::snprintf(phases, sizeof phases, "\"codegen_ms\": %.4g, \"llvm_opt_ms\": %.4g, \"jit_ms\": %.4g",
                  ct.codegen_ms, ct.optimize_ms, ct.jit_ms);
  std::printf("{\"case\": \"%s\", \"n\": %d, \"sites\": %d, \"nodes\": %zu, \"frontend_ms\": %.4g, "
              "\"passes_ms\": %.4g, %s, \"total_ms\": %.4g, \"cpu_ms\": %.4g, \"load_avg\": %.2f%s}\n",
              name, n, k.graph.rand_sites, k.graph.nodes.size(), frontend_ms, passes_ms, phases, total, cpu,
              load_avg(), tier_field.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  int only_n = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--case" && i + 1 < argc) only = argv[++i];
    else if (a == "--n" && i + 1 < argc) only_n = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--case terms|sin|check|keyed] [--n N]\n", argv[0]);
      return 2;
    }
  }
  llvm_backend::JitEngine engine;
  auto sizes = [&](std::vector<int> v) { return only_n ? std::vector<int>{only_n} : v; };
  if (only.empty() || only == "terms")
    for (int n : sizes({1, 10, 50, 200, 1000})) run(engine, "terms", n, terms_rule(n), true);
  if (only.empty() || only == "sin")
    for (int n : sizes({100, 800})) run(engine, "sin", n, sin_rule(n), true);
  if (only.empty() || only == "keyed") {
    llvm_backend::JitOptions second;
    second.tier_up_elements = 0;
    llvm_backend::JitEngine engine2(second);
    for (int n : sizes({1, 2, 8})) {
      run(engine, "keyed", n, keyed_rule(n), true, 1);
      run(engine2, "keyed", n, keyed_rule(n), true, 2);
    }
  }
  if (only.empty() || only == "check")
    for (int n : sizes({10000, 100000})) run(engine, "check", n, check_rule(n), false);
  return 0;
}
