// Shared between the files of backend/llvm (not installed, includes LLVM).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <llvm/ExecutionEngine/ObjectCache.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include "backend/Kernel.h"
#include "backend/llvm/DiskCache.h"
#include "ir/IR.h"

namespace nyto::llvm_backend {

// How a kernel's loop fits the host: JitEngine's kernel_shape, build_module's options.
struct KernelShape {
  // Elements per hardware vector; Codegen packs Philox words by its registers (pack_source).
  int width = 1;
  int interleave = 1;  // vectors per loop iteration
  // The remainder as one lane-masked vector iteration (AVX-512F), else a scalar tail loop.
  bool masked = false;
  // A kernel with random draws prefetches each input row this far ahead (0: never).
  int prefetch_bytes = 0;
  // Lanes per SLEEF vector call: the hardware vector on x86-64, else 1.
  int math_lanes = 1;
  int loop_width() const { return width * interleave; }
};

// Builds the module holding `void <name>(const FlatArgs*, i64 member, i64 begin, i64 end, i64 slot)`.
// `vector_width` elements per vector loop iteration (1 = scalar loop only; shape.loop_width(), or
// chunk_width() of it). With chunk outputs (KernelSpec::chunk) the loop runs per 1024-element
// chunk, and the vector width must be 1 or a multiple of 32 (ir::kSumLanes). Transcendental
// functions call SLEEF's vector forms of shape.math_lanes lanes (backend/llvm/Sleef.h).
// `shared_draws`: the Philox words of the rand() / randn() sites come from one call of
// nyto_philox_words per iteration, a keyed draw's from a call of its own (Philox.h: a quarter of
// LLVM's time), else their rounds are in the loop body (about twice as fast per element); the same
// bits either way.
std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& ctx, const ir::Graph& graph,
                                           const KernelSpec& spec, const std::string& name,
                                           int vector_width, const KernelShape& shape, bool shared_draws);

// Whether build_module's `shared_draws` changes the kernel of (graph, spec): it has rand() /
// randn() or keyed rand(k, j) / randn(k, j) sites, few enough (kInlineSites) that their rounds go
// in the loop body, and no chunk outputs (a chunk kernel's vector iterations do their own calls
// either way). The JIT's two tiers.
bool has_tiered_draws(const ir::Graph& graph, const KernelSpec& spec);

// The loop width of a kernel whose spec has chunk outputs: `width` raised to a multiple of the
// 32 lanes of a chunk's accumulator, so that every vector iteration adds whole rows of it.
int chunk_width(int width);

// Kernel: the short new-PM pipeline used for every kernel (see optimize_module); O3: LLVM's full
// default<O3> pipeline, kept for comparison.
enum class PipelineLevel { Kernel, O3 };
// Sets triple/data layout and the host CPU attributes from `tm`, then runs the pipeline.
void optimize_module(llvm::Module& m, llvm::TargetMachine& tm, PipelineLevel level);

// Validates (graph, spec) (ir::verify + spec size); throws std::logic_error on a nyto bug.
void check_graph(const ir::Graph& graph, const KernelSpec& spec);
// The graph retyped for the binding (ir::specialize_inputs), as the interpreter runs it.
ir::Graph specialize(const ir::Graph& graph, const KernelSpec& spec);

// Vector width for the host features of `tm` and this dtype.
int host_vector_width(const llvm::TargetMachine& tm, DType dtype);
// True when masked vector loads/stores are as cheap as plain ones (AVX-512F).
bool host_has_cheap_masking(const llvm::TargetMachine& tm);

[[noreturn]] void internal_error(const std::string& what);

// The persistent kernel cache of one JitEngine (backend/llvm/DiskCache.h). The engine looks an
// entry up by key before building any IR (load); on a miss, the module it compiles carries the
// key as its identifier, and LLJIT's compiler hands the object to notifyObjectCompiled, which
// writes the file. Thread-safe.
class DiskCache final : public llvm::ObjectCache {
 public:
  explicit DiskCache(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  // The object of `key`, or nullptr: no file, or one not trusted (counted as rejected).
  std::unique_ptr<llvm::MemoryBuffer> load(const std::string& key);
  // Writes the entry atomically; a failure (read-only directory, full disk) is counted, not thrown.
  void store(const std::string& key, llvm::MemoryBufferRef object);
  DiskCacheStats stats() const;
  void notifyObjectCompiled(const llvm::Module* m, llvm::MemoryBufferRef object) override;
  std::unique_ptr<llvm::MemoryBuffer> getObject(const llvm::Module* m) override;
  // The 64-bit hash of `key` in hex: the name of its file (plus ".o") and of its kernel's symbol.
  static std::string stem(const std::string& key);
  // The file of `key` in dir().
  std::string path_of(const std::string& key) const { return dir_ + "/" + stem(key) + ".o"; }

 private:
  std::string dir_;
  mutable std::mutex mu_;
  DiskCacheStats stats_;
};

}  // namespace nyto::llvm_backend
