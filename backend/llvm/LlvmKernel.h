// The runnable kernel around a JIT-compiled function: packs KernelArgs into FlatArgs, cuts the
// (member, range) work into vector-width-multiple chunks and runs them on at::parallel_for.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>

#include "backend/Kernel.h"
#include "backend/llvm/LlvmBackend.h"

namespace nyto::llvm_backend {

// `slot`: the index, in the row of each chunk output (KernelSpec::chunk), of the chunk that
// starts at `begin` (ignored by kernels without such outputs).
using KernelFn = void (*)(const FlatArgs*, int64_t member, int64_t begin, int64_t end, int64_t slot);

class LlvmKernel final : public Kernel {
 public:
  LlvmKernel(KernelFn fn, const ir::Graph& graph, const KernelSpec& spec, int loop_width,
             std::shared_ptr<void> keep_alive, std::function<void()> release);
  ~LlvmKernel() override;
  /// Runs the kernel; throws std::invalid_argument if `args` does not match the graph.
  void run(const KernelArgs& args) const override;
  /// Elements per parallel work item (a multiple of the loop width; of ir::kParamChunk too for a
  /// kernel with chunk outputs, whose chunks must not be split). For tests.
  void set_chunk_elements(int64_t n);
  bool member_window() const override { return window_; }

 private:
  KernelFn fn_;
  size_t n_inputs_, n_outputs_, n_params_;
  std::vector<BindKind> kinds_;
  int loop_width_;  // elements per vector loop iteration
  bool chunked_;    // has chunk outputs (KernelSpec::chunk)
  bool window_;     // no member-crossing node: members are independent
  int64_t chunk_;
  std::shared_ptr<void> keep_alive_;
  std::function<void()> release_;
};

}  // namespace nyto::llvm_backend
