// Dead-code elimination: keep only nodes some output reaches.
//
// Random sites are NOT renumbered. A site index is part of the Philox counter (backend/Random.h),
// so renumbering after removing a dead rand() would change the numbers every later rand() draws:
// a rule's random stream must not depend on which unrelated statements the optimizer removed.
// rand_sites therefore stays the count before DCE, and dead sites leave gaps.
// Inputs and params are kept too: their indices are the kernel's binding ABI (Kernel.h).
#include "ir/Passes.h"

namespace nyto::ir {

Graph dce(const Graph& g) {
  std::vector<char> live(g.nodes.size(), 0);
  for (const Output& o : g.outputs) live.at(o.node) = 1;
  // Arguments precede their users, so one backward sweep marks everything reachable.
  for (size_t i = g.nodes.size(); i-- > 0;)
    if (live[i])
      for (int a = 0; a < op_arity(g.nodes[i].op); ++a) live[g.nodes[i].args[a]] = 1;
  Graph out;
  out.inputs = g.inputs;
  out.params = g.params;
  out.rand_sites = g.rand_sites;
  std::vector<NodeId> map(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!live[i]) continue;
    Node n = g.nodes[i];
    for (int a = 0; a < op_arity(n.op); ++a) n.args[a] = map[n.args[a]];
    out.nodes.push_back(n);
    map[i] = NodeId(out.nodes.size() - 1);
  }
  for (Output o : g.outputs) {
    o.node = map[o.node];
    out.outputs.push_back(o);
  }
  return out;
}

}  // namespace nyto::ir
