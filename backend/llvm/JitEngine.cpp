// JitEngine: one LLJIT for the host, the O3 pipeline, and compile()/emit_llvm_ir().
#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>

#include "backend/llvm/Internal.h"
#include "backend/llvm/LlvmBackend.h"
#include "backend/llvm/LlvmKernel.h"
#include "backend/llvm/Philox.h"
#include "backend/llvm/Sleef.h"
#include "nyto_codegen_hash.h"  // generated: the code generator's sources' hash

namespace nyto::llvm_backend {

namespace {

std::string to_string(llvm::Error err) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << err;  // consumes the error
  return os.str();
}

template <class T>
T unwrap(llvm::Expected<T> v, const char* what) {
  if (!v) throw JitError(std::string("LLVM JIT: ") + what + ": " + to_string(v.takeError()));
  return std::move(*v);
}

void init_llvm_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

// Host target with every feature of this CPU; strict FP (no contraction), aggressive codegen.
llvm::orc::JITTargetMachineBuilder host_builder() {
  init_llvm_once();
  auto jtmb = unwrap(llvm::orc::JITTargetMachineBuilder::detectHost(), "detecting the host");
  jtmb.setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  jtmb.getOptions().AllowFPOpFusion = llvm::FPOpFusion::Strict;
  return jtmb;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

namespace {
bool has_feature(const llvm::TargetMachine& tm, const char* feat) {
  std::string f = "," + tm.getTargetFeatureString().str() + ",";
  return f.find(std::string(",+") + feat + ",") != std::string::npos;
}
}  // namespace

bool host_has_cheap_masking(const llvm::TargetMachine& tm) { return has_feature(tm, "avx512f"); }

int host_vector_width(const llvm::TargetMachine& tm, DType dtype) {
  auto has = [&](const char* feat) { return has_feature(tm, feat); };
  int bytes = has("avx512f") ? 64 : has("avx") ? 32 : 16;
  return bytes / (dtype == DType::F32 ? 4 : 8);
}

namespace {
KernelShape kernel_shape(const llvm::TargetMachine& tm, DType dtype, const JitOptions& o, bool keyed = false) {
  int width = host_vector_width(tm, dtype);
  int elem = dtype == DType::F32 ? 4 : 8;
  if (o.vector_bytes > 0) width = std::max(1, std::min(width, o.vector_bytes / elem));
  // Widths are powers of two (the vector loop rounds counts down with a mask).
  while (width & (width - 1)) width &= width - 1;
  int interleave = std::max(1, std::min(keyed ? o.keyed_interleave : o.interleave, 8));
  while (interleave & (interleave - 1)) interleave &= interleave - 1;
  if (width == 1) interleave = 1;  // the scalar-only shape stays a plain loop
  // SLEEF's vector forms (sse2, avx, avx512fnofma) are x86-64 code: elsewhere, the scalar one.
  const int math_lanes = tm.getTargetTriple().isX86() ? width : 1;
  KernelShape shape;
  shape.width = width;
  shape.interleave = interleave;
  shape.masked = o.allow_masked_tail && host_has_cheap_masking(tm) && width > 1;
  shape.prefetch_bytes = std::max(0, o.prefetch_bytes);
  shape.math_lanes = math_lanes;
  return shape;
}
// Whether the kernel gets JitOptions::keyed_interleave: it has a keyed draw and little else (the
// staged driver's shared draw kernels, ir::SharedDraw). A large kernel has independent work to
// overlap already, and its code (and JIT time) grows with the interleave.
bool keyed_draw_kernel(const ir::Graph& g) {
  constexpr int kSmallKernelNodes = 16;
  bool keyed = false;
  int nodes = 0;
  for (const ir::Node& n : g.nodes) {
    keyed = keyed || ir::is_keyed(n.op);
    nodes += n.op != ir::Op::Input && n.op != ir::Op::Const && n.op != ir::Op::Param;
  }
  return keyed && nodes <= kSmallKernelNodes;
}
}  // namespace

void optimize_module(llvm::Module& m, llvm::TargetMachine& tm, PipelineLevel level) {
  m.setTargetTriple(tm.getTargetTriple().str());
  m.setDataLayout(tm.createDataLayout());
  for (llvm::Function& f : m) {
    if (f.isDeclaration()) continue;
    f.addFnAttr("target-cpu", tm.getTargetCPU());
    f.addFnAttr("target-features", tm.getTargetFeatureString());
  }
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions pto;
  llvm::PassBuilder pb(&tm, pto);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager mpm;
  if (level == PipelineLevel::O3) {
    mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  } else {
    // The kernel is emitted already vectorized and straight-line per iteration, so O3's loop
    // vectorizer, unroller and inliner have nothing to do (measured: same machine code quality,
    // 14 ms -> 3 ms). What matters: CSE, instcombine (scalarizes uniform splat arithmetic) and
    // LICM (hoists the uniform Philox rounds and splats out of the loops).
    llvm::cantFail(pb.parsePassPipeline(
        mpm, "function(early-cse<memssa>,instcombine,loop-mssa(licm),gvn,simplifycfg,instcombine)"));
  }
  mpm.run(m, mam);
}

struct JitEngine::Impl {
  std::mutex mu;
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::unique_ptr<llvm::TargetMachine> tm;  // for the pass pipeline (same CPU and features)
  std::string description;
  uint64_t next_id = 0;
  CompileTimes last;
  JitOptions options;
  std::unique_ptr<DiskCache> disk;  // null: no persistent cache
  std::set<std::string> live;       // symbols of the cached kernels linked now (one copy each)

  explicit Impl(JitOptions o) : options(o) {
    auto jtmb = host_builder();
    tm = unwrap(jtmb.createTargetMachine(), "creating the host target machine");
    description = jtmb.getTargetTriple().str() + " " + jtmb.getCPU() + " " +
                  jtmb.getFeatures().getString();
    const std::string dir = options.cache_dir ? *options.cache_dir : default_cache_dir();
    if (!dir.empty()) disk = std::make_unique<DiskCache>(dir);
    llvm::orc::LLJITBuilder builder;
    builder.setJITTargetMachineBuilder(std::move(jtmb));
    if (disk)  // LLJIT's own compiler, with the cache told of every object it compiles
      builder.setCompileFunctionCreator(
          [cache = disk.get()](llvm::orc::JITTargetMachineBuilder b)
              -> llvm::Expected<std::unique_ptr<llvm::orc::IRCompileLayer::IRCompiler>> {
            auto t = b.createTargetMachine();
            if (!t) return t.takeError();
            return std::make_unique<llvm::orc::TMOwningSimpleCompiler>(std::move(*t), cache);
          });
    jit = unwrap(builder.create(), "creating the LLJIT");
    // Kernels call SLEEF (backend/llvm/Sleef.h) and the first tier's Philox words (Philox.h): these
    // by address; anything else LLVM's code generator may call (memset, ...) from the process.
    llvm::orc::SymbolMap symbols;
    auto define = [&](const std::string& fn, void* addr) {
      symbols[jit->mangleAndIntern(fn)] =
          llvm::JITEvaluatedSymbol(llvm::pointerToJITTargetAddress(addr), llvm::JITSymbolFlags::Exported);
    };
    for (const auto& [fn, addr] : sleef_symbols()) define(fn, addr);
    const auto [philox, philox_addr] = philox_words_symbol();
    define(philox, philox_addr);
    if (llvm::Error err = jit->getMainJITDylib().define(llvm::orc::absoluteSymbols(std::move(symbols))))
      throw JitError("LLVM JIT: defining SLEEF's and Philox's symbols: " + to_string(std::move(err)));
    auto gen = unwrap(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
                          jit->getDataLayout().getGlobalPrefix()),
                      "creating the process symbol generator");
    jit->getMainJITDylib().addGenerator(std::move(gen));
  }
  ~Impl() {
    // LLJIT::~LLJIT reports errors through the execution session; nothing may throw here.
  }
};

JitEngine::JitEngine(JitOptions options) : impl_(std::make_shared<Impl>(options)) {}
JitEngine::~JitEngine() = default;

std::string JitEngine::host_description() const { return impl_->description; }
int JitEngine::vector_width(DType dtype) const {
  return kernel_shape(*impl_->tm, dtype, impl_->options).width;
}
int JitEngine::interleave() const {
  return kernel_shape(*impl_->tm, DType::F32, impl_->options).interleave;
}
bool JitEngine::masked_tail() const { return kernel_shape(*impl_->tm, DType::F32, impl_->options).masked; }
CompileTimes JitEngine::last_compile_times() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->last;
}
std::string JitEngine::cache_dir() const { return impl_->disk ? impl_->disk->dir() : std::string(); }
DiskCacheStats JitEngine::disk_cache_stats() const { return impl_->disk ? impl_->disk->stats() : DiskCacheStats{}; }

