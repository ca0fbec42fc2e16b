// The core of a rule run, shared by compiled scripts (Rule::run) and C++ particle expressions:
// binds values to an optimized graph's inputs, checks everything, then runs one kernel per
// storage group. Not installed.
#pragma once

#include <nyto/rule.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <string>

#include "ir/IR.h"

namespace nyto {
class Kernel;
}

namespace nyto::detail {

/// Which input (output = false) or output of the graph an error is about.
struct Site {
  bool output;
  size_t index;
  bool read = false;  // a checked node (x[i], rand(k, j)): `index` is its check site
  bool pick = false;  // pick(k): `index` is k
};
/// Renders a bind-time error (code such as "E0501") about `site`: located for scripts, plain for
/// C++ expressions.
using Locator = std::function<std::string(const char* code, Site site, const std::string& message)>;

/// What a run derives from the graph and the kinds of its bindings alone (the graph typed for
/// them, which outputs are values, the graph the kernels run), kept per kind of binding so a
/// rule run every generation derives it once (a few microseconds of a tiny swarm's step).
/// Whether an output of type `t` is a value output (a number or per-member vector returned in the
/// result map): it has neither the element nor the tensor axis and no particle or swarm is bound
/// to its name (then it fills every element instead).
inline bool is_value_output(ir::Type t, bool bound_to_array) { return !t.element && !t.tensor && !bound_to_array; }

struct BindPlan {
  ir::Graph typed;              // specialize_inputs for the inputs' kinds
  std::vector<bool> value_out;  // per output: is_value_output
  bool param_rule = false;      // reduces along the parameter axis: runs in passes (ir/ParamAxis.h)
  ir::Graph kernel_graph;       // without the value outputs (when there are any)
  ir::Graph kernel_typed;       // kernel_graph typed
  // The kernels obtained from the kernel cache, by dtype and backend: a run finds its kernel
  // without serializing the graph into the cache's key. Held by the Rule, like its plans (so,
  // like a kernel, a Rule must not live in a static object; see backend/KernelCache.h).
  mutable std::mutex kernel_mu;
  mutable std::map<std::string, std::shared_ptr<const Kernel>> kernels;
};
struct FastRun;  // runtime/rule.cpp
struct BindPlanCache {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<const BindPlan>> plans;
  // The last plain run's bindings, as checked, and its kernel arguments: a run bound to the same
  // particles and swarms at the same versions replays them after a few comparisons. Taken out
  // while a run uses it (a concurrent run of the rule takes the checked path).
  std::shared_ptr<FastRun> fast;
};

/// Runs `g` (optimized, fused) with `bindings` by input/output name; see Rule::run. `plans`, when
/// given, must belong to `g` (it is keyed by binding kinds only).
std::map<std::string, Value> run_graph(const ir::Graph& g, const std::string& rule_name,
                                       const Locator& locate, const Bindings& bindings,
                                       const RunOptions& options, BindPlanCache* plans = nullptr);

}  // namespace nyto::detail
