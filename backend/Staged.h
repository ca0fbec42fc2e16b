// The driver of the staged schedule (ir/Schedule.h): runs a rule whose values cross members as
// one pass over blocks of elements, with each stage's elementwise kernels compiled by a backend
// (llvm in practice; interp in tests, to check the driver against the naive interpreter).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/Kernel.h"
#include "ir/IR.h"

namespace nyto::staged {

/// Compiles one stage kernel (an elementwise graph) for a spec: a backend's compile function.
using CompileFn = std::function<std::unique_ptr<Kernel>(const ir::Graph&, const KernelSpec&)>;

/// Per output of `g`: whether it is stored for every member. An in-place output follows its
/// target's binding (a swarm: yes); a new output is a swarm exactly when its value varies per
/// member (runtime/rule.cpp makes it so). `g` is typed for `spec` (ir::specialize_inputs).
std::vector<bool> per_member_store(const ir::Graph& typed, const KernelSpec& spec);

/// Whether `g` bound as `spec` needs the staged driver (ir::needs_schedule).
bool needed(const ir::Graph& g, const KernelSpec& spec);

/// Whether a kernel of (g, spec) honours a member window (Kernel::member_window): elementwise
/// with no member-crossing op, or staged. A staged kernel computes a member reduction of values
/// every member computes alone (msum(randn(g, j) * f)) for every member; one of a swarm's rows
/// (msum(x)) is a member fold over the windows (KernelArgs::fold); a member read x[i] of a
/// swarm's rows gets the rows it reads outside the window (KernelArgs::outside_rows).
bool windowable(const ir::Graph& g, const KernelSpec& spec);

/// What a member window of a staged kernel of (g, spec) needs from its caller
/// (Kernel::member_folds, Kernel::member_reads); nothing for an elementwise (g, spec).
struct WindowNeeds {
  bool folds = false;  // member folds of windowed values (KernelArgs::fold)
  bool reads = false;  // member reads of windowed values (KernelArgs::outside_rows)
};
WindowNeeds window_needs(const ir::Graph& g, const KernelSpec& spec);

/// The schedule of (g, spec) as text (ir::print(Schedule)): `nyto compile --emit ir-opt`.
std::string describe(const ir::Graph& g, const KernelSpec& spec);

/// Each stage kernel's graph and spec, as compile() compiles them (`--emit llvm`).
std::vector<std::pair<ir::Graph, KernelSpec>> stage_kernels(const ir::Graph& g, const KernelSpec& spec);

/// The staged kernel for (g, spec): the prelude (backend/Prelude.h), then per block of elements
/// the stages' crossings (member sums in member order 0..M-1, member reads from the block's
/// temporaries) and kernels, each compiled by `compile`. Results are bit-identical to the
/// interpreter's whatever the thread count (blocks are independent; a block runs on one
/// thread). Throws what `compile` throws; run() throws MemberIndexError before any write.
std::unique_ptr<Kernel> compile(const ir::Graph& g, const KernelSpec& spec, const CompileFn& compile);

}  // namespace nyto::staged
