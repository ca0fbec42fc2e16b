// Constant folding. IR.h's numerics rule computes every Scalar-typed node in double, once per
// member, in every backend; folding a Scalar node whose operands are all constants with the same
// double arithmetic (ir/Eval.h, shared with the interpreter) is therefore exact, not an
// approximation. Elem nodes are never folded: they compute in the kernel dtype, unknown here.
#include "ir/Error.h"
#include "ir/Eval.h"
#include "ir/Passes.h"
#include "ir/Rebuild.h"

namespace nyto::ir {

Graph constant_fold(const Graph& g, bool bind_params, const std::vector<double>& param_values) {
  NYTO_INTERNAL_ASSERT(param_values.empty() || param_values.size() == g.params.size(),
                       "constant_fold: one value per param expected");
  return detail::rebuild(g, [&](const Node& n, Builder& b, const Graph& out) -> NodeId {
    if (n.op == Op::Param && bind_params)
      return b.constant(param_values.empty() ? g.params.at(n.index).default_value
                                             : param_values[n.index]);
    // Only Scalar nodes fold: this excludes random draws and member values (they vary), masks
    // (there is no constant mask) and so a select (its condition is a mask). Leaves (Input,
    // Param, Members: known when the kernel runs) have no arguments to test.
    // Member reductions and reads depend on M (and a read is checked at run time), parameter-axis
    // reductions on the particle: never folded.
    if (n.type != Type::Scalar || is_leaf(n.op) || n.op == Op::Select || crosses_members(n.op) ||
        is_param_axis(n.op))
      return b.add(n);
    double v[2] = {0, 0};
    for (int a = 0; a < op_arity(n.op); ++a) {
      const Node& arg = out.nodes[n.args[a]];
      if (arg.op != Op::Const) return b.add(n);
      v[a] = arg.value;
    }
    return b.constant(op_arity(n.op) == 1 ? eval_unary<double>(n.op, v[0])
                                          : eval_binary<double>(n.op, v[0], v[1]));
  });
}

}  // namespace nyto::ir
