// Lowering IR to LibTorch operations: the backend for what interp and llvm do not take (other
// dtypes such as float16/bfloat16, other devices). One ATen op per IR node over a [members, len]
// block per operational range, so it is slower than the fused loop but runs wherever ATen runs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "backend/Kernel.h"
#include "ir/IR.h"

namespace nyto::aten_backend {

/// One run of a graph over tensors. Shapes: a Particle input is the 1-D flat storage of one
/// group; a Swarm input is [members, P]; a MemberScalar input is a [members] tensor (any dtype);
/// a Scalar input is undefined and its value is in `scalar`. Each output is [members, P] (or 1-D
/// when members == 1) of the group's dtype and device; it may be the very tensor of an input
/// (in place). Elements outside `ranges` are not touched.
struct Call {
  int64_t members = 1;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<BindKind> kinds;  ///< one per Graph::inputs
  std::vector<at::Tensor> in;
  std::vector<double> scalar;
  std::vector<double> params;
  std::vector<at::Tensor> out;
  /// Parameter-axis rules (ir/ParamAxis.h): the parameter tensors as [begin, end) ranges, one per
  /// operational non-empty tensor in storage order (empty: each range is one tensor), and per
  /// output whether it is a value output, whose `out` is a [members] float64 tensor to fill.
  std::vector<std::pair<int64_t, int64_t>> tensors;
  std::vector<bool> values;
  uint64_t seed = 0;  ///< random key, as backend/Random.h
  uint64_t invocation = 0;
  uint32_t group = 0;
};

/// Runs `g` (verified, any pass state) on `call`. Scalar nodes compute in double per member and
/// are rounded once to the group dtype where they meet an Elem node (IR.h's numerics rule).
///
/// A parameter-axis rule (ir/ParamAxis.h: tsum, psum, tkth, numel(), elem(), ...) is evaluated
/// node by node over a block per tensor of `tensors` (so a tensor scalar is a per-member value in
/// its block), everything before anything is stored (an output updated in place is never read by
/// a reduction); value outputs are filled last. Against the blocked order of the other backends:
///   tmin/tmax/pmin/pmax, tkth/pkth, numel(), elem(), elems(): the same values (min/max and the
///     selections on the order-preserving integer key of the bits, at::amin/amax/kthvalue: IEEE
///     minimum/maximum, NaN above +inf for the selections, -0 below +0; k floored, clamped to
///     [1, n], NaN as 1);
///   tsum/psum (and tmean/pmean): in float64 (at::sum(dtype=kDouble) per tensor; psum adds the
///     tensors' sums in parameter order), a sum of -0s is -0; not the same bits. Bound: with S the
///     sum of |a| over the reduced elements (a in the dtype, exact in double), n of them, in T
///     tensors, |aten - interp| <= (n / 1024 + T + 400) * 2^-53 * S: each is a sum in double
///     whose terms pass through at most 131 + n / 1024 (+ T) additions in the blocked order and
///     a few hundred in at::sum's cascade; so |aten - interp| <= 1e-12 * S up to n = 8 million
///     elements, float32 or float64 (tested to 1e-12 * S on 101011 elements).
/// Random draws are those of backend/Random.h, bit-identical to the other backends (for float32
/// and float64; other dtypes round the float32 draw). Throws std::logic_error for a call that
/// does not match the graph.
void run(const ir::Graph& g, const Call& call);

/// The same behind the raw-pointer kernel ABI (CPU, float32/float64), so the differential tests
/// treat all backends alike.
std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec);

}  // namespace nyto::aten_backend
