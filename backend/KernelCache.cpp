#include "backend/KernelCache.h"

#include "backend/ParamAxis.h"
#include "backend/Staged.h"

#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "backend/interp/Interp.h"
#include "backend/llvm/LlvmBackend.h"

namespace nyto {

struct KernelCache::Impl {
  mutable std::mutex mu;
  std::unordered_map<std::string, std::shared_future<std::shared_ptr<const Kernel>>> map;
  std::unordered_map<uint8_t, Factory> factories;
  std::unique_ptr<llvm_backend::JitEngine> jit;
  std::mutex jit_mu;
  Stats stats;
};

KernelCache::KernelCache() : impl_(std::make_unique<Impl>()) {}
KernelCache::~KernelCache() = default;

llvm_backend::JitEngine& KernelCache::jit() {
  std::lock_guard<std::mutex> lock(impl_->jit_mu);
  if (!impl_->jit) impl_->jit = std::make_unique<llvm_backend::JitEngine>();
  return *impl_->jit;
}

void KernelCache::set_factory(Backend backend, Factory factory) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->factories[uint8_t(backend)] = std::move(factory);
}

std::unique_ptr<Kernel> compile_llvm(llvm_backend::JitEngine& engine, const ir::Graph& graph,
                                     const KernelSpec& spec) {
  if (!staged::needed(graph, spec)) return llvm_backend::compile(engine, graph, spec);
  return staged::compile(graph, spec, [&engine](const ir::Graph& g, const KernelSpec& s) {
    return llvm_backend::compile(engine, g, s);
  });
}

std::shared_ptr<const Kernel> KernelCache::get(const ir::Graph& graph, const KernelSpec& spec,
                                               Backend backend) {
  std::string key = kernel_key(graph, spec);
  key += char(uint8_t(backend));

  std::promise<std::shared_ptr<const Kernel>> promise;
  std::shared_future<std::shared_ptr<const Kernel>> existing;
  Factory factory;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->map.find(key);
    if (it != impl_->map.end()) {
      ++impl_->stats.hits;
      existing = it->second;
    } else {
      if (backend == Backend::Aten || impl_->factories.count(uint8_t(backend))) {
        auto f = impl_->factories.find(uint8_t(backend));
        if (f == impl_->factories.end())
          throw std::invalid_argument("nyto KernelCache: no factory registered for this backend");
        factory = f->second;
      }
      ++impl_->stats.misses;
      impl_->map.emplace(key, promise.get_future().share());
    }
  }
  // Wait outside the lock: another thread may still be compiling this key.
  if (existing.valid()) return existing.get();
  try {
    std::shared_ptr<const Kernel> kernel;
    if (factory)
      kernel = factory(graph, spec);
    else if (param_axis::needed(graph))
      kernel = param_axis::compile(
          graph, spec,
          [&](const ir::Graph& g, const KernelSpec& s) -> std::unique_ptr<Kernel> {
            if (backend == Backend::Llvm) return compile_llvm(jit(), g, s);
            return interp::compile(g, s);
          },
          /*chunk_outputs=*/backend == Backend::Llvm);
    else if (backend == Backend::Llvm)
      kernel = compile_llvm(jit(), graph, spec);
    else
      kernel = interp::compile(graph, spec);
    promise.set_value(kernel);
    return kernel;
  } catch (...) {
    promise.set_exception(std::current_exception());
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->map.erase(key);  // a failure is not cached: the next request retries
    throw;
  }
}

KernelCache::Stats KernelCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stats s = impl_->stats;
  s.entries = impl_->map.size();
  return s;
}

void KernelCache::clear() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->map.clear();
}

namespace {
std::mutex g_default_mu;
KernelCache* g_default = nullptr;  // owned; a plain pointer so no static destructor runs it late
bool g_atexit_registered = false;
}  // namespace

KernelCache& default_cache() {
  std::lock_guard<std::mutex> lock(g_default_mu);
  if (!g_default) {
    g_default = new KernelCache();
    if (!g_atexit_registered) {
      std::atexit(shutdown_default_cache);
      g_atexit_registered = true;
    }
  }
  return *g_default;
}

void shutdown_default_cache() {
  KernelCache* c;
  {
    std::lock_guard<std::mutex> lock(g_default_mu);
    c = g_default;
    g_default = nullptr;
  }
  delete c;
}

}  // namespace nyto
