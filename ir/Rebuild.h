// Internal helper of the passes: rebuild a graph node by node through a fresh hash-consing
// Builder (tinygrad's graph_rewrite pattern), remapping arguments and outputs. Because every node
// goes through Builder::add, every pass that uses this also does CSE of what it produces.
#pragma once

#include <vector>

#include "ir/IR.h"

namespace nyto::ir::detail {

/// Calls `rewrite(Node n, Builder& b, const Graph& out) -> NodeId` for each node of `g` in order,
/// with n's arguments already mapped to ids in the new graph; the returned id replaces the node.
/// Inputs, params, rand_sites and outputs (remapped) carry over unchanged.
template <class Rewrite>
Graph rebuild(const Graph& g, Rewrite&& rewrite) {
  Graph out;
  out.inputs = g.inputs;
  out.params = g.params;
  out.rand_sites = g.rand_sites;
  Builder b(out);
  std::vector<NodeId> map(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node n = g.nodes[i];
    for (int a = 0; a < op_arity(n.op); ++a) n.args[a] = map[n.args[a]];
    map[i] = rewrite(n, b, static_cast<const Graph&>(out));
  }
  for (Output o : g.outputs) {
    o.node = map[o.node];
    out.outputs.push_back(o);
  }
  return out;
}

/// The identity rewrite: re-add the node as is (random sites keep their index).
inline NodeId keep(const Node& n, Builder& b) { return b.add(n); }

}  // namespace nyto::ir::detail
