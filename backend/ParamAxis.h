// The driver of the parameter-axis pass plan (ir/ParamAxis.h): runs a rule with tsum, psum,
// tkth, numel(), elem() ... as passes over the particle's tensors, each pass an ordinary kernel
// (compiled by any backend, staged when its values cross members) run on blocks of whole
// 1024-element chunks of one tensor, with the reductions done by the driver between blocks:
//   sums     in double, in the blocked order of ir/IR.h (32 lanes per chunk, chunks in order,
//            tensors in order): the same bits for every backend and thread count;
//   min/max  IEEE minimum/maximum (order-free);
//   (an llvm pass kernel reduces its chunks of a sum, min or max itself, KernelSpec::chunk, and
//   hands the driver one double per chunk instead of the argument in a block temporary)
//   tkth/pkth  an exact radix select on the order-preserving key of the value's bits: one pass
//            per digit (11 bits: 3 for float32, 6 for float64) counts the elements whose key
//            starts with the prefix chosen so far, per tensor (or particle) and member, in
//            integer histograms; linear in the elements, no copy of them, no sort.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/Kernel.h"
#include "backend/Staged.h"
#include "ir/IR.h"

namespace nyto::param_axis {

/// Whether `g` runs through this driver (ir::has_param_axis).
bool needed(const ir::Graph& g);

/// Whether a kernel of (g, spec) honours a member window with a backend whose pass kernels do
/// (llvm; Kernel::member_window): no reduction along the parameter axis varies per member, and
/// no pass kernel reads a windowed value at another member (x[0]). Member sums of rows are
/// folded over the windows (KernelArgs::fold; sep-CMA-ES's msum(w * y)), block by block in
/// order; PGPE's member sums of keyed noise are computed whole.
bool windowable(const ir::Graph& g, const KernelSpec& spec);

/// The pass plan of (g, spec) as text (`nyto compile --emit ir-opt`).
std::string describe(const ir::Graph& g, const KernelSpec& spec);

/// Each pass kernel's graph and spec, as compile() compiles them with `chunk_outputs` (`--emit llvm`).
std::vector<std::pair<ir::Graph, KernelSpec>> pass_kernels(const ir::Graph& g, const KernelSpec& spec,
                                                           bool chunk_outputs = true);

/// The kernel running (g, spec) in passes, each pass kernel compiled by `compile`.
/// `chunk_outputs`: `compile` implements chunk outputs (KernelSpec::chunk; llvm_backend::compile
/// does): the argument of a sum, min or max is then reduced per chunk by the pass kernel itself,
/// as the driver reduces a stored argument (sums in the same order: the same bits), instead of
/// written to a block temporary (interp keeps that path: it is the oracle the fused reductions
/// are tested against).
/// run() reads KernelArgs::tensors (or takes each of `ranges` as one tensor when it is empty);
/// an output with spec.values[o] is a value output: out[o] points to one double per member (one
/// when it does not vary per member). Throws MemberIndexError before anything is written when an
/// index or key checked before the storing pass is out of range.
std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec, const staged::CompileFn& compile,
                                bool chunk_outputs = false);

}  // namespace nyto::param_axis
