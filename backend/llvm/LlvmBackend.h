// The LLVM 16 ORC JIT backend: IR -> one vectorized, threaded kernel per (Graph, KernelSpec).
//
// This header includes no LLVM header (only backend/llvm/*.cpp do), so the runtime and the CLI
// stay free of LLVM's include tree. All LLVM failures are converted to nyto::llvm_backend::JitError
// here, at the boundary: no C++ exception ever crosses LLVM code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "backend/Kernel.h"
#include "backend/llvm/DiskCache.h"
#include "ir/IR.h"

namespace nyto::llvm_backend {

/// An LLVM failure (target lookup, JIT link, symbol lookup). Not the user's fault.
class JitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Times of the last compile() on one engine, in milliseconds.
struct CompileTimes {
  double codegen_ms = 0;   // nyto IR -> LLVM IR
  double optimize_ms = 0;  // new-PM pass pipeline for the host CPU (see optimize_module)
  double jit_ms = 0;       // LLVM IR -> machine code, linked and looked up (from the disk
                           // cache: the file read, checked, linked and looked up)
  bool from_disk = false;  // the machine code came from the persistent kernel cache
  double total_ms() const { return codegen_ms + optimize_ms + jit_ms; }
};

/// Code shape choices of a JitEngine (defaults: what suits the host). Tests use them to cover the
/// shapes other hosts get (e.g. AVX2: 8 floats, vector loop + scalar tail) on this machine.
struct JitOptions {
  int vector_bytes = 0;           // bytes per vector; 0 = the host's widest (64 with AVX-512)
  bool allow_masked_tail = true;  // remainder as one lane-masked iteration (host with AVX-512),
                                  // else a scalar tail loop
  int interleave = 2;             // vectors per loop iteration (rounded down to a power of two).
                                  // A kernel with draws steps by whole blocks of 80 float32 / 32
                                  // float64 elements (backend/Random.h) instead, one block per 32
                                  // lanes of vector width x interleave (at least one, at most 4):
                                  // a block's Philox calls are two chains of ten dependent
                                  // multiply rounds per site
  int keyed_interleave = 8;       // the same in a small kernel with a keyed draw rand(k, j) (the
                                  // staged driver's shared draws): little else to overlap with its
                                  // rounds, so more chains per iteration are needed to fill the
                                  // pipeline (32 x 1,068,810 f32 of randn(g, member()), 1 thread:
                                  // 51 -> 40 ms with four draws per call)
  int prefetch_bytes = 1024;      // a kernel with random draws prefetches its input rows this far
                                  // ahead (0: not at all): pso-big, 2 threads: 26.6 -> 20.7 ms
  /// Two tiers for a kernel with rand() / randn() sites: compile() returns it with its Philox
  /// words computed by precompiled code (backend/llvm/Philox.h: no rounds for LLVM to compile,
  /// a quarter of the compile time), and once it has run this many elements (members x
  /// elements, summed over runs) it is compiled again with the rounds in its loop, about twice
  /// as fast per element, and runs that from then on. The same bits either way. The default is
  /// about where the second compile pays for itself (pso-big's step is 34 M elements). 0: the
  /// second tier at once; negative: never.
  int64_t tier_up_elements = int64_t(1) << 24;
  /// The persistent kernel cache's directory (backend/llvm/DiskCache.h): unset, the default
  /// (default_cache_dir(): $NYTO_CACHE_DIR, the XDG cache directory); "": no disk cache.
  std::optional<std::string> cache_dir;
};

/// Owns one llvm::orc::LLJIT for the host CPU (all its features, e.g. AVX-512; codegen at
/// CodeGenOpt::Aggressive, FP fusion Strict) and the new-PassManager pipeline run on every kernel:
/// early-cse, instcombine, LICM, GVN, simplifycfg (the kernel is emitted already vectorized, so
/// default<O3>'s loop vectorizer/unroller only cost compile time: 14 ms -> 3-5 ms for PSO). Must not be a global or static: create it from an owner object
/// (the KernelCache) and destroy it before main returns. Kernels compiled by an engine keep its JIT
/// alive (shared ownership), so destroying the engine first is safe. Thread-safe.
/// Throws JitError if the host target cannot be set up.
class JitEngine {
 public:
  explicit JitEngine(JitOptions options = {});
  ~JitEngine();
  JitEngine(const JitEngine&) = delete;
  JitEngine& operator=(const JitEngine&) = delete;