namespace {
// Everything that changes a kernel's machine code (DiskCache.h). Starts with kKeyPrefix, which
// DiskCache::notifyObjectCompiled looks for before it writes a module's object.
constexpr char kKeyPrefix[] = "nyto-kernel-cache 1\n";
std::string cache_key(const JitEngine::Impl& impl, const ir::Graph& graph, const KernelSpec& spec, int width,
                      const KernelShape& shape, bool shared_draws) {
  std::string k = kKeyPrefix;
  k += "codegen " NYTO_CODEGEN_HASH "\nllvm " LLVM_VERSION_STRING "\n";
  k += impl.description + "\n";
  k += "width " + std::to_string(width) + " vector " + std::to_string(shape.width) +
       (shape.masked ? " masked" : " tail") + " prefetch " + std::to_string(shape.prefetch_bytes) +
       " math lanes " + std::to_string(shape.math_lanes) +
       (shared_draws ? " draws shared" : " draws inline") + "\n";
  k += kernel_key(graph, spec);
  return k;
}

// One compiled form of a kernel: its function, the tracker of its code, its symbol name and
// whether that name is one of the disk cache's (Impl::live).
struct Variant {
  KernelFn fn = nullptr;
  llvm::orc::ResourceTrackerSP rt;
  std::string name;
  bool cached = false;
};

// The kernel built with `shared_draws` (build_module), from the disk cache if it is there, else
// compiled (and written to the cache). Call with impl.mu held.
Variant compile_variant(JitEngine::Impl& impl, const ir::Graph& graph, const KernelSpec& spec, const KernelShape& shape,
                        int width, bool shared_draws, CompileTimes& times) {
  auto t0 = std::chrono::steady_clock::now();
  llvm::orc::JITDylib& jd = impl.jit->getMainJITDylib();
  // A cached kernel's symbol is named by its key, so a file's object links under the name looked
  // up. A second copy of one kernel linked at once in this engine (compile() called twice) gets a
  // name of its own and no file.
  Variant v;
  std::string key;
  if (impl.disk) {
    key = cache_key(impl, graph, spec, width, shape, shared_draws);
    v.name = "nyto_kernel_" + DiskCache::stem(key);
    if (!impl.live.insert(v.name).second) key.clear(), v.name.clear();
  }
  v.cached = !key.empty();
  if (!v.cached) v.name = "nyto_kernel_" + std::to_string(impl.next_id++);
  try {
    if (v.cached)
      if (std::unique_ptr<llvm::MemoryBuffer> obj = impl.disk->load(key)) {
        v.rt = jd.createResourceTracker();
        llvm::Error err = impl.jit->addObjectFile(v.rt, std::move(obj));
        if (!err) {
          auto addr = impl.jit->lookup(v.name);
          if (addr) v.fn = addr->toPtr<KernelFn>();
          else err = addr.takeError();
        }
        if (err) {  // a file that passed its checksum but does not link: compiled anew, rewritten
          llvm::consumeError(std::move(err));
          llvm::consumeError(v.rt->remove());
          v.rt = nullptr;
        } else {
          times.from_disk = true;
          times.jit_ms = ms_since(t0);
        }
      }
    if (!v.fn) {
      auto ctx = std::make_unique<llvm::LLVMContext>();
      t0 = std::chrono::steady_clock::now();
      std::unique_ptr<llvm::Module> m = build_module(*ctx, graph, spec, v.name, width, shape, shared_draws);
      m->setModuleIdentifier(v.cached ? key : v.name);  // the key: LLJIT's compiler stores the object under it
      times.codegen_ms = ms_since(t0);
      t0 = std::chrono::steady_clock::now();
      optimize_module(*m, *impl.tm, PipelineLevel::Kernel);
      times.optimize_ms = ms_since(t0);
      t0 = std::chrono::steady_clock::now();
      v.rt = jd.createResourceTracker();
      if (llvm::Error err = impl.jit->addIRModule(v.rt, llvm::orc::ThreadSafeModule(std::move(m), std::move(ctx))))
        throw JitError("LLVM JIT: adding kernel module: " + to_string(std::move(err)));
      auto addr = impl.jit->lookup(v.name);
      if (!addr) {
        std::string msg = to_string(addr.takeError());
        llvm::consumeError(v.rt->remove());
        throw JitError("LLVM JIT: compiling kernel: " + msg);
      }
      v.fn = addr->toPtr<KernelFn>();
      times.jit_ms = ms_since(t0);
    }
  } catch (...) {
    if (v.cached) impl.live.erase(v.name);
    throw;
  }
  return v;
}

// What frees a variant's code (and its name in Impl::live).
std::function<void()> release_of(std::shared_ptr<JitEngine::Impl> impl, const Variant& v) {
  return [impl = std::move(impl), rt = v.rt, name = v.name, cached = v.cached]() {
    std::lock_guard<std::mutex> l(impl->mu);
    llvm::consumeError(rt->remove());
    if (cached) impl->live.erase(name);
  };
}
}  // namespace

