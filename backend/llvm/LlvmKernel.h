// The runnable kernel around a JIT-compiled function: packs KernelArgs into FlatArgs, cuts the
// (member, range) work into vector-width-multiple chunks and runs them on at::parallel_for.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "backend/Kernel.h"
#include "backend/llvm/LlvmBackend.h"

namespace nyto::llvm_backend {

// `slot`: the index, in the row of each chunk output (KernelSpec::chunk), of the chunk that
// starts at `begin` (ignored by kernels without such outputs).
using KernelFn = void (*)(const FlatArgs*, int64_t member, int64_t begin, int64_t end, int64_t slot);

/// The second tier of a kernel (JitOptions::tier_up_elements): compiled by `compile` (the
/// function and what frees its code; may throw) once `after_elements` have run. Null compile:
/// the kernel has one tier.
struct TierUp {
  int64_t after_elements = 0;
  std::function<std::pair<KernelFn, std::function<void()>>()> compile;
};

class LlvmKernel final : public Kernel {
 public:
  LlvmKernel(KernelFn fn, const ir::Graph& graph, const KernelSpec& spec, int loop_width,
             std::shared_ptr<void> keep_alive, std::function<void()> release, TierUp tier_up = {});
  ~LlvmKernel() override;
  /// Runs the kernel; throws std::invalid_argument if `args` does not match the graph.
  void run(const KernelArgs& args) const override;
  /// Elements per parallel work item (a multiple of the loop width; of ir::kParamChunk too for a
  /// kernel with chunk outputs, whose chunks must not be split). For tests.
  void set_chunk_elements(int64_t n);
  bool member_window() const override { return window_; }
  /// Whether the kernel runs its second tier (TierUp) now. For tests and the bench.
  bool tiered_up() const { return tiered_.load(); }

 private:
  // The function to run for a run of `elements`: the second tier once it is due (compiled
  // then; if that fails, the first tier stays).
  KernelFn function_for(int64_t elements) const;

  mutable std::atomic<KernelFn> fn_;
  size_t n_inputs_, n_outputs_, n_params_;
  std::vector<BindKind> kinds_;
  int loop_width_;  // elements per vector loop iteration
  bool chunked_;    // has chunk outputs (KernelSpec::chunk)
  bool window_;     // no member-crossing node: members are independent
  int64_t chunk_;
  std::shared_ptr<void> keep_alive_;
  std::function<void()> release_;
  // TierUp state: pending_ until the second tier has been tried (read without the lock), the
  // rest under tier_mu_.
  mutable std::atomic<bool> pending_;
  mutable std::atomic<bool> tiered_{false};
  mutable std::mutex tier_mu_;
  TierUp tier_up_;
  mutable int64_t tier_seen_ = 0;  // elements run by the first tier
  mutable std::function<void()> tier_release_;
};

}  // namespace nyto::llvm_backend
