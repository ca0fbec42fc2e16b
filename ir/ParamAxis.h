// The pass plan of a rule with parameter-axis reductions (tsum, psum, tkth, ...): where the
// fused element loop splits into passes over the particle.
//
// A reduction's value is known only after a whole pass over the elements it reduces, so a rule
// whose values depend on reductions runs in passes. Pass p computes the arguments of the
// reductions of level p + 1 (level: the most reductions on any path from a leaf to the node) and,
// in the last element pass, stores the outputs. That is the fewest passes possible: a reduction
// of level l needs l passes before its users can run. A pass recomputes what it needs from the
// inputs instead of keeping element values from an earlier one (each pass reads each input once;
// nothing the size of a particle is kept), so a rand() used on both sides of a boundary is drawn
// again with the same counter (backend/Random.h keys draws by site, member and element): the same
// bits. What crosses a boundary is the reductions' values: one double per tensor and member
// (t*) or per member (p*), bound to the next passes as scalar / per-member inputs, which every
// backend already compiles (a block of elements never spans two tensors, so a tensor scalar is
// one number per block).
//
// Outputs are stored by one pass only, the last that computes element values: an output updated
// in place is never read back by a later pass. Value outputs (no element or tensor axis: psum of
// something, a new sigma) are evaluated after the reductions they need, by the scalar prelude.
#pragma once

#include <string>
#include <vector>

#include "ir/IR.h"

namespace nyto::ir {

/// Elements per chunk of the blocked sum order (ir/IR.h): blocks of a pass are whole chunks.
constexpr int64_t kParamChunk = 1024;
/// Lanes of one chunk's sum (ir/IR.h): element i of a chunk is added to lane i mod kSumLanes.
constexpr int kSumLanes = 32;

/// Whether `g` has a parameter-axis node (is_param_axis): it runs through the pass driver.
bool has_param_axis(const Graph& g);

/// An input a pass kernel gets besides the rule's (appended after them, in this order).
struct PassInput {
  enum class From : uint8_t {
    Reduction,  // the value of reduction `index` (ParamPlan::reductions), for this block's tensor
    Numel,      // the block's tensor's element count (scalar)
    Elems,      // P, the particle's operational element count (scalar)
    Elem,       // the element's index among the P (an element value, in the dtype)
  };
  From from;
  int32_t index = -1;
  bool member = false;  // a reduction that varies per member: bound per member
};

/// A reduction computed by a pass: its argument is output `root` of the pass kernel.
struct PassReduction {
  int32_t slot;         // index into ParamPlan::reductions
  int32_t root;         // output of Pass::kernel holding the argument
  NodeId k = -1;        // TKth/PKth: the node of Pass::values holding k (no element axis)
};

struct Pass {
  Graph kernel;   // the element kernel: rule inputs, then `extras`; outputs: roots, then stores
  Graph values;   // `kernel`'s nodes and the k of its selections (for the scalar prelude)
  Graph roots_only;  // `kernel` without the stores (the earlier digits of a selection), or empty
  std::vector<PassInput> extras;
  std::vector<PassReduction> reductions;
  int32_t roots = 0;             // kernel outputs 0..roots-1 are reduction arguments
  std::vector<int32_t> stores;   // kernel output roots + i stores rule output stores[i]
  bool selects = false;          // has a TKth/PKth: runs once per radix digit
};

struct ParamPlan {
  Graph typed;                         // the rule, specialized for its binding
  std::vector<NodeId> reductions;      // every reduction node of `typed` that is used, in node order
  std::vector<Pass> passes;
  // Value outputs (rule outputs flagged by `value_out`): evaluated by the prelude of `values`
  // before pass `values_before` runs (== passes.size(): after the last pass).
  Graph values;
  std::vector<PassInput> value_extras;
  std::vector<std::pair<int32_t, NodeId>> value_outputs;  // rule output -> node of `values`
  int32_t values_before = 0;
};

/// Plans `g` (verified, optimized; has_param_axis) for inputs of `input_types`; output o is a
/// value output when value_out[o] (else it is stored per element).
ParamPlan plan_passes(const Graph& g, const std::vector<Type>& input_types, const std::vector<bool>& value_out);

/// The plan as text (`nyto compile --emit ir-opt`): per pass, its reductions and kernel.
std::string print(const ParamPlan& plan);

}  // namespace nyto::ir