void DiskCache::notifyObjectCompiled(const llvm::Module* m, llvm::MemoryBufferRef object) {
  const std::string& key = m->getModuleIdentifier();
  if (key.compare(0, sizeof kKeyPrefix - 1, kKeyPrefix) == 0) store(key, object);
}

std::unique_ptr<Kernel> compile(JitEngine& engine, const ir::Graph& graph, const KernelSpec& spec) {
  check_graph(graph, spec);
  std::shared_ptr<JitEngine::Impl> impl = engine.impl_shared();
  std::lock_guard<std::mutex> lock(impl->mu);
  CompileTimes times;
  KernelShape shape = kernel_shape(*impl->tm, spec.dtype, impl->options, keyed_draw_kernel(graph));
  // The loop works on vectors of vector_width * interleave lanes; LLVM's type legalization splits
  // each into `interleave` machine vectors whose dependency chains interleave.
  int width = spec.has_chunk_outputs() ? chunk_width(shape.loop_width()) : shape.loop_width();
  const int64_t tier_up = impl->options.tier_up_elements;
  const bool tiered = tier_up != 0 && has_tiered_draws(graph, spec);
  Variant v = compile_variant(*impl, graph, spec, shape, width, tiered, times);
  impl->last = times;
  TierUp second;
  if (tiered && tier_up > 0) {
    second.after_elements = tier_up;
    second.compile = [impl, graph, spec, shape, width]() -> std::pair<KernelFn, std::function<void()>> {
      std::lock_guard<std::mutex> l(impl->mu);
      CompileTimes t;
      Variant inline_draws = compile_variant(*impl, graph, spec, shape, width, false, t);
      return {inline_draws.fn, release_of(impl, inline_draws)};
    };
  }
  // The kernel keeps the engine's Impl (and so the LLJIT) alive and frees its code on destruction.
  std::shared_ptr<void> keep(impl);
  return std::make_unique<LlvmKernel>(v.fn, graph, spec, width, std::move(keep), release_of(impl, v),
                                      std::move(second));
}

std::string emit_llvm_ir(const ir::Graph& graph, const KernelSpec& spec, bool optimized,
                         JitOptions options, bool first_tier) {
  auto jtmb = host_builder();
  auto tm = unwrap(jtmb.createTargetMachine(), "creating the host target machine");
  llvm::LLVMContext ctx;
  KernelShape shape = kernel_shape(*tm, spec.dtype, options, keyed_draw_kernel(graph));
  const int width = spec.has_chunk_outputs() ? chunk_width(shape.loop_width()) : shape.loop_width();
  auto m = build_module(ctx, graph, spec, "nyto_kernel", width, shape,
                        first_tier && has_tiered_draws(graph, spec));
  if (optimized) {
    optimize_module(*m, *tm, PipelineLevel::Kernel);
  } else {
    m->setTargetTriple(tm->getTargetTriple().str());
    m->setDataLayout(tm->createDataLayout());
  }
  std::string s;
  llvm::raw_string_ostream os(s);
  m->print(os, nullptr);
  return os.str();
}

}  // namespace nyto::llvm_backend
