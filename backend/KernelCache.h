// Process-wide cache of compiled kernels, keyed by (graph structure, KernelSpec, backend).
//
// The same rule on the same kind of binding compiles once per cache. The cache owns the LLVM
// JitEngine (created on the first LLVM compile), so whoever owns the cache owns the JIT: either
// the runtime holds a KernelCache, or it uses default_cache(), which is created on first use and
// destroyed by shutdown_default_cache() — called explicitly, or else by an atexit handler that
// default_cache() registers when it creates the cache. That handler is registered after libLLVM's
// and LibTorch's static objects were constructed (they are constructed when the libraries load,
// before main), so it runs before their destructors: the LLJIT never outlives LLVM's statics.
// Hence: do not call default_cache() from a static initializer, and do not keep kernels in
// static objects (a kernel keeps its JIT alive). Verified by tests/backend/test_cache.cpp, which
// leaves a default cache alive at exit and exits cleanly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nyto/backend.h>

#include "backend/Kernel.h"
#include "ir/IR.h"

namespace nyto {

namespace llvm_backend {
class JitEngine;
}


/// The llvm kernel for (graph, spec) on `engine`: the staged driver (backend/Staged.h) over llvm
/// stage kernels when the rule's values cross members (ir::needs_schedule), else one fused llvm
/// kernel. Throws what llvm_backend::compile throws.
std::unique_ptr<Kernel> compile_llvm(llvm_backend::JitEngine& engine, const ir::Graph& graph,
                                     const KernelSpec& spec);

/// Thread-safe cache of kernels. Concurrent requests for one key compile once; the others wait.
class KernelCache {
 public:
  /// Makes a kernel for a backend the cache does not build itself.
  using Factory = std::function<std::unique_ptr<Kernel>(const ir::Graph&, const KernelSpec&)>;

  KernelCache();
  ~KernelCache();
  KernelCache(const KernelCache&) = delete;
  KernelCache& operator=(const KernelCache&) = delete;

  /// The kernel for (graph, spec, backend), compiled on the first request. Backend::Llvm and
  /// Backend::Interp are built in (a registered factory overrides them); Backend::Aten needs
  /// set_factory(). Throws what the backend throws (the failure is not cached),
  /// std::invalid_argument if no factory is registered for Backend::Aten.
  std::shared_ptr<const Kernel> get(const ir::Graph& graph, const KernelSpec& spec,
                                    Backend backend = Backend::Llvm);

  /// Registers how to build kernels for `backend` (e.g. the runtime registers aten). Call it before
  /// the first get() for that backend: kernels already cached are not rebuilt.
  void set_factory(Backend backend, Factory factory);

  struct Stats {
    uint64_t hits = 0, misses = 0;  // misses = compiles started
    size_t entries = 0;
  };
  Stats stats() const;

  /// Drops every cached kernel (kernels still held by callers stay valid).
  void clear();

  /// The JIT engine, created on first use.
  llvm_backend::JitEngine& jit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The process's cache, created on first use (see the header comment for its lifetime).
KernelCache& default_cache();
/// Destroys the default cache and its JIT now. Kernels obtained from it stay valid (they share
/// the JIT); default_cache() after this creates a fresh cache.
void shutdown_default_cache();

}  // namespace nyto
