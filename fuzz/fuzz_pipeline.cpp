// (b) The whole compile pipeline, differentially: a rule (the input as script text, or a random
// rule of tests/ir/RandomRules.h keyed by the input) is run by the reference interpreter as the
// frontend lowered it and by the LLVM JIT as the optimizer left it (what the runtime runs), on
// small random bindings. Any difference in bits (NaN against NaN aside: payloads are not
// specified) is a crash that prints the rule.
//
// Input layout: byte 0 = flags (bit 0 generator instead of text, bit 1 float64, bit 2 in place,
// bit 3 the AVX2 code shape: 8 float lanes and a scalar tail), bytes 1-8 = key of the bindings,
// then the script text (or, for the generator, its options and seed; option byte 5 bit 3: the
// parameter-axis ops, run in passes).
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <string>

#include "backend/KernelCache.h"
#include "backend/ParamAxis.h"
#include "backend/interp/Interp.h"
#include "backend/llvm/LlvmBackend.h"
#include "frontend/Frontend.h"
#include "fuzz/FuzzUtil.h"
#include "ir/Passes.h"
#include "tests/backend/RandomBindings.h"
#include "tests/ir/RandomRules.h"

using namespace nyto;

namespace {

// Rules beyond this many nodes are skipped: compile time is not what this target looks at.
constexpr size_t kMaxNodes = 400;

// Two engines for the process, never destroyed (an LLJIT must not be destroyed after main:
// leaking it is the safe way in a fuzzer, whose main never returns normally).
llvm_backend::JitEngine& engine(bool avx2_shape) {
  static auto* host = new llvm_backend::JitEngine();
  static auto* avx2 = new llvm_backend::JitEngine(llvm_backend::JitOptions{32, false});
  return avx2_shape ? *avx2 : *host;
}

template <class T>
bool same_bits(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

template <class T>
void differential(const ir::Graph& g, const std::string& shown, uint64_t key, bool in_place, bool avx2) {
  std::mt19937_64 rng(key);
  ir::Graph optimized = ir::optimize(g).graph;
  test::RandomBindings<T> b(g, rng, in_place, 40);
  // A parameter-axis rule (tsum, psum, tkth, ...) runs through the pass driver over each
  // backend's kernels; each element range of the bindings is then one tensor.
  const bool passes = param_axis::needed(g);
  std::unique_ptr<Kernel> want_k = passes ? param_axis::compile(g, b.spec, interp::compile) : interp::compile(g, b.spec);
  auto llvm = [&](const ir::Graph& pg, const KernelSpec& ps) { return compile_llvm(engine(avx2), pg, ps); };
  std::unique_ptr<Kernel> got_k = passes ? param_axis::compile(optimized, b.spec, llvm, /*chunk_outputs=*/true) : llvm(optimized, b.spec);
  std::vector<std::vector<T>> want, got;
  b.run(*want_k, want);
  b.run(*got_k, got);
  for (size_t k = 0; k < want.size(); ++k)
    for (size_t e = 0; e < want[k].size(); ++e)
      if (!same_bits(want[k][e], got[k][e])) {
        std::ostringstream msg;
        msg.precision(17);
        msg << "interp and llvm differ: output " << k << " ('" << g.outputs[k].name << "') element "
            << e << ": interp " << want[k][e] << ", llvm " << got[k][e] << " ("
            << (sizeof(T) == 4 ? "float32" : "float64") << ", " << b.members << " members, row " << b.row
            << (in_place ? ", in place" : "") << (avx2 ? ", AVX2 shape" : "") << ")\nrule:\n"
            << shown << "\noptimized:\n" << ir::print(optimized);
        fuzz::fail(msg.str());
      }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);  // frugal; the kernels' results do not depend on the thread count
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  const uint8_t flags = data[0];
  uint64_t key = 0;
  std::memcpy(&key, data + 1, 8);
  data += 9, size -= 9;
  ir::Graph g;
  std::string shown;
  if (flags & 1) {
    if (size < 7) return 0;
    ir::testing::RandomRuleOptions o;
    o.inputs = 1 + data[0] % 5;
    o.params = data[1] % 4;
    o.outputs = 1 + data[2] % 3;
    o.ops = data[3] % 90;
    o.rand_sites = data[4] % 5;
    o.special_constants = data[5] & 1;
    o.tame_domains = data[5] & 2;
    o.in_place = data[5] & 4;
    o.scalar_input_probability = double(data[6] % 8) / 8;
    o.param_axis = data[5] & 8;  // tsum, psum, tkth, numel(), ...: the pass driver
    uint64_t seed = 0;
    std::memcpy(&seed, data + 7, std::min<size_t>(8, size - 7));
    g = ir::testing::random_rule(seed, o);
    shown = ir::print(g);
  } else {
    std::string text(reinterpret_cast<const char*>(data), size);
    frontend::FrontendResult r;
    try {
      r = frontend::compile_source(text, "fuzz.nyto");
    } catch (const std::exception& e) {
      fuzz::fail(std::string("compile_source threw: ") + e.what());
    }
    if (!r.ok) return 0;
    g = std::move(r.graph);
    shown = text;
  }
  if (g.nodes.size() > kMaxNodes || g.outputs.empty()) return 0;
  try {
    if (flags & 2)
      differential<double>(g, shown, key, flags & 4, flags & 8);
    else
      differential<float>(g, shown, key, flags & 4, flags & 8);
  } catch (const std::exception& e) {
    fuzz::fail(std::string("compiling or running a valid rule threw: ") + e.what() + "\nrule:\n" + shown);
  }
  return 0;
}
