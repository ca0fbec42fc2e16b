// The IR passes and the one pipeline that runs them (Halide's Lower.cpp: one straight-line
// function that can print the IR after each pass and time it). Every pass is a function
// Graph -> Graph in its own file; none of them changes Graph::inputs, Graph::params or the random
// site numbering, because those are the kernel's ABI and part of the random stream key.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "ir/IR.h"

namespace nyto::ir {

// ---- Verify.cpp -------------------------------------------------------------------------------

/// Checks every invariant of a Graph: topological order (args < id), arity, attribute ranges
/// (input/param index, rand site < rand_sites and unique), types consistent with infer_type,
/// outputs valid (node in range, not a Mask, target an input or -1, targets and names unique).
/// Throws std::logic_error("nyto internal error ...") on the first violation.
void verify(const Graph& g);

/// Retypes a graph for a binding: Input i gets `input_types[i]` (bind_type of its BindKind,
/// backend/Kernel.h) and every node's type is re-inferred (infer_type, IR.h). An input
/// the frontend typed Scalar may be bound to a particle (IR.h); backends specialize on this
/// retyped graph so the numerics rule (Scalar in double, Elem in dtype) follows the binding.
/// Node ids are unchanged (nothing is merged), so `k.graph = specialize_inputs(k.graph, types)`
/// keeps a FusedKernel's loads/compute/stores valid.
Graph specialize_inputs(const Graph& g, const std::vector<Type>& input_types);

// ---- the passes -------------------------------------------------------------------------------

/// ConstantFold.cpp. Folds every Scalar-typed node whose arguments are all Const into a Const,
/// computed in double with ir/Eval.h (exact w.r.t. every backend, by IR.h's numerics rule). With
/// `bind_params`, Param nodes first become Consts of `param_values` (or the declared defaults when
/// `param_values` is empty). Never folds Input, Rand/Randn or Elem/Mask nodes.
Graph constant_fold(const Graph& g, bool bind_params = false,
                    const std::vector<double>& param_values = {});

/// Simplify.cpp. IEEE-safe algebraic rewrites only: each is exact for every operand including
/// NaN, ±inf and ±0, in float32 and float64 (rules and reasons listed in Simplify.cpp).
Graph simplify(const Graph& g);

/// CSE.cpp. Rebuilds the graph through the hash-consing Builder so identical nodes are one.
/// Rand/Randn nodes are never merged (two rand() calls are two independent draws).
Graph cse(const Graph& g);

/// DCE.cpp. Drops nodes no output reaches. Keeps inputs, params and rand_sites as they are: a
/// dead rand() leaves a gap in the site numbers rather than renumbering the live ones, so a
/// rule's draws never change because an unrelated statement was optimized away.
Graph dce(const Graph& g);

/// Fuse.cpp. A rule as one multi-output kernel: every input is loaded once, every output stored
/// once per element. `loads` are the Input nodes (one per input index that is read, in index
/// order), `compute` every other node in topological order, `stores` the outputs in order.
/// A backend evaluates, for each (member, element): loads, then compute, then stores.
struct FusedKernel {
  Graph graph;
  std::vector<NodeId> loads;
  std::vector<NodeId> compute;
  std::vector<Output> stores;
};

/// Builds the fused kernel plan. If the graph has two Input nodes for one input (typed Scalar and
/// Elem), they become one Elem node and the users are retyped.
FusedKernel fuse(const Graph& g);

/// The fused kernel as text: a header line, then `load`, compute and `store` lines.
std::string print(const FusedKernel& k);

// ---- Pipeline.cpp -----------------------------------------------------------------------------

/// Options of optimize().
struct PassOptions {
  bool bind_params = false;          // fold Params as constants (see constant_fold); the kernel
                                     // then ignores KernelArgs::params (still one per ParamDecl)
  std::vector<double> param_values;  // values when bind_params; empty = declared defaults
  int max_rounds = 8;                // fold/simplify/cse/dce rounds before giving up on a fixpoint
  bool verify_each = true;           // verify() the input and the result of every pass
  std::ostream* print_after = nullptr;  // if set: "-- <pass> (round r) --" then the IR, per pass
  std::ostream* timings = nullptr;      // if set: one line "<pass> <microseconds> us" per pass run
};

/// The pipeline: verify (and print as "-- input --"), then rounds of constant_fold -> simplify -> cse -> dce until a round
/// changes nothing (at most max_rounds), then fuse.
FusedKernel optimize(Graph g, const PassOptions& options = {});

}  // namespace nyto::ir