  /// Triple, CPU and feature string, e.g. "x86_64-pc-linux-gnu generic +avx512f,...": LLVM 16
  /// names this Zen 5 host's CPU "generic", so tuning is generic but every ISA feature is on.
  std::string host_description() const;
  /// Elements per vector in the generated loops for this dtype (16 f32 / 8 f64 with AVX-512).
  int vector_width(DType dtype) const;
  /// Vectors processed per loop iteration (JitOptions::interleave): a kernel's loop steps
  /// vector_width() * interleave() elements.
  int interleave() const;
  /// Whether kernels finish a range with one lane-masked vector iteration (true) or a scalar loop.
  bool masked_tail() const;
  /// Timing of the most recent compile() through this engine.
  CompileTimes last_compile_times() const;
  /// The persistent kernel cache's directory, "" when the engine has none.
  std::string cache_dir() const;
  /// What the persistent kernel cache did since the engine was created.
  DiskCacheStats disk_cache_stats() const;

  struct Impl;
  /// The engine state shared with the kernels it compiled (internal).
  std::shared_ptr<Impl> impl_shared() const { return impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

/// Compiles `graph` specialized on `spec` (dtype, binding kind per input) to machine code.
/// Chunk outputs (KernelSpec::chunk) are reduced in the kernel, per 1024-element chunk, sums in
/// the order of ir/IR.h: the same bits as the parameter-axis driver's reduction of the stored
/// values (for min/max, when a chunk holds NaNs of different bits, which one is kept may differ:
/// NaN where NaN, as for every op).
/// Numerics: the graph is retyped for the binding (ir::specialize_inputs) and evaluated by the
/// rules of ir/IR.h and ir/Eval.h, exactly as the interpreter does. Agreement with the
/// interpreter: 0 ulp (bit-identical, NaN where NaN) for every op — + - * / sqrt floor ceil abs
/// neg min max sign compare select exactly by construction (no FMA contraction, no
/// reassociation, no fast-math flags), exp log sin cos tanh acos asin atan pow atan2 sigmoid by
/// calling SLEEF's vector forms of the interpreter's functions (ir/Math.h), rand/randn by
/// the same Philox counter and conversions (backend/Random.h). Verified on 600 random rules x
/// {f32, f64} and on large kernels of 50-200 random sites (tests/backend/test_differential.cpp).
/// Compile time grows linearly with the rule (bench/README.md, "Compile time").
/// The kernel splits (member, range) work into chunks of a vector-width multiple and runs them
/// on LibTorch's intra-op pool (at::parallel_for); results do not depend on the chunking or the
/// thread count (random draws use a per-element Philox counter, see backend/Random.h).
/// Throws std::logic_error for a malformed graph or spec (a nyto bug), JitError on LLVM failure.
std::unique_ptr<Kernel> compile(JitEngine& engine, const ir::Graph& graph, const KernelSpec& spec);

/// The LLVM IR of the kernel function for `graph`/`spec`, before or after the O3 pipeline, for
/// `nyto compile --emit llvm` and for tests (vector types present after optimization): the second
/// tier (Philox rounds in the loop), or the first when `first_tier` (JitOptions::tier_up_elements).
std::string emit_llvm_ir(const ir::Graph& graph, const KernelSpec& spec, bool optimized,
                         JitOptions options = {}, bool first_tier = false);

/// The flat argument block the generated function reads: void k(const FlatArgs*, int64 member,
/// int64 begin, int64 end, int64 slot) (slot: where the chunk starting at `begin` goes in each
/// chunk output's row, KernelSpec::chunk). Built by the kernel driver from KernelArgs; exposed
/// for tests.
struct FlatArgs {
  const void* const* in;      // per input: base pointer (nullptr for Scalar)
  const int64_t* in_stride;   // per input: elements between member rows (Swarm)
  const double* scalar;       // per input: value when bound Scalar
  const double* params;       // per Graph::params
  void* const* out;           // per output: base of row 0
  const int64_t* out_stride;  // per output: elements between member rows
  uint64_t seed;
  uint64_t invocation;
  uint32_t group;
  int64_t members;            // M, the value of Op::Members
};
// Codegen.cpp's load_field declares this layout to LLVM as the struct
// {ptr x 6, i64, i64, i32, i64} with the C ABI's alignment; these pin the two together.
static_assert(offsetof(FlatArgs, seed) == 6 * sizeof(void*) && offsetof(FlatArgs, group) == 6 * sizeof(void*) + 16 &&
                  offsetof(FlatArgs, members) == 6 * sizeof(void*) + 24 && sizeof(FlatArgs) == 6 * sizeof(void*) + 32,
              "FlatArgs must match the struct type of Codegen.cpp's load_field");

}  // namespace nyto::llvm_backend
