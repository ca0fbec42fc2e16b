// The core of a rule run, shared by compiled scripts (Rule::run) and C++ particle expressions:
// binds values to an optimized graph's inputs, checks everything, then runs one kernel per
// storage group. Not installed.
#pragma once

#include <nyto/rule.h>

#include <functional>
#include <map>
#include <string>

#include "ir/IR.h"

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

/// Runs `g` (optimized, fused) with `bindings` by input/output name; see Rule::run.
std::map<std::string, Value> run_graph(const ir::Graph& g, const std::string& rule_name,
                                       const Locator& locate, const Bindings& bindings,
                                       const RunOptions& options);

}  // namespace nyto::detail
